"""One SyncTalk frame end to end in plain PyTorch (the numeric reference for the exported graphs).

`Reference(sd, mode, height, width, intrinsics, mean_density_torso)`:
  `.render(pose, enc_a, eye, background, ori=None, mask=None, anchor=None)` -> RGB [H, W, 3] in [0, 1]: float32,
  or float64 after the portrait blend (SyncTalk blends with a float64 mask);
  `.frame(...)` (same arguments) -> uint8 [H, W, 3] = uint8(rgb * 255), truncated, as SyncTalk writes its frames.
pose is the ngp-converted c2w [4, 4]; background [H, W, 3]; ori (portrait) [H, W, 3] float32 (ori_imgs / 255);
mask (portrait) [H, W, 1], float64 (255 - G) / 255; anchor (torso) [1, 6] from `model.wrapped_anchor`.
The head is marched with SyncTalk's schedule over all H x W rays (`marcher.render_rays`); `.schedule` holds the
(n_alive, n_step) iterations of the last render.
"""
import numpy as np
import torch
import torch.nn.functional as F

from .grid import TORSO, TRIPLANE, grid_encode
from .marcher import bg_coords, camera_dirs, near_far, rays, render_rays, unpack_bitfield
from .model import HeadNet, TorsoNet

DENSITY_THRESH_TORSO = 0.01
PLANES = (('xy', (0, 1)), ('yz', (1, 2)), ('xz', (0, 2)))


def torso_occupancy(sd, mean_density_torso, height, width):
    """Pixels where the learned torso is queried: bilinear (align_corners) sample of the 128^2 torso grid."""
    grid = sd['density_grid_torso'].float().view(1, 1, 128, 128)
    coords = bg_coords(height, width).view(1, -1, 1, 2)
    occ = F.grid_sample(grid, coords, align_corners=True).view(-1)
    return occ > min(DENSITY_THRESH_TORSO, mean_density_torso)


class Reference:
    def __init__(self, sd, mode, height, width, intrinsics, mean_density_torso=0.0):
        self.mode, self.height, self.width = mode, height, width
        self.schedule = []
        self.head = HeadNet(sd)
        self.emb = {p: sd[f'encoder_{p}.embeddings'].float() for p, _ in PLANES}
        self.occ = unpack_bitfield(sd['density_bitfield'])
        self.dirs = camera_dirs(height, width, intrinsics)
        if mode == 'torso':
            emb = sd['torso_encoder.embeddings'].float()
            self.torso = TorsoNet(sd, lambda x: grid_encode(emb, TORSO, x))
            self.torso_mask = torso_occupancy(sd, mean_density_torso, height, width)
            self.coords = bg_coords(height, width)

    def encode_x(self, xyz):
        return torch.cat([grid_encode(self.emb[p], TRIPLANE, xyz[:, list(ax)]) for p, ax in PLANES], dim=-1)

    @torch.no_grad()
    def render(self, pose, enc_a, eye, background, ori=None, mask=None, anchor=None):
        o, d = rays(pose, self.dirs)
        near, far = near_far(o, d)
        enc_a, eye = torch.as_tensor(enc_a).float(), torch.as_tensor(eye).float().reshape(1, -1)
        field = lambda xyz, dirs: self.head(self.encode_x(xyz), dirs, enc_a, eye)
        wsum, image, self.schedule = render_rays(o, d, near, far, self.occ, field)
        bg = torch.as_tensor(background).float().reshape(-1, 3)
        if self.mode == 'torso':
            m = self.torso_mask
            alpha, color = torch.zeros(bg.shape[0], 1), torch.zeros(bg.shape[0], 3)
            if m.any():
                alpha[m], color[m] = self.torso(self.coords[m], torch.as_tensor(anchor).float().reshape(1, 6))
            bg = color * alpha + bg * (1 - alpha)
        image = torch.clamp(image + (1 - wsum)[:, None] * bg, 0.0, 1.0).reshape(self.height, self.width, 3)
        if ori is not None:
            m = torch.as_tensor(np.asarray(mask, dtype=np.float64))
            image = image * m + torch.as_tensor(ori) * (1 - m)
        return image

    def frame(self, *args, **kwargs):
        return (self.render(*args, **kwargs).numpy() * 255).astype(np.uint8)

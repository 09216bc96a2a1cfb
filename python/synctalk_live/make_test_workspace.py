"""Build a small SyncTalk model + data folder in the official layout, random weights, fixed seed (test fixture).

CLI: python3 -m synctalk_live.make_test_workspace --out DIR [--variant portrait|torso|au45|torso-au45] [--size 64]
       [--frames 6]
Writes DIR/data (transforms_train.json, ori_imgs/, parsing/*_face.png, torso_imgs/ RGBA, bc.jpg, bs.npy [N, 52],
au.csv for the au45 variants), DIR/workspace/checkpoints/ngp_ep0001.pth ('model' state_dict with the official key
names and shapes, an ellipsoidal head in the 128^3 occupancy bitfield; torso weights for the torso variants; 1 eye
dim for the au45 variants) and DIR/audio_visual_encoder.pth (AVE keys).
The face masks are soft like SyncTalk's: a binary face ellipse through a 9x9 Gaussian blur (sigma 1.7, what
OpenCV's GaussianBlur takes for ksize 9 and sigma 0; reflected borders), stored as G = 255 - mask.
"""
import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .audio import AudioEncoder, AudioHead
from .grid import TORSO, TRIPLANE
from .marcher import GRID, camera_dirs, morton3d
from .model import mlp

SEED = 1234
HEAD_RADII = (0.55, 0.42, 0.55)
VARIANTS = ('portrait', 'torso', 'au45', 'torso-au45')
BLUR_SIZE, BLUR_SIGMA = 9, 1.7
AUDIO_DENSITY_SCALE = 0.2
DENSITY_LOG = 2.8


def _linear(g, out_dim, in_dim):
    return torch.randn(out_dim, in_dim, generator=g) * math.sqrt(2.0 / in_dim)


def _mlp(g, sd, name, dims):
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        sd[f'{name}.net.{i}.weight'] = _linear(g, b, a)


def occupancy_bitfield():
    """Ellipsoid head: voxel centres inside HEAD_RADII are occupied. Returns (bitfield uint8, grid float, mean)."""
    n = torch.arange(GRID, dtype=torch.int64)
    x, y, z = torch.meshgrid(n, n, n, indexing='ij')
    centre = lambda v: (v.float() + 0.5) / GRID * 2 - 1
    inside = ((centre(x) / HEAD_RADII[0]) ** 2 + (centre(y) / HEAD_RADII[1]) ** 2
              + (centre(z) / HEAD_RADII[2]) ** 2) < 1
    idx = morton3d(x, y, z)[inside]
    bits = torch.zeros(GRID ** 3, dtype=torch.int64)
    bits[idx] = 1
    bitfield = (bits.view(-1, 8) << torch.arange(8)).sum(dim=1).to(torch.uint8)
    grid = bits.float().view(1, -1) * 5.0
    return bitfield, grid, float(grid.mean())


def head_state_dict(g, eye_dim):
    sd = {}
    sd['aabb_train'] = torch.tensor([-1.0, -0.5, -1.0, 1.0, 0.5, 1.0])
    sd['aabb_infer'] = sd['aabb_train'].clone()
    sd['individual_codes'] = torch.randn(20000, 4, generator=g) * 0.1
    bitfield, grid, mean_density = occupancy_bitfield()
    sd['density_grid'] = grid
    sd['density_bitfield'] = bitfield
    sd['step_counter'] = torch.zeros(16, 2, dtype=torch.int32)
    audio = AudioHead()
    for k, v in audio.state_dict().items():
        sd[k] = torch.randn(v.shape, generator=g) * (0.3 if v.dim() == 1 else 1.0 / math.sqrt(v[0].numel()))
    offsets = torch.tensor(TRIPLANE.offsets, dtype=torch.int32)
    for plane in ('xy', 'yz', 'xz'):
        sd[f'encoder_{plane}.embeddings'] = torch.rand(TRIPLANE.rows, 1, generator=g) * 2 - 1
        sd[f'encoder_{plane}.offsets'] = offsets.clone()
    eye_hidden = 64 if eye_dim == 7 else 16
    _mlp(g, sd, 'eye_att_net', [36, eye_hidden, eye_dim])
    _mlp(g, sd, 'sigma_net', [36 + 32 + eye_dim, 64, 64, 65])
    _mlp(g, sd, 'color_net', [84, 64, 3])
    _mlp(g, sd, 'unc_net', [36, 32, 1])
    _mlp(g, sd, 'aud_ch_att_net', [36, 64, 32])
    # The audio code enc_a of the random audio head is ~5 in magnitude (speech through the random AVE): its
    # columns are scaled down so that audio modulates the density instead of swamping it. Then the density row is
    # calibrated so that exp(h0) spans thin to opaque (median sigma ~ e^DENSITY_LOG ~ 33).
    sd['sigma_net.net.0.weight'][:, 36:68] *= AUDIO_DENSITY_SCALE
    x = torch.rand(4096, 36 + 32 + eye_dim, generator=g) * 2 - 1
    hidden = mlp(x, [sd['sigma_net.net.0.weight'], sd['sigma_net.net.1.weight']])
    hidden = torch.relu(hidden)
    row = sd['sigma_net.net.2.weight'][0].abs()
    h0 = hidden @ row
    sd['sigma_net.net.2.weight'][0] = row * (DENSITY_LOG / float(h0.median()))
    return sd, mean_density


def torso_state_dict(g, height, width):
    sd = {'individual_codes_torso': torch.randn(20000, 8, generator=g) * 0.1,
          'anchor_points': torch.tensor([[0.01, 0.01, 0.1, 1], [-0.1, -0.1, 0.1, 1], [0.1, -0.1, 0.1, 1]])}
    r = torch.linspace(-1, 1, 128)
    rr, cc = torch.meshgrid(r, r, indexing='ij')
    sd['density_grid_torso'] = ((cc > 0.2).float() * (0.5 + 0.5 * torch.cos(3 * rr) ** 2)).reshape(-1)
    _mlp(g, sd, 'torso_deform_net', [84, 32, 32, 2])
    sd['torso_deform_net.net.2.weight'] *= 0.05
    sd['torso_encoder.embeddings'] = torch.rand(TORSO.rows, 2, generator=g) * 2 - 1
    sd['torso_encoder.offsets'] = torch.tensor(TORSO.offsets, dtype=torch.int32)
    _mlp(g, sd, 'torso_net', [116, 32, 32, 4])
    return sd, float(sd['density_grid_torso'].mean())


def ave_state_dict(g):
    sd = {}
    for k, v in AudioEncoder().state_dict().items():
        if k.endswith('num_batches_tracked'):
            sd[k] = torch.tensor(1000)
        elif k.endswith('running_var'):
            sd[k] = torch.rand(v.shape, generator=g) + 0.5
        elif k.endswith('conv_block.0.weight'):
            sd[k] = torch.randn(v.shape, generator=g) * math.sqrt(2.0 / v[0].numel())
        else:
            sd[k] = torch.randn(v.shape, generator=g) * 0.1 + (1.0 if k.endswith('1.weight') else 0.0)
    return sd


def ngp_to_nerf(n, scale=4.0):
    """Inverse of `nerf_matrix_to_ngp`."""
    p = np.eye(4)
    for src, dst in ((0, 1), (1, 2), (2, 0)):
        p[dst, :3] = [n[src, 0], -n[src, 1], -n[src, 2]]
        p[dst, 3] = n[src, 3] / scale
    return p


def camera_pose(rng):
    centre = np.array([rng.uniform(-0.15, 0.15), rng.uniform(-0.1, 0.1), 2.8 + rng.uniform(-0.1, 0.1)])
    forward = -centre / np.linalg.norm(centre)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    n = np.eye(4)
    n[:3, 0], n[:3, 1], n[:3, 2], n[:3, 3] = right, down, forward, centre
    return n


def _smooth(rng, h, w, c):
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.5 + 0.4 * np.sin(6 * xx * rng.uniform(0.5, 2) + 6 * yy * rng.uniform(0.5, 2) + k)
                    for k in range(c)], axis=-1)
    return np.clip(img + rng.normal(0, 0.03, img.shape), 0, 1)


def gaussian_blur(img, size=BLUR_SIZE, sigma=BLUR_SIGMA):
    """Separable normalised Gaussian of `size` taps on a 2-D float image, borders reflected without repeating the
    edge pixel (OpenCV's BORDER_REFLECT_101)."""
    x = np.arange(size) - (size - 1) / 2
    k = np.exp(-x * x / (2 * sigma * sigma))
    k /= k.sum()
    r = size // 2
    for axis in (0, 1):
        pad = [(r, r) if a == axis else (0, 0) for a in range(2)]
        padded = np.pad(img, pad, mode='reflect')
        img = sum(k[i] * np.take(padded, np.arange(i, i + img.shape[axis]), axis=axis) for i in range(size))
    return img


def _save(arr, path):
    Image.fromarray(np.round(arr * 255).astype(np.uint8)).save(path)


def write_data(root, rng, size, frames, au45):
    for sub in ('ori_imgs', 'parsing', 'torso_imgs'):
        (root / sub).mkdir(parents=True, exist_ok=True)
    focal = 1.9 * size
    meta = {'focal_len': focal, 'cx': size / 2, 'cy': size / 2, 'frames': []}
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size * 2 - 1
    for i in range(frames):
        meta['frames'].append({'img_id': i, 'aud_id': i, 'transform_matrix': ngp_to_nerf(camera_pose(rng)).tolist()})
        _save(_smooth(rng, size, size, 3), root / 'ori_imgs' / f'{i}.jpg')
        m = gaussian_blur(((xx / 0.45) ** 2 + ((yy + 0.05) / 0.55) ** 2 < 1).astype(np.float64))
        face = np.stack([_smooth(rng, size, size, 1)[..., 0], 1 - m, np.zeros_like(m)], axis=-1)
        _save(face, root / 'parsing' / f'{i}_face.png')
        alpha = np.clip((yy - 0.35) * 6 + 0.1 * np.sin(8 * xx + i), 0, 1)[..., None]
        _save(np.concatenate([_smooth(rng, size, size, 3), alpha], axis=-1), root / 'torso_imgs' / f'{i}.png')
    _save(_smooth(rng, size, size, 3), root / 'bc.jpg')
    (root / 'transforms_train.json').write_text(json.dumps(meta, indent=1))
    np.save(root / 'bs.npy', rng.uniform(0, 1, (frames, 52)).astype(np.float32))
    if au45:
        lines = ['frame, timestamp, confidence, success, AU12_r, AU45_r']
        lines += [f'{i + 1}, {i * 0.04:.2f}, 0.98, 1, 0.1, {rng.uniform(0, 2.5):.2f}' for i in range(frames)]
        (root / 'au.csv').write_text('\n'.join(lines) + '\n')


def make_workspace(out, variant='portrait', size=64, frames=6):
    out = Path(out)
    g = torch.Generator().manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    if variant not in VARIANTS:
        raise ValueError(f'variant {variant!r}: expected one of {VARIANTS}')
    au45 = variant.endswith('au45')
    write_data(out / 'data', rng, size, frames, au45)
    sd, mean_density = head_state_dict(g, 1 if au45 else 7)
    mean_density_torso = 0.0
    if variant.startswith('torso'):
        torso_sd, mean_density_torso = torso_state_dict(g, size, size)
        sd.update(torso_sd)
    ckpt = {'epoch': 1, 'global_step': 100, 'stats': {}, 'mean_count': 16, 'mean_density': mean_density,
            'mean_density_torso': mean_density_torso, 'model': sd}
    (out / 'workspace' / 'checkpoints').mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, out / 'workspace' / 'checkpoints' / 'ngp_ep0001.pth')
    torch.save(ave_state_dict(g), out / 'audio_visual_encoder.pth')
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', required=True)
    ap.add_argument('--variant', choices=VARIANTS, default='portrait')
    ap.add_argument('--size', type=int, default=64, help='frame width = height in pixels (default 64)')
    ap.add_argument('--frames', type=int, default=6, help='number of frames (default 6)')
    a = ap.parse_args(argv)
    make_workspace(a.out, a.variant, a.size, a.frames)


if __name__ == '__main__':
    main()

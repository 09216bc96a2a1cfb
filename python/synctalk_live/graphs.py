"""Export-friendly modules: the same computation as `reference`, written with static shapes and plain ops.

- batch: every graph takes a batch of B frames (B symbolic in the ONNX file, so one run serves the frames of many
  rooms). B is never read inside a graph: reshapes use -1, per-frame values reach per-ray and per-sample rows by
  broadcasting, and a constant gets a batch axis by `batch_rows` (no Shape / ConstantOfShape node, which would
  run on the CPU under WebGPU). Each frame's rows are computed as in a batch of one: a batch of B equals B runs
  of one, bit for bit, on the CPU provider.

- grids: every tri-plane level is de-hashed into a dense texture (`grid.dense_tables`), so a lookup is
  floor / Gather / bilinear weights; the tiled torso grid uses Mod on the corner index.
- marcher: `schedule.ScheduledMarcher`: SyncTalk's test-time schedule per frame (float32 running lattice, alive
  counts, n_step, samples 16..22 of the rays still alive, the kernel's compositing and stop rule), or a fixed
  number of samples per ray (`samples=S`, a speed option that does not reproduce SyncTalk).
- WebGPU: its kernels take float, int32 and uint32 only (no Or, no int64 arithmetic), so every computed value is
  float32, bool or int32; int64 appears only as Gather / GatherElements indices (a Cast just before the Gather)
  and TopK's indices. Integer values computed in float32 are exact (all below 2^24).
"""
import torch
from torch import nn

from .grid import TORSO, TRIPLANE, dense_tables
from .audio import ATT_LEN
from .encoders import freq_encode, sh_encode
from .marcher import BOUND, bg_coords, camera_dirs, near_far, unpack_bitfield
from .model import TORSO_SHRINK, HeadNet, TorsoNet, mlp
from .reference import PLANES, torso_occupancy
from .schedule import ScheduledMarcher


class GatherGrid(nn.Module):
    """Bilinear multi-level lookup from a flat table, tiled (the torso grid); int32 corner arithmetic."""

    def __init__(self, table, bases, strides, scales, level_dim, modulo):
        super().__init__()
        self.register_buffer('table', table.float())
        self.register_buffer('bases', bases.int())
        self.register_buffer('strides', strides.int())
        self.register_buffer('scales', torch.tensor([float(s) for s in scales], dtype=torch.float32))
        self.register_buffer('modulo', modulo.int())
        self.width = len(scales) * level_dim

    def forward(self, x):
        x01 = (x + 1.0) / 2.0
        inside = ((x01 >= 0) & (x01 <= 1)).float().amin(dim=-1, keepdim=True)
        pos = torch.clamp(x01, 0.0, 1.0)[:, None, :] * self.scales[None, :, None] + 0.5
        g = torch.floor(pos)
        f = pos - g
        g = g.int()
        acc = 0
        for corner in range(4):
            bx, by = corner & 1, (corner >> 1) & 1
            wx = f[:, :, 0] if bx else 1 - f[:, :, 0]
            wy = f[:, :, 1] if by else 1 - f[:, :, 1]
            idx = (g[:, :, 0] + bx) + (g[:, :, 1] + by) * self.strides
            # idx % modulo as int32 Div (idx >= 0: truncation is floor); WebGPU has no Mod kernel
            idx = idx - torch.div(idx, self.modulo, rounding_mode='trunc') * self.modulo
            vals = self.table[(idx + self.bases).long()]
            acc = acc + (wx * wy)[:, :, None] * vals
        return acc.reshape(-1, self.width) * inside


class TriplaneGrid(nn.Module):
    """All 36 tri-plane lookups (3 planes x 12 levels) of a point as ONE Gather of corner quads.

    Each de-hashed level texture T (side = res + 1) is stored as quads Q[gx + gy side] = (T[gx, gy], T[gx + 1, gy],
    T[gx, gy + 1], T[gx + 1, gy + 1]) (0 past the edge, never read: g <= res - 1), so a bilinear lookup is one row
    read; the bilinear sum is (wx wy) v per corner as in the CUDA encoder. xyz must lie in [-1, 1]^3 (it does:
    samples are clamped to the bound, as the CUDA marcher clamps them), so no point falls outside [0, 1] and no
    inside-test is needed."""

    def __init__(self, embeddings):
        super().__init__()
        quads, bases = [], []
        for plane, emb in enumerate(embeddings):
            table, level_bases, strides = dense_tables(emb, TRIPLANE)
            for level, side in enumerate(strides.tolist()):
                t = table[int(level_bases[level]):int(level_bases[level]) + side * side, 0].reshape(side, side)
                q = torch.zeros(side, side, 4)
                q[:, :, 0] = t
                q[:, :-1, 1] = t[:, 1:]
                q[:-1, :, 2] = t[1:, :]
                q[:-1, :-1, 3] = t[1:, 1:]
                bases.append(sum(int(b.shape[0]) for b in quads))
                quads.append(q.reshape(-1, 4))
        self.register_buffer('quads', torch.cat(quads, dim=0))
        # Per (plane, level) column j of [N, 36]: pos = x01[axis] scale + 0.5, rounded as the CUDA encoder rounds it
        # (x01[axis] picked by a 0/1 MatMul, exact), corner row = gx + gy side + base (exact integers in float32).
        # Every op works on whole [N, 36] tensors: broadcasts over inner axes are slow on the CPU provider.
        scales = torch.tensor([float(s) for s in TRIPLANE.scales])
        levels = scales.shape[0]
        pick = torch.zeros(2, 3, 3, levels)
        for p, (_, ax) in enumerate(PLANES):
            for a in range(2):
                pick[a, ax[a], p, :] = 1.0
        self.register_buffer('pick_x', pick[0].reshape(3, -1))
        self.register_buffer('pick_y', pick[1].reshape(3, -1))
        self.register_buffer('scale', scales.repeat(3).reshape(1, -1))
        self.register_buffer('side', strides.float().repeat(3).reshape(1, -1))
        self.register_buffer('base', torch.tensor(bases, dtype=torch.float32).reshape(1, -1))

    def forward(self, xyz):
        """xyz [N, 3] -> enc_x [N, 36] (planes xy | yz | xz, 12 levels each)."""
        x01 = (xyz + 1.0) / 2.0
        pos_x = (x01 @ self.pick_x) * self.scale + 0.5
        pos_y = (x01 @ self.pick_y) * self.scale + 0.5
        g_x, g_y = torch.floor(pos_x), torch.floor(pos_y)
        f_x, f_y = pos_x - g_x, pos_y - g_y
        v = self.quads[(g_x + g_y * self.side + self.base).long()].permute(2, 0, 1)
        h_x, h_y = 1 - f_x, 1 - f_y
        return h_x * h_y * v[0] + f_x * h_y * v[1] + h_x * f_y * v[2] + f_x * f_y * v[3]


def batch_rows(like, x):
    """`x` broadcast to the leading axes of the bool tensor `like` (trailing axes of size 1): Where(like, x, x),
    which is x whatever `like` holds. How a constant gets the graph's symbolic batch axis without a Shape node."""
    return torch.where(like, x, x)


def per_frame(x, v, rows, width):
    """x [B * rows, width] (row r * rows + k belongs to frame r) times that frame's v [B, width]."""
    return (x.reshape(-1, rows, width) * v[:, None, :]).reshape(-1, width)


def sigma_hidden(net, eye_dim, enc_x, enc_a, eye, rows):
    """The sigma net's last hidden layer [B*rows, 64] for the samples of B frames (frame r owns sample rows
    r * rows ...): enc_x [B*rows, 36], enc_a [B, 32], eye [B, eye_dim]."""
    enc_w = per_frame(mlp(enc_x, list(net.aud_ch_att)), enc_a, rows, 32)
    e = per_frame(mlp(enc_x, list(net.eye_att)), eye, rows, eye_dim)
    return torch.relu(mlp(torch.cat([enc_x, enc_w, e], dim=-1), list(net.sigma)[:-1]))


def head_density(net, eye_dim, enc_x, enc_a, eye, rows):
    """sigma [B*rows] alone (the sigma net's first output; no geometry features, no colour)."""
    return torch.exp((sigma_hidden(net, eye_dim, enc_x, enc_a, eye, rows) @ net.sigma[-1][:1].t())[:, 0])


def head_samples(net, eye_dim, enc_x, d, enc_a, eye, rows, like):
    """HeadNet.forward for the samples of B frames: enc_x [B*rows, 36], d [B*rows, 3], enc_a [B, 32],
    eye [B, eye_dim], like [B*rows, 1] any bool -> sigma [B*rows], rgb [B*rows, 3]."""
    h = sigma_hidden(net, eye_dim, enc_x, enc_a, eye, rows) @ net.sigma[-1].t()
    sigma = torch.exp(h[:, 0])
    code = batch_rows(like, net.code)
    rgb = torch.sigmoid(mlp(torch.cat([sh_encode(d), h[:, 1:], code], dim=-1), list(net.color))) * 1.002 - 0.001
    return sigma, rgb


def torso_pixels(net, coords, t, anchor):
    """TorsoNet.forward for B frames: coords [t, 2] (constant), anchor [B, 6] -> alpha [B, t, 1], rgb [B, t, 3]."""
    x = coords * TORSO_SHRINK
    fa = freq_encode(anchor, 3)[:, None, :].expand(-1, t, -1)
    ones = fa[:, :, :1] == fa[:, :, :1]
    h = torch.cat([batch_rows(ones, freq_encode(x, 8)), fa, batch_rows(ones, net.code)], dim=-1)
    x = torch.clamp(x + mlp(h, list(net.deform)), -1.0, 1.0)
    enc = net.encode(x.reshape(-1, 2)).reshape(-1, t, net.encode.width)
    out = torch.sigmoid(mlp(torch.cat([enc, h], dim=-1), list(net.net))) * 1.002 - 0.001
    return out[:, :, :1], out[:, :, 1:]


def torso_grid(embeddings):
    spec = TORSO
    assert all(r + 1 <= h for r, h in zip(spec.resolutions, spec.hashmap_sizes))
    return GatherGrid(embeddings, torch.tensor(spec.offsets[:-1]), torch.tensor([r + 1 for r in spec.resolutions]),
                      spec.scales, spec.level_dim, torch.tensor(spec.hashmap_sizes))


class RenderGraph(nn.Module):
    """enc_a [B, 32] f32, eye [B, E] f32, pose [B, 4, 4] f32 (ngp c2w), then per mode
      head:     torso_rgba [B, H, W, 4] u8 (torso_imgs frame, composited over the baked bc.jpg)
      portrait: torso_rgba, ori [B, H, W, 3] u8, mask [B, H, W, 1] u8 (255 - G of parsing/<id>_face.png)
      torso:    anchor [B, 6] f32 (learned torso over the baked bc.jpg)
    -> rgba [B, H, W, 4] u8: uint8(rgb * 255) truncated, as SyncTalk writes its frames, alpha 255.

    `rays` [H*W] bool (default all): the pixels that get a ray (a static set, e.g. `export.ray_pixels`); every
    other pixel is taken to have no occupied sample, i.e. to show the background (head, torso) or, in portrait
    mode, to have mask 0 (the original frame). The rays' results are placed by one Gather with a constant index.
    With SyncTalk's schedule (`samples=None`) every ray that may take a sample counts in the alive counts, mask or
    not: `hidden` [H*W] bool (disjoint from `rays`) are those whose colour nobody sees (portrait: outside every
    face mask); only their densities are evaluated. `samples=S`: S samples per ray, no schedule (a speed option).
    `march` marches and composites the rays (`schedule.ScheduledMarcher`, the networks as its field)."""

    def __init__(self, sd, mode, height, width, intrinsics, samples, bc, mean_density_torso=0.0, rays=None,
                 hidden=None):
        super().__init__()
        self.register_buffer('bc', torch.as_tensor(bc).float().reshape(-1, 3))
        self.mode, self.height, self.width, self.samples = mode, height, width, samples
        self.head = HeadNet(sd)
        self.eye_dim = self.head.eye_dim
        self.grid = TriplaneGrid([sd[f'encoder_{p}.embeddings'].float() for p, _ in PLANES])
        rays = torch.ones(height * width, dtype=torch.bool) if rays is None else torch.as_tensor(rays).reshape(-1)
        self.all_rays = bool(rays.all())
        pix = rays.nonzero()[:, 0]
        self.rays = int(pix.shape[0])
        self.register_buffer('pix', pix)
        slot = torch.arange(height * width) + pix.shape[0]
        slot[pix] = torch.arange(pix.shape[0])
        self.register_buffer('slot', slot)
        dirs = camera_dirs(height, width, intrinsics)
        self.register_buffer('dirs', dirs[pix])
        hidden = torch.zeros(height * width, dtype=torch.bool) if hidden is None else torch.as_tensor(hidden).reshape(-1)
        if bool((hidden & rays).any()):
            raise ValueError('a pixel is both a ray and a hidden ray')
        self.hidden = int(hidden.sum())
        self.register_buffer('hidden_dirs', dirs[hidden])
        self.marcher = ScheduledMarcher(unpack_bitfield(sd['density_bitfield']), height * width, self.rays, samples,
                                        self.hidden)
        if mode == 'torso':
            self.torso = TorsoNet(sd, torso_grid(sd['torso_encoder.embeddings'].float()))
            mask = torso_occupancy(sd, mean_density_torso, height, width)
            self.register_buffer('torso_coords', bg_coords(height, width)[mask])
            self.torso_pixels = int(mask.sum())
            slot = torch.zeros(height * width, dtype=torch.int64)
            slot[mask] = torch.arange(1, int(mask.sum()) + 1)
            self.register_buffer('torso_slot', slot)

    @staticmethod
    def camera_rays(dirs, pose):
        """o [B, 1, 3], d [B, P, 3], near / far [B, P] of the P camera directions `dirs` under pose [B, 4, 4]."""
        # dirs @ R^T elementwise in a fixed order, as marcher.rotate (every runtime rounds it alike)
        d = (dirs[None, :, 0:1] * pose[:, None, :3, 0] + dirs[None, :, 1:2] * pose[:, None, :3, 1]
             + dirs[None, :, 2:3] * pose[:, None, :3, 2])
        o = pose[:, None, :3, 3]
        p = dirs.shape[0]
        near, far = near_far(o.expand(-1, p, -1).reshape(-1, 3), d.reshape(-1, 3))
        return o, d, near.reshape(-1, p), far.reshape(-1, p)

    def march(self, enc_a, eye, pose):
        """wsum [B, P, 1] and the composited head colour [B, P, 3] of the P rays of B frames (ray k of frame r is
        row r * P + k of the flattened rays)."""

        def field(xyz, dirs, rows):
            flat = xyz.reshape(-1, 3)
            sigma, rgb = head_samples(self.head, self.eye_dim, self.grid(flat), dirs.reshape(-1, 3), enc_a, eye,
                                      rows, flat[:, :1] <= BOUND)
            return sigma.reshape(-1, rows), rgb.reshape(-1, rows, 3)

        def density(xyz, rows):
            return head_density(self.head, self.eye_dim, self.grid(xyz.reshape(-1, 3)), enc_a, eye, rows).reshape(-1, rows)

        o, d, near, far = self.camera_rays(self.dirs, pose)
        hidden = None
        if self.hidden:
            hidden = (*self.camera_rays(self.hidden_dirs, pose)[1:], density)
        wsum, image = self.marcher(o, d, near, far, field, hidden)
        return wsum[:, :, None], image

    def forward(self, enc_a, eye, pose, *frames):
        hw = self.height * self.width
        wsum, image = self.march(enc_a, eye, pose)
        if self.mode == 'torso':
            alpha, color = torso_pixels(self.torso, self.torso_coords, self.torso_pixels, frames[0])
            alpha = nn.functional.pad(alpha, (0, 0, 1, 0))[:, self.torso_slot]
            color = nn.functional.pad(color, (0, 0, 1, 0))[:, self.torso_slot]
            bg = color * alpha + self.bc * (1 - alpha)
        else:
            rgba = frames[0].reshape(-1, hw, 4).float() / 255.0
            bg = rgba[:, :, :3] * rgba[:, :, 3:] + self.bc * (1 - rgba[:, :, 3:])
        if self.all_rays:
            image = torch.clamp(image + (1 - wsum) * bg, 0.0, 1.0)
        else:
            image = torch.clamp(image + (1 - wsum) * bg[:, self.pix], 0.0, 1.0)
            image = torch.cat([image, torch.clamp(bg, 0.0, 1.0)], dim=1)[:, self.slot]
        image = image.reshape(-1, self.height, self.width, 3)
        if self.mode == 'portrait':
            m = frames[2].float() / 255.0
            image = image * m + frames[1].float() / 255.0 * (1 - m)
        return nn.functional.pad(image * 255.0, (0, 1), value=255.0).to(torch.uint8)


class AudioAttGraph(nn.Module):
    """audio_att.onnx: features [B, 8, 512] -> enc_a [B, 32], `AudioHead` (AudioNet_ave + AudioAttNet) per frame."""

    def __init__(self, head):
        super().__init__()
        self.head = head

    def forward(self, feats):
        x = self.head.audio_net(feats.reshape(-1, 512)).reshape(-1, ATT_LEN, 32)
        att = self.head.audio_att_net
        y = att.attentionConvNet(x.transpose(1, 2)).reshape(-1, ATT_LEN)
        w = att.attentionNet(y).reshape(-1, 1, ATT_LEN)
        # the weighted sum of the 8 rows as a batched MatMul: ReduceSum's order depends on the batch size
        return (w @ x).reshape(-1, 32)

"""Export-friendly modules: the same computation as `reference`, written with static shapes and plain ops.

- batch: every graph takes a batch of B frames (B symbolic in the ONNX file, so one run serves the frames of many
  rooms). B is never read inside a graph: reshapes use -1, per-frame values reach per-ray and per-sample rows by
  broadcasting, and a constant gets a batch axis by `batch_rows` (no Shape / ConstantOfShape node, which would
  run on the CPU under WebGPU). Each frame's rows are computed as in a batch of one: a batch of B equals B runs
  of one, bit for bit, on the CPU provider.

- grids: every tri-plane level is de-hashed into a dense texture (`grid.dense_tables`), so a lookup is
  floor / Gather / bilinear weights; the tiled torso grid uses Mod on the corner index.
- marcher: all LATTICE lattice points t_k = near + k DT are tested against the occupancy grid (one Gather);
  TopK on occupied * (LATTICE - k) picks the first `samples` occupied points in marching order.
- compositing: T_i = exp(-DT * exclusive_cumsum(sigma)) (a cumsum of the shifted row: no
  cancellation when one sigma is huge); sample i counts iff T_(i-1) >= 1e-4 (the CUDA early stop).
- WebGPU: its kernels take float, int32 and uint32 only (no Or, no int64 arithmetic), so every computed value is
  float32, bool or int32; int64 appears only as Gather / GatherElements indices (a Cast just before the Gather)
  and TopK's indices. Integer values computed in float32 are exact (all below 2^24).
"""
import torch
from torch import nn

from .grid import TORSO, TRIPLANE, dense_tables
from .audio import ATT_LEN
from .encoders import freq_encode, sh_encode
from .marcher import DT, GRID, LATTICE, T_THRESH, bg_coords, camera_dirs, clamp_aabb, near_far, unpack_bitfield
from .model import TORSO_SHRINK, HeadNet, TorsoNet, mlp
from .reference import PLANES, torso_occupancy


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
    read; the bilinear sum is (wx wy) v per corner as in the CUDA encoder. xyz must lie in the AABB (it does:
    samples are clamped to it), so no point falls outside [0, 1] and no inside-test is needed."""

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


def head_samples(net, eye_dim, enc_x, d, enc_a, eye, rows, like):
    """HeadNet.forward for the samples of B frames (frame r owns sample rows r * rows ...): enc_x [B*rows, 36],
    d [B*rows, 3], enc_a [B, 32], eye [B, eye_dim], like [B*rows, 1] any bool -> sigma [B*rows], rgb [B*rows, 3]."""
    enc_w = per_frame(mlp(enc_x, list(net.aud_ch_att)), enc_a, rows, 32)
    e = per_frame(mlp(enc_x, list(net.eye_att)), eye, rows, eye_dim)
    h = mlp(torch.cat([enc_x, enc_w, e], dim=-1), list(net.sigma))
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
    `march` is the sampling schedule; `forward` evaluates the networks on its samples and composites."""

    def __init__(self, sd, mode, height, width, intrinsics, samples, bc, mean_density_torso=0.0, rays=None):
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
        self.register_buffer('dirs', camera_dirs(height, width, intrinsics)[pix])
        self.register_buffer('occ', unpack_bitfield(sd['density_bitfield']).reshape(-1).to(torch.uint8))
        self.register_buffer('lattice', torch.arange(LATTICE, dtype=torch.float32))
        if mode == 'torso':
            self.torso = TorsoNet(sd, torso_grid(sd['torso_encoder.embeddings'].float()))
            mask = torso_occupancy(sd, mean_density_torso, height, width)
            self.register_buffer('torso_coords', bg_coords(height, width)[mask])
            self.torso_pixels = int(mask.sum())
            slot = torch.zeros(height * width, dtype=torch.int64)
            slot[mask] = torch.arange(1, int(mask.sum()) + 1)
            self.register_buffer('torso_slot', slot)

    def march(self, pose):
        """The samples of every ray of B frames: pose [B, 4, 4] ->
          xyz [B*P, S, 3] sample positions (clamped to the AABB), dirs [B*P, 3] ray directions,
          taken [B*P, S] bool (the sample is one; a row's taken samples come first, in marching order).
        Rays are frame-major (ray k of frame r is row r * P + k; P = the ray set). Schedule: all LATTICE lattice
        points t_k = near + k DT are tested against the occupancy grid (one Gather), TopK keeps the first S."""
        p, s = self.rays, self.samples
        # dirs @ R^T elementwise in a fixed order, as marcher.rotate (every runtime rounds it alike)
        d = (self.dirs[None, :, 0:1] * pose[:, None, :3, 0] + self.dirs[None, :, 1:2] * pose[:, None, :3, 1]
             + self.dirs[None, :, 2:3] * pose[:, None, :3, 2]).reshape(-1, 3)
        o = pose[:, None, :3, 3].expand(-1, p, -1).reshape(-1, 3)
        near, far = near_far(o, d)
        t = near[:, None] + self.lattice[None, :] * DT
        v = torch.floor(torch.clamp(0.5 * (clamp_aabb(o[:, None, :] + t[:, :, None] * d[:, None, :]) + 1) * GRID,
                                    0.0, GRID - 1.0))
        cell = v[:, :, 0] * float(GRID * GRID) + v[:, :, 1] * float(GRID) + v[:, :, 2]
        occupied = (self.occ[cell.long()].float() > 0.0) & (t < far[:, None])
        score = occupied.float() * (LATTICE - self.lattice)[None, :]
        top, index = torch.topk(score, s, dim=1)
        ts = torch.gather(t, 1, index)
        xyz = clamp_aabb(o[:, None, :] + ts[:, :, None] * d[:, None, :])
        return xyz, d, top > 0

    def forward(self, enc_a, eye, pose, *frames):
        p, s, hw = self.rays, self.samples, self.height * self.width
        xyz, d, taken = self.march(pose)
        dd = d[:, None, :].expand(-1, s, -1).reshape(-1, 3)
        sigma, rgb = head_samples(self.head, self.eye_dim, self.grid(xyz.reshape(-1, 3)), dd, enc_a, eye, p * s,
                                  taken.reshape(-1, 1))
        sigma = torch.where(taken, sigma.reshape(-1, s), torch.tensor(0.0))
        tau = sigma * DT
        trans = torch.exp(-torch.cumsum(nn.functional.pad(tau[:, :-1], (1, 0)), dim=1))
        prev = nn.functional.pad(trans[:, :-1], (1, 0), value=1.0)
        w = (1.0 - torch.exp(-tau)) * trans * (taken & (prev >= T_THRESH)).float()
        wsum = w.sum(dim=1, keepdim=True).reshape(-1, p, 1)
        image = (w[:, :, None] * rgb.reshape(-1, s, 3)).sum(dim=1).reshape(-1, p, 3)
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

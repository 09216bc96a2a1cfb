"""Rays, near/far and the occupancy ray marcher of SyncTalk's CUDA `raymarching`, reproduced on a fixed lattice.

- Poses: `nerf_matrix_to_ngp` (rows (1, 2, 0), columns 1 and 2 negated, translation x4).
- Rays: pixel centres (col + 0.5, row + 0.5), d = normalize((i - cx)/fx, (j - cy)/fy, 1) @ R^T, o = pose[:3, 3].
- near/far: slab test on AABB [-1, -0.5, -1, 1, 0.5, 1]; misses get FLT_MAX; near >= MIN_NEAR.
- Samples: t_k = near + k * DT (DT = 2 sqrt(3) / 128, constant because dt_gamma * t is clamped), k while t_k < far,
  position clamped to the AABB, taken only if its voxel (floor(clamp((x + 1) / 2 * 128, 0, 127))) is set in the
  128^3 occupancy bitfield (Morton order); the first `samples` taken samples are kept.
- Compositing: alpha = 1 - exp(-sigma DT), T = 1 - sum(w), w = alpha T, stop after the first sample with T < 1e-4;
  image += (1 - sum(w)) * background, clamped to [0, 1].
"""
import math

import numpy as np
import torch

AABB = (-1.0, -0.5, -1.0, 1.0, 0.5, 1.0)
MIN_NEAR = 0.05
GRID = 128
DT = 2 * math.sqrt(3) / GRID
T_THRESH = 1e-4
FLT_MAX = float(np.finfo(np.float32).max)
LATTICE = int(math.ceil(math.sqrt(2 ** 2 + 1 ** 2 + 2 ** 2) / DT)) + 1


def nerf_matrix_to_ngp(pose, scale=4.0):
    p = np.asarray(pose, dtype=np.float64)
    return np.array([
        [p[1, 0], -p[1, 1], -p[1, 2], p[1, 3] * scale],
        [p[2, 0], -p[2, 1], -p[2, 2], p[2, 3] * scale],
        [p[0, 0], -p[0, 1], -p[0, 2], p[0, 3] * scale],
        [0, 0, 0, 1],
    ], dtype=np.float32)


def camera_dirs(height, width, intrinsics):
    """Unit camera-space directions [H*W, 3], row-major pixels; intrinsics (fx, fy, cx, cy)."""
    fx, fy, cx, cy = intrinsics
    j, i = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                          indexing='ij')
    d = torch.stack([(i.reshape(-1) + 0.5 - cx) / fx, (j.reshape(-1) + 0.5 - cy) / fy,
                     torch.ones(height * width)], dim=-1)
    return d / torch.norm(d, dim=-1, keepdim=True)


def bg_coords(height, width):
    """SyncTalk's background coordinates [H*W, 2]: (row / (H-1), col / (W-1)) * 2 - 1."""
    r = torch.arange(height, dtype=torch.float32) / (height - 1) * 2 - 1
    c = torch.arange(width, dtype=torch.float32) / (width - 1) * 2 - 1
    rr, cc = torch.meshgrid(r, c, indexing='ij')
    return torch.stack([rr.reshape(-1), cc.reshape(-1)], dim=-1)


def rotate(dirs, pose):
    """dirs [P, 3] @ R^T written elementwise in a fixed order (x, then + y, then + z): every runtime rounds it
    the same way, so no sample flips between occupied and empty voxels across backends (a GEMM may not)."""
    return dirs[:, 0:1] * pose[:3, 0] + dirs[:, 1:2] * pose[:3, 1] + dirs[:, 2:3] * pose[:3, 2]


def rays(pose, dirs):
    pose = torch.as_tensor(pose, dtype=torch.float32)
    d = rotate(dirs, pose)
    return pose[:3, 3].expand_as(d), d


def near_far(o, d):
    """Slab test per CUDA `near_far_from_aabb`; returns near, far [P] (FLT_MAX for misses)."""
    lo, hi = torch.tensor(AABB[:3]), torch.tensor(AABB[3:])
    rd = 1.0 / d
    t0, t1 = (lo - o) * rd, (hi - o) * rd
    tmin, tmax = torch.minimum(t0, t1), torch.maximum(t0, t1)
    near, far = tmin[:, 0], tmax[:, 0]
    miss = torch.zeros_like(near, dtype=torch.bool)
    for axis in (1, 2):
        # miss | a | b, written with And/Not: WebGPU has no Or kernel (the render graph runs this)
        miss = ~(~miss & ~(near > tmax[:, axis]) & ~(tmin[:, axis] > far))
        near = torch.maximum(near, tmin[:, axis])
        far = torch.minimum(far, tmax[:, axis])
    near = torch.clamp(near, min=MIN_NEAR)
    near = torch.where(miss, torch.full_like(near, FLT_MAX), near)
    far = torch.where(miss, torch.full_like(far, FLT_MAX), far)
    return near, far


def morton3d(x, y, z):
    def spread(v):
        v = (v * 0x00010001) & 0xFF0000FF
        v = (v * 0x00000101) & 0x0F00F00F
        v = (v * 0x00000011) & 0xC30C30C3
        v = (v * 0x00000005) & 0x49249249
        return v
    return spread(x) | (spread(y) << 1) | (spread(z) << 2)


def unpack_bitfield(bitfield):
    """density_bitfield [262144] uint8 (Morton order, bit idx % 8 of byte idx // 8) -> occupancy [128, 128, 128]."""
    n = torch.arange(GRID, dtype=torch.int64)
    x, y, z = torch.meshgrid(n, n, n, indexing='ij')
    idx = morton3d(x, y, z)
    bits = torch.as_tensor(bitfield).to(torch.int64)
    return ((bits[idx // 8] >> (idx % 8)) & 1).bool()


def voxel(p):
    return torch.clamp(0.5 * (p + 1) * GRID, 0.0, GRID - 1.0).to(torch.int64)


def clamp_aabb(p):
    return torch.max(torch.min(p, torch.tensor(AABB[3:])), torch.tensor(AABB[:3]))


def march(o, d, near, far, occ, samples):
    """First `samples` occupied lattice points per ray: t [P, S] and taken mask [P, S] (t = 0 where not taken)."""
    n = o.shape[0]
    t_out = torch.zeros(n, samples)
    taken = torch.zeros(n, samples, dtype=torch.bool)
    count = torch.zeros(n, dtype=torch.int64)
    rows = torch.arange(n)
    for k in range(LATTICE):
        t = near + k * DT
        v = voxel(clamp_aabb(o + t[:, None] * d))
        ok = (t < far) & occ[v[:, 0], v[:, 1], v[:, 2]] & (count < samples)
        slot = torch.clamp(count, max=samples - 1)
        t_out[rows[ok], slot[ok]] = t[ok]
        taken[rows[ok], slot[ok]] = True
        count = count + ok.long()
    return t_out, taken


def occupied_boxes(occ, block=4):
    """World-space boxes lo, hi [B, 3] (float64) that hold every surface voxel of the occupied set: per block of
    block^3 voxels, the bounds of its surface voxels (occupied, a 6-neighbour empty or off the grid), cut to the
    AABB. Voxels wholly outside the AABB count as empty (no sample lies in them). A ray meets the occupied set
    first in a surface voxel, so covering the surface covers every ray that takes a sample."""
    n = GRID // block
    idx = torch.arange(GRID, dtype=torch.float64)
    inside = [((idx + 1) / (GRID / 2) - 1 >= AABB[a]) & (idx / (GRID / 2) - 1 <= AABB[a + 3]) for a in range(3)]
    occ = occ & inside[0][:, None, None] & inside[1][None, :, None] & inside[2][None, None, :]
    full = torch.nn.functional.pad(occ[None, None].float(), (1, 1, 1, 1, 1, 1))[0, 0]
    interior = torch.ones_like(occ)
    for a in range(3):
        for step in (-1, 1):
            interior &= full.roll(step, a)[1:-1, 1:-1, 1:-1] > 0
    cells = (occ & ~interior).nonzero()
    key = (cells // block) @ torch.tensor([n * n, n, 1])
    lo = torch.full((n ** 3, 3), GRID, dtype=torch.int64).scatter_reduce(0, key[:, None].expand(-1, 3), cells, 'amin')
    hi = torch.full((n ** 3, 3), -1, dtype=torch.int64).scatter_reduce(0, key[:, None].expand(-1, 3), cells, 'amax')
    used = hi[:, 0] >= 0
    lo = torch.maximum(lo[used].double() / (GRID / 2) - 1, torch.tensor(AABB[:3]).double())
    hi = torch.minimum((hi[used].double() + 1) / (GRID / 2) - 1, torch.tensor(AABB[3:]).double())
    return lo, hi


def visible_pixels(occ, poses, height, width, intrinsics, margin=1.5):
    """Pixels [H*W] bool whose ray may take an occupied sample for at least one of `poses` (ngp c2w): the union
    over poses and `occupied_boxes` of the bounding rectangle of a box's projected corners, widened by `margin`
    pixels. A conservative superset (a ray that misses every box takes no sample: its image is the background
    alone); every pixel when a corner lies behind a camera."""
    lo, hi = occupied_boxes(occ)
    if lo.shape[0] == 0:
        return torch.zeros(height * width, dtype=torch.bool)
    fx, fy, cx, cy = intrinsics
    bits = torch.tensor([[(c >> a) & 1 for a in range(3)] for c in range(8)], dtype=torch.float64)
    corners = lo[:, None, :] + (hi - lo)[:, None, :] * bits[None, :, :]
    poses = torch.as_tensor(np.asarray(poses)).double()
    diff = torch.zeros(height + 1, width + 1, dtype=torch.int64)
    for chunk in poses.split(max(1, 2_000_000 // (8 * corners.shape[0]))):
        cam = torch.einsum('pbki,pij->pbkj', corners[None] - chunk[:, None, None, :3, 3], chunk[:, :3, :3])
        if (cam[..., 2] <= 1e-6).any():
            return torch.ones(height * width, dtype=torch.bool)
        u, v = fx * cam[..., 0] / cam[..., 2] + cx, fy * cam[..., 1] / cam[..., 2] + cy
        # pixel col holds the ray through col + 0.5: cols ceil(u_min - margin - 0.5) .. floor(u_max + margin - 0.5)
        c0 = torch.ceil(u.min(dim=-1).values - margin - 0.5).clamp(0, width).long().reshape(-1)
        c1 = (torch.floor(u.max(dim=-1).values + margin - 0.5) + 1).clamp(0, width).long().reshape(-1)
        r0 = torch.ceil(v.min(dim=-1).values - margin - 0.5).clamp(0, height).long().reshape(-1)
        r1 = (torch.floor(v.max(dim=-1).values + margin - 0.5) + 1).clamp(0, height).long().reshape(-1)
        ok = (c0 < c1) & (r0 < r1)
        for r, c, sign in ((r0, c0, 1), (r0, c1, -1), (r1, c0, -1), (r1, c1, 1)):
            diff.index_put_((r[ok], c[ok]), torch.full_like(r[ok], sign), accumulate=True)
    return (diff.cumsum(0).cumsum(1)[:height, :width] > 0).reshape(-1)


def composite(sigma, rgb, taken):
    """CUDA compositing loop over samples: returns weight sum [P] and colour [P, 3]."""
    n, s = taken.shape
    wsum = torch.zeros(n)
    image = torch.zeros(n, 3)
    alive = torch.ones(n, dtype=torch.bool)
    for k in range(s):
        alive = alive & taken[:, k]
        alpha = 1.0 - torch.exp(-sigma[:, k] * DT)
        trans = 1.0 - wsum
        w = torch.where(alive, alpha * trans, torch.zeros_like(alpha))
        wsum = wsum + w
        image = image + w[:, None] * rgb[:, k]
        alive = alive & (trans >= T_THRESH)
    return wsum, image

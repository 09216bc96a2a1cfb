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
        miss = miss | (near > tmax[:, axis]) | (tmin[:, axis] > far)
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


def occupied_box(occ):
    """World-space box [lo (3), hi (3)] (float64) holding every occupied voxel that lies in the AABB, or None."""
    cells = occ.nonzero()
    if cells.shape[0] == 0:
        return None
    lo = cells.min(dim=0).values.double() / (GRID / 2) - 1
    hi = (cells.max(dim=0).values.double() + 1) / (GRID / 2) - 1
    lo, hi = torch.maximum(lo, torch.tensor(AABB[:3]).double()), torch.minimum(hi, torch.tensor(AABB[3:]).double())
    return None if (lo > hi).any() else (lo, hi)


def visible_pixels(occ, poses, height, width, intrinsics, margin=1.5):
    """Pixels [H*W] bool whose ray may take an occupied sample for at least one of `poses` (ngp c2w): the union
    over poses of the bounding rectangle of the projected corners of `occupied_box`, widened by `margin` pixels.
    A conservative superset (a ray that misses the box takes no sample: its image is the background alone); every
    pixel when a corner is behind a camera."""
    box = occupied_box(occ)
    hits = torch.zeros(height, width, dtype=torch.bool)
    if box is None:
        return hits.reshape(-1)
    fx, fy, cx, cy = intrinsics
    corners = torch.stack(torch.meshgrid(*[torch.stack([box[0][a], box[1][a]]) for a in range(3)], indexing='ij'),
                          dim=-1).reshape(8, 3)
    cols = torch.arange(width, dtype=torch.float64) + 0.5
    rows = torch.arange(height, dtype=torch.float64) + 0.5
    for pose in poses:
        pose = torch.as_tensor(pose).double()
        cam = (corners - pose[:3, 3]) @ pose[:3, :3]
        if (cam[:, 2] <= 1e-6).any():
            return torch.ones(height * width, dtype=torch.bool)
        u = fx * cam[:, 0] / cam[:, 2] + cx
        v = fy * cam[:, 1] / cam[:, 2] + cy
        in_u = (cols >= u.min() - margin) & (cols <= u.max() + margin)
        in_v = (rows >= v.min() - margin) & (rows <= v.max() + margin)
        hits |= in_v[:, None] & in_u[None, :]
    return hits.reshape(-1)


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

"""Rays, near/far and the occupancy ray marcher of SyncTalk's CUDA `raymarching` with its `run_cuda` test loop.

- Poses: `nerf_matrix_to_ngp` (rows (1, 2, 0), columns 1 and 2 negated, translation x4).
- Rays: pixel centres (col + 0.5, row + 0.5), d = normalize((i - cx)/fx, (j - cy)/fy, 1) @ R^T, o = pose[:3, 3].
- near/far: slab test on AABB [-1, -0.5, -1, 1, 0.5, 1]; misses get FLT_MAX; near >= MIN_NEAR.
- Marching (`march_rays`): a float32 running t from near; the step is the constant DT = 2 sqrt(3) / 128 (dt_gamma t
  is clamped to it); the point clamp(o + t d, -1, 1) is a sample if its voxel (floor(clamp((x + 1) / 2 * 128, 0,
  127))) is set in the 128^3 occupancy bitfield (Morton order), then t += DT; an empty voxel is skipped with
  `do { t += DT } while (t < tt)`, tt its exit point along the ray.
- Schedule (`render_rays`): every pixel's ray starts alive; while step < 16: n_step = max(min(N // n_alive, 8), 1),
  every alive ray takes up to n_step more samples, composite, rays with fewer samples or stopped die, step +=
  n_step. A ray that survives takes 16 to 23 samples.
- Compositing (`composite_rays`): alpha = 1 - exp(-sigma DT), T = 1 - sum(w) (float32), w = alpha T, stop after the
  first sample with T < 1e-4; image += (1 - sum(w)) * background, clamped to [0, 1] (the caller).
"""
import math

import numpy as np
import torch

AABB = (-1.0, -0.5, -1.0, 1.0, 0.5, 1.0)
MIN_NEAR = 0.05
GRID = 128
DT = 2 * math.sqrt(3) / GRID
T_THRESH = 1e-4
MAX_STEPS = 16
MAX_COMPACT = 8
BOUND = 1.0
DT32 = torch.tensor(DT, dtype=torch.float32)
T_THRESH32 = torch.tensor(T_THRESH, dtype=torch.float32)
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
    # The render graph runs this with a symbolic batch: no tensor is made from a runtime shape (zeros_like,
    # full_like), and `a | b` is written ~(~a & ~b) (WebGPU has no Or kernel).
    hit = None
    for axis in (1, 2):
        hit_axis = ~(near > tmax[:, axis]) & ~(tmin[:, axis] > far)
        hit = hit_axis if hit is None else hit & hit_axis
        near = torch.maximum(near, tmin[:, axis])
        far = torch.minimum(far, tmax[:, axis])
    near = torch.clamp(near, min=MIN_NEAR)
    never = torch.tensor(FLT_MAX)
    return torch.where(hit, near, never), torch.where(hit, far, never)


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


def sample_points(o, d, t):
    """The kernel's sample position: clamp(o + t d, -bound, bound) in float32 (o, d [n, 3], t [n])."""
    return torch.clamp(o + t[:, None] * d, -BOUND, BOUND)


def next_voxel_t(p, d, t, v):
    """The kernel's skip target tt = t + max(0, min over axes of (boundary - x) / d), boundary = the far face of
    voxel v along d; in float32 op by op (fmin/fmax: a NaN from 0 * inf is ignored, as fminf/fmaxf do)."""
    sign = torch.copysign(torch.ones_like(d), d)
    boundary = (v.float() + 0.5 + 0.5 * sign) * (1.0 / GRID) * 2 - 1
    dist = (boundary - p) * torch.reciprocal(d)
    nearest = torch.fmin(dist[:, 0], torch.fmin(dist[:, 1], dist[:, 2]))
    return t + torch.fmax(torch.zeros_like(nearest), nearest)


def march_rays(o, d, t, far, occ, n_step):
    """`kernel_march_rays` (perturb off): from the running t [n] of each ray, up to n_step occupied samples before
    far. An occupied point is written and then `t += dt`; an empty one sets tt = `next_voxel_t` and does
    `do { t += dt } while (t < tt)`; every add in float32. Returns xyz [n, n_step, 3], the sample's t
    [n, n_step] (0 where not written), the count [n] and the t where marching stopped [n]."""
    n = o.shape[0]
    xyz = torch.zeros(n, n_step, 3)
    ts = torch.zeros(n, n_step)
    count = torch.zeros(n, dtype=torch.int64)
    t = t.clone()
    active = t < far
    while bool(active.any()):
        idx = active.nonzero()[:, 0]
        ta = t[idx]
        p = sample_points(o[idx], d[idx], ta)
        v = voxel(p)
        hit = occ[v[:, 0], v[:, 1], v[:, 2]]
        h = idx[hit]
        xyz[h, count[h]] = p[hit]
        ts[h, count[h]] = ta[hit]
        t[h] = ta[hit] + DT32
        count[h] += 1
        e = idx[~hit]
        tt = next_voxel_t(p[~hit], d[e], ta[~hit], v[~hit])
        te = ta[~hit] + DT32
        pending = te < tt
        while bool(pending.any()):
            te = torch.where(pending, te + DT32, te)
            pending = te < tt
        t[e] = te
        active = (t < far) & (count < n_step)
    return xyz, ts, count, t


def composite_rays(sigma, rgb, count, n_step, wsum, image):
    """`kernel_composite_rays` (the triplane variant's rgb part) on one iteration's samples: sigma [n, n_step],
    rgb [n, n_step, 3], count [n] samples written; wsum [n] and image [n, 3] are updated in place. Per sample
    in order: stop at an unwritten sample; alpha = 1 - exp(-sigma dt), T = 1 - wsum, w = alpha T, wsum += w,
    image += w rgb; stop after the sample if T < T_THRESH. Returns `alive` [n]: all n_step samples composited
    without a stop (the ray marches on in the next iteration)."""
    going = torch.ones(count.shape[0], dtype=torch.bool)
    for k in range(n_step):
        going = going & (count > k)
        alpha = 1.0 - torch.exp(-sigma[:, k] * DT32)
        trans = 1.0 - wsum
        w = alpha * trans
        wsum.copy_(torch.where(going, wsum + w, wsum))
        image.copy_(torch.where(going[:, None], image + w[:, None] * rgb[:, k], image))
        going = going & (trans >= T_THRESH32)
    return going


def render_rays(o, d, near, far, occ, field, max_steps=MAX_STEPS):
    """SyncTalk's `run_cuda` test loop over all N rays of a frame (o, d [N, 3], near, far [N]):
    while step < max_steps and rays are alive: n_step = max(min(N // n_alive, 8), 1); march every alive ray
    n_step samples from its t, evaluate `field(xyz [M, 3], dirs [M, 3]) -> sigma [M], rgb [M, 3]`, composite;
    rays that got fewer than n_step samples or stopped die; the others continue from the t after their last
    sample; step += n_step. Returns wsum [N], image [N, 3] (before the background) and the schedule: a list
    of (n_alive, n_step) per iteration."""
    n = o.shape[0]
    wsum, image = torch.zeros(n), torch.zeros(n, 3)
    rays_t = near.clone()
    alive = torch.arange(n)
    step, schedule = 0, []
    while step < max_steps and alive.numel() > 0:
        n_alive = alive.numel()
        n_step = max(min(n // n_alive, MAX_COMPACT), 1)
        schedule.append((n_alive, n_step))
        xyz, _, count, t_end = march_rays(o[alive], d[alive], rays_t[alive], far[alive], occ, n_step)
        sigma, rgb = field(xyz.reshape(-1, 3), d[alive].repeat_interleave(n_step, dim=0))
        ws, im = wsum[alive], image[alive]
        going = composite_rays(sigma.reshape(n_alive, n_step), rgb.reshape(n_alive, n_step, 3), count, n_step,
                               ws, im)
        wsum[alive], image[alive] = ws, im
        rays_t[alive] = t_end
        alive = alive[going]
        step += n_step
    return wsum, image, schedule


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

"""SyncTalk's test-time marching schedule (`marcher.render_rays`) as static-shaped tensor ops, per frame of a batch.

`ScheduledMarcher(occ, pixels, rays, samples=None)(o, d, near, far, field)` -> wsum [B, R], image [B, R, 3]
for B frames of R rays each (o [B, 1, 3], d [B, R, 3], near / far [B, R]); `field(xyz [B, M, 3], dirs [B, M, 3])
-> sigma [B, M], rgb [B, M, 3]` is called once on every sample of the batch. `pixels` is N, the frame's H x W rays
that SyncTalk marches; the R rays are the ones that may take a sample (the others die in the first iteration).

Samples: the first occupied points of the float32 running lattice u_0 = near, u_(k+1) = u_k + DT (one ONNX CumSum;
the kernel's voxel skip adds DT the same way and lands on the next lattice point, a voxel being at most DT long),
picked in order by TopK on occupied * (LATTICE - k). Compositing is the kernel's: T = 1 - wsum in float32, one
sample after the other, stop after the sample whose T < 1e-4.

Schedule (`samples=None`, the default): compositing samples 0..15 of every ray gives g_s, "the ray took samples
0..s-1 and none stopped it", i.e. alive at step s; the alive counts c_s = sum g_s drive SyncTalk's loop, unrolled on
[B] scalars: s = 1 (the first iteration has all N rays alive: n_step 1), then while s < 16 and c_s > 0:
n_step = clamp(floor(N / c_s), 1, 8), s += n_step. The rays with g_16 take samples 16 .. s_end - 1 (at most 7):
they are compacted (TopK on g_16 * (R - r)) into a static buffer of E extra samples, E = max over n = 2..8 of
min(R, N // n) (n - 1), which bounds (n_step - 1) c_(last step) for every frame. `samples=S`: S samples per ray,
no schedule (a speed option, not SyncTalk's result).

WebGPU: float32, bool and int32 values only; int64 only as Gather / TopK indices; no Or.
"""
import torch
from torch import nn

from .marcher import BOUND, DT, GRID, LATTICE, MAX_COMPACT, MAX_STEPS, T_THRESH

EXTRA = MAX_COMPACT - 1


class RunningSum(torch.autograd.Function):
    """Float32 running sum along the last axis (each term added to the rounded sum before it), exported as ONNX
    CumSum, whose CPU, CUDA and WebGPU kernels add in that order in float32. (torch.cumsum accumulates in double
    on the CPU, so the eager forward adds term by term.)"""

    @staticmethod
    def forward(ctx, x):
        out = torch.empty_like(x)
        acc = x[..., 0]
        out[..., 0] = acc
        for k in range(1, x.shape[-1]):
            acc = acc + x[..., k]
            out[..., k] = acc
        return out

    @staticmethod
    def symbolic(g, x):
        return g.op('CumSum', x, g.op('Constant', value_t=torch.tensor(-1, dtype=torch.int64)))


def extra_slots(pixels, rays):
    """E: the most samples of index >= 16 a frame of N = `pixels` rays, `rays` of them marched, can need."""
    return max(1, max(min(rays, pixels // n) * (n - 1) for n in range(2, MAX_COMPACT + 1)))


class ScheduledMarcher(nn.Module):
    def __init__(self, occ, pixels, rays, samples=None):
        super().__init__()
        self.register_buffer('occ', occ.reshape(-1).to(torch.uint8))
        self.register_buffer('lattice', torch.arange(LATTICE, dtype=torch.float32))
        self.register_buffer('ray_index', torch.arange(rays, dtype=torch.float32))
        self.pixels, self.rays, self.samples = pixels, rays, samples
        self.base = MAX_STEPS if samples is None else samples
        self.extra = extra_slots(pixels, rays) if samples is None else 0
        self.compact = max(1, min(rays, pixels // 2))

    def lattice_samples(self, o, d, near, far, count):
        """t [B, R, count] of the first `count` occupied lattice points of each ray and taken [B, R, count]."""
        b, r = near.shape
        dt = torch.full((b, r, LATTICE - 1), DT, dtype=torch.float32)
        t = RunningSum.apply(torch.cat([near[:, :, None], dt], dim=2))
        p = torch.clamp(o[:, :, None, :] + t[..., None] * d[:, :, None, :], -BOUND, BOUND)
        v = torch.floor(torch.clamp(0.5 * (p + 1) * GRID, 0.0, GRID - 1.0))
        cell = v[..., 0] * float(GRID * GRID) + v[..., 1] * float(GRID) + v[..., 2]
        occupied = (self.occ[cell.long()].float() > 0.0) & (t < far[:, :, None])
        top, index = torch.topk(occupied.float() * (LATTICE - self.lattice), count, dim=2)
        return torch.gather(t, 2, index), top > 0.0

    @staticmethod
    def points(o, d, t):
        return torch.clamp(o + t[..., None] * d, -BOUND, BOUND)

    @staticmethod
    def composite(alpha, rgb, taken, wsum, image, going):
        """kernel_composite_rays over the samples on axis 2 (in order) from wsum [B, X], image [B, X, 3] and the
        rays still going [B, X]; returns wsum, image, going and g [B, X, samples]: going after each sample."""
        thresh = torch.tensor(T_THRESH, dtype=torch.float32)
        after = []
        for k in range(alpha.shape[2]):
            going = going & taken[:, :, k]
            trans = 1.0 - wsum
            w = alpha[:, :, k] * trans
            wsum = torch.where(going, wsum + w, wsum)
            image = torch.where(going[..., None], image + w[..., None] * rgb[:, :, k], image)
            going = going & (trans >= thresh)
            after.append(going)
        return wsum, image, going, torch.stack(after, dim=2)

    def schedule_end(self, g):
        """s_end [B] (float) of SyncTalk's loop from g [B, R, 16] (g[:, :, s - 1] = alive at step s)."""
        counts = g.float().sum(dim=1)
        steps = torch.arange(1, MAX_STEPS + 1, dtype=torch.float32)
        s = torch.ones(counts.shape[0])
        for _ in range(MAX_STEPS - 1):
            alive = (counts * (steps == s[:, None]).float()).sum(dim=1)
            run = (s < MAX_STEPS) & (alive > 0)
            n = torch.clamp(torch.floor(self.pixels / torch.clamp(alive, min=1.0)), 1.0, float(MAX_COMPACT))
            s = torch.where(run, s + n, s)
        return s

    def forward(self, o, d, near, far, field):
        b, r = near.shape
        ts, taken = self.lattice_samples(o, d, near, far, self.base + (EXTRA if self.extra else 0))
        xyz = self.points(o[:, :, None, :], d[:, :, None, :], ts[:, :, :self.base]).reshape(b, -1, 3)
        sigma, rgb = field(xyz, d[:, :, None, :].expand(b, r, self.base, 3).reshape(b, -1, 3))
        alpha = (1.0 - torch.exp(-sigma * DT)).reshape(b, r, self.base)
        wsum, image, _, g = self.composite(alpha, rgb.reshape(b, r, self.base, 3), taken, torch.zeros(b, r),
                                           torch.zeros(b, r, 3), torch.ones(b, r, dtype=torch.bool))
        if not self.extra:
            return wsum, image
        return self.extra_samples(o, d, ts, taken, g, wsum, image, field)

    def extra_samples(self, o, d, ts, taken, g, wsum, image, field):
        """Samples 16 .. s_end - 1 of the rays alive after 16 (g_16): the q-th such ray (TopK order = ray order)
        owns slots q X .. q X + X - 1 of the E-slot buffer, X = s_end - 16; composited on from its first 16."""
        b, r, width = ts.shape
        x = torch.clamp(self.schedule_end(g) - MAX_STEPS, 0.0, float(EXTRA))[:, None]
        alive16 = g[:, :, MAX_STEPS - 1]
        top, order = torch.topk(alive16.float() * (self.rays - self.ray_index), self.compact, dim=1)
        listed = top > 0.0
        ray = order.float()
        step = torch.clamp(x, min=1.0)
        j = torch.arange(self.extra, dtype=torch.float32)[None, :]
        q = torch.clamp(torch.floor(j / step), max=float(self.compact - 1))
        ray_j = torch.gather(ray, 1, q.long())
        flat_t = (ray_j * width + (MAX_STEPS + j - q * step)).long()
        t = torch.gather(ts.reshape(b, -1), 1, flat_t)
        d_j = torch.gather(d, 1, ray_j.long()[:, :, None].expand(b, self.extra, 3))
        sigma, rgb = field(self.points(o, d_j, t), d_j)
        alpha = 1.0 - torch.exp(-sigma * DT)
        i = torch.arange(EXTRA, dtype=torch.float32)[None, None, :]
        in_run = i < x[:, :, None]
        first = torch.arange(self.compact, dtype=torch.float32)[None, :, None] * step[:, :, None]
        slot = torch.clamp(first + i, max=float(self.extra - 1)).long().reshape(b, -1)
        k = self.compact * EXTRA
        alpha_q = torch.gather(alpha, 1, slot).reshape(b, self.compact, EXTRA)
        rgb_q = torch.gather(rgb, 1, slot[:, :, None].expand(b, k, 3)).reshape(b, self.compact, EXTRA, 3)
        flat_taken = (ray[:, :, None] * width + MAX_STEPS + i).long().reshape(b, -1)
        taken_q = torch.gather(taken.reshape(b, -1), 1, flat_taken).reshape(b, self.compact, EXTRA) & in_run
        ws_q, image_q, _, _ = self.composite(alpha_q, rgb_q, taken_q, torch.gather(wsum, 1, order),
                                             torch.gather(image, 1, order[:, :, None].expand(b, self.compact, 3)),
                                             listed)
        # a ray's rank among the g_16 rays; only frames with x >= 1 use it, and they have at most `compact`
        rank = torch.clamp(torch.cumsum(alive16.float(), dim=1) - 1.0, 0.0, float(self.compact - 1)).long()
        extended = alive16 & (x > 0.0)
        ws = torch.where(extended, torch.gather(ws_q, 1, rank), wsum)
        img = torch.where(extended[..., None], torch.gather(image_q, 1, rank[:, :, None].expand(b, r, 3)), image)
        return ws, img

"""SyncTalk's test-time marching schedule (`marcher.render_rays`) as static-shaped tensor ops, per frame of a batch.

`ScheduledMarcher(occ, pixels, rays, samples=None)(o, d, near, far, field)` -> wsum [B, R], image [B, R, 3]
for B frames of R rays each (o [B, 1, 3], d [B, R, 3], near / far [B, R]); `field(xyz [B, M, 3], dirs [B, M, 3],
M) -> sigma [B, M], rgb [B, M, 3]` evaluates the networks (twice with the schedule: the first 16 samples of every
ray, then the extra ones). Every shape but B is static (B is never read: no Shape node). `pixels` is N, the frame's H x W rays
that SyncTalk marches; the R rays are the ones that may take a sample and whose colour is seen (the others die in the
first iteration). `hidden=H`: H more rays that may take a sample but whose colour nobody sees (portrait pixels outside
every face mask); they count in n_alive, so only their densities are evaluated (`hidden_counts`), never colours or
samples past 16.

Samples: the first occupied points of the float32 running lattice u_0 = near, u_(k+1) = u_k + DT (one ONNX CumSum;
the kernel's voxel skip adds DT the same way and lands on the next lattice point, a voxel being at most DT long),
picked in order by TopK on occupied * (LATTICE - k). Compositing is the kernel's: T = 1 - wsum in float32, one
sample after the other, stop after the sample whose T < 1e-4.

Schedule (`samples=None`, the default): compositing samples 0..15 of every ray gives g_s, "the ray took samples
0..s-1 and none stopped it", i.e. alive at step s; the alive counts c_s = sum g_s drive SyncTalk's loop, unrolled on
[B] scalars (c_s adds the hidden rays' counts): s = 1 (the first iteration has all N rays alive: n_step 1), then
while s < 16 and c_s > 0: n_step = clamp(floor(N / c_s), 1, 8), s += n_step. The (seen) rays with g_16 take samples
16 .. s_end - 1 (at most 7):
they are compacted (TopK on g_16 * (R - r)) into a static buffer of E extra samples, E = max over n = 2..8 of
min(R, N // n) (n - 1), which bounds (n_step - 1) c_(last step) for every frame. `samples=S`: S samples per ray,
no schedule (a speed option, not SyncTalk's result).

WebGPU: float32 and bool values only (no bool Concat / Slice / Reshape); int64 only as Gather / TopK indices
(cast from float just before the Gather, never reshaped or cast back); no Or.
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
    def __init__(self, occ, pixels, rays, samples=None, hidden=0):
        super().__init__()
        if hidden and samples is not None:
            raise ValueError('hidden rays only count in the schedule: a fixed-sample marcher takes none')
        self.register_buffer('occ', occ.reshape(-1).to(torch.uint8))
        self.register_buffer('lattice', torch.arange(LATTICE, dtype=torch.float32))
        self.register_buffer('ray_index', torch.arange(rays, dtype=torch.float32))
        self.pixels, self.rays, self.samples, self.hidden = pixels, rays, samples, hidden
        self.base = MAX_STEPS if samples is None else samples
        self.extra = extra_slots(pixels, rays) if samples is None else 0
        self.compact = max(1, min(rays, pixels // 2))

    def lattice_samples(self, o, d, near, far, count):
        """t [B, R, count] of the first `count` occupied lattice points of each ray and their TopK scores
        [B, R, count] (> 0: the point is a sample)."""
        dt = near[:, :, None] * 0.0 + torch.full((LATTICE - 1,), DT)
        t = RunningSum.apply(torch.cat([near[:, :, None], dt], dim=2))
        p = torch.clamp(o[:, :, None, :] + t[..., None] * d[:, :, None, :], -BOUND, BOUND)
        v = torch.floor(torch.clamp(0.5 * (p + 1) * GRID, 0.0, GRID - 1.0))
        cell = v[..., 0] * float(GRID * GRID) + v[..., 1] * float(GRID) + v[..., 2]
        occupied = (self.occ[cell.long()].float() > 0.0) & (t < far[:, :, None])
        top, index = torch.topk(occupied.float() * (LATTICE - self.lattice), count, dim=2)
        return torch.gather(t, 2, index), top

    @staticmethod
    def points(o, d, t):
        return torch.clamp(o + t[..., None] * d, -BOUND, BOUND)

    @staticmethod
    def gather3(v, index):
        """v [B, X, 3] at index [B, Y] -> [B, Y, 3] (one Gather per channel: no expand to a runtime shape)."""
        return torch.stack([torch.gather(v[:, :, c], 1, index) for c in range(3)], dim=2)

    @staticmethod
    def composite(alpha, rgb, taken, wsum, image, going):
        """kernel_composite_rays over the samples on axis 2 (in order) from wsum [B, X], image [B, X, 3] and the
        rays still going [B, X]; taken [B, X, samples] float, > 0 where the sample exists. Returns wsum, image and
        g: per sample, the rays [B, X] still going after it (a list: WebGPU takes no bool Concat or Slice)."""
        thresh = torch.tensor(T_THRESH, dtype=torch.float32)
        after = []
        for k in range(alpha.shape[2]):
            going = going & (taken[:, :, k] > 0.0)
            trans = 1.0 - wsum
            w = alpha[:, :, k] * trans
            wsum = torch.where(going, wsum + w, wsum)
            image = torch.where(going[..., None], image + w[..., None] * rgb[:, :, k], image)
            going = going & (trans >= thresh)
            after.append(going)
        return wsum, image, after

    def schedule_end(self, counts):
        """s_end [B, 1] (float) of SyncTalk's loop from the alive counts [B, 16] (column s - 1: alive at step s)."""
        steps = torch.arange(1, MAX_STEPS + 1, dtype=torch.float32)
        s = counts[:, :1] * 0.0 + 1.0
        for _ in range(MAX_STEPS - 1):
            alive = (counts * (steps == s).float()).sum(dim=1, keepdim=True)
            run = (s < MAX_STEPS) & (alive > 0)
            n = torch.clamp(torch.floor(self.pixels / torch.clamp(alive, min=1.0)), 1.0, float(MAX_COMPACT))
            s = torch.where(run, s + n, s)
        return s

    def hidden_counts(self, o, d, near, far, density):
        """Alive counts [B, 16] of the hidden rays (d [B, H, 3], near / far [B, H]): rays whose colour nobody sees
        (outside every portrait mask) but which count in n_alive. Only their density is evaluated, at samples
        0..13: alive at step s (s <= 15, the last step the loop reads) needs samples 0..s-1 taken and the
        transmittance before sample s-1, i.e. the densities of samples 0..s-2. Column 16 (step 16) is 0: the loop
        never reads it and hidden rays take no sample past 16."""
        h, taken_n = self.hidden, MAX_STEPS - 1
        ts, score = self.lattice_samples(o, d, near, far, taken_n)
        xyz = self.points(o[:, :, None, :], d[:, :, None, :], ts[:, :, :taken_n - 1]).reshape(-1, h * (taken_n - 1), 3)
        alpha = (1.0 - torch.exp(-density(xyz, h * (taken_n - 1)) * DT)).reshape(-1, h, taken_n - 1)
        thresh = torch.tensor(T_THRESH, dtype=torch.float32)
        going, wsum = near == near, near * 0.0
        counts = []
        for k in range(taken_n):
            going = going & (score[:, :, k] > 0.0)
            trans = 1.0 - wsum
            if k < taken_n - 1:
                wsum = torch.where(going, wsum + alpha[:, :, k] * trans, wsum)
            going = going & (trans >= thresh)
            counts.append(going.float().sum(dim=1, keepdim=True))
        return torch.cat(counts + [counts[0] * 0.0], dim=1)

    def forward(self, o, d, near, far, field, hidden=None):
        """`hidden`: (d, near, far, density) of the hidden rays when the marcher has some; `density(xyz [B, M, 3],
        M) -> sigma [B, M]`."""
        r = self.rays
        ts, score = self.lattice_samples(o, d, near, far, self.base + (EXTRA if self.extra else 0))
        xyz = self.points(o[:, :, None, :], d[:, :, None, :], ts[:, :, :self.base]).reshape(-1, r * self.base, 3)
        sigma, rgb = field(xyz, d[:, :, None, :].repeat(1, 1, self.base, 1).reshape(-1, r * self.base, 3),
                           r * self.base)
        alpha = (1.0 - torch.exp(-sigma * DT)).reshape(-1, r, self.base)
        zero = near * 0.0
        wsum, image, g = self.composite(alpha, rgb.reshape(-1, r, self.base, 3), score, zero,
                                        zero[:, :, None].repeat(1, 1, 3), near == near)
        if not self.extra:
            return wsum, image
        counts = torch.cat([alive.float().sum(dim=1, keepdim=True) for alive in g], dim=1)
        if self.hidden:
            counts = counts + self.hidden_counts(o, *hidden)
        return self.extra_samples(o, d, ts, score, g, counts, wsum, image, field)

    def extra_samples(self, o, d, ts, score, g, counts, wsum, image, field):
        """Samples 16 .. s_end - 1 of the rays alive after 16 (g_16): the q-th such ray (TopK order = ray order)
        owns slots q X .. q X + X - 1 of the E-slot buffer, X = s_end - 16; composited on from its first 16."""
        r, width = self.rays, MAX_STEPS + EXTRA
        x = torch.clamp(self.schedule_end(counts) - MAX_STEPS, 0.0, float(EXTRA))
        alive16 = g[MAX_STEPS - 1]
        top, order = torch.topk(alive16.float() * (self.rays - self.ray_index), self.compact, dim=1)
        ray = self.ray_index[order]
        # slot j of the buffer: ray number q = j // X of the list, its sample 16 + j - q X
        step = torch.clamp(x, min=1.0)
        j = torch.arange(self.extra, dtype=torch.float32)
        q = torch.clamp(torch.floor(j / step), max=float(self.compact - 1))
        ray_j = torch.gather(ray, 1, q.long())
        flat_t = ray_j * width + (MAX_STEPS + torch.clamp(j - q * step, max=float(EXTRA - 1)))
        t = torch.gather(ts.reshape(-1, r * width), 1, flat_t.long())
        d_j = self.gather3(d, ray_j.long())
        sigma, rgb = field(self.points(o, d_j, t), d_j, self.extra)
        alpha = 1.0 - torch.exp(-sigma * DT)
        # the list's rays composite on: sample i of ray q is slot q X + i (i < X)
        i = torch.arange(EXTRA, dtype=torch.float32)
        first = torch.arange(self.compact, dtype=torch.float32)[:, None] * step[:, :, None]
        slot = torch.clamp(first + i, max=float(self.extra - 1)).reshape(-1, self.compact * EXTRA).long()
        alpha_q = torch.gather(alpha, 1, slot).reshape(-1, self.compact, EXTRA)
        rgb_q = self.gather3(rgb, slot).reshape(-1, self.compact, EXTRA, 3)
        flat_taken = (ray[:, :, None] * width + (MAX_STEPS + i)).reshape(-1, self.compact * EXTRA).long()
        score_q = torch.gather(score.reshape(-1, r * width), 1, flat_taken).reshape(-1, self.compact, EXTRA)
        taken_q = score_q * (i < x[:, :, None]).float()
        ws_q, image_q, _ = self.composite(alpha_q, rgb_q, taken_q, torch.gather(wsum, 1, order),
                                          self.gather3(image, order), top > 0.0)
        # back to the rays: a ray's rank among the g_16 rays (frames with X >= 1 have at most `compact` of them)
        rank = torch.clamp(torch.cumsum(alive16.float(), dim=1) - 1.0, 0.0, float(self.compact - 1)).long()
        extended = alive16 & (x > 0.0)
        return (torch.where(extended, torch.gather(ws_q, 1, rank), wsum),
                torch.where(extended[..., None], self.gather3(image_q, rank), image))

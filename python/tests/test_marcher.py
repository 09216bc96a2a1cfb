"""Marcher, compositing and the run_cuda loop of the reference against scalar transcriptions of the CUDA kernels."""
import math
import unittest

import numpy as np
import torch

from synctalk_live.marcher import (AABB, DT, GRID, MIN_NEAR, T_THRESH, camera_dirs, composite_rays, march_rays,
                                   morton3d, near_far, rays, render_rays, unpack_bitfield, visible_pixels)
from synctalk_live.make_test_workspace import camera_pose, occupancy_bitfield
from synctalk_live.schedule import ScheduledMarcher

F = np.float32
DT_F = F(DT)
T_THRESH_F = F(T_THRESH)


def cuda_near_far(o, d):
    near, far = -math.inf, math.inf
    for axis in range(3):
        r = math.inf if d[axis] == 0 else 1.0 / d[axis]
        a, b = (AABB[axis] - o[axis]) * r, (AABB[axis + 3] - o[axis]) * r
        a, b = min(a, b), max(a, b)
        if axis and (near > b or a > far):
            return 3.4e38, 3.4e38
        near, far = max(near, a), min(far, b)
    return max(near, MIN_NEAR), far


def cuda_march_rays(o, d, t, far, occ, n_step):
    """kernel_march_rays for one ray, scalar float32: [(xyz, t after the sample)] and the t where it stopped."""
    out = []
    with np.errstate(divide='ignore', invalid='ignore'):
        rd = [F(1) / c for c in d]
        while t < far and len(out) < n_step:
            p = [min(max(F(o[a] + t * d[a]), F(-1)), F(1)) for a in range(3)]
            n = [int(min(max(F((p[a] + F(1)) * F(64)), F(0)), F(GRID - 1))) for a in range(3)]
            if occ[n[0], n[1], n[2]]:
                t = F(t + DT_F)
                out.append((p, t))
                continue
            dist = []
            for a in range(3):
                boundary = F(F(F(F(n[a]) + F(0.5) + F(0.5) * F(math.copysign(1.0, d[a]))) * F(1 / GRID)) * F(2) - F(1))
                dist.append(F((boundary - p[a]) * rd[a]))
            tt = F(t + np.fmax(F(0), np.fmin(dist[0], np.fmin(dist[1], dist[2]))))
            t = F(t + DT_F)
            while t < tt:
                t = F(t + DT_F)
    return out, t


def cuda_render(o, d, near, far, occ, field, max_steps=16):
    """run_cuda's loop with kernel_march_rays and kernel_composite_rays, one ray at a time in scalar float32.
    o, d: float32 [N, 3] arrays; field as for `render_rays` (called on one sample at a time)."""
    n = o.shape[0]
    ws, img, rays_t = [F(0)] * n, [np.zeros(3, F) for _ in range(n)], [F(x) for x in near]
    alive, step, schedule = list(range(n)), 0, []
    while step < max_steps and alive:
        n_step = max(min(n // len(alive), 8), 1)
        schedule.append((len(alive), n_step))
        survivors = []
        for r in alive:
            samples, _ = cuda_march_rays(o[r], d[r], rays_t[r], F(far[r]), occ, n_step)
            k, t = 0, rays_t[r]
            while k < n_step:
                if k >= len(samples):
                    break
                xyz, t_after = samples[k]
                sigma, rgb = field(torch.tensor([xyz]), torch.tensor(d[r:r + 1]))
                alpha = F(1) - F(np.exp(F(-F(sigma[0]) * DT_F)))
                trans = F(F(1) - ws[r])
                w = F(alpha * trans)
                ws[r] = F(ws[r] + w)
                t = t_after
                img[r] = (img[r] + w * rgb[0].numpy()).astype(F)
                if trans < T_THRESH_F:
                    break
                k += 1
            if k == n_step:
                rays_t[r] = t
                survivors.append(r)
        alive = survivors
        step += n_step
    return np.array(ws), np.stack(img), schedule


def test_field(xyz, dirs):
    """A density field of plain float32 arithmetic (bit-identical for one sample or many): sigma in [0, 90)
    varying on the scale of a few voxels, rgb in [0, 1)."""
    u = xyz[:, 0] * 5.3 + xyz[:, 1] * 7.1 - xyz[:, 2] * 3.7
    frac = u - torch.floor(u)
    sigma = 90.0 * frac * frac
    c = xyz * 2.9 + dirs * 0.7
    return sigma, c - torch.floor(c)


class MarcherTest(unittest.TestCase):
    def setUp(self):
        bitfield, _, _ = occupancy_bitfield()
        self.bitfield = bitfield
        self.occ = unpack_bitfield(bitfield)
        pose = torch.tensor(camera_pose(np.random.default_rng(3)), dtype=torch.float32)
        o, d = rays(pose, camera_dirs(24, 24, (46.0, 46.0, 12.0, 12.0)))
        self.o, self.d = o, d

    def test_morton_order(self):
        def interleave(x, y, z):
            return sum(((x >> i) & 1) << (3 * i) | ((y >> i) & 1) << (3 * i + 1) | ((z >> i) & 1) << (3 * i + 2)
                       for i in range(7))
        for x, y, z in [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (127, 3, 64), (5, 99, 127), (127, 127, 127)]:
            self.assertEqual(int(morton3d(torch.tensor(x), torch.tensor(y), torch.tensor(z))), interleave(x, y, z))
        self.assertEqual(int(self.occ.sum()), int(sum(bin(b).count('1') for b in self.bitfield.tolist())))

    def test_near_far(self):
        near, far = near_far(self.o, self.d)
        for i in range(0, self.o.shape[0], 7):
            n, f = cuda_near_far(self.o[i].tolist(), self.d[i].tolist())
            self.assertAlmostEqual(float(near[i]), n, places=4)
            self.assertAlmostEqual(float(far[i]), f, places=4)

    def test_march_rays_is_the_kernel(self):
        near, far = near_far(self.o, self.d)
        for n_step in (1, 5, 40):
            xyz, ts, count, t_end = march_rays(self.o, self.d, near, far, self.occ, n_step)
            hits = 0
            for i in range(self.o.shape[0]):
                want, t_want = cuda_march_rays(self.o[i].numpy(), self.d[i].numpy(), F(near[i]), F(far[i]),
                                               self.occ, n_step)
                self.assertEqual(int(count[i]), len(want), f'ray {i}')
                if want:
                    np.testing.assert_array_equal(xyz[i, :len(want)].numpy(), np.array([p for p, _ in want], F))
                    self.assertEqual(float(ts[i, len(want) - 1] + DT_F), float(want[-1][1]))
                self.assertEqual(float(t_end[i]), float(t_want))
                hits += len(want) > 0
            self.assertGreater(hits, 50)

    def test_render_loop_is_run_cuda(self):
        """The whole schedule (alive counts, n_step, 16..23 samples, stop rule) against the scalar transcription,
        on frames that give different n_step sequences: the test head from afar and zoomed in, and a random
        blocky occupancy grid (empty voxels to skip inside the head)."""
        g = torch.Generator().manual_seed(7)
        blocky = (torch.rand(16, 16, 16, generator=g) < 0.5).repeat_interleave(8, 0).repeat_interleave(8, 1)
        blocky = blocky.repeat_interleave(8, 2) & self.occ
        frames = [(self.occ, 3, 46.0), (self.occ, 4, 120.0), (blocky, 5, 60.0)]
        schedules = set()
        for occ, seed, focal in frames:
            pose = torch.tensor(camera_pose(np.random.default_rng(seed)), dtype=torch.float32)
            o, d = rays(pose, camera_dirs(20, 20, (focal, focal, 10.0, 10.0)))
            near, far = near_far(o, d)
            wsum, image, schedule = render_rays(o, d, near, far, occ, test_field)
            ws_want, img_want, schedule_want = cuda_render(o.numpy(), d.numpy(), near.numpy(), far.numpy(), occ,
                                                           test_field)
            self.assertEqual(schedule, schedule_want)
            np.testing.assert_allclose(wsum.numpy(), ws_want, rtol=0, atol=1e-6)
            np.testing.assert_allclose(image.numpy(), img_want, rtol=0, atol=1e-6)
            self.assertGreater(float(wsum.max()), 0.99)
            schedules.add(tuple(schedule))
            self.assertGreaterEqual(sum(s for _, s in schedule), 16)
        self.assertEqual(len(schedules), len(frames))

    def test_hidden_rays_count_by_their_densities(self):
        """ScheduledMarcher with half the rays hidden (densities only) gives the seen rays what the reference loop
        over all rays gives them. Two frames: one where dropping the hidden rays would change the seen rays (they
        count in n_alive), one where hidden rays that take samples but see no density would (their densities stop
        them)."""
        def run(o, d, near, far, seen, hidden, field, density):
            marcher = ScheduledMarcher(self.occ, 400, int(seen.sum()), hidden=int(hidden.sum()))
            extra = (d[None, hidden], near[None, hidden], far[None, hidden], density)
            with torch.no_grad():
                return marcher(o[None, :1], d[None, seen], near[None, seen], far[None, seen], field,
                               extra if bool(hidden.any()) else None)

        for seed, focal, scale in ((3, 60.0, 0.5), (3, 120.0, 1.0)):
            def scaled(xyz, dirs):
                sigma, rgb = test_field(xyz, dirs)
                return sigma * scale, rgb

            def field(xyz, dirs, rows):
                sigma, rgb = scaled(xyz.reshape(-1, 3), dirs.reshape(-1, 3))
                return sigma.reshape(-1, rows), rgb.reshape(-1, rows, 3)

            def density(xyz, rows):
                return scaled(xyz.reshape(-1, 3), xyz.reshape(-1, 3))[0].reshape(-1, rows)

            pose = torch.tensor(camera_pose(np.random.default_rng(seed)), dtype=torch.float32)
            o, d = rays(pose, camera_dirs(20, 20, (focal, focal, 10.0, 10.0)))
            near, far = near_far(o, d)
            wsum_ref, image_ref, schedule = render_rays(o, d, near, far, self.occ, scaled)
            taking = march_rays(o, d, near, far, self.occ, 1)[2] > 0
            seen = taking & (torch.arange(400) % 2 == 0)
            hidden = taking & ~seen
            wsum, image = run(o, d, near, far, seen, hidden, field, density)
            self.assertGreaterEqual(sum(n for _, n in schedule), 16)  # samples past 16: s ends at 1 + the sum
            np.testing.assert_allclose(wsum[0].numpy(), wsum_ref[seen].numpy(), rtol=0, atol=1e-6)
            np.testing.assert_allclose(image[0].numpy(), image_ref[seen].numpy(), rtol=0, atol=1e-6)
            if scale < 1.0:
                other = run(o, d, near, far, seen, torch.zeros_like(hidden), field, density)[0]
            else:
                other = run(o, d, near, far, seen, hidden, field, lambda xyz, rows: density(xyz, rows) * 0.0)[0]
            self.assertGreater(float((other - wsum).abs().max()), 1e-5)

    def test_visible_pixels_hold_every_ray_that_takes_a_sample(self):
        """The projected occupied boxes are a superset of the rays with an occupied sample, tight enough to pay; a
        small off-centre occupied block and an empty grid."""
        block = torch.zeros(GRID, GRID, GRID, dtype=torch.bool)
        block[70:90, 60:75, 40:70] = True
        size, intr = 48, (92.0, 92.0, 24.0, 24.0)
        poses = [camera_pose(np.random.default_rng(seed)) for seed in range(4)]
        for occ, tight in ((self.occ, 1.4), (block, 2.0)):
            union = torch.zeros(size * size, dtype=torch.bool)
            for pose in poses:
                o, d = rays(torch.tensor(pose, dtype=torch.float32), camera_dirs(size, size, intr))
                near, far = near_far(o, d)
                union |= march_rays(o, d, near, far, occ, 1)[2] > 0
            visible = visible_pixels(occ, poses, size, size, intr)
            self.assertTrue(bool(union.any()))
            self.assertFalse(bool((union & ~visible).any()))
            self.assertLess(int(visible.sum()), tight * int(union.sum()))
        self.assertFalse(bool(visible_pixels(torch.zeros_like(block), poses, size, size, intr).any()))

    def test_composite_stop_rule(self):
        """One iteration of kernel_composite_rays: stop at an unwritten sample, or after the sample whose T < 1e-4."""
        g = torch.Generator().manual_seed(5)
        sigma = torch.rand(64, 12, generator=g) * torch.tensor([1.0, 40.0, 400.0, 4000.0]).repeat(16)[:, None]
        rgb = torch.rand(64, 12, 3, generator=g)
        count = torch.randint(0, 13, (64,), generator=g)
        wsum, image = torch.zeros(64), torch.zeros(64, 3)
        going = composite_rays(sigma, rgb, count, 12, wsum, image)
        for r in range(64):
            ws, col, k = F(0), np.zeros(3, F), 0
            while k < 12 and k < int(count[r]):
                alpha = F(1) - F(np.exp(F(-sigma[r, k].numpy() * DT_F)))
                trans = F(F(1) - ws)
                ws = F(ws + alpha * trans)
                col = (col + F(alpha * trans) * rgb[r, k].numpy()).astype(F)
                if trans < T_THRESH_F:
                    break
                k += 1
            self.assertEqual(bool(going[r]), k == 12)
            self.assertAlmostEqual(float(wsum[r]), float(ws), places=6)
            np.testing.assert_allclose(image[r].numpy(), col, rtol=0, atol=1e-6)


if __name__ == '__main__':
    unittest.main()

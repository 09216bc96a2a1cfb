"""Marcher and compositing of the reference against scalar transcriptions of the CUDA raymarching kernels."""
import math
import unittest

import numpy as np
import torch

from synctalk_live.marcher import (AABB, DT, GRID, MIN_NEAR, T_THRESH, camera_dirs, composite, march, morton3d,
                                   near_far, rays, unpack_bitfield, visible_pixels)
from synctalk_live.make_test_workspace import camera_pose, occupancy_bitfield

F = np.float32


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


def cuda_march(o, d, near, far, occ, samples):
    """kernel_march_rays on the lattice t_k = near + k dt, with the skip-to-next-voxel branch for empty voxels."""
    lo, hi = np.array(AABB[:3], F), np.array(AABB[3:], F)
    taken, k = [], 0
    while len(taken) < samples:
        t = F(near) + F(k) * F(DT)
        if not t < far:
            break
        p = np.minimum(np.maximum(o + t * d, lo), hi)
        n = [int(min(max(0.5 * (c + 1) * GRID, 0.0), GRID - 1.0)) for c in p]
        k += 1
        if occ[n[0], n[1], n[2]]:
            taken.append(float(t))
            continue
        dist = []
        for a in range(3):
            if d[a] == 0:
                dist.append(math.inf)
                continue
            boundary = (n[a] + 0.5 + 0.5 * math.copysign(1, d[a])) / GRID * 2 - 1
            dist.append((boundary - p[a]) / d[a])
        tt = t + max(0.0, min(dist))
        while F(near) + F(k) * F(DT) < tt:
            k += 1
    return taken


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

    def test_first_occupied_samples(self):
        near, far = near_far(self.o, self.d)
        for samples in (4, 16, 40):
            t, taken = march(self.o, self.d, near, far, self.occ, samples)
            hits = 0
            for i in range(self.o.shape[0]):
                want = cuda_march(self.o[i].numpy(), self.d[i].numpy(), float(near[i]), float(far[i]), self.occ,
                                  samples)
                got = t[i][taken[i]].tolist()
                self.assertEqual(len(got), len(want), f'ray {i}')
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
                hits += len(want) > 0
            self.assertGreater(hits, 50)

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
                union |= march(o, d, near, far, occ, 1)[1][:, 0]
            visible = visible_pixels(occ, poses, size, size, intr)
            self.assertTrue(bool(union.any()))
            self.assertFalse(bool((union & ~visible).any()))
            self.assertLess(int(visible.sum()), tight * int(union.sum()))
        self.assertFalse(bool(visible_pixels(torch.zeros_like(block), poses, size, size, intr).any()))

    def test_composite_early_stop(self):
        g = torch.Generator().manual_seed(5)
        sigma = torch.rand(64, 12, generator=g) * torch.tensor([1.0, 40.0, 400.0, 4000.0]).repeat(16)[:, None]
        rgb = torch.rand(64, 12, 3, generator=g)
        taken = torch.arange(12)[None, :] < torch.randint(0, 13, (64, 1), generator=g)
        wsum, image = composite(sigma, rgb, taken)
        for r in range(64):
            ws, col = 0.0, np.zeros(3)
            for k in range(12):
                if not taken[r, k]:
                    break
                alpha = 1 - math.exp(-float(sigma[r, k]) * DT)
                trans = 1 - ws
                ws += alpha * trans
                col += alpha * trans * rgb[r, k].double().numpy()
                if trans < T_THRESH:
                    break
            self.assertAlmostEqual(float(wsum[r]), ws, places=5)
            np.testing.assert_allclose(image[r].numpy(), col, atol=1e-5)


if __name__ == '__main__':
    unittest.main()

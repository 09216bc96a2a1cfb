"""Grid lookups of the reference against a scalar transcription of the CUDA gridencoder rule."""
import math
import unittest

import numpy as np
import torch

from synctalk_live.graphs import TriplaneGrid, torso_grid
from synctalk_live.reference import PLANES
from synctalk_live.grid import TORSO, TRIPLANE, grid_encode


def cuda_lookup(emb, spec, point, bound=1.0):
    """One point, written the way gridencoder.cu computes it (float32 scalars, uint32 hash)."""
    x01 = [np.float32((np.float32(c) + np.float32(bound)) / np.float32(2 * bound)) for c in point]
    out = np.zeros(spec.num_levels * spec.level_dim, dtype=np.float64)
    if any(c < 0 or c > 1 for c in x01):
        return out
    log2_scale = np.float32(math.log2(2.0 ** (math.log2(
        {12: 512, 16: 2048}[spec.num_levels] / spec.base) / (spec.num_levels - 1))))
    for level in range(spec.num_levels):
        scale = np.float32(np.exp2(np.float32(level) * log2_scale) * np.float32(spec.base) - np.float32(1))
        res = int(math.ceil(scale)) + 1
        hs = spec.offsets[level + 1] - spec.offsets[level]
        pos = [np.float32(c * scale + np.float32(0.5)) for c in x01]
        grid = [int(math.floor(p)) for p in pos]
        frac = [np.float32(p - g) for p, g in zip(pos, grid)]
        for corner in range(4):
            w = 1.0
            local = []
            for d in range(2):
                bit = (corner >> d) & 1
                w *= frac[d] if bit else 1 - frac[d]
                local.append(grid[d] + bit)
            stride, index = 1, 0
            for d in range(2):
                if stride > hs:
                    break
                index += local[d] * stride
                stride *= res + 1
            if spec.gridtype == 'hash' and stride > hs:
                index = (local[0] ^ ((local[1] * 2654435761) & 0xFFFFFFFF)) & 0xFFFFFFFF
            row = spec.offsets[level] + index % hs
            for c in range(spec.level_dim):
                out[level * spec.level_dim + c] += w * float(emb[row, c])
    return out


def points(rng, n):
    p = rng.uniform(-1, 1, (n, 2))
    p[: n // 8] = rng.uniform(-1.3, 1.3, (n // 8, 2))  # some out of range
    p[n // 8: n // 8 + 4] = [[-1, -1], [1, 1], [-1, 1], [1, -1]]  # the corners of the range
    return torch.tensor(p, dtype=torch.float32)


class GridTest(unittest.TestCase):
    def setUp(self):
        self.rng = np.random.default_rng(7)
        g = torch.Generator().manual_seed(7)
        self.tri = torch.rand(TRIPLANE.rows, 1, generator=g) * 2 - 1
        self.torso = torch.rand(TORSO.rows, 2, generator=g) * 2 - 1

    def test_layout_matches_official_shapes(self):
        self.assertEqual(TRIPLANE.rows, 163584)
        self.assertEqual(TRIPLANE.dense, [True] * 4 + [False] * 8)
        self.assertEqual(TORSO.rows, 555520)

    def check(self, emb, spec, x):
        ref = grid_encode(emb, spec, x).double().numpy()
        want = np.stack([cuda_lookup(emb.numpy(), spec, p) for p in x.numpy()])
        np.testing.assert_allclose(ref, want, atol=2e-6)
        return ref

    def test_triplane_dense_and_hashed_levels(self):
        x = points(self.rng, 200)
        ref = self.check(self.tri, TRIPLANE, x)
        outside = (x.abs() > 1).any(dim=1).numpy()
        self.assertTrue(outside.any())
        self.assertTrue((ref[outside] == 0).all())
        self.assertTrue((np.abs(ref[~outside]).sum(axis=1) > 0).all())

    def test_torso_tiled_levels(self):
        self.check(self.torso, TORSO, points(self.rng, 100))

    def test_dehashed_tables_equal_hash_lookup(self):
        x = points(self.rng, 4000)
        np.testing.assert_allclose(torso_grid(self.torso)(x).numpy(), grid_encode(self.torso, TORSO, x).numpy(),
                                   atol=1e-6)

    def test_triplane_quads_equal_hash_lookup(self):
        """The one-Gather tri-plane lookup on points of the AABB (where samples lie), faces and corners included."""
        planes = [self.tri, self.tri.flip(0), self.tri * 0.5]
        x = torch.rand(4000, 3, generator=torch.Generator().manual_seed(3)) * 2 - 1
        x[:, 1] *= 0.5
        x[:8] = torch.tensor([[sx, sy * 0.5, sz] for sx in (-1.0, 1.0) for sy in (-1.0, 1.0) for sz in (-1.0, 1.0)])
        want = torch.cat([grid_encode(e, TRIPLANE, x[:, list(ax)]) for e, (_, ax) in zip(planes, PLANES)], dim=-1)
        np.testing.assert_allclose(TriplaneGrid(planes)(x).numpy(), want.numpy(), atol=1e-6)


if __name__ == '__main__':
    unittest.main()

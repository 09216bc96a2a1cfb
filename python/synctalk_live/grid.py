"""Multi-resolution 2-D grids of SyncTalk (hash tri-planes and the tiled torso grid), CUDA-exact.

Layout (gridencoder): level l has `scale_l = exp2f(l * log2f(per_level_scale)) * base - 1` (float32),
`res_l = ceil(scale_l) + 1`, rows `hashmap_l = offsets[l+1] - offsets[l]`. A point x in [-bound, bound]^2
maps to x01 = (x + bound) / (2 bound); any coordinate outside [0, 1] gives 0 for every level.
pos = x01 * scale_l + 0.5 (align_corners=False), g = floor(pos), f = pos - g, bilinear over 4 corners.
Corner index: dense `gx + gy (res_l + 1)` when `(res_l + 1)^2 <= hashmap_l`, else (hash grids)
`gx XOR gy * 2654435761` in uint32; tiled grids always use the dense index; then `% hashmap_l`.

`dense_tables` de-hashes every level into a (res_l+1)^2 texture so that an exported graph needs only
Gather (no integer hashing).
"""
import math

import numpy as np
import torch

PRIME_Y = 2654435761


class GridSpec:
    """Static description of one grid encoder (what the official `GridEncoder(...)` arguments imply)."""

    def __init__(self, num_levels, level_dim, base_resolution, log2_hashmap_size, desired_resolution, gridtype):
        self.num_levels = num_levels
        self.level_dim = level_dim
        self.base = base_resolution
        self.gridtype = gridtype
        per_level_scale = 2.0 ** (math.log2(desired_resolution / base_resolution) / (num_levels - 1))
        max_params = 2 ** log2_hashmap_size
        offsets = [0]
        for i in range(num_levels):
            res = int(math.ceil(base_resolution * per_level_scale ** i)) + 1
            params = min(max_params, res ** 2)
            offsets.append(offsets[-1] + int(math.ceil(params / 8) * 8))
        self.offsets = offsets
        log2_scale = np.float32(np.log2(per_level_scale))
        self.scales = [np.float32(np.exp2(np.float32(l) * log2_scale)) * np.float32(base_resolution) - np.float32(1.0)
                       for l in range(num_levels)]
        self.resolutions = [int(math.ceil(float(s))) + 1 for s in self.scales]
        self.hashmap_sizes = [offsets[l + 1] - offsets[l] for l in range(num_levels)]
        self.dense = [(r + 1) ** 2 <= h for r, h in zip(self.resolutions, self.hashmap_sizes)]

    @property
    def rows(self):
        return self.offsets[-1]


TRIPLANE = GridSpec(12, 1, 64, 14, 512, 'hash')
TORSO = GridSpec(16, 2, 16, 16, 2048, 'tiled')


def corner_index(spec, level, gx, gy):
    """Row (within the level) of grid corner (gx, gy); int64 tensors in, int64 tensor out."""
    res, hs = spec.resolutions[level], spec.hashmap_sizes[level]
    stride = res + 1
    if stride > hs:
        index = gx
    else:
        index = gx + gy * stride
        if spec.gridtype == 'hash' and stride * stride > hs:
            index = (gx & 0xFFFFFFFF) ^ ((gy * PRIME_Y) & 0xFFFFFFFF)
    return index % hs


def grid_encode(embeddings, spec, x, bound=1.0):
    """Reference lookup. embeddings [rows, C], x [N, 2] -> [N, levels * C] (level-major, channel-minor)."""
    x01 = (x + bound) / (2 * bound)
    inside = ((x01 >= 0) & (x01 <= 1)).all(dim=-1, keepdim=True)
    outs = []
    for level in range(spec.num_levels):
        pos = x01 * torch.tensor(spec.scales[level]) + 0.5
        g = torch.floor(pos)
        f = pos - g
        g = g.long()
        acc = torch.zeros(x.shape[0], spec.level_dim, dtype=embeddings.dtype)
        for corner in range(4):
            bx, by = corner & 1, (corner >> 1) & 1
            wx = f[:, 0] if bx else 1 - f[:, 0]
            wy = f[:, 1] if by else 1 - f[:, 1]
            rows = corner_index(spec, level, g[:, 0] + bx, g[:, 1] + by) + spec.offsets[level]
            acc = acc + (wx * wy)[:, None] * embeddings[rows]
        outs.append(acc)
    return torch.cat(outs, dim=-1) * inside.to(embeddings.dtype)


def dense_tables(embeddings, spec):
    """De-hash: per level a (res+1)^2 texture T[gx + gy (res+1)] = emb[offset + corner_index(gx, gy)].

    Returns (table [sum (res+1)^2, C] float32, bases [levels] int64, strides [levels] int64)."""
    tables, bases, strides, base = [], [], [], 0
    for level in range(spec.num_levels):
        side = spec.resolutions[level] + 1
        gy, gx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing='ij')
        rows = corner_index(spec, level, gx.reshape(-1), gy.reshape(-1)) + spec.offsets[level]
        tables.append(embeddings[rows])
        bases.append(base)
        strides.append(side)
        base += side * side
    return torch.cat(tables, dim=0).float(), torch.tensor(bases), torch.tensor(strides)

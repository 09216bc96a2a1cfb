"""Fixed encodings: spherical harmonics degree 4 (16 dims, shencoder) and frequency (freqencoder).

`sh_encode(d)`: d [N, 3] unit ray directions -> [N, 16], real SH constants with the shencoder signs.
`freq_encode(x, n)`: x [N, D] -> [N, D + 2 D n], layout [x, sin(x), cos(x), sin(2x), cos(2x), ...]
(each block D wide, no pi).
"""
import torch


def sh_encode(d):
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    xy, yz, xz = x * y, y * z, x * z
    x2, y2, z2 = x * x, y * y, z * z
    return torch.stack([
        x * 0.0 + 0.28209479177387814,  # not full_like: the render graph has a symbolic batch (no runtime shapes)
        -0.48860251190291987 * y,
        0.48860251190291987 * z,
        -0.48860251190291987 * x,
        1.0925484305920792 * xy,
        -1.0925484305920792 * yz,
        0.94617469575755997 * z2 - 0.31539156525251999,
        -1.0925484305920792 * xz,
        0.54627421529603959 * x2 - 0.54627421529603959 * y2,
        0.59004358992664352 * y * (-3.0 * x2 + y2),
        2.8906114426405538 * xy * z,
        0.45704579946446572 * y * (1.0 - 5.0 * z2),
        0.3731763325901154 * z * (5.0 * z2 - 3.0),
        0.45704579946446572 * x * (1.0 - 5.0 * z2),
        1.4453057213202769 * z * (x2 - y2),
        0.59004358992664352 * x * (-x2 + 3.0 * y2),
    ], dim=-1)


def freq_encode(x, n_freqs):
    parts = [x]
    for i in range(n_freqs):
        parts.append(torch.sin(x * (2.0 ** i)))
        parts.append(torch.cos(x * (2.0 ** i)))
    return torch.cat(parts, dim=-1)

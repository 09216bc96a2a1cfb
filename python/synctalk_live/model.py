"""The NeRF networks of a SyncTalk checkpoint as plain tensor functions (bias-free MLPs, ReLU between layers).

Head (per sample): enc_x [N, 36] (tri-plane features xy | yz | xz, 12 levels each)
  enc_w = enc_a * aud_ch_att_net(enc_x)            [N, 32]
  e     = eye * eye_att_net(enc_x)                 [N, E]   (E = 7, or 1 with --au45)
  h     = sigma_net([enc_x, enc_w, e])             [N, 65]; sigma = exp(h0), geo = h[1:]
  rgb   = sigmoid(color_net([sh(d), geo, code0])) * 1.002 - 0.001
Torso (per pixel): see `TorsoNet`. Individual codes: row 0 (test time).
"""
import torch
from torch import nn

from .encoders import freq_encode, sh_encode

TORSO_SHRINK = 0.8


def mlp(x, weights):
    for i, w in enumerate(weights):
        x = x @ w.t()
        if i < len(weights) - 1:
            x = torch.relu(x)
    return x


def _weights(sd, prefix, n):
    return [sd[f'{prefix}.net.{i}.weight'].float() for i in range(n)]


class HeadNet(nn.Module):
    def __init__(self, sd):
        super().__init__()
        self.aud_ch_att = nn.ParameterList(_weights(sd, 'aud_ch_att_net', 2))
        self.eye_att = nn.ParameterList(_weights(sd, 'eye_att_net', 2))
        self.sigma = nn.ParameterList(_weights(sd, 'sigma_net', 3))
        self.color = nn.ParameterList(_weights(sd, 'color_net', 2))
        self.register_buffer('code', sd['individual_codes'][:1].float())
        for p in self.parameters():
            p.requires_grad_(False)

    @property
    def eye_dim(self):
        return self.eye_att[1].shape[0]

    def forward(self, enc_x, d, enc_a, eye):
        """enc_x [N, 36], d [N, 3], enc_a [1, 32], eye [1, E] -> sigma [N], rgb [N, 3]."""
        enc_w = enc_a * mlp(enc_x, list(self.aud_ch_att))
        e = eye * mlp(enc_x, list(self.eye_att))
        h = mlp(torch.cat([enc_x, enc_w, e], dim=-1), list(self.sigma))
        sigma = torch.exp(h[:, 0])
        code = self.code.expand(enc_x.shape[0], -1)
        rgb = torch.sigmoid(mlp(torch.cat([sh_encode(d), h[:, 1:], code], dim=-1), list(self.color))) * 1.002 - 0.001
        return sigma, rgb


def wrapped_anchor(anchor_points, pose):
    """Torso pose code: anchor_points [3, 4] @ inverse(pose^T), perspective divide -> [1, 6] (float32)."""
    w = anchor_points.float() @ torch.inverse(pose.float().t())
    return (w[:, :2] / w[:, 3:4] / w[:, 2:3]).reshape(1, 6)


class TorsoNet(nn.Module):
    """Torso layer: coords [P, 2] (bg coords in [-1, 1]) and anchor [1, 6] -> alpha [P, 1], rgb [P, 3].

    x = coords * 0.8; h = [freq8(x), freq3(anchor), code0]; x = clamp(x + deform_net(h), -1, 1);
    out = torso_net([torso_grid(x), h]); alpha/rgb = sigmoid * 1.002 - 0.001. `encode` is the grid lookup."""

    def __init__(self, sd, encode):
        super().__init__()
        self.deform = nn.ParameterList(_weights(sd, 'torso_deform_net', 3))
        self.net = nn.ParameterList(_weights(sd, 'torso_net', 3))
        self.register_buffer('code', sd['individual_codes_torso'][:1].float())
        self.encode = encode
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, coords, anchor):
        n = coords.shape[0]
        x = coords * TORSO_SHRINK
        h = torch.cat([freq_encode(x, 8), freq_encode(anchor, 3).expand(n, -1), self.code.expand(n, -1)], dim=-1)
        x = torch.clamp(x + mlp(h, list(self.deform)), -1.0, 1.0)
        out = mlp(torch.cat([self.encode(x), h], dim=-1), list(self.net))
        out = torch.sigmoid(out) * 1.002 - 0.001
        return out[:, :1], out[:, 1:]

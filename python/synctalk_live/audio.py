"""Audio side of SyncTalk 'ave': the AVE audio encoder (Wav2Lip SyncNet audio tower), AudioNet_ave and AudioAttNet.

Shapes: mel window [B, 1, 80, 16] (80 mel bins x 16 mel frames at 80 Hz) -> AVE feature [B, 512].
Per video frame i the attention uses AVE features i-4 .. i+3 (zero rows outside the clip, 3 frames of
lookahead) -> AudioNet_ave [8, 32] -> AudioAttNet -> enc_a [1, 32].
Module and parameter names match the official state_dict keys so `load_state_dict(strict=True)` validates them.
"""
import torch
from torch import nn

ATT_BEFORE = 4
ATT_AFTER = 3
ATT_LEN = ATT_BEFORE + ATT_AFTER + 1


class ConvBlock(nn.Module):
    """Conv2d + BatchNorm2d (+ residual) + ReLU; parameters under `conv_block.{0,1}`."""

    def __init__(self, cin, cout, kernel, stride, padding, residual=False):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.BatchNorm2d(cout))
        self.residual = residual

    def forward(self, x):
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return torch.relu(out)


# (cin, cout, kernel, stride, padding, residual) of the 13 blocks.
AVE_BLOCKS = [
    (1, 32, 3, 1, 1, False), (32, 32, 3, 1, 1, True), (32, 32, 3, 1, 1, True),
    (32, 64, 3, (3, 1), 1, False), (64, 64, 3, 1, 1, True), (64, 64, 3, 1, 1, True),
    (64, 128, 3, 3, 1, False), (128, 128, 3, 1, 1, True), (128, 128, 3, 1, 1, True),
    (128, 256, 3, (3, 2), 1, False), (256, 256, 3, 1, 1, True),
    (256, 512, 3, 1, 0, False), (512, 512, 1, 1, 0, False),
]


class AudioEncoder(nn.Sequential):
    """AVE: [B, 1, 80, 16] -> [B, 512]. State dict keys `0.conv_block.0.weight` ... `12.conv_block.1.running_var`."""

    def __init__(self):
        super().__init__(*[ConvBlock(*b) for b in AVE_BLOCKS])

    def forward(self, x):
        return super().forward(x).flatten(1)


class AudioNetAve(nn.Module):
    """AudioNet_ave: [N, 512] -> [N, 32]; keys `encoder_fc1.{0,2,4}.{weight,bias}`, LeakyReLU 0.02."""

    def __init__(self, dim_aud=32):
        super().__init__()
        self.encoder_fc1 = nn.Sequential(
            nn.Linear(512, 256), nn.LeakyReLU(0.02), nn.Linear(256, 128), nn.LeakyReLU(0.02), nn.Linear(128, dim_aud))

    def forward(self, x):
        return self.encoder_fc1(x)


class AudioAttNet(nn.Module):
    """AudioAttNet: [seq, dim] -> [1, dim]; keys `attentionConvNet.{0,2,4,6,8}`, `attentionNet.0`."""

    def __init__(self, dim_aud=32, seq_len=ATT_LEN):
        super().__init__()
        self.seq_len = seq_len
        chans = [dim_aud, 16, 8, 4, 2, 1]
        layers = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv1d(cin, cout, 3, 1, 1), nn.LeakyReLU(0.02)]
        self.attentionConvNet = nn.Sequential(*layers)
        self.attentionNet = nn.Sequential(nn.Linear(seq_len, seq_len), nn.Softmax(dim=1))

    def forward(self, x):
        y = self.attentionConvNet(x.t().unsqueeze(0)).reshape(1, self.seq_len)
        w = self.attentionNet(y).reshape(self.seq_len, 1)
        return (w * x).sum(dim=0, keepdim=True)


class AudioHead(nn.Module):
    """AudioNet_ave + AudioAttNet: 8 AVE features [8, 512] -> enc_a [1, 32] (the `audio_att.onnx` graph)."""

    def __init__(self):
        super().__init__()
        self.audio_net = AudioNetAve()
        self.audio_att_net = AudioAttNet()

    def forward(self, feats):
        return self.audio_att_net(self.audio_net(feats))


def attention_window(features, index):
    """AVE features [N, 512] -> rows index-4 .. index+3 [8, 512], zeros outside [0, N) (SyncTalk att=2)."""
    out = torch.zeros(ATT_LEN, features.shape[1], dtype=features.dtype)
    for k in range(ATT_LEN):
        j = index - ATT_BEFORE + k
        if 0 <= j < features.shape[0]:
            out[k] = features[j]
    return out


def align_features(window_features):
    """SyncTalk's padding: per-window features [W, 512] -> per-video-frame [W + 4, 512] (first/last twice)."""
    f = window_features
    return torch.cat([f[:1], f[:1], f, f[-1:], f[-1:]], dim=0)

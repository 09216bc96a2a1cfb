"""Write test cases for the exported ONNX graphs: bundles of the test workspaces plus inputs and PyTorch-reference
outputs as raw little-endian files (run by test/synctalk-python.test.ts with onnxruntime-node).

Usage (cwd python/): /usr/bin/python3 tests/make_reference_cases.py OUT [--frames 6]
Bundles: the six flag sets (head, portrait, torso, au45, portrait + au45, torso + au45) at 64 x 64 and portrait at
128 x 128, exported with SyncTalk's schedule (the default); render cases: track frames 0, N / 2 and N - 1.
Writes OUT/cases.json: {cases: [{bundle, graph, kind, inputs: [{name, dtype, shape, file}], expected: {...},
reference_ms, n_steps}]}. Inputs are batches of one frame (the graphs' first dimension); a render case expects the
reference's uint8 RGB frame [H, W, 3] (`Reference.frame`), the graph gives RGBA [1, H, W, 4]; n_steps is the
reference's n_step per iteration (their sum is the samples a surviving ray took). The audio chain is real: a
synthetic wav -> synctalk_live.mel -> AVE -> attention -> enc_a, and enc_a feeds the render cases.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synctalk_live import mel  # noqa: E402
from synctalk_live.audio import align_features, attention_window  # noqa: E402
from synctalk_live.checkpoint import load_audio_head, load_ave, load_nerf_checkpoint  # noqa: E402
from synctalk_live.dataset import SyncTalkData  # noqa: E402
from synctalk_live.export import export_bundle  # noqa: E402
from synctalk_live.make_test_workspace import make_workspace  # noqa: E402
from synctalk_live.model import wrapped_anchor  # noqa: E402
from synctalk_live.reference import Reference  # noqa: E402

VARIANTS = [  # (workspace variant, export mode, au45, frame side): the six flag sets at 64 px, portrait at 128 px
    ('portrait', 'head', False, 64),
    ('portrait', 'portrait', False, 64),
    ('torso', 'torso', False, 64),
    ('au45', 'head', True, 64),
    ('au45', 'portrait', True, 64),
    ('torso-au45', 'torso', True, 64),
    ('portrait', 'portrait', False, 128),
]


def speechlike(seconds=1.2, sr=16000):
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 40 * np.sin(2 * np.pi * 1.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 10)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2)
    noise = np.random.default_rng(0).normal(0, 0.02, t.shape)
    return (0.3 * voice + noise).astype(np.float32)


class Writer:
    def __init__(self, root):
        self.root, self.count = root, 0

    def tensor(self, name, array):
        array = np.ascontiguousarray(array)
        self.count += 1
        file = f'tensors/{self.count:04d}_{name}.bin'
        (self.root / file).parent.mkdir(parents=True, exist_ok=True)
        (self.root / file).write_bytes(array.tobytes())
        return {'name': name, 'dtype': str(array.dtype), 'shape': list(array.shape), 'file': file}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('out')
    ap.add_argument('--frames', type=int, default=6)
    a = ap.parse_args()
    out = Path(a.out)
    w = Writer(out)
    cases = []
    torch.set_num_threads(1)
    workspaces = {}
    for variant, mode, au45, size in VARIANTS:
        first_use = (variant, size) not in workspaces
        if first_use:
            workspaces[variant, size] = make_workspace(out / 'ws' / f'{variant}-{size}', variant, size, a.frames)
        root = workspaces[variant, size]
        name = f'{variant}-{mode}-{size}'
        bundle = out / name
        export_bundle(root / 'data', root / 'workspace', root / 'audio_visual_encoder.pth', bundle, mode, au45,
                      log=lambda m: None)
        ckpt = root / 'workspace' / 'checkpoints' / 'ngp_ep0001.pth'
        sd, mdt = load_nerf_checkpoint(ckpt, mode, au45)
        data = SyncTalkData(root / 'data')
        eyes = data.eyes(au45)

        # audio: wav -> mel windows -> AVE -> per-frame features -> attention -> enc_a
        spec = mel.melspectrogram(speechlike()).astype(np.float32)
        windows = np.stack([spec[:, s:s + mel.WINDOW_FRAMES] for s in mel.window_starts(spec.shape[1])])[:, None]
        ave, head = load_ave(root / 'audio_visual_encoder.pth'), load_audio_head(ckpt, sd)
        with torch.no_grad():
            feats = ave(torch.from_numpy(windows))
            per_frame = align_features(feats)
        if first_use:
            for k in (0, 7):
                cases.append({'bundle': name, 'graph': 'audio.onnx', 'kind': 'feature',
                              'inputs': [w.tensor('mel', windows[k:k + 1])],
                              'expected': w.tensor('feature', feats[k:k + 1].numpy())})
        ref = Reference(sd, mode, data.height, data.width, data.intrinsics, mdt)
        for i in (0, len(data) // 2, len(data) - 1):
            with torch.no_grad():
                att_in = attention_window(per_frame, i)
                enc_a = head(att_in)
            cases.append({'bundle': name, 'graph': 'audio_att.onnx', 'kind': 'feature',
                          'inputs': [w.tensor('features', att_in.numpy()[None])],
                          'expected': w.tensor('enc_a', enc_a.numpy())})
            pose = data.poses[i]
            inputs = [w.tensor('enc_a', enc_a.numpy()), w.tensor('eye', eyes[i:i + 1]), w.tensor('pose', pose[None])]
            t0 = time.perf_counter()
            if mode == 'torso':
                anchor = wrapped_anchor(sd['anchor_points'], torch.from_numpy(pose))
                image = ref.frame(pose, enc_a, eyes[i:i + 1], data.background(i, True), anchor=anchor)
                inputs.append(w.tensor('anchor', anchor.numpy()))
            else:
                portrait = mode == 'portrait'
                image = ref.frame(pose, enc_a, eyes[i:i + 1], data.background(i, False),
                                  data.ori(i) if portrait else None, data.face_mask(i) if portrait else None)
                inputs.append(w.tensor('torso_rgba', data.torso_u8(i)[None]))
                if portrait:
                    inputs += [w.tensor('ori', data.ori_u8(i)[None]), w.tensor('mask', data.mask_u8(i)[None])]
            ms = (time.perf_counter() - t0) * 1000
            cases.append({'bundle': name, 'graph': 'render.onnx', 'kind': 'render', 'inputs': inputs,
                          'expected': w.tensor('rgba', image), 'reference_ms': round(ms, 1),
                          'n_steps': [n for _, n in ref.schedule]})
    (out / 'cases.json').write_text(json.dumps({'cases': cases}, indent=1))


if __name__ == '__main__':
    main()

"""The yardstick of bench/gpu.ts: the project's PyTorch reference (python/synctalk_live/reference.py: plain PyTorch,
SyncTalk's marching schedule, no CUDA extensions) rendering a random-weight test avatar of the given size, median
ms per frame. Prints one JSON line. Runs from the repository root (python/ travels with the tree).

On a GPU the reference's own tensors (created without a device argument) go there through
torch.set_default_device (torch >= 2.0), the checkpoint's tensors and each frame's inputs are moved there, and the
portrait blend (the reference's last step) is done here on the device, so that no host array meets a device one.

usage: python3 scripts/gpu-kit/ref-torch.py [--size 512] [--device cuda] [--frames 5] [--mode portrait|head]
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'python'))
from synctalk_live.checkpoint import load_nerf_checkpoint  # noqa: E402
from synctalk_live.dataset import SyncTalkData  # noqa: E402
from synctalk_live.make_test_workspace import make_workspace  # noqa: E402
from synctalk_live.reference import Reference  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--size', type=int, default=512)
    ap.add_argument('--device', default='cuda')
    ap.add_argument('--frames', type=int, default=5, help='timed frames after one warm-up frame')
    ap.add_argument('--mode', choices=('portrait', 'head'), default='portrait')
    a = ap.parse_args()
    dev = torch.device(a.device)
    root = Path(tempfile.gettempdir()) / f'synctalk-ref-{a.size}'
    if not (root / 'workspace').exists():
        make_workspace(root, 'portrait', a.size)
    sd, _ = load_nerf_checkpoint(root / 'workspace' / 'checkpoints' / 'ngp_ep0001.pth', 'portrait')
    data = SyncTalkData(root / 'data')
    eyes = data.eyes(False)
    on = lambda x: torch.as_tensor(x).to(dev)  # noqa: E731
    if dev.type != 'cpu':
        sd = {k: v.to(dev) for k, v in sd.items()}
        torch.set_default_device(dev)
    sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)
    ref = Reference(sd, a.mode, data.height, data.width, data.intrinsics)
    times = []
    for i in range(a.frames + 1):
        t = i % len(data)
        enc_a = torch.randn(1, 32, generator=torch.Generator().manual_seed(i)).to(dev)
        pose, eye, bg = on(data.poses[t]), on(eyes[t:t + 1]), on(data.background(t, False))
        ori, mask = (on(data.ori(t)), on(data.face_mask(t))) if a.mode == 'portrait' else (None, None)
        sync()
        t0 = time.perf_counter()
        img = ref.render(pose, enc_a, eye, bg)
        if ori is not None:
            img = img * mask + ori * (1 - mask)
        sync()
        times.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({'yardstick': 'pytorch reference', 'torch': torch.__version__, 'device': str(dev), 'size': a.size,
                      'mode': a.mode, 'threads': torch.get_num_threads(), 'firstMs': round(times[0], 1),
                      'medianMs': round(statistics.median(times[1:]), 2), 'frames': a.frames,
                      'imageMean': round(float(img.float().mean()), 4)}))


if __name__ == '__main__':
    main()

"""Export a trained SyncTalk ('ave') model and its data folder to an avatar bundle (see docs/synctalk-bundle.md).

CLI: python3 -m synctalk_live.export --data DIR --workspace DIR --ave PATH --out BUNDLE
       [--portrait | --torso] [--au45] [--ckpt PATH] [--samples S]
Bad input (missing file, checkpoint of another architecture, a flag the checkpoint cannot satisfy) prints one
line `<file or key>: <problem>` to stderr and exits with code 2.
"""
import argparse
import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from PIL import Image

from .audio import ATT_AFTER, ATT_BEFORE, ATT_LEN
from .checkpoint import load_audio_head, load_ave, load_nerf_checkpoint
from .dataset import SyncTalkData
from .errors import InputError
from .graphs import AudioAttGraph, RenderGraph
from .marcher import MAX_STEPS, unpack_bitfield, visible_pixels
from .model import wrapped_anchor

FORMAT_VERSION = 2
FPS = 25
OPSET = 16
BATCH = 'batch'


def find_checkpoint(workspace, ckpt):
    if ckpt:
        path = Path(ckpt)
        if not path.is_file():
            raise InputError(path, 'file not found')
        return path
    folder = Path(workspace) / 'checkpoints'
    found = sorted(folder.glob('ngp_ep*.pth'))
    if not found:
        raise InputError(folder, 'no ngp_ep*.pth checkpoint found (pass --ckpt)')
    return found[-1]


def _export(module, args, path, inputs, outputs):
    """Exports `module` with every input and output batched: first dimension symbolic (BATCH)."""
    names = [n for n, _ in inputs] + [n for n, _ in outputs]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(module, args, str(path), input_names=[n for n, _ in inputs],
                          output_names=[n for n, _ in outputs], opset_version=OPSET, do_constant_folding=True,
                          dynamic_axes={n: {0: BATCH} for n in names})
    onnx.checker.check_model(str(path))
    return {'inputs': [_io(n, t) for n, t in zip([n for n, _ in inputs], args)],
            'outputs': [_io(n, t) for n, t in outputs]}


def _io(name, tensor):
    dtype = {torch.float32: 'float32', torch.uint8: 'uint8'}[tensor.dtype]
    return {'name': name, 'dtype': dtype, 'shape': [BATCH, *tensor.shape[1:]]}


def ray_pixels(sd, data, mode, samples=None):
    """The static ray sets of render.onnx, two [H*W] bool: the pixels whose ray may take an occupied sample under
    some track pose (`marcher.visible_pixels`) and is seen, and the hidden ones. In portrait mode a ray outside the
    face mask of every track frame is not seen (mask 0 shows the original frame): with SyncTalk's schedule it is
    hidden (it still counts in the alive counts, so its densities are evaluated), with a fixed sample count
    (`samples`) it is left out. At least one seen pixel (a graph of zero rays would have empty tensors)."""
    rays = visible_pixels(unpack_bitfield(sd['density_bitfield']), data.poses, data.height, data.width,
                          data.intrinsics)
    hidden = torch.zeros_like(rays)
    if mode == 'portrait':
        union = np.zeros(data.height * data.width, dtype=bool)
        for i in range(len(data)):
            union |= data.mask_u8(i).reshape(-1) > 0
        if samples is None:
            hidden = rays & ~torch.from_numpy(union)
        rays &= torch.from_numpy(union)
    if not bool(rays.any()):
        rays[int(hidden.to(torch.uint8).argmax())] = True
        hidden &= ~rays
    return rays, hidden


def _png(arr, path):
    Image.fromarray(np.ascontiguousarray(arr.squeeze(-1) if arr.shape[-1] == 1 else arr)).save(path)


def export_bundle(data_dir, workspace, ave_path, out, mode='head', au45=False, ckpt=None, samples=None, log=print):
    """mode: 'head' (torso_imgs background), 'portrait' (head + face-mask blend) or 'torso' (learned torso).
    samples: None = SyncTalk's marching schedule (16 to 23 samples per ray, as SyncTalk renders); S = a fixed S
    samples per ray (faster, not SyncTalk's frames)."""
    if samples is not None and samples < 1:
        raise InputError('--samples', f'must be >= 1, got {samples}')
    ckpt_path = find_checkpoint(workspace, ckpt)
    sd, mean_density_torso = load_nerf_checkpoint(ckpt_path, mode, au45)
    ave = load_ave(ave_path)
    head = load_audio_head(ckpt_path, sd)
    data = SyncTalkData(data_dir)
    eyes = data.eyes(au45)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    h, w = data.height, data.width

    log(f'audio graphs from {ave_path} and {ckpt_path}')
    mel = torch.zeros(2, 1, 80, 16)
    graphs = {'audio': _export(ave, (mel,), out / 'audio.onnx', [('mel', mel)], [('feature', torch.zeros(1, 512))])}
    feats = torch.zeros(2, ATT_LEN, 512)
    graphs['audio_att'] = _export(AudioAttGraph(head), (feats,), out / 'audio_att.onnx', [('features', feats)],
                                  [('enc_a', torch.zeros(1, 32))])

    marching = 'SyncTalk schedule' if samples is None else f'{samples} samples/ray (fixed)'
    log(f'render graph {w}x{h}, {marching}, mode {mode}{" (au45)" if au45 else ""}')
    rays, hidden = ray_pixels(sd, data, mode, samples)
    log(f'{int(rays.sum())} of {h * w} pixels need a ray, {int(hidden.sum())} more only their densities')
    render = RenderGraph(sd, mode, h, w, data.intrinsics, samples, data.bc_u8().astype(np.float32) / 255.0,
                         mean_density_torso, rays, hidden).eval()
    # traced with a batch of 2 (a batch of 1 could let the tracer fold the batch axis away)
    pose = torch.from_numpy(np.stack([data.poses[0], data.poses[-1]]))
    args = [('enc_a', torch.zeros(2, 32)), ('eye', torch.zeros(2, eyes.shape[1])), ('pose', pose)]
    if mode == 'torso':
        args.append(('anchor', torch.cat([wrapped_anchor(sd['anchor_points'], p) for p in pose])))
    else:
        args.append(('torso_rgba', torch.from_numpy(np.stack([data.torso_u8(0), data.torso_u8(len(data) - 1)]))))
        if mode == 'portrait':
            args += [('ori', torch.from_numpy(np.stack([data.ori_u8(0), data.ori_u8(len(data) - 1)]))),
                     ('mask', torch.from_numpy(np.stack([data.mask_u8(0), data.mask_u8(len(data) - 1)])))]
    graphs['render'] = _export(render, tuple(t for _, t in args), out / 'render.onnx', args,
                               [('rgba', torch.zeros(1, h, w, 4, dtype=torch.uint8))])

    log(f'{len(data)} frames of tracks and images')
    tracks = {'img_ids': data.img_ids, 'poses': [p.reshape(-1).tolist() for p in data.poses],
              'eyes': eyes.tolist()}
    files = ['manifest.json', 'audio.onnx', 'audio_att.onnx', 'render.onnx', 'tracks.json']
    if mode == 'torso':
        anchors = [wrapped_anchor(sd['anchor_points'], torch.from_numpy(p)).reshape(-1).tolist() for p in data.poses]
        tracks['anchors'] = anchors
    else:
        folders = {'torso_rgba': data.torso_u8}
        if mode == 'portrait':
            folders.update({'ori': data.ori_u8, 'mask': data.mask_u8})
        for name, read in folders.items():
            (out / name).mkdir(exist_ok=True)
            for i in range(len(data)):
                _png(read(i), out / name / f'{i:06d}.png')
            files.append(f'{name}/%06d.png')
    (out / 'tracks.json').write_text(json.dumps(tracks))

    manifest = {
        'format': 'synctalk-avatar', 'version': FORMAT_VERSION, 'fps': FPS, 'width': w, 'height': h,
        'intrinsics': {'fx': data.intrinsics[0], 'fy': data.intrinsics[1], 'cx': data.cx, 'cy': data.cy},
        'mode': mode, 'au45': au45, 'eye_dim': int(eyes.shape[1]), 'frames': len(data),
        'marching': 'synctalk' if samples is None else 'fixed', 'samples': MAX_STEPS if samples is None else samples,
        'rays': int(rays.sum()), 'hidden_rays': int(hidden.sum()),
        'audio': {'sample_rate': 16000, 'mel_bins': 80, 'mel_window': 16, 'mel_hop': 200,
                  'attention': {'before': ATT_BEFORE, 'after': ATT_AFTER, 'pad': 'zeros'},
                  'feature_offset': 2},
        'lookahead_frames': ATT_AFTER, 'loop': 'pingpong', 'opset': OPSET, 'files': files, 'graphs': graphs,
        'source': {'checkpoint': Path(ckpt_path).name, 'ave': Path(ave_path).name},
    }
    (out / 'manifest.json').write_text(json.dumps(manifest, indent=1))
    return manifest


def main(argv=None):
    ap = argparse.ArgumentParser(description='Export a SyncTalk model to an avatar bundle.')
    ap.add_argument('--data', required=True, help='SyncTalk data folder (transforms_train.json, ori_imgs/, ...)')
    ap.add_argument('--workspace', required=True, help='training workspace (checkpoints/ngp_ep*.pth)')
    ap.add_argument('--ave', required=True, help='audio_visual_encoder.pth')
    ap.add_argument('--out', required=True, help='bundle folder to write')
    group = ap.add_mutually_exclusive_group()
    group.add_argument('--portrait', action='store_true', help='blend the render into ori_imgs with the face mask')
    group.add_argument('--torso', action='store_true', help='render the learned torso (needs torso weights)')
    ap.add_argument('--au45', action='store_true', help='eye input from au.csv AU45 (1 dim) instead of bs.npy (7)')
    ap.add_argument('--ckpt', help='checkpoint file (default: latest workspace/checkpoints/ngp_ep*.pth)')
    ap.add_argument('--samples', type=int,
                    help="a fixed number of occupied samples per ray instead of SyncTalk's schedule (faster, "
                         "not SyncTalk's frames; default: the schedule, 16 to 23 samples per ray)")
    a = ap.parse_args(argv)
    mode = 'torso' if a.torso else 'portrait' if a.portrait else 'head'
    try:
        export_bundle(a.data, a.workspace, a.ave, a.out, mode, a.au45, a.ckpt, a.samples,
                      log=lambda m: print(m, file=sys.stderr))
    except InputError as e:
        print(e, file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())

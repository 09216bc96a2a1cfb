"""A SyncTalk data folder (`data/<ID>/`) as the renderer needs it at test time.

Reads `transforms_train.json` (focal_len, cx, cy, optional h/w, frames[img_id, transform_matrix]),
`ori_imgs/<id>.jpg`, `parsing/<id>_face.png`, `torso_imgs/<id>.png` (RGBA), `bc.jpg`, `bs.npy` [N, 52]
(eye = columns 0:5 and 8:10) or `au.csv` (' AU45_r', clip(0, 2) / 2). Images are float32 in [0, 1], RGB, [H, W, C].
Backgrounds: head modes composite torso_imgs over bc.jpg; torso mode uses bc.jpg alone.
"""
import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import InputError
from .marcher import nerf_matrix_to_ngp

EYE_COLUMNS = [0, 1, 2, 3, 4, 8, 9]


def _need(path):
    if not path.is_file():
        raise InputError(path, 'file not found')
    return path


def read_image(path, mode='RGB'):
    """uint8 [H, W, C]."""
    try:
        with Image.open(_need(path)) as im:
            return np.asarray(im.convert(mode), dtype=np.uint8)
    except InputError:
        raise
    except Exception as e:
        raise InputError(path, f'unreadable image ({type(e).__name__})') from None


class SyncTalkData:
    def __init__(self, root, transforms='transforms_train.json'):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(self.root, 'data folder not found')
        tpath = _need(self.root / transforms)
        try:
            meta = json.loads(tpath.read_text())
            self.focal = float(meta['focal_len'])
            self.cx, self.cy = float(meta['cx']), float(meta['cy'])
            frames = meta['frames']
            self.img_ids = [int(f['img_id']) for f in frames]
            self.poses = np.stack([nerf_matrix_to_ngp(np.array(f['transform_matrix'], dtype=np.float32))
                                   for f in frames])
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(tpath, f'not a SyncTalk transforms file ({type(e).__name__}: {e})') from None
        if not frames:
            raise InputError(tpath, 'no frames')
        self.height = int(meta['h']) if 'h' in meta else int(self.cy) * 2
        self.width = int(meta['w']) if 'w' in meta else int(self.cx) * 2

    @property
    def intrinsics(self):
        return (self.focal, self.focal, self.cx, self.cy)

    def __len__(self):
        return len(self.img_ids)

    def _sized(self, img, path):
        if img.shape[:2] != (self.height, self.width):
            raise InputError(path, f'image is {img.shape[1]}x{img.shape[0]}, expected {self.width}x{self.height}')
        return img

    def image_u8(self, sub, i, ext, mode='RGB'):
        path = self.root / sub / f'{self.img_ids[i]}{ext}'
        return self._sized(read_image(path, mode), path)

    def ori_u8(self, i):
        return self.image_u8('ori_imgs', i, '.jpg')

    def mask_u8(self, i):
        """255 - G of parsing/<id>_face.png, [H, W, 1]: the portrait blend weight times 255."""
        return 255 - self.image_u8('parsing', i, '_face.png')[:, :, 1:2]

    def torso_u8(self, i):
        return self.image_u8('torso_imgs', i, '.png', 'RGBA')

    def bc_u8(self):
        path = self.root / 'bc.jpg'
        return self._sized(read_image(path), path)

    def ori(self, i):
        return self.ori_u8(i).astype(np.float32) / 255.0

    def face_mask(self, i):
        """Portrait blend weight m = (255 - G) / 255.0, [H, W, 1] float64 (as SyncTalk reads it)."""
        return self.mask_u8(i) / 255.0

    def background(self, i, torso_mode):
        """Float [H, W, 3]: bc.jpg (torso mode) or torso_imgs/<id>.png alpha-composited over bc.jpg."""
        bc = self.bc_u8().astype(np.float32) / 255.0
        if torso_mode:
            return bc
        rgba = self.torso_u8(i).astype(np.float32) / 255.0
        return rgba[:, :, :3] * rgba[:, :, 3:] + bc * (1 - rgba[:, :, 3:])

    def eyes(self, au45):
        if au45:
            path = _need(self.root / 'au.csv')
            with path.open(newline='') as f:
                rows = list(csv.DictReader(f))
            if not rows or ' AU45_r' not in rows[0]:
                raise InputError(path, "column ' AU45_r' not found")
            au = np.array([float(r[' AU45_r']) for r in rows], dtype=np.float32)
            table = (np.clip(au, 0, 2) / 2)[:, None]
        else:
            path = _need(self.root / 'bs.npy')
            bs = np.load(path)
            if bs.ndim != 2 or bs.shape[1] != 52:
                raise InputError(path, f'expected [N, 52] blendshapes, got {list(bs.shape)}')
            table = bs[:, EYE_COLUMNS].astype(np.float32)
        if max(self.img_ids) >= table.shape[0]:
            raise InputError(path, f'{table.shape[0]} rows, but frame img_id {max(self.img_ids)} is used')
        return table[self.img_ids]

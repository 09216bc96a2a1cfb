"""The render graph (dense grids, SyncTalk's schedule as static tensor ops) against the reference renderer."""
import tempfile
import unittest
from pathlib import Path

import numpy as np
import torch

from synctalk_live.checkpoint import load_audio_head, load_ave, load_nerf_checkpoint
from synctalk_live.dataset import SyncTalkData
from synctalk_live.export import ray_pixels
from synctalk_live.graphs import RenderGraph
from synctalk_live.make_test_workspace import make_workspace
from synctalk_live.model import wrapped_anchor
from synctalk_live.reference import Reference


def render_both(root, mode, au45=False):
    """The graph (SyncTalk's schedule) on two track frames, one batch of both and each alone, and the reference's
    frames: |graph - reference| per channel [2, H, W, 3], whether the batch equals the single runs, the last
    reference frame and the reference's schedules."""
    ckpt = Path(root) / 'workspace' / 'checkpoints' / 'ngp_ep0001.pth'
    sd, mdt = load_nerf_checkpoint(ckpt, mode, au45)
    data = SyncTalkData(Path(root) / 'data')
    eyes = torch.from_numpy(data.eyes(au45))
    ref = Reference(sd, mode, data.height, data.width, data.intrinsics, mdt)
    graph = RenderGraph(sd, mode, data.height, data.width, data.intrinsics, None,
                        data.bc_u8().astype(np.float32) / 255.0, mdt, *ray_pixels(sd, data, mode)).eval()
    enc = torch.randn(2, 32, generator=torch.Generator().manual_seed(1))
    frames_ids = (0, len(data) - 1)
    wants, inputs, schedules = [], [], []
    for k, i in enumerate(frames_ids):
        pose = torch.from_numpy(data.poses[i])
        bg = data.background(i, mode == 'torso')
        if mode == 'torso':
            anchor = wrapped_anchor(sd['anchor_points'], pose)
            wants.append(ref.frame(pose, enc[k:k + 1], eyes[i:i + 1], bg, anchor=anchor))
            extra = [anchor]
        else:
            extra = [torch.from_numpy(data.torso_u8(i)[None].copy())]
            ori = mask = None
            if mode == 'portrait':
                ori, mask = data.ori(i), data.face_mask(i)
                extra += [torch.from_numpy(data.ori_u8(i)[None].copy()), torch.from_numpy(data.mask_u8(i)[None].copy())]
            wants.append(ref.frame(pose, enc[k:k + 1], eyes[i:i + 1], bg, ori, mask))
        schedules.append(ref.schedule)
        inputs.append([enc[k:k + 1], eyes[i:i + 1], pose[None], *extra])
    with torch.no_grad():
        single = torch.cat([graph(*x) for x in inputs])
        batch = graph(*[torch.cat(parts) for parts in zip(*inputs)])
    assert bool((single[..., 3] == 255).all())
    diff = (single[..., :3].int() - torch.from_numpy(np.stack(wants)).int()).abs()
    return diff, bool(torch.equal(single, batch)), torch.from_numpy(wants[-1]).float(), schedules


class RenderTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.roots = {v: make_workspace(Path(cls.tmp.name) / v, v, size=40, frames=3)
                     for v in ('portrait', 'torso', 'au45', 'torso-au45')}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def check(self, variant, mode, au45=False):
        diff, batch_equal, image, schedules = render_both(self.roots[variant], mode, au45)
        self.assertLessEqual(int(diff.max()), 1)  # uint8 truncation: a 1e-6 difference can cross a level
        self.assertTrue(batch_equal)
        self.assertGreater(float(image.std()), 0.05 * 255)
        # frames whose rays take more than 16 samples (the samples past 16 are in the comparison)
        self.assertTrue(any(sum(n for _, n in s) > 16 for s in schedules), schedules)

    def test_head(self):
        self.check('portrait', 'head')

    def test_portrait(self):
        self.check('portrait', 'portrait')

    def test_torso(self):
        self.check('torso', 'torso')

    def test_au45(self):
        self.check('au45', 'portrait', au45=True)

    def test_torso_au45(self):
        self.check('torso-au45', 'torso', au45=True)

    def test_audio_modules_load_official_keys(self):
        root = self.roots['portrait']
        ave = load_ave(root / 'audio_visual_encoder.pth')
        self.assertEqual(tuple(ave(torch.zeros(2, 1, 80, 16)).shape), (2, 512))
        sd, _ = load_nerf_checkpoint(root / 'workspace' / 'checkpoints' / 'ngp_ep0001.pth', 'portrait')
        head = load_audio_head('ckpt', sd)
        enc = head(torch.randn(8, 512))
        self.assertEqual(tuple(enc.shape), (1, 32))
        # AudioAttNet output is a convex combination of the 8 AudioNet_ave rows
        rows = head.audio_net(torch.eye(8, 512))
        self.assertTrue(torch.all(head(torch.eye(8, 512)) <= rows.max(dim=0).values + 1e-6))


if __name__ == '__main__':
    unittest.main()

"""The export CLI: a complete bundle, and one clear line with exit code 2 for each kind of bad input."""
import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import onnx
import torch

from synctalk_live.make_test_workspace import make_workspace

PYTHON_DIR = Path(__file__).resolve().parents[1]


def export(*args):
    return subprocess.run([sys.executable, '-m', 'synctalk_live.export', *map(str, args)], cwd=PYTHON_DIR,
                          capture_output=True, text=True)


class ExportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.root = make_workspace(Path(cls.tmp.name) / 'ws', 'portrait', size=32, frames=3)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def args(self, **over):
        a = {'--data': self.root / 'data', '--workspace': self.root / 'workspace',
             '--ave': self.root / 'audio_visual_encoder.pth', '--out': Path(self.tmp.name) / 'bundle'}
        a.update(over)
        return [x for kv in a.items() for x in kv]

    def assert_input_error(self, result, *needles):
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertNotIn('Traceback', result.stderr)
        lines = result.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        for n in needles:
            self.assertIn(n, lines[0])

    def test_portrait_bundle(self):
        out = Path(self.tmp.name) / 'portrait'
        r = export(*self.args(**{'--out': out}), '--portrait', '--samples', '8')
        self.assertEqual(r.returncode, 0, r.stderr)
        m = json.loads((out / 'manifest.json').read_text())
        self.assertEqual((m['mode'], m['fps'], m['width'], m['height'], m['lookahead_frames']), ('portrait', 25, 32, 32, 3))
        self.assertEqual((m['marching'], m['samples']), ('fixed', 8))
        self.assertEqual([i['name'] for i in m['graphs']['render']['inputs']],
                         ['enc_a', 'eye', 'pose', 'torso_rgba', 'ori', 'mask'])
        self.assertEqual(m['version'], 2)
        self.assertEqual(m['graphs']['render']['outputs'], [{'name': 'rgba', 'dtype': 'uint8', 'shape': ['batch', 32, 32, 4]}])
        for name in ('audio', 'audio_att', 'render'):
            for io in m['graphs'][name]['inputs'] + m['graphs'][name]['outputs']:
                self.assertEqual(io['shape'][0], 'batch', (name, io))
            model = onnx.load(str(out / f'{name}.onnx'))
            dims = [v.type.tensor_type.shape.dim[0].dim_param for v in list(model.graph.input) + list(model.graph.output)]
            self.assertEqual(set(dims), {'batch'}, name)
        for name in ('audio', 'audio_att', 'render'):
            model = onnx.load(str(out / f'{name}.onnx'))
            self.assertLessEqual(model.opset_import[0].version, 17)
            ops = {n.op_type for n in model.graph.node}
            # Or and Mod have no WebGPU kernel (they would run on the CPU between GPU nodes)
            self.assertFalse(ops & {'BitwiseXor', 'Loop', 'If', 'NonZero', 'ScatterND', 'Or', 'Mod'}, ops)
        tracks = json.loads((out / 'tracks.json').read_text())
        self.assertEqual((len(tracks['poses']), len(tracks['eyes'][0])), (3, 7))
        self.assertEqual(len(list((out / 'mask').glob('*.png'))), 3)

    def test_missing_ave(self):
        self.assert_input_error(export(*self.args(**{'--ave': self.root / 'nope.pth'})), 'nope.pth', 'not found')

    def test_missing_data_file(self):
        r = export(*self.args(**{'--data': self.root / 'workspace'}), '--portrait')
        self.assert_input_error(r, 'transforms_train.json', 'not found')

    def test_torso_flag_on_head_checkpoint(self):
        self.assert_input_error(export(*self.args(), '--torso'), 'ngp_ep0001.pth', 'torso_net.net.0.weight')

    def test_au45_flag_on_blendshape_checkpoint(self):
        self.assert_input_error(export(*self.args(), '--au45'), 'ngp_ep0001.pth', '--au45')

    def test_checkpoint_of_another_architecture(self):
        ckpt = torch.load(self.root / 'workspace' / 'checkpoints' / 'ngp_ep0001.pth')
        ckpt['model']['sigma_net.net.0.weight'] = torch.zeros(64, 80)
        bad = Path(self.tmp.name) / 'bad.pth'
        torch.save(ckpt, bad)
        r = export(*self.args(**{'--ckpt': bad}))
        self.assert_input_error(r, 'bad.pth', "'sigma_net.net.0.weight'", '64x80', '64x75')
        ave = torch.load(self.root / 'audio_visual_encoder.pth')
        del ave['12.conv_block.1.running_var']
        torch.save(ave, bad)
        self.assert_input_error(export(*self.args(**{'--ave': bad})), 'bad.pth', '12.conv_block.1.running_var')


if __name__ == '__main__':
    unittest.main()

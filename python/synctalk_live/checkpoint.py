"""Load official SyncTalk files and check them against the architecture this package implements.

`load_nerf_checkpoint(path, mode, au45=False)`: a `ngp*.pth` dict with 'model' (state_dict) and top-level
`mean_density_torso`; a bare state_dict is accepted too. `mode` is 'head' or 'portrait' (head network) or 'torso'
(head + learned torso); `au45` expects 1 eye dim (AU45) instead of 7 ('upper' blendshapes). Any missing key or wrong shape raises
`InputError("<file>", "key '<k>' ...")`.
`load_ave(path)`: bare AVE state_dict (`0.conv_block.0.weight` ...), keys checked by strict loading.
"""
import torch

from .audio import AudioEncoder, AudioHead
from .errors import InputError
from .grid import TORSO, TRIPLANE


def head_shapes(eye_dim):
    eye_hidden = 64 if eye_dim == 7 else 16
    shapes = {
        'density_bitfield': [128 ** 3 // 8],
        'individual_codes': [None, 4],
        'eye_att_net.net.0.weight': [eye_hidden, 36],
        'eye_att_net.net.1.weight': [eye_dim, eye_hidden],
        'sigma_net.net.0.weight': [64, 36 + 32 + eye_dim],
        'sigma_net.net.1.weight': [64, 64],
        'sigma_net.net.2.weight': [65, 64],
        'color_net.net.0.weight': [64, 84],
        'color_net.net.1.weight': [3, 64],
        'aud_ch_att_net.net.0.weight': [64, 36],
        'aud_ch_att_net.net.1.weight': [32, 64],
    }
    for plane in ('xy', 'yz', 'xz'):
        shapes[f'encoder_{plane}.embeddings'] = [TRIPLANE.rows, 1]
    return shapes


TORSO_SHAPES = {
    'individual_codes_torso': [None, 8],
    'density_grid_torso': [128 * 128],
    'anchor_points': [3, 4],
    'torso_deform_net.net.0.weight': [32, 84],
    'torso_deform_net.net.1.weight': [32, 32],
    'torso_deform_net.net.2.weight': [2, 32],
    'torso_encoder.embeddings': [TORSO.rows, 2],
    'torso_net.net.0.weight': [32, 116],
    'torso_net.net.1.weight': [32, 32],
    'torso_net.net.2.weight': [4, 32],
}


def _torch_load(path):
    try:
        return torch.load(str(path), map_location='cpu')
    except FileNotFoundError:
        raise InputError(path, 'file not found') from None
    except Exception as e:  # a truncated or non-torch file: report it as bad input
        raise InputError(path, f'not a readable PyTorch checkpoint ({type(e).__name__})') from None


def _check(path, sd, shapes):
    for key, shape in shapes.items():
        if key not in sd:
            raise InputError(path, f"key '{key}' is missing (not a SyncTalk 'ave' checkpoint of this architecture)")
        got = list(sd[key].shape)
        if len(got) != len(shape) or any(e is not None and e != g for e, g in zip(shape, got)):
            want = 'x'.join('N' if e is None else str(e) for e in shape)
            raise InputError(path, f"key '{key}' has shape {'x'.join(map(str, got))}, expected {want}")


def _eye_dim(path, sd):
    w = sd.get('eye_att_net.net.1.weight')
    if w is None:
        raise InputError(path, "key 'eye_att_net.net.1.weight' is missing (not a SyncTalk checkpoint)")
    return int(w.shape[0])


def load_nerf_checkpoint(path, mode, au45=False):
    ckpt = _torch_load(path)
    if not isinstance(ckpt, dict):
        raise InputError(path, 'expected a checkpoint dict')
    sd = ckpt['model'] if 'model' in ckpt else ckpt
    eye_dim = _eye_dim(path, sd)
    if au45 and eye_dim != 1:
        raise InputError(path, f"--au45 needs an AU45 checkpoint (eye_att_net.net.1.weight has {eye_dim} rows, expected 1)")
    if not au45 and eye_dim != 7:
        raise InputError(path, f"checkpoint has {eye_dim} eye dims (an --au45 model?); expected 7 ('upper' blendshapes)")
    _check(path, sd, head_shapes(eye_dim))
    if mode == 'torso':
        if 'torso_net.net.0.weight' not in sd:
            raise InputError(path, "--torso needs torso weights; key 'torso_net.net.0.weight' is missing (a head-only checkpoint)")
        _check(path, sd, TORSO_SHAPES)
        if 'mean_density_torso' not in ckpt:
            raise InputError(path, "--torso needs the top-level 'mean_density_torso' value")
    sd = {k: v for k, v in sd.items() if torch.is_tensor(v)}
    return sd, float(ckpt.get('mean_density_torso', 0.0))


def load_ave(path):
    sd = _torch_load(path)
    if not isinstance(sd, dict):
        raise InputError(path, 'expected a state_dict')
    enc = AudioEncoder()
    _strict_load(path, enc, sd)
    return enc.eval()


def load_audio_head(path, sd):
    head = AudioHead()
    sub = {k: v for k, v in sd.items() if k.startswith(('audio_net.', 'audio_att_net.'))}
    _strict_load(path, head, sub)
    return head.eval()


def _strict_load(path, module, sd):
    own = module.state_dict()
    for key, value in own.items():
        if key not in sd:
            raise InputError(path, f"key '{key}' is missing")
        if tuple(sd[key].shape) != tuple(value.shape):
            got = 'x'.join(map(str, sd[key].shape))
            raise InputError(path, f"key '{key}' has shape {got}, expected {'x'.join(map(str, value.shape))}")
    extra = sorted(set(sd) - set(own))
    if extra:
        raise InputError(path, f"unexpected key '{extra[0]}' (another architecture?)")
    module.load_state_dict(sd, strict=True)

"""The published DGFusion checkpoint layout, as the state adapter of DGFusion's network spec.

Two layouts of the same network exist:

* ours -- the parameter names of :class:`basicsr.archs.dgfusion.module.DGFusion`
  (``enhancer.*``, ``extractor.*``, ``fusion.*``, ``reconstruction.*``), no dead weights;
* published -- the names of the published model (``freprocess.*``, ``interaction.*``,
  ``final_conv.*``) plus parameters its forward pass never uses (``attention_module.*`` ...).

:data:`PUBLISHED_ADAPTER` in DGFusion's spec lets the architecture-agnostic
:func:`basicsr.utils.checkpoint.load_weights` read both, and lets a checkpoint without a stored
``network_g`` tell its width.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch

from basicsr.utils.checkpoint import Adapted, StateAdapter, StateDict, strip_prefixes
from basicsr.utils.errors import CheckpointError

def _attention_rules(ours: str, published: str) -> List[Tuple[str, str]]:
    rules = [(f'{ours}{w}.', f'{published}{w}.') for w in ('wq', 'wk', 'wv')]
    rules += [(f'{ours}norm_qk.', f'{published}norm1.body.'),
              (f'{ours}norm_v.', f'{published}norm2.body.'),
              (f'{ours}norm_out.', f'{published}norm3.body.')]
    return rules


# (our name, published name): entries ending in '.' are prefixes, the others whole keys.
NAME_RULES: List[Tuple[str, str]] = [
    ('enhancer.vis_encoder.', 'freprocess.pre1.'),
    ('enhancer.ir_encoder.', 'freprocess.pre2.'),
    ('enhancer.amp_joint.', 'freprocess.amp_fuse.'),
    ('enhancer.pha_joint.', 'freprocess.pha_fuse.'),
    ('enhancer.amp_proj.', 'freprocess.conv1.'),
    ('enhancer.pha_proj.', 'freprocess.conv2.'),
    ('enhancer.a', 'freprocess.a'),
    ('enhancer.b', 'freprocess.b'),
    ('enhancer.amp_refine1.', 'freprocess.amp_sub1.'),
    ('enhancer.amp_refine2.', 'freprocess.amp_sub2.'),
    ('enhancer.pha_refine1.', 'freprocess.pha_sub1.'),
    ('enhancer.pha_refine2.', 'freprocess.pha_sub2.'),
    *_attention_rules('extractor.frequency.', 'interaction.subF_att.'),
    *_attention_rules('extractor.spatial.', 'interaction.fuse_att.'),
    ('fusion.gate.', 'interaction.fuse.'),
    ('reconstruction.', 'final_conv.'),
]
_PUBLISHED_TO_OURS = [(pub, ours) for ours, pub in NAME_RULES]

# Published parameters that the published forward pass never reads.
DEAD_KEY_PATTERNS: Tuple[str, ...] = (
    'attention_module.*', 'freprocess.amp_res.*', 'freprocess.pha_res.*', 'freprocess.conv1s.*',
    'freprocess.conv2s.*', 'freprocess.post.*', 'interaction.subF_att.norm4.*',
    'interaction.fuse_att.norm4.*')
PUBLISHED_ROOTS = ('freprocess.', 'interaction.', 'final_conv.', 'attention_module.')


def _rename(key: str, rules: List[Tuple[str, str]]) -> Optional[str]:
    for src, dst in rules:
        if key == src or (src.endswith('.') and key.startswith(src)):
            return dst + key[len(src):]
    return None


def _conv_shapes(name: str, cin: int, cout: int) -> Dict[str, Tuple[int, ...]]:
    return {f'{name}.weight': (cout, cin, 3, 3), f'{name}.bias': (cout,)}


def dead_published_shapes(channels: int) -> Dict[str, Tuple[int, ...]]:
    """Every known-dead published key (see ``DEAD_KEY_PATTERNS``) with its shape at width C."""
    c, shapes = channels, {}
    for norm in ('norm1', 'norm2', 'norm3', 'norm4'):
        for p in ('weight', 'bias'):
            shapes[f'attention_module.{norm}.body.{p}'] = (4 * c,)
    for w in ('wq', 'wk', 'wv'):
        for i in (0, 2):
            shapes.update(_conv_shapes(f'attention_module.{w}.{i}', 8 * c, 8 * c))
    for name in ('amp_res', 'pha_res'):
        shapes.update(_conv_shapes(f'freprocess.{name}.0', 8 * c, 4 * c))
    for name in ('conv1s', 'conv2s'):
        for i in (0, 2):
            shapes.update(_conv_shapes(f'freprocess.{name}.{i}', 4 * c, 4 * c))
    shapes.update(_conv_shapes('freprocess.post', c, c))
    for blk in ('subF_att', 'fuse_att'):
        for p in ('weight', 'bias'):
            shapes[f'interaction.{blk}.norm4.body.{p}'] = (4 * c,)
    return shapes


# Loading drops exactly these names; other keys under the dead patterns are unexpected.
DEAD_KEYS = frozenset(dead_published_shapes(1))


def is_published_state(state: StateDict) -> bool:
    """True when the (prefix-stripped) keys use the published names (``freprocess.*`` ...)."""
    return any(k.startswith(PUBLISHED_ROOTS) for k in strip_prefixes(state))


def _find_channels(state: StateDict) -> Optional[int]:
    for key in ('enhancer.vis_encoder.0.weight', 'freprocess.pre1.0.weight'):
        w = state.get(key)
        if isinstance(w, torch.Tensor) and w.dim() == 4 and w.shape[1] == 1 and w.shape[0] > 0:
            return int(w.shape[0])
    return None


def infer_channels(state: StateDict) -> int:
    """Width C from the first encoder convolution (shape (C,1,3,3)), either naming."""
    channels = _find_channels(strip_prefixes(state))
    if channels is None:
        raise CheckpointError("cannot infer DGFusion channels: no key 'enhancer.vis_encoder.0."
                              "weight' or 'freprocess.pre1.0.weight' of shape (C,1,3,3)")
    return channels


def published_to_ours(state: StateDict) -> StateDict:
    """Rename a published state dict to ours and drop the known-dead keys.

    Keys that are neither known-dead nor mapped are kept unchanged, so that the strict key
    check of the loader names them as unexpected. Tensors are not copied.
    """
    return {(_rename(k, _PUBLISHED_TO_OURS) or k): v for k, v in strip_prefixes(state).items()
            if k not in DEAD_KEYS}


def ours_to_published(state: StateDict, channels: int) -> StateDict:
    """Rename our state dict to the published names and add the dead keys as zeros.

    The result loads into the published model with ``strict=True``. Tensors are not copied.
    """
    out: StateDict = {}
    for key, value in strip_prefixes(state).items():
        name = _rename(key, NAME_RULES)
        if name is None:
            raise CheckpointError(f"state dict: key '{key}' is not a DGFusion parameter")
        out[name] = value
    ref = next((v for v in out.values() if v.is_floating_point()), None)
    dtype = ref.dtype if ref is not None else torch.float32
    for key, shape in dead_published_shapes(channels).items():
        out[key] = torch.zeros(shape, dtype=dtype)
    return out


def _to_native(state: StateDict) -> Adapted:
    """Our names for a published state dict (messages keep the file's names); ours unchanged."""
    if not is_published_state(state):
        return Adapted(state)
    file_names = {(_rename(k, _PUBLISHED_TO_OURS) or k): k for k in state}
    dead = [v for k, v in state.items() if k in DEAD_KEYS]
    note = (f'published checkpoint: dropped {len(dead)} unused keys '
            f'({sum(v.numel() for v in dead)} parameters)') if dead else ''
    return Adapted(published_to_ours(state),
                   lambda key: file_names.get(key) or _rename(key, NAME_RULES) or key, note)


def _infer_config(state: StateDict) -> Dict[str, Any]:
    channels = _find_channels(state)
    return {} if channels is None else {'channels': channels}


PUBLISHED_ADAPTER = StateAdapter(_to_native, _infer_config)

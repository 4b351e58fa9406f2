"""Checkpoint files: safe reading, atomic writing, and DGFusion weights in either naming.

Two layouts of the same network exist:

* ours -- the parameter names of :class:`basicsr.archs.dgfusion_arch.DGFusion`
  (``enhancer.*``, ``extractor.*``, ``fusion.*``, ``reconstruction.*``), no dead weights;
* published -- the names of the published model (``freprocess.*``, ``interaction.*``,
  ``final_conv.*``) plus parameters its forward pass never uses (``attention_module.*`` ...).

:func:`load_network` is the one loader for both. Our training checkpoints are single files
``{'format': 'dgfusion-ckpt-v1', 'network_g': {'type': 'DGFusion', 'channels': C},
'params': ..., 'params_ema': ..., 'iter': ..., ...}`` holding plain tensors and primitives only,
so ``torch.load(..., weights_only=True)`` reads them.
"""
from __future__ import annotations

import logging
import os
import pickle
import re
import uuid
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch

from basicsr.archs.dgfusion_arch import DGFusion
from basicsr.utils.errors import CheckpointError

logger = logging.getLogger(__name__)

CKPT_FORMAT = 'dgfusion-ckpt-v1'
WRAPPER_PREFIXES = ('module.', '_orig_mod.')  # DataParallel/DDP and torch.compile
PathLike = Union[str, os.PathLike]
StateDict = Dict[str, torch.Tensor]


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


def strip_prefixes(state: StateDict) -> StateDict:
    """Remove leading ``module.`` / ``_orig_mod.`` wrappers (any order, any depth) from keys."""
    out: StateDict = {}
    for key, value in state.items():
        name = key
        while name.startswith(WRAPPER_PREFIXES):
            name = name.split('.', 1)[1]
        if name in out:
            raise CheckpointError(f"state dict: key '{key}' duplicates '{name}' after removing "
                                  f"wrapper prefixes")
        out[name] = value
    return out


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
    """Rename a published state dict to ours and drop the known-dead keys (logged once).

    Keys that are neither known-dead nor mapped are kept unchanged, so that the strict check
    of :func:`prepare_state` names them as unexpected. Tensors are not copied.
    """
    out: StateDict = {}
    dropped_keys = dropped_params = 0
    for key, value in strip_prefixes(state).items():
        if key in DEAD_KEYS:
            dropped_keys += 1
            dropped_params += value.numel() if isinstance(value, torch.Tensor) else 0
            continue
        out[_rename(key, _PUBLISHED_TO_OURS) or key] = value
    if dropped_keys:
        logger.info('published checkpoint: dropped %d unused keys (%d parameters)',
                    dropped_keys, dropped_params)
    return out


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



def _listing(items: List[str], limit: int = 4) -> str:
    shown = ', '.join(items[:limit])
    return shown + (f' and {len(items) - limit} more' if len(items) > limit else '')


def prepare_state(state: StateDict, network_g: Optional[Dict[str, Any]] = None,
                  where: str = 'checkpoint') -> Tuple[StateDict, int]:
    """Turn a state dict of either naming into ours and check it against DGFusion.

    Args:
        state: published or our state dict, wrapper prefixes allowed.
        network_g: the checkpoint's ``network_g`` entry, if any (its ``channels`` wins).
        where: the file name, for messages.

    Returns:
        ``(state, channels)``: our keys in module order, exactly matching ``DGFusion(channels)``.

    Raises:
        CheckpointError: one line listing missing, unexpected and mis-shaped keys.
    """
    state = strip_prefixes(state)
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{where}: state dict entries are not tensors: {_listing(bad)}")
    published = is_published_state(state)
    if published:  # messages name keys as they are written in the file
        file_names = {(_rename(k, _PUBLISHED_TO_OURS) or k): k for k in state}
        state = published_to_ours(state)
    else:
        file_names = {}
    channels = _find_channels(state)
    if network_g is not None:
        if not isinstance(network_g, dict) or network_g.get('type', 'DGFusion') != 'DGFusion':
            raise CheckpointError(f"{where}: network_g is {network_g!r}, expected type DGFusion")
        channels = network_g.get('channels', channels)
        if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
            raise CheckpointError(f"{where}: network_g.channels is {channels!r}, expected a "
                                  f"positive int")
    with torch.device('meta'):  # shapes only, nothing allocated
        ref = DGFusion(channels or 1).state_dict()

    def name(key: str) -> str:
        return file_names.get(key) or (_rename(key, NAME_RULES) if published else None) or key

    missing = [name(k) for k in ref if k not in state]
    unexpected = [name(k) for k in state if k not in ref]
    problems = []
    if missing:
        problems.append(f'missing {len(missing)} keys ({_listing(missing)})')
    if unexpected:
        problems.append(f'unexpected {len(unexpected)} keys ({_listing(unexpected)})')
    if channels is not None:
        mis = [f'{name(k)} expected {tuple(ref[k].shape)} found {tuple(state[k].shape)}'
               for k in ref if k in state and state[k].shape != ref[k].shape]
        if mis:
            problems.append(f'{len(mis)} mis-shaped keys ({_listing(mis, 3)})')
    if problems:
        width = f'channels={channels}' if channels else 'channels not inferable'
        raise CheckpointError(f"{where}: does not match DGFusion ({width}): "
                              + '; '.join(problems))
    return {k: state[k] for k in ref}, channels


_TORCH_LOAD_BOILERPLATE = ('Weights only load failed', 'weights_only', 'Check the documentation',
                           'trusted source')


def _load_failure(err: Exception) -> str:
    """One-line reason for a failed ``torch.load``."""
    text = re.sub(r'\x1b\[[0-9;]*m', '', str(err))
    refused = re.search(r'GLOBAL ([\w.]+)', text)
    if refused:
        return (f'holds a {refused.group(1)} object, which weights_only loading refuses; '
                f'only tensors and plain containers are allowed')
    text = text.replace('WeightsUnpickler error:', '\n')
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and not any(b in ln for b in _TORCH_LOAD_BOILERPLATE)]
    first = lines[0].split('. ')[0].rstrip('.')[:160] if lines else ''
    reason = f'{type(err).__name__}: {first}' if first else type(err).__name__
    if isinstance(err, pickle.UnpicklingError):
        return reason
    return f'corrupt or truncated file; {reason}'


def read_checkpoint(path: PathLike) -> Dict[str, Any]:
    """Safely load a checkpoint file (``weights_only=True``, onto the CPU) and return its dict.

    Raises:
        CheckpointError: missing file, or ``<path>: not a loadable checkpoint (...)`` for a
            truncated/foreign file, a pickle of arbitrary objects, or a non-dict payload.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, 'rb') as f:
        head = f.read(4)
    # torch.save writes a zip archive (b'PK..') or, in the legacy format, a pickle (b'\x80')
    if not head.startswith((b'PK', b'\x80')):
        raise CheckpointError(f"{path}: not a loadable checkpoint (not a torch.save file)")
    try:
        with warnings.catch_warnings():  # plain pickles trigger a protocol notice; the
            warnings.filterwarnings('ignore', message='Detected pickle protocol')  # error says it
            obj = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # any parse failure means "not a checkpoint"; say why in one line
        raise CheckpointError(f"{path}: not a loadable checkpoint ({_load_failure(err)})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: not a loadable checkpoint (holds a "
                              f"{type(obj).__name__}, expected a dict)")
    return obj


def select_state(ckpt: Dict[str, Any], use_ema: bool = True, key: Optional[str] = None,
                 where: str = 'checkpoint') -> StateDict:
    """Pick the state dict of a checkpoint dict.

    ``key`` forces ``'params'`` or ``'params_ema'``; otherwise ``params_ema`` when present and
    ``use_ema``, else ``params`` (else ``params_ema``), else the dict itself if it is a bare
    state dict (all values tensors).
    """
    def usable(k: str) -> bool:
        return isinstance(ckpt.get(k), dict)

    if key is not None:
        if not usable(key):
            raise CheckpointError(f"{where}: no '{key}' state dict (top-level keys: "
                                  f"{_listing(sorted(map(str, ckpt)), 8)})")
        return ckpt[key]
    if use_ema and usable('params_ema'):
        return ckpt['params_ema']
    for k in ('params', 'params_ema'):
        if usable(k):
            return ckpt[k]
    if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return ckpt
    raise CheckpointError(f"{where}: no 'params' or 'params_ema' state dict and not a bare "
                          f"state dict (top-level keys: {_listing(sorted(map(str, ckpt)), 8)})")


def load_network(path: PathLike, device: Union[str, torch.device] = 'cpu',
                 use_ema: bool = True) -> DGFusion:
    """Build DGFusion from a checkpoint of ours or of the published model, in eval mode.

    Accepts ``{'params': ..., 'params_ema': ...}`` dicts (our training checkpoints included;
    training-state keys are ignored) and bare state dicts; see :func:`select_state` and
    :func:`prepare_state`.

    Raises:
        CheckpointError: unreadable file or weights that do not fit the network.
    """
    ckpt = read_checkpoint(path)
    fmt = ckpt.get('format')
    if fmt is not None and fmt != CKPT_FORMAT:
        raise CheckpointError(f"{path}: format {fmt!r} is not supported (expected {CKPT_FORMAT!r})")
    state = select_state(ckpt, use_ema=use_ema, where=str(path))
    state, channels = prepare_state(state, ckpt.get('network_g'), where=str(path))
    net = DGFusion(channels)
    net.load_state_dict(state, strict=True)
    logger.info('loaded DGFusion(channels=%d) from %s', channels, path)
    return net.to(device).train(False)


def save_atomic(obj: Any, path: PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename onto ``path``.

    A crash leaves either the old file or the new one at ``path``, never a partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{uuid.uuid4().hex[:12]}.tmp')
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable; not supported on every platform
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def remove_orphan_temps(folder: PathLike) -> List[Path]:
    """Delete the temporary files that a kill during :func:`save_atomic` (``.<name>.<id>.tmp``)
    or during a pointer update (``.latest.tmp``) left in ``folder``; returns them.

    Only call this while holding the folder's run lock: a live run's temp file is not orphaned.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith('.') and path.name.endswith('.tmp') and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed

"""Checkpoint files: safe reading, atomic writing, and weights into any registered network.

Loading is two steps, whatever the architecture: the caller builds the network from its
``network_g`` section (:func:`network_config` says which one: the checkpoint's own when it
stores one), then :func:`load_weights` fills it. An architecture whose weights also circulate
under other names (the published DGFusion checkpoints) carries a :class:`StateAdapter` in its
network spec (``basicsr.archs.contract``); :func:`load_weights` applies it and then checks the
keys strictly.

Our training checkpoints are single files ``{'format': 'dgfusion-ckpt-v1', 'network_g':
{'type': ..., ...}, 'params': ..., 'params_ema': ..., 'iter': ..., ...}`` holding plain tensors
and primitives only, so ``torch.load(..., weights_only=True)`` reads them.
"""
from __future__ import annotations

import logging
import os
import pickle
import re
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import torch
import torch.nn as nn

from basicsr.utils.errors import CheckpointError
from basicsr.utils.registry import NETWORK_SPEC_REGISTRY

logger = logging.getLogger(__name__)

CKPT_FORMAT = 'dgfusion-ckpt-v1'
WRAPPER_PREFIXES = ('module.', '_orig_mod.')  # DataParallel/DDP and torch.compile
PathLike = Union[str, os.PathLike]
StateDict = Dict[str, torch.Tensor]


def _listing(items: List[str], limit: int = 4) -> str:
    shown = ', '.join(items[:limit])
    return shown + (f' and {len(items) - limit} more' if len(items) > limit else '')


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


@dataclass(frozen=True)
class Adapted:
    """A state dict in the network's own names, plus how to report it.

    ``file_name`` gives the name an own key has in the file (for messages); ``note`` is
    logged once when the weights load (e.g. what was dropped).
    """

    state: StateDict
    file_name: Callable[[str], str] = str
    note: str = ''


def _no_config(state: StateDict) -> Dict[str, Any]:
    return {}


@dataclass(frozen=True)
class StateAdapter:
    """What a network's spec carries so that foreign layouts of its weights load.

    ``to_native(state)`` renames a (prefix-stripped) state dict to the network's names
    (default: unchanged); ``infer_config(state)`` reads constructor options from the weights
    (``{}`` when it cannot), for checkpoints that store no ``network_g``.
    """

    to_native: Callable[[StateDict], Adapted] = Adapted
    infer_config: Callable[[StateDict], Dict[str, Any]] = _no_config


def _adapter(arch: str) -> Optional[StateAdapter]:
    """The state adapter in the network spec registered for ``arch``, if any."""
    spec = NETWORK_SPEC_REGISTRY.get(arch) if arch in NETWORK_SPEC_REGISTRY else None
    return getattr(spec, 'state_adapter', None)


def nonfinite_tensors(state: Dict[str, Any]) -> List[str]:
    """Names of the floating-point (or complex) tensors of ``state`` holding NaN or inf."""
    return [name for name, value in state.items()
            if isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex())
            and not bool(torch.isfinite(value).all())]


def check_finite(state: Dict[str, Any], where: PathLike) -> None:
    """Refuse weights that hold NaN or inf: a network built from them fuses garbage.

    Raises:
        CheckpointError: naming ``where``, how many tensors are affected and the first ones.
    """
    bad = nonfinite_tensors(state)
    if bad:
        raise CheckpointError(f"{where}: {len(bad)} weight tensor(s) hold NaN or inf "
                              f"({_listing(bad, 3)}): training diverged before this file was "
                              f"written; use an earlier checkpoint")


def check_format(ckpt: Dict[str, Any], where: PathLike) -> None:
    """Refuse a checkpoint of another format version."""
    fmt = ckpt.get('format')
    if fmt is not None and fmt != CKPT_FORMAT:
        raise CheckpointError(f"{where}: format {fmt!r} is not supported (expected {CKPT_FORMAT!r})")


def network_config(ckpt: Dict[str, Any], fallback: Dict[str, Any], use_ema: bool = True,
                   where: PathLike = 'checkpoint') -> Dict[str, Any]:
    """The ``network_g`` section to build for ``ckpt``.

    The checkpoint's stored ``network_g`` when it has one; else ``fallback`` (the option
    file's), with the options that the architecture's adapter reads from the weights (the
    width of a published DGFusion file) taking precedence over the fallback's.
    """
    stored = ckpt.get('network_g')
    if stored is not None:
        if not isinstance(stored, dict) or not isinstance(stored.get('type'), str):
            raise CheckpointError(f"{where}: network_g is {stored!r}, expected a mapping with a "
                                  f"'type' key")
        return dict(stored)
    cfg = dict(fallback)
    adapter = _adapter(str(cfg.get('type')))
    if adapter is not None:
        try:
            state = strip_prefixes(select_state(ckpt, use_ema=use_ema, where=str(where)))
        except CheckpointError:
            return cfg  # load_weights reports it
        inferred = adapter.infer_config(state)
        changed = {k: v for k, v in inferred.items() if cfg.get(k, v) != v}
        if changed:
            logger.info('%s: %s read from the weights (options said %s)', where, inferred,
                        {k: cfg.get(k) for k in changed})
        cfg.update(inferred)
    return cfg


def describe_config(cfg: Dict[str, Any]) -> str:
    """``DGFusion (channels=4)`` for ``{'type': 'DGFusion', 'channels': 4}``."""
    args = ', '.join(f'{k}={v}' for k, v in cfg.items() if k != 'type')
    return f"{cfg.get('type')} ({args})" if args else str(cfg.get('type'))


def match_state(net: nn.Module, state: StateDict, where: str, arch: str,
                strict: bool = True) -> StateDict:
    """Bring ``state`` into ``net``'s names (its adapter, if any) and check it key by key.

    Returns the state dict to load (``net``'s key order). Raises a one-line
    :class:`CheckpointError` listing missing, unexpected and mis-shaped keys; with
    ``strict=False`` missing and unexpected keys are only logged.
    """
    state = strip_prefixes(state)
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{where}: state dict entries are not tensors: {_listing(bad)}")
    adapter = _adapter(type(net).__name__)
    adapted = adapter.to_native(state) if adapter is not None else Adapted(state)
    state = adapted.state
    if adapted.note:
        logger.info('%s', adapted.note)
    ref = net.state_dict()

    name = adapted.file_name
    missing = [name(k) for k in ref if k not in state]
    unexpected = [name(k) for k in state if k not in ref]
    mis = [f'{name(k)} expected {tuple(ref[k].shape)} found {tuple(state[k].shape)}'
           for k in ref if k in state and state[k].shape != ref[k].shape]
    problems = []
    if missing and strict:
        problems.append(f'missing {len(missing)} keys ({_listing(missing)})')
    if unexpected and strict:
        problems.append(f'unexpected {len(unexpected)} keys ({_listing(unexpected)})')
    if mis:
        problems.append(f'{len(mis)} mis-shaped keys ({_listing(mis, 3)})')
    if problems:
        raise CheckpointError(f"{where}: does not match {arch}: " + '; '.join(problems))
    if missing or unexpected:
        logger.warning('%s: loaded non-strictly: %d missing, %d unexpected keys', where,
                       len(missing), len(unexpected))
    return {k: state[k] for k in ref if k in state}


def load_weights(net: nn.Module, path: PathLike, key: str = 'params_ema', strict: bool = True,
                 arch: Optional[str] = None) -> nn.Module:
    """Fill ``net`` with the weights of the checkpoint at ``path``; any architecture.

    Args:
        net: the built network (its device and dtype are kept).
        path: our checkpoint, a ``{'params': ...}`` dict or a bare state dict; foreign
            layouts load when ``net``'s network spec carries a :class:`StateAdapter`.
        key: preferred state dict, ``'params_ema'`` or ``'params'`` (the other one, then a
            bare state dict, when it is absent).
        strict: every key must match (else missing/unexpected keys are only logged).
        arch: how to name the network in messages (default: its class name).

    Returns:
        ``net``, for chaining.

    Raises:
        CheckpointError: unreadable file, weights holding NaN or inf, or weights that do not
            fit ``net``, in one line.
    """
    if key not in ('params', 'params_ema'):
        raise CheckpointError(f"{path}: key {key!r} is not one of params, params_ema")
    ckpt = read_checkpoint(path)
    check_format(ckpt, path)
    state = select_state(ckpt, use_ema=key == 'params_ema', where=str(path))
    check_finite(state, path)
    state = match_state(net, state, str(path), arch or type(net).__name__, strict)
    net.load_state_dict(state, strict=strict)
    logger.info('loaded %s from %s', arch or type(net).__name__, path)
    return net


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

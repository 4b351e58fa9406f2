"""Checks of the training sections (network, optimiser, scheduler, losses, precision) and of
the validation metrics and precision."""
from __future__ import annotations

from typing import Any, Dict

import torch

from basicsr.metrics import CONVENTIONS, DEFAULT_CONVENTION
from basicsr.models.precision import PRECISIONS, precision_problem
from basicsr.options.fields import (ARCH_RANGES, LOSS_RANGES, OPTIMIZER_RANGES, SCHEDULER_RANGES,
                                    UNIT_OPEN_HIGH, Problems, check_ranges)
from basicsr.options.registered import check_type_section, try_build
from basicsr.utils.dist import parse_device
from basicsr.utils.errors import brief
from basicsr.utils.registry import (ARCH_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY,
                                    OPTIMIZER_REGISTRY, SCHEDULER_REGISTRY, build_from_cfg,
                                    did_you_mean)


def _check_milestones(train: Dict[str, Any], probs: Problems) -> None:
    scheduler = train.get('scheduler')
    milestones = scheduler.get('milestones') if isinstance(scheduler, dict) else None
    if milestones is None:
        return
    key = 'train.scheduler.milestones'
    if not (isinstance(milestones, list) and all(
            isinstance(m, int) and not isinstance(m, bool) for m in milestones)):
        probs.add(key, f"expected a list of iteration numbers, got {brief(milestones)}")
        return
    if any(m < 1 for m in milestones):
        probs.add(key, f"iteration numbers must be >= 1, got {milestones}")
    elif any(b <= a for a, b in zip(milestones, milestones[1:])):
        probs.add(key, f"must be strictly increasing, got {milestones}")
    total = train.get('total_iter')
    if isinstance(total, int) and milestones and milestones[-1] > total:
        beyond = [m for m in milestones if m > total]
        # a warning, not an error: short trial runs and staged runs resumed with a larger
        # total_iter legitimately stop before a milestone
        probs.warnings.append(f"{key}: {beyond} beyond train.total_iter {total}: the learning "
                              f"rate never reaches {'these steps' if len(beyond) > 1 else 'this step'}")


def _check_betas(optim: Dict[str, Any], probs: Problems) -> None:
    betas = optim.get('betas')
    if betas is None or not isinstance(betas, (list, tuple)):
        return
    if len(betas) != 2:
        probs.add('train.optim_g.betas', f"expected two numbers, got {brief(betas)}")
        return
    for i, beta in enumerate(betas):
        msg = UNIT_OPEN_HIGH.problem(beta)
        if msg:
            probs.add(f"train.optim_g.betas.{i}", msg)


def _check_precision(opt: Dict[str, Any], train: Dict[str, Any], probs: Problems) -> None:
    """Resolve the old ``use_amp`` into ``precision`` and check it against the device."""
    if train.get('use_amp') is True:
        if train.get('precision') == 'fp32':
            train['precision'] = 'fp16'
            probs.warnings.append('train.use_amp: true is the old name of train.precision: fp16')
        elif train.get('precision') != 'fp16':
            probs.add('train.use_amp', f"true (fp16) conflicts with train.precision: "
                      f"{train.get('precision')}; drop use_amp")
            return
    _check_on_device(opt, train.get('precision'), 'train.precision', probs)


def _check_on_device(opt: Dict[str, Any], precision: Any, key: str, probs: Problems) -> None:
    """Report at ``key`` a ``precision`` that the options' device cannot run."""
    spec = opt.get('device', 'auto')
    if precision not in PRECISIONS or not isinstance(spec, str) or parse_device(spec):
        return  # reported by the schema / the device check
    if spec == 'auto':
        spec = 'cuda' if torch.cuda.is_available() else 'cpu'
    if spec.startswith('cuda') and not torch.cuda.is_available():
        return  # the run reports the missing GPU itself
    problem = precision_problem(precision, torch.device(spec.split(':')[0]), key)
    if problem:
        probs.add(key, problem.split(': ', 1)[1])


def validate_val_precision(opt: Dict[str, Any], probs: Problems) -> None:
    """Check ``val.precision`` (test.py, and validation during training) against the device."""
    val = opt.get('val')
    if isinstance(val, dict):
        _check_on_device(opt, val.get('precision'), 'val.precision', probs)


def validate_train_sections(opt: Dict[str, Any], probs: Problems) -> None:
    """Check the registered sections under ``network_g`` and ``train`` (types and ranges)."""
    check_type_section(ARCH_REGISTRY, opt.get('network_g'), 'network_g.', probs)
    if isinstance(opt.get('network_g'), dict):
        check_ranges(opt['network_g'], ARCH_RANGES, 'network_g.', probs)
    try_build('network_g', lambda: build_from_cfg(ARCH_REGISTRY, opt['network_g'], 'network_g'), probs)
    train = opt.get('train')
    if not isinstance(train, dict):
        return
    _check_precision(opt, train, probs)
    if isinstance(train.get('scheduler'), dict):
        check_ranges(train['scheduler'], SCHEDULER_RANGES, 'train.scheduler.', probs)
    _check_milestones(train, probs)
    if isinstance(train.get('optim_g'), dict):
        check_ranges(train['optim_g'], OPTIMIZER_RANGES, 'train.optim_g.', probs)
        _check_betas(train['optim_g'], probs)
        check_type_section(OPTIMIZER_REGISTRY, train['optim_g'], 'train.optim_g.', probs, skip=('params',))
        _trial_optimizer(train, probs)
    losses = train.get('losses')
    losses = losses if isinstance(losses, list) else None
    train_ds = (opt.get('datasets') or {}).get('train')
    patch = train_ds.get('patch_size', 128) if isinstance(train_ds, dict) else None
    if losses is not None:
        if not losses:
            probs.add('train.losses', 'empty: list at least one loss')
        for i, loss in enumerate(losses):
            check_type_section(LOSS_REGISTRY, loss, f"train.losses.{i}.", probs)
            if isinstance(loss, dict):
                check_ranges(loss, LOSS_RANGES, f"train.losses.{i}.", probs)
                window = loss.get('window_size', 11 if loss.get('type') == 'SSIMFusionLoss' else None)
                if isinstance(window, int) and isinstance(patch, int) and patch <= window // 2:
                    probs.add(f"train.losses.{i}.window_size", f"{window} needs patches larger than "
                              f"{window // 2}; datasets.train.patch_size is {patch}")
            try_build(f"train.losses.{i}", lambda loss=loss: build_from_cfg(LOSS_REGISTRY, loss), probs)
    needing = [loss.get('type') for loss in losses or [] if isinstance(loss, dict)
               and loss.get('type') in LOSS_REGISTRY
               and getattr(LOSS_REGISTRY.get(loss['type']), 'needs_mask', False)]
    if needing and isinstance(train_ds, dict) and train_ds.get('dataroot_mask') == 'none':
        probs.add('datasets.train.dataroot_mask', f"required by {', '.join(needing)}: a folder of "
                  "masks (scripts/gen_saliency.py makes them) or 'auto' to compute them on the fly")


def _trial_optimizer(train: Dict[str, Any], probs: Problems) -> None:
    """Build the optimiser (and scheduler) on a dummy parameter to catch bad values early."""
    import torch  # local: only needed for this check
    state: Dict[str, Any] = {}

    def optimizer():
        cfg = dict(train['optim_g'])
        if isinstance(cfg.get('betas'), list):
            cfg['betas'] = tuple(cfg['betas'])
        state['opt'] = build_from_cfg(OPTIMIZER_REGISTRY, cfg, 'train.optim_g',
                                      params=[torch.nn.Parameter(torch.zeros(1))])

    try_build('train.optim_g', optimizer, probs)
    scheduler = train.get('scheduler')
    if isinstance(scheduler, dict):
        check_type_section(SCHEDULER_REGISTRY, scheduler, 'train.scheduler.', probs, skip=('optimizer',))
    if 'opt' in state and isinstance(scheduler, dict):
        try_build('train.scheduler', lambda: build_from_cfg(
            SCHEDULER_REGISTRY, scheduler, 'train.scheduler', optimizer=state['opt']), probs)


def validate_metrics(opt: Dict[str, Any], probs: Problems) -> None:
    """Check ``val.metrics.names`` against the metric registry and convention."""
    val = opt.get('val')
    metrics = val.get('metrics') if isinstance(val, dict) else None
    if not isinstance(metrics, dict):
        return
    names = metrics.get('names') or []
    convention = metrics.get('convention', DEFAULT_CONVENTION)
    if not names or convention not in CONVENTIONS:
        return  # an unknown convention is reported once, by the schema
    available = [n for n in METRIC_REGISTRY.keys()
                 if convention in getattr(METRIC_REGISTRY.get(n), 'conventions', ())]
    for i, name in enumerate(names):
        if name not in available:
            probs.add(f"val.metrics.names.{i}", f"{brief(name)} is not a {convention} metric (available: "
                      f"{', '.join(available)})" + did_you_mean(name, available))

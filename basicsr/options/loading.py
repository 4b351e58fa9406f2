"""Option files: read once, fill defaults, apply ``--set`` overrides, validate everything.

The layout follows BasicSR (``name``, ``datasets``, ``network_g``, ``path``, ``train``, ``val``,
``logger``). Sections that select a registered class with ``type:`` are checked against that
class's constructor signature; the fixed sections against :data:`TRAIN_SCHEMA`. Every
problem in a file is collected and reported in one :class:`ConfigError`, one line each, with
the dotted key path and a suggestion.

This module sits above the packages: it imports them so that their registries are filled,
and the packages never import it.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

import basicsr.archs  # noqa: F401  (fills ARCH_REGISTRY)
import basicsr.data  # noqa: F401  (fills DATASET_REGISTRY)
import basicsr.losses  # noqa: F401  (fills LOSS_REGISTRY)
import basicsr.metrics  # noqa: F401  (fills METRIC_REGISTRY)
import basicsr.models  # noqa: F401  (fills MODEL, OPTIMIZER and SCHEDULER registries)
from basicsr.archs import DEFAULT_NETWORK_G
from basicsr.data.download import download_hint
from basicsr.data.layouts import get_layout, layout_pairs
from basicsr.data.pairs import RESIZE_CHOICES, match_folders
from basicsr.metrics import CONVENTIONS, DEFAULT_CONVENTION
from basicsr.models.fusion_model import COMPILE_MODES
from basicsr.models.precision import PRECISIONS, precision_problem
from basicsr.utils.errors import ConfigError, DataError, DGFusionError, brief
from basicsr.utils.logger import console
from basicsr.utils.options import (ARCH_RANGES, DATASET_RANGES, LOADER_KEYS, LOSS_RANGES, NUM,
                                   OPT_STR, OPTIMIZER_RANGES, POSITIVE, REQUIRED, SCHEDULER_RANGES,
                                   UNIT_OPEN_HIGH, Problems, Registry, _constructor_params, _f,
                                   _fill, _missing_folder, _type_name, _type_ok,
                                   check_name, check_paths, check_ranges, check_train_images,
                                   check_type_section, try_build)
from basicsr.utils.dist import parse_device
from basicsr.utils.registry import (ARCH_REGISTRY, DATASET_REGISTRY, LAYOUT_REGISTRY, LOSS_REGISTRY,
                                    METRIC_REGISTRY, MODEL_REGISTRY, OPTIMIZER_REGISTRY,
                                    SCHEDULER_REGISTRY, build_from_cfg, did_you_mean, unknown_name)
from basicsr.utils.yaml_io import dump_yaml, load_yaml_file, load_yaml_text, parse_scalar

TRAIN_SCHEMA: Dict[str, Any] = {
    'name': _f(str),
    'model_type': _f(str, 'FusionModel'),
    'device': _f(str, 'auto', doc='auto | cpu | cuda | cuda:N'),
    'manual_seed': _f(int, 0, minimum=0),
    'deterministic': _f(bool, False),
    'path': {
        'experiments_root': _f(str, 'experiments'),
        'results_root': _f(str, 'results'),
        'pretrain_network_g': _f(OPT_STR, None),
        'param_key_g': _f(str, 'params_ema', choices=('params', 'params_ema')),
        'resume_state': _f(OPT_STR, None),
    },
    'train': {
        'total_iter': _f(int, minimum=1),
        'optim_g': _f(dict, {'type': 'Adam', 'lr': 1e-4, 'betas': [0.9, 0.999]}),
        'scheduler': _f((dict, type(None)), None),
        'losses': _f(list),
        'ema_decay': _f(NUM, 0.999, doc='0 = off', range=UNIT_OPEN_HIGH),
        'grad_clip': _f((int, float, type(None)), None, doc='max gradient norm, null = off',
                        range=POSITIVE),
        'precision': _f(str, 'fp32', choices=PRECISIONS,
                        doc='fp32 | bf16 (CPUs and GPUs with native bfloat16) | fp16 (CUDA)'),
        'use_amp': _f(bool, False, doc='old name of precision: fp16'),
        'max_nonfinite_steps': _f(int, 10, minimum=1),
        'max_minutes': _f((int, float, type(None)), None, range=POSITIVE,
                          doc='wall-clock budget of this run: checkpoint and exit 0 when reached'),
        'compile': _f(bool, False, doc='torch.compile the training forward'),
        'compile_mode': _f(str, 'default', choices=COMPILE_MODES, doc='torch.compile mode'),
    },
    'val': {
        'val_freq': _f(int, 0, doc='0 = no validation', minimum=0),
        'save_img': _f(bool, True),
        'max_images': _f((int, type(None)), None, minimum=1),
        'metrics': {
            'names': _f(list, []),
            'convention': _f(str, DEFAULT_CONVENTION, choices=CONVENTIONS),
        },
    },
    'logger': {
        'print_freq': _f(int, 100, minimum=1),
        'save_checkpoint_freq': _f(int, 5000, minimum=1),
        'keep_checkpoints': _f(int, 3, doc='newest N periodic checkpoints kept, 0 = all', minimum=0),
        'use_tb_logger': _f(bool, True),
    },
}

TEST_SCHEMA: Dict[str, Any] = {
    'name': _f(str),
    'model_type': _f(str, 'FusionModel'),
    'device': _f(str, 'auto'),
    'manual_seed': _f(int, 0, minimum=0),
    'path': {
        'results_root': _f(str, 'results'),
        'pretrain_network_g': _f(str),
        'param_key_g': _f(str, 'params_ema', choices=('params', 'params_ema')),
    },
    'val': {
        'save_img': _f(bool, True),
        'max_images': _f((int, type(None)), None, doc='first N pairs of each set, null = all',
                         minimum=1),
        'metrics': {
            'names': _f(list, []),
            'convention': _f(str, DEFAULT_CONVENTION, choices=CONVENTIONS),
        },
    },
}



def documented_keys(node: Any, path: Sequence[Any], schema: Dict[str, Any]) -> List[str]:
    """Keys the option layout documents for the mapping ``node`` at dotted ``path``.

    Fixed sections: their schema keys. Registered sections (``datasets.<phase>``,
    ``network_g``, ``train.optim_g``, ``train.scheduler``, ``train.losses.<i>``): the
    constructor parameters of the class their ``type`` names (plus the loader keys).
    """
    if not isinstance(node, dict):
        return []
    path = [str(p) for p in path]

    def params(registry: Registry, default: Optional[str] = None, skip: Sequence[str] = ()) -> List[str]:
        name = node.get('type', default)
        return _constructor_params(registry.get(name), skip) if name in registry else []

    if len(path) == 2 and path[0] == 'datasets':
        return list(LOADER_KEYS) + ['phase'] + params(DATASET_REGISTRY, 'PairedFusionDataset')
    if path == ['network_g']:
        return params(ARCH_REGISTRY)
    if path == ['train', 'optim_g']:
        return params(OPTIMIZER_REGISTRY, skip=('params',))
    if path == ['train', 'scheduler']:
        return params(SCHEDULER_REGISTRY, skip=('optimizer',))
    if len(path) == 3 and path[:2] == ['train', 'losses']:
        return params(LOSS_REGISTRY)
    section: Any = schema
    for key in path:
        section = section.get(key) if isinstance(section, dict) else None
    return list(section) if isinstance(section, dict) else []


def apply_overrides(opt: Dict[str, Any], overrides: Sequence[str], probs: Problems,
                    schema: Optional[Dict[str, Any]] = None) -> None:
    """Apply ``a.b.c=value`` strings (values parsed as YAML, no eval).

    The key must exist in the options or be documented for its section (see
    :func:`documented_keys`), so ``--set datasets.train.use_hflip=false`` works even when the
    file does not spell the key out.
    """
    schema = TRAIN_SCHEMA if schema is None else schema
    for item in overrides:
        if '=' not in item:
            probs.add('--set', f"{brief(item)} is not of the form key.path=value")
            continue
        dotted, raw = item.split('=', 1)
        dotted = dotted.strip()
        keys = dotted.split('.')
        node: Any = opt
        for i, key in enumerate(keys):
            last = i == len(keys) - 1
            if isinstance(node, list) and key.isdigit() and int(key) < len(node):
                key = int(key)
            elif not isinstance(node, dict) or key not in node:
                documented = documented_keys(node, keys[:i], schema)
                if last and key in documented:
                    pass  # a documented key the file leaves at its default
                else:
                    known = sorted(set(node) | set(documented)) if isinstance(node, dict) else []
                    prefix = ''.join(f"{k}." for k in keys[:i])
                    probs.add(f"--set {dotted}", f"no existing key '{'.'.join(keys[:i + 1])}'"
                              + did_you_mean(key, known, prefix, quote=False))
                    break
            if last:
                try:
                    node[key] = parse_scalar(raw)
                except ConfigError as exc:
                    probs.add(f"--set {dotted}", str(exc))
            else:
                node = node[key]



def validate_datasets(opt: Dict[str, Any], probs: Problems, is_train: bool,
                      scan: bool = False) -> None:
    """Check ``datasets``: phases, names, loader keys, dataset class options, ranges, data
    folders (existence, matching names) and the training images' declared sizes; with
    ``scan``, also every file of the training (masks included) and validation pairs
    (whole, sizes agreeing within a pair: :func:`basicsr.data.scan.scan_pairs`)."""
    datasets = opt.get('datasets')
    if not isinstance(datasets, dict) or not datasets:
        probs.add('datasets', 'missing or empty: expected a mapping of phase -> dataset')
        return
    allowed = ('train', 'val') if is_train else ()
    for phase, ds in datasets.items():
        prefix = f"datasets.{phase}."
        if phase not in allowed and not str(phase).startswith('test'):
            probs.add(f"datasets.{phase}", 'unknown phase; expected '
                      + ('train, val' if is_train else 'test_1, test_2, ...'))
            continue
        if not isinstance(ds, dict):
            probs.add(f"datasets.{phase}", f"expected a mapping, got {brief(ds)}")
            continue
        ds.setdefault('phase', 'train' if phase == 'train' else 'test')
        expected_phase = 'train' if phase == 'train' else 'test'
        if ds['phase'] != expected_phase:
            probs.add(prefix + 'phase', f"{brief(ds['phase'])} for the {phase} set; expected '{expected_phase}'")
        for key, spec in LOADER_KEYS.items():
            if key not in ds:
                ds[key] = copy.deepcopy(spec.default) if spec.default is not REQUIRED else None
            elif not _type_ok(ds[key], spec.types):
                probs.add(prefix + key, f"expected {_type_name(spec.types)}, got {brief(ds[key])}")
            elif spec.range is not None and spec.range.problem(ds[key]):
                probs.add(prefix + key, spec.range.problem(ds[key]))
        if not ds['name']:
            ds['name'] = phase
        check_name(ds['name'], prefix + 'name', probs)
        kwargs = {k: v for k, v in ds.items() if k not in LOADER_KEYS}
        check_type_section(DATASET_REGISTRY, {'type': ds['type'], **kwargs}, prefix, probs)
        check_ranges(ds, DATASET_RANGES, prefix, probs)
        if ds.get('resize') is not None and ds['resize'] not in RESIZE_CHOICES:
            probs.add(prefix + 'resize', f"{brief(ds['resize'])} is not one of "
                      f"{', '.join(RESIZE_CHOICES)}" + did_you_mean(ds['resize'], RESIZE_CHOICES))
        if ds.get('layout') is not None:
            _check_layout(ds, phase, prefix, probs)
            continue
        for key in ('dataroot_vis', 'dataroot_ir'):
            if ds.get(key) in (None, '') and not any(i.startswith(prefix + key) for i in probs.items):
                probs.add(prefix + key, 'missing: a folder of images (or give layout and root: '
                          f"one of {', '.join(LAYOUT_REGISTRY.keys())})")
        roots = {}
        for key in ('dataroot_vis', 'dataroot_ir', 'dataroot_mask'):
            root = ds.get(key)
            if key == 'dataroot_mask' and ds['phase'] != 'train':
                continue  # masks are only read for training
            if isinstance(root, str) and root not in ('', 'auto', 'none'):
                if not Path(root).is_dir():
                    probs.add(prefix + key, _missing_folder(root, key, probs.source,
                                                            download_hint(root)))
                else:
                    roots[key[len('dataroot_'):]] = root
        # unmatched names stop training; test and validation sets skip them by name instead
        if phase == 'train' and {'vis', 'ir'} <= set(roots) and not any(
                item.startswith(prefix) for item in probs.items):
            try:
                pairs, _ = match_folders(roots['vis'], roots['ir'], roots.get('mask'), strict=True)
            except DataError as exc:
                probs.add(f"datasets.{phase}", str(exc)[:400])
            else:
                check_train_images(pairs, ds.get('patch_size', 128), prefix, probs)
                if scan:
                    _scan_files(pairs, phase, probs)
        elif scan and phase != 'train' and {'vis', 'ir'} <= set(roots) and not any(
                item.startswith(prefix) for item in probs.items):
            try:
                pairs, _ = match_folders(roots['vis'], roots['ir'])
            except DataError:
                pass  # no pair at all: the run reports it when it builds the set
            else:
                _scan_files(pairs, phase, probs)
    if is_train and 'train' not in datasets:
        probs.add('datasets.train', 'missing required dataset phase')


def _scan_files(pairs, phase: str, probs: Problems) -> None:
    """Add one problem per damaged file or mismatched size among ``pairs`` of ``phase``."""
    from basicsr.data.scan import scan_pairs
    for problem in scan_pairs(pairs):
        probs.add(f"datasets.{phase}", problem)


def _check_layout(ds: Dict[str, Any], phase: str, prefix: str, probs: Problems) -> None:
    """A dataset given by ``layout`` + ``root`` (+ ``split``): the layout is known, it does not
    meet ``dataroot_vis/ir``, its folders exist, and (training) its names match."""
    name = ds['layout']
    for key in ('dataroot_vis', 'dataroot_ir'):
        if ds.get(key) not in (None, ''):
            probs.add(prefix + key, f"excludes layout ({brief(name)}): give either layout and "
                      f"root, or dataroot_vis and dataroot_ir")
    if not isinstance(name, str) or any(i.startswith(prefix + 'layout') for i in probs.items):
        return  # a type problem is reported by the constructor check
    if name not in LAYOUT_REGISTRY:
        probs.add(prefix + 'layout', unknown_name('layout', name, LAYOUT_REGISTRY.keys()))
        return
    layout = get_layout(name)
    split, root = ds.get('split'), ds.get('root')
    problem = layout.split_problem(split)
    if problem:
        probs.add(prefix + 'split', problem)
        return
    if not isinstance(root, str) or not root:
        probs.add(prefix + 'root', f"missing: the folder of the {name} benchmark "
                  f"({layout.structure})")
        return
    try:
        groups = layout.groups(root, split)
    except DGFusionError as exc:
        probs.add(prefix + 'root', str(exc))
        return
    mask = ds.get('dataroot_mask')
    train = ds['phase'] == 'train'
    if train and mask not in ('auto', 'none'):
        if isinstance(mask, str) and mask:
            if not Path(mask).is_dir():
                probs.add(prefix + 'dataroot_mask', _missing_folder(mask, 'dataroot_mask', probs.source))
                return
        elif layout.has_mask:
            absent = [g.mask for g in groups if g.mask is not None and not g.mask.is_dir()]
            if absent:
                probs.add(prefix + 'dataroot_mask', "absent, so the layout's mask folder is used: "
                          + _missing_folder(str(absent[0]), 'dataroot_mask', probs.source))
                return
    if phase == 'train' and not any(item.startswith(prefix) for item in probs.items):
        uses_folder = mask not in ('auto', 'none') and (bool(mask) or layout.has_mask)
        try:
            pairs, _ = layout_pairs(layout, root, split, mask if isinstance(mask, str) and mask
                                    not in ('auto', 'none') else None, masks=uses_folder,
                                    strict=True)
        except DGFusionError as exc:
            probs.add(f"datasets.{phase}", str(exc)[:400])
        else:
            border = ds.get('border')
            border = layout.border if border is None else border
            check_train_images(pairs, ds.get('patch_size', 128), prefix, probs,
                               border if isinstance(border, int) else 0)


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
    precision, spec = train.get('precision'), opt.get('device', 'auto')
    if precision not in PRECISIONS or not isinstance(spec, str) or parse_device(spec):
        return  # reported by the schema / the device check
    if spec == 'auto':
        spec = 'cuda' if torch.cuda.is_available() else 'cpu'
    if spec.startswith('cuda') and not torch.cuda.is_available():
        return  # the run reports the missing GPU itself
    problem = precision_problem(precision, torch.device(spec.split(':')[0]), 'train.precision')
    if problem:
        probs.add('train.precision', problem.split(': ', 1)[1])


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



@dataclass
class LoadedOptions:
    """Result of :func:`load_options`."""
    opt: Dict[str, Any]
    original_text: str
    source: str
    warnings: List[str]


def load_options(path: str | Path, is_train: bool = True, overrides: Sequence[str] = (),
                 dry_run: bool = False) -> LoadedOptions:
    """Read, complete and validate an option file.

    ``--dry-run`` and the real run go through the same checks (data folders, masks, checkpoint
    paths, output folder, value ranges); only non-fatal remarks end up in ``warnings``. A
    training dry run also reads every training, mask and validation file in full and reports
    each damaged one (a real run skips those pairs, up to ``max_bad_fraction``).

    Args:
        path: YAML option file.
        is_train: validate against the training layout (else the test layout).
        overrides: ``key.path=value`` strings from ``--set``.
        dry_run: with ``is_train``, also check every data file (see above).

    Raises:
        ConfigError: listing every problem found, one per line.
    """
    path = Path(path)
    data = load_yaml_file(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    probs = Problems(str(path))
    opt = copy.deepcopy(data)
    schema = TRAIN_SCHEMA if is_train else TEST_SCHEMA
    extra = {'datasets', 'network_g'}
    fixed = {k: v for k, v in opt.items() if k not in extra}
    _fill({**schema}, fixed, '', probs)
    for key in extra:
        if key in opt:
            fixed[key] = opt[key]
    # unknown top-level keys are reported by _fill; keep order: schema keys then extras
    opt = fixed
    if 'network_g' not in opt:
        opt['network_g'] = copy.deepcopy(DEFAULT_NETWORK_G)
    if 'datasets' not in opt:
        probs.add('datasets', 'missing required key (mapping of phase -> dataset)')
    apply_overrides(opt, overrides, probs, schema)
    if overrides:  # re-check overridden values against the schema
        recheck = Problems(str(path))
        _fill(schema, {k: v for k, v in opt.items() if k not in extra}, '', recheck)
        probs.items.extend(i for i in recheck.items if i not in probs.items)
    check_name(opt.get('name'), 'name', probs)
    err = parse_device(opt.get('device', 'auto')) if isinstance(opt.get('device'), str) else None
    if err:
        probs.add('device', err)
    if opt.get('model_type') not in MODEL_REGISTRY:
        probs.add('model_type', unknown_name('model type', opt.get('model_type'),
                                             MODEL_REGISTRY.keys()))
    validate_datasets(opt, probs, is_train, scan=dry_run and is_train)
    if is_train:
        validate_train_sections(opt, probs)
    else:
        check_type_section(ARCH_REGISTRY, opt.get('network_g'), 'network_g.', probs)
    validate_metrics(opt, probs)
    check_paths(opt, probs, is_train)
    probs.raise_if_any()
    return LoadedOptions(opt, path.read_text(encoding='utf-8'), str(path), probs.warnings)



def written_network_g(loaded: LoadedOptions, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """The ``network_g`` keys that the option file or a ``--set network_g.KEY=...`` spells out
    (not the defaults filled in), with their resolved values."""
    raw = load_yaml_text(loaded.original_text, loaded.source)
    section = raw.get('network_g') if isinstance(raw, dict) else None
    keys = set(section) if isinstance(section, dict) else set()
    for item in overrides:
        dotted = item.split('=', 1)[0].strip().split('.')
        if len(dotted) == 2 and dotted[0] == 'network_g' and '=' in item:
            keys.add(dotted[1])
    resolved = loaded.opt.get('network_g') or {}
    return {key: resolved[key] for key in sorted(keys) if key in resolved}


def print_dry_run(loaded: LoadedOptions) -> int:
    """``--dry-run``: warnings and the verdict on stderr, the resolved options on stdout."""
    for w in loaded.warnings:
        console(f"warning: {w}", err=True)
    console(dump_yaml(loaded.opt).rstrip())
    console(f"ok: {loaded.source} is valid", err=True)
    return 0

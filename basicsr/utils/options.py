"""Option files: read once, fill defaults, apply ``--set`` overrides, validate everything.

The layout follows BasicSR (``name``, ``datasets``, ``network_g``, ``path``, ``train``, ``val``,
``logger``). Sections that select a registered class with ``type:`` are checked against that
class's constructor signature; the fixed sections against :data:`TRAIN_SCHEMA`. Every
problem in a file is collected and reported in one :class:`ConfigError`, one line each, with
the dotted key path and a suggestion.
"""
from __future__ import annotations

import copy
import logging
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from basicsr.utils.errors import ConfigError
from basicsr.utils.registry import (ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY,
                                    MODEL_REGISTRY, OPTIMIZER_REGISTRY, SCHEDULER_REGISTRY, Registry,
                                    build_from_cfg, closest_match)
from basicsr.utils.yaml_io import load_yaml_file, parse_scalar

logger = logging.getLogger(__name__)

REQUIRED = object()


@dataclass
class Field:
    """One fixed option: accepted Python types, default (or REQUIRED), allowed values."""
    types: Tuple[type, ...]
    default: Any = REQUIRED
    choices: Optional[Sequence[Any]] = None
    doc: str = ''
    minimum: Optional[float] = None


def _f(types, default=REQUIRED, choices=None, doc='', minimum=None):
    types = types if isinstance(types, tuple) else (types,)
    return Field(types, default, choices, doc, minimum)


NUM = (int, float)
OPT_STR = (str, type(None))

# Keys of a dataset section that belong to the loader, not to the dataset class.
LOADER_KEYS: Dict[str, Field] = {
    'name': _f(str, '', doc='label used in logs and result folders'),
    'type': _f(str, 'PairedFusionDataset'),
    'batch_size_per_gpu': _f(int, 1, minimum=1),
    'num_worker_per_gpu': _f(int, 0, minimum=0),
}

TRAIN_SCHEMA: Dict[str, Any] = {
    'name': _f(str),
    'model_type': _f(str, 'FusionModel'),
    'device': _f(str, 'auto', doc='auto | cpu | cuda | cuda:N'),
    'manual_seed': _f(int, 0),
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
        'ema_decay': _f(NUM, 0.999),
        'grad_clip': _f((int, float, type(None)), None, doc='max gradient norm, null = off'),
        'use_amp': _f(bool, False),
        'max_nonfinite_steps': _f(int, 10, minimum=1),
    },
    'val': {
        'val_freq': _f(int, 0, doc='0 = no validation', minimum=0),
        'save_img': _f(bool, True),
        'max_images': _f((int, type(None)), None, minimum=1),
        'metrics': {
            'names': _f(list, []),
            'convention': _f(str, 'cddfuse', choices=('vifb', 'tang', 'cddfuse')),
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
    'manual_seed': _f(int, 0),
    'path': {
        'results_root': _f(str, 'results'),
        'pretrain_network_g': _f(str),
        'param_key_g': _f(str, 'params_ema', choices=('params', 'params_ema')),
    },
    'val': {
        'save_img': _f(bool, True),
        'metrics': {
            'names': _f(list, []),
            'convention': _f(str, 'cddfuse', choices=('vifb', 'tang', 'cddfuse')),
        },
    },
}


@dataclass
class Problems:
    """Collects validation problems for one file."""
    source: str
    items: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    def add(self, key: str, msg: str) -> None:
        self.items.append(f"{key}: {msg}" if key else msg)

    def raise_if_any(self) -> None:
        if self.items:
            head = f"{self.source}: {len(self.items)} problem{'s' if len(self.items) > 1 else ''}"
            raise ConfigError(head + '\n  - ' + '\n  - '.join(self.items))


def _type_name(types: Tuple[type, ...]) -> str:
    names = {int: 'integer', float: 'number', str: 'string', bool: 'true/false', dict: 'mapping',
             list: 'list', type(None): 'null'}
    return ' or '.join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def _type_ok(value: Any, types: Tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False  # YAML true is not a number
    return isinstance(value, types)


def _fill(schema: Dict[str, Any], data: Dict[str, Any], prefix: str, probs: Problems) -> None:
    """Check ``data`` against a fixed schema in place: defaults, types, choices, unknown keys."""
    for key, value in list(data.items()):
        path = f"{prefix}{key}"
        if key not in schema:
            hint = closest_match(str(key), schema)
            probs.add(path, 'unknown key' + (f"; did you mean {prefix}{hint}?" if hint
                                            else f" (known here: {', '.join(schema)})"))
            continue
        spec = schema[key]
        if isinstance(spec, dict):
            if value is None:
                data[key] = value = {}
            if not isinstance(value, dict):
                probs.add(path, f"expected a mapping, got {type(value).__name__} {value!r}")
                continue
            _fill(spec, value, path + '.', probs)
        elif not _type_ok(value, spec.types):
            probs.add(path, f"expected {_type_name(spec.types)}, got {type(value).__name__} {value!r}")
        elif (spec.minimum is not None and isinstance(value, (int, float))
              and not isinstance(value, bool) and value < spec.minimum):
            probs.add(path, f"must be >= {spec.minimum}, got {value}")
        elif spec.choices is not None and value not in spec.choices:
            hint = closest_match(str(value), [str(c) for c in spec.choices])
            probs.add(path, f"'{value}' is not one of {', '.join(map(str, spec.choices))}"
                      + (f"; did you mean '{hint}'?" if hint else ''))
    for key, spec in schema.items():
        if key in data:
            continue
        if isinstance(spec, dict):
            data[key] = {}
            _fill(spec, data[key], f"{prefix}{key}.", probs)
        elif spec.default is REQUIRED:
            probs.add(f"{prefix}{key}", f"missing required key ({_type_name(spec.types)})")
        else:
            data[key] = copy.deepcopy(spec.default)


def _annotation_types(annotation: Any) -> Optional[Tuple[type, ...]]:
    """Map a constructor annotation to accepted plain types (None = not checked)."""
    if annotation is typing.Any or annotation is None:
        return None
    origin = typing.get_origin(annotation)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        out: List[type] = []
        for arg in typing.get_args(annotation):
            if arg is typing.Any:
                return None
            out.extend(_annotation_types(arg) or ())  # e.g. torch.Tensor: not writable in YAML
        return tuple(out) or None
    if origin in (list, tuple, Sequence, typing.Sequence) or annotation in (list, tuple):
        return (list, tuple)
    if origin is dict or annotation is dict:
        return (dict,)
    if annotation is float:
        return (int, float)
    if annotation in (int, str, bool, type(None)):
        return (annotation,)
    return None


def check_registered(obj: Any, kwargs: Dict[str, Any], prefix: str, probs: Problems,
                     skip: Sequence[str] = ()) -> None:
    """Check a ``type:`` section against ``obj``'s constructor signature."""
    import inspect
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return
    try:
        hints = typing.get_type_hints(obj.__init__ if inspect.isclass(obj) else obj)
    except Exception:  # unresolvable forward references: skip type checks
        hints = {}
    accepted = {n: p for n, p in params.items()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in skip}
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    for key, value in kwargs.items():
        if key not in accepted:
            if not var_kw:
                hint = closest_match(str(key), accepted)
                probs.add(prefix + key, f"unknown option for {obj.__name__}" + (
                    f"; did you mean {prefix}{hint}?" if hint
                    else f" (accepted: {', '.join(accepted)})"))
            continue
        types = _annotation_types(hints.get(key, typing.Any))
        if types is not None and not _type_ok(value, types):
            probs.add(prefix + key, f"expected {_type_name(types)}, got {type(value).__name__} {value!r}")
    for name, p in accepted.items():
        if p.default is p.empty and name not in kwargs:
            probs.add(prefix + name, f"missing required option of {obj.__name__}")


def check_type_section(registry: Registry, section: Any, prefix: str, probs: Problems,
                       skip: Sequence[str] = ()) -> None:
    """Validate ``{type: Name, **kwargs}`` against ``registry``."""
    if not isinstance(section, dict):
        probs.add(prefix.rstrip('.'), f"expected a mapping with a 'type' key, got {section!r}")
        return
    name = section.get('type')
    if name not in registry:
        hint = closest_match(str(name), registry.keys())
        probs.add(prefix + 'type', f"unknown {registry._name} type '{name}' (available: "
                  f"{', '.join(registry.keys())})" + (f"; did you mean '{hint}'?" if hint else ''))
        return
    kwargs = {k: v for k, v in section.items() if k != 'type'}
    check_registered(registry.get(name), kwargs, prefix, probs, skip)


def try_build(key: str, factory, probs: Problems) -> None:
    """Construct a section once so that values its constructor rejects are reported here.

    Skipped when the section already has a problem (its message is the better one).
    """
    if any(item.startswith(key + '.') or item.startswith(key + ':') for item in probs.items):
        return
    try:
        factory()
    except Exception as exc:  # any constructor complaint becomes a config problem
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        probs.add(key, f"rejected: {text}")


def apply_overrides(opt: Dict[str, Any], overrides: Sequence[str], probs: Problems) -> None:
    """Apply ``a.b.c=value`` strings to existing keys only (values parsed as YAML, no eval)."""
    for item in overrides:
        if '=' not in item:
            probs.add('--set', f"'{item}' is not of the form key.path=value")
            continue
        dotted, raw = item.split('=', 1)
        keys = dotted.strip().split('.')
        node: Any = opt
        for i, key in enumerate(keys):
            last = i == len(keys) - 1
            if isinstance(node, list) and key.isdigit() and int(key) < len(node):
                key = int(key)
            elif not isinstance(node, dict) or key not in node:
                known = list(node) if isinstance(node, dict) else []
                hint = closest_match(str(key), known)
                probs.add(f"--set {dotted}", f"no existing key '{'.'.join(keys[:i + 1])}'"
                          + (f"; did you mean {'.'.join(keys[:i] + [hint])}?" if hint else ''))
                break
            if last:
                try:
                    node[key] = parse_scalar(raw)
                except ConfigError as exc:
                    probs.add(f"--set {dotted}", str(exc))
            else:
                node = node[key]


def parse_device(value: str) -> Optional[str]:
    """Return an error message if ``value`` is not auto, cpu, cuda or cuda:N."""
    if value in ('auto', 'cpu', 'cuda'):
        return None
    if value.startswith('cuda:') and value[5:].isdigit():
        return None
    return f"'{value}' is not one of auto, cpu, cuda, cuda:N"


def validate_datasets(opt: Dict[str, Any], probs: Problems, dry_run: bool, is_train: bool) -> None:
    """Check ``datasets``: phases, loader keys, dataset class options and data folders."""
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
            probs.add(f"datasets.{phase}", f"expected a mapping, got {ds!r}")
            continue
        ds.setdefault('phase', 'train' if phase == 'train' else 'test')
        expected_phase = 'train' if phase == 'train' else 'test'
        if ds['phase'] != expected_phase:
            probs.add(prefix + 'phase', f"'{ds['phase']}' for the {phase} set; expected '{expected_phase}'")
        for key, spec in LOADER_KEYS.items():
            if key not in ds:
                ds[key] = copy.deepcopy(spec.default) if spec.default is not REQUIRED else None
            elif not _type_ok(ds[key], spec.types):
                probs.add(prefix + key, f"expected {_type_name(spec.types)}, got {ds[key]!r}")
            elif spec.minimum is not None and ds[key] < spec.minimum:
                probs.add(prefix + key, f"must be >= {spec.minimum}, got {ds[key]}")
        if not ds['name']:
            ds['name'] = phase
        kwargs = {k: v for k, v in ds.items() if k not in LOADER_KEYS}
        check_type_section(DATASET_REGISTRY, {'type': ds['type'], **kwargs}, prefix, probs)
        for key in ('dataroot_vis', 'dataroot_ir', 'dataroot_mask'):
            root = ds.get(key)
            if isinstance(root, str) and root not in ('', 'auto', 'none') and not Path(root).is_dir():
                msg = f"folder '{root}' does not exist"
                if dry_run:
                    probs.warnings.append(f"{prefix}{key}: {msg}")
                else:
                    probs.add(prefix + key, msg)
    if is_train and 'train' not in datasets:
        probs.add('datasets.train', 'missing required dataset phase')


def validate_train_sections(opt: Dict[str, Any], probs: Problems) -> None:
    """Check the registered sections under ``network_g`` and ``train``."""
    check_type_section(ARCH_REGISTRY, opt.get('network_g'), 'network_g.', probs)
    try_build('network_g', lambda: build_from_cfg(ARCH_REGISTRY, opt['network_g'], 'network_g'), probs)
    train = opt.get('train')
    if not isinstance(train, dict):
        return
    if isinstance(train.get('optim_g'), dict):
        check_type_section(OPTIMIZER_REGISTRY, train['optim_g'], 'train.optim_g.', probs, skip=('params',))
        _trial_optimizer(train, probs)
    milestones = (train.get('scheduler') or {}).get('milestones') if isinstance(
        train.get('scheduler'), dict) else None
    if milestones is not None and not (isinstance(milestones, list) and all(
            isinstance(m, int) and not isinstance(m, bool) and m >= 0 for m in milestones)):
        probs.add('train.scheduler.milestones', f"expected a list of iteration numbers, got {milestones!r}")
    losses = train.get('losses')
    losses = losses if isinstance(losses, list) else None
    if losses is not None:
        if not losses:
            probs.add('train.losses', 'empty: list at least one loss')
        for i, loss in enumerate(losses):
            check_type_section(LOSS_REGISTRY, loss, f"train.losses.{i}.", probs)
            try_build(f"train.losses.{i}", lambda loss=loss: build_from_cfg(LOSS_REGISTRY, loss), probs)
    needing = [loss.get('type') for loss in losses or [] if isinstance(loss, dict)
               and loss.get('type') in LOSS_REGISTRY
               and getattr(LOSS_REGISTRY.get(loss['type']), 'needs_mask', False)]
    train_ds = (opt.get('datasets') or {}).get('train')
    if needing and isinstance(train_ds, dict) and train_ds.get('dataroot_mask') == 'none':
        probs.add('datasets.train.dataroot_mask', f"required by {', '.join(needing)}: a folder of "
                  "masks (scripts/gen_saliency.py makes them) or 'auto' to compute them on the fly")
    for key in ('total_iter',):
        if isinstance(train.get(key), int) and train[key] < 1:
            probs.add(f"train.{key}", f"must be >= 1, got {train[key]}")
    decay = train.get('ema_decay')
    if isinstance(decay, (int, float)) and not 0 <= decay < 1:
        probs.add('train.ema_decay', f"must be in [0, 1), got {decay}")


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
    if not names:
        return
    convention = metrics.get('convention', 'cddfuse')
    available = [n for n in METRIC_REGISTRY.keys()
                 if convention in getattr(METRIC_REGISTRY.get(n), 'conventions', ())]
    for i, name in enumerate(names):
        if name not in available:
            hint = closest_match(str(name), available)
            probs.add(f"val.metrics.names.{i}", f"'{name}' is not a {convention} metric (available: "
                      f"{', '.join(available)})" + (f"; did you mean '{hint}'?" if hint else ''))


def resolve_checkpoint_path(path: str | Path) -> Optional[Path]:
    """A checkpoint file as is; a checkpoints folder -> its ``latest`` (or newest) file."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        pointer = path / 'latest'
        if pointer.is_file() and (path / pointer.read_text(encoding='utf-8').strip()).is_file():
            return path / pointer.read_text(encoding='utf-8').strip()
        found = sorted(path.glob('*.pth'))
        return found[-1] if found else None
    return None


def populate_registries() -> None:
    """Import the packages whose modules register the names option files refer to.

    Validation needs the registries filled; the packages themselves sit above ``utils``, so
    they are imported here, lazily, and nowhere else in ``utils``.
    """
    import basicsr.archs  # noqa: F401
    import basicsr.data  # noqa: F401
    import basicsr.losses  # noqa: F401
    import basicsr.metrics  # noqa: F401
    import basicsr.models  # noqa: F401


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

    Args:
        path: YAML option file.
        is_train: validate against the training layout (else the test layout).
        overrides: ``key.path=value`` strings from ``--set``.
        dry_run: missing data folders become warnings instead of problems.

    Raises:
        ConfigError: listing every problem found, one per line.
    """
    populate_registries()
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
        opt['network_g'] = {'type': 'DGFusion', 'channels': 16}
    if 'datasets' not in opt:
        probs.add('datasets', 'missing required key (mapping of phase -> dataset)')
    apply_overrides(opt, overrides, probs)
    if overrides:  # re-check overridden values against the schema
        recheck = Problems(str(path))
        _fill(schema, {k: v for k, v in opt.items() if k not in extra}, '', recheck)
        probs.items.extend(i for i in recheck.items if i not in probs.items)
    err = parse_device(opt.get('device', 'auto')) if isinstance(opt.get('device'), str) else None
    if err:
        probs.add('device', err)
    if opt.get('model_type') not in MODEL_REGISTRY:
        hint = closest_match(str(opt.get('model_type')), MODEL_REGISTRY.keys())
        probs.add('model_type', f"unknown model type '{opt.get('model_type')}' (available: "
                  f"{', '.join(MODEL_REGISTRY.keys())})" + (f"; did you mean '{hint}'?" if hint else ''))
    validate_datasets(opt, probs, dry_run, is_train)
    if is_train:
        validate_train_sections(opt, probs)
    else:
        check_type_section(ARCH_REGISTRY, opt.get('network_g'), 'network_g.', probs)
        path_opt = opt.get('path') if isinstance(opt.get('path'), dict) else {}
        ckpt = path_opt.get('pretrain_network_g')
        if isinstance(ckpt, str) and resolve_checkpoint_path(ckpt) is None:
            msg = f"'{ckpt}' is neither a checkpoint file nor a folder holding checkpoints"
            (probs.warnings.append(f"path.pretrain_network_g: {msg}") if dry_run
             else probs.add('path.pretrain_network_g', msg))
    validate_metrics(opt, probs)
    probs.raise_if_any()
    return LoadedOptions(opt, path.read_text(encoding='utf-8'), str(path), probs.warnings)

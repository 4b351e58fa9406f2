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
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from basicsr.utils.errors import ConfigError, brief
from basicsr.utils.registry import (ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY,
                                    MODEL_REGISTRY, OPTIMIZER_REGISTRY, SCHEDULER_REGISTRY, Registry,
                                    build_from_cfg, closest_match)
from basicsr.utils.yaml_io import load_yaml_file, parse_scalar

logger = logging.getLogger(__name__)

REQUIRED = object()
MIN_PATCH_SIZE = 8  # smaller crops leave the 3x3 gradient and FFT branches almost no content


@dataclass(frozen=True)
class Range:
    """Allowed interval of a number: ``low``/``high`` bounds, each open or closed."""
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high}"
        return (f"in {'(' if self.low_open else '['}{self.low}, {self.high}"
                f"{')' if self.high_open else ']'}")

    def problem(self, value: Any) -> Optional[str]:
        """``None`` if ``value`` is inside, else the message (non-numbers are not judged)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number {self.describe()}, got {value}"
        low_bad = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        high_bad = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        return f"must be {self.describe()}, got {value}" if low_bad or high_bad else None


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
AT_LEAST_ONE = Range(1)
UNIT = Range(0, 1)
UNIT_OPEN_HIGH = Range(0, 1, high_open=True)
UNIT_OPEN_LOW = Range(0, 1, low_open=True)


@dataclass
class Field:
    """One fixed option: accepted Python types, default (or REQUIRED), allowed values."""
    types: Tuple[type, ...]
    default: Any = REQUIRED
    choices: Optional[Sequence[Any]] = None
    doc: str = ''
    range: Optional[Range] = None


def _f(types, default=REQUIRED, choices=None, doc='', minimum=None, range=None):
    types = types if isinstance(types, tuple) else (types,)
    return Field(types, default, choices, doc, range or (Range(minimum) if minimum is not None else None))


# Numeric constructor options of registered sections, by parameter name.
OPTIMIZER_RANGES: Dict[str, Range] = {
    'lr': POSITIVE, 'weight_decay': NON_NEGATIVE, 'momentum': UNIT_OPEN_HIGH, 'dampening': UNIT,
    'eps': POSITIVE, 'alpha': UNIT_OPEN_LOW}
SCHEDULER_RANGES: Dict[str, Range] = {
    'gamma': POSITIVE, 'step_size': AT_LEAST_ONE, 'T_max': AT_LEAST_ONE, 'eta_min': NON_NEGATIVE,
    'factor': UNIT_OPEN_LOW, 'start_factor': UNIT_OPEN_LOW, 'end_factor': UNIT,
    'total_iters': AT_LEAST_ONE}
DATASET_RANGES: Dict[str, Range] = {'patch_size': Range(MIN_PATCH_SIZE), 'enlarge_ratio': AT_LEAST_ONE}
ARCH_RANGES: Dict[str, Range] = {'channels': AT_LEAST_ONE}
LOSS_RANGES: Dict[str, Range] = {'loss_weight': NON_NEGATIVE, 'window_size': AT_LEAST_ONE}


def check_ranges(section: Dict[str, Any], ranges: Dict[str, Range], prefix: str,
                 probs: 'Problems') -> None:
    """Report every value of ``section`` outside its range in ``ranges``."""
    for key, rng in ranges.items():
        msg = rng.problem(section.get(key))
        if msg:
            probs.add(prefix + key, msg)


def _hint(name: Any, choices) -> Optional[str]:
    """Closest choice to ``name``; long values (pasted text) get no suggestion."""
    text = str(name)
    return closest_match(text, choices) if len(text) <= 100 else None


def check_name(value: Any, key: str, probs: 'Problems') -> None:
    """``name`` becomes one folder: non-empty, one path component, no '..', no separators."""
    if not isinstance(value, str):
        return  # type problems are reported by the schema
    bad = [c for c in ('/', '\\', '\0') if c in value]
    if not value.strip():
        probs.add(key, 'must not be empty (it names the run folder)')
    elif value in ('.', '..') or bad or any(ord(c) < 32 for c in value):
        probs.add(key, f"{brief(value)} must be a single folder name: no '/', '\\', '..' or "
                  f"control characters")
    elif value != value.strip():
        probs.add(key, f"{brief(value)} starts or ends with spaces")


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
        if len(self.items) == 1:  # one problem: one line
            raise ConfigError(f"{self.source}: {self.items[0]}")
        if self.items:
            raise ConfigError(f"{self.source}: {len(self.items)} problems\n  - "
                              + '\n  - '.join(self.items))


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
            hint = _hint(key, schema)
            probs.add(path, 'unknown key' + (f"; did you mean {prefix}{hint}?" if hint
                                            else f" (known here: {', '.join(schema)})"))
            continue
        spec = schema[key]
        if isinstance(spec, dict):
            if value is None:
                data[key] = value = {}
            if not isinstance(value, dict):
                probs.add(path, f"expected a mapping, got {type(value).__name__} {brief(value)}")
                continue
            _fill(spec, value, path + '.', probs)
        elif not _type_ok(value, spec.types):
            probs.add(path, f"expected {_type_name(spec.types)}, got {type(value).__name__} {brief(value)}")
        elif spec.range is not None and spec.range.problem(value):
            probs.add(path, spec.range.problem(value))
        elif spec.choices is not None and value not in spec.choices:
            hint = _hint(value, [str(c) for c in spec.choices])
            probs.add(path, f"{brief(value)} is not one of {', '.join(map(str, spec.choices))}"
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
                hint = _hint(key, accepted)
                probs.add(prefix + key, f"unknown option for {obj.__name__}" + (
                    f"; did you mean {prefix}{hint}?" if hint
                    else f" (accepted: {', '.join(accepted)})"))
            continue
        types = _annotation_types(hints.get(key, typing.Any))
        if types is not None and not _type_ok(value, types):
            probs.add(prefix + key, f"expected {_type_name(types)}, got {type(value).__name__} {brief(value)}")
    for name, p in accepted.items():
        if p.default is p.empty and name not in kwargs:
            probs.add(prefix + name, f"missing required option of {obj.__name__}")


def check_type_section(registry: Registry, section: Any, prefix: str, probs: Problems,
                       skip: Sequence[str] = ()) -> None:
    """Validate ``{type: Name, **kwargs}`` against ``registry``."""
    if not isinstance(section, dict):
        probs.add(prefix.rstrip('.'), f"expected a mapping with a 'type' key, got {brief(section)}")
        return
    name = section.get('type')
    if name not in registry:
        hint = _hint(name, registry.keys())
        probs.add(prefix + 'type', f"unknown {registry._name} type {brief(name)} (available: "
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
        probs.add(key, f"rejected: {text[:300]}")


def _constructor_params(obj: Any, skip: Sequence[str] = ()) -> List[str]:
    import inspect
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return []
    return [n for n, p in params.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in skip]


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
                    hint = _hint(key, known)
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
    return f"{brief(value)} is not one of auto, cpu, cuda, cuda:N"


def _missing_folder(root: str, key: str, source: str) -> str:
    msg = f"folder '{root}' does not exist"
    if key == 'dataroot_mask':
        msg += (f"; scripts/gen_saliency.py -opt {source} makes the masks (or set dataroot_mask: "
                f"auto to compute them on the fly)")
    elif 'demo' in Path(root).parts:
        msg += '; python -m basicsr.data.demo makes the demo dataset'
    return msg


def check_train_images(pairs: List[Dict[str, Path]], patch_size: Any, prefix: str,
                       probs: Problems) -> None:
    """Headers only: training images smaller than ``patch_size`` or above the pixel limit."""
    from basicsr.utils.image_header import declared_size
    from basicsr.utils.img_util import max_pixels
    limit = max_pixels()
    small, huge = [], []
    for pair in pairs:
        for role in ('vis', 'ir'):
            try:
                size = declared_size(pair[role])
            except OSError:
                continue  # unreadable: the reader names it
            if size is None:
                continue
            if size[0] * size[1] > limit:
                huge.append(f"{pair[role]} ({size[0]}x{size[1]})")
            elif isinstance(patch_size, int) and min(size) < patch_size and role == 'vis':
                small.append(f"{pair[role].name} ({size[0]}x{size[1]})")
    if huge:
        probs.add(prefix.rstrip('.'), f"{len(huge)} image(s) declare more than {limit / 1e6:g} MP "
                  f"(DGFUSION_MAX_PIXELS): {', '.join(huge[:3])}")
    if small:
        probs.add(prefix + 'patch_size', f"{patch_size} is larger than {len(small)} training "
                  f"image(s): {', '.join(small[:3])}" + (' ...' if len(small) > 3 else ''))


def validate_datasets(opt: Dict[str, Any], probs: Problems, is_train: bool) -> None:
    """Check ``datasets``: phases, names, loader keys, dataset class options, ranges, data
    folders (existence, matching names) and the training images' declared sizes."""
    from basicsr.utils.errors import DataError
    from basicsr.utils.img_util import pair_by_stem
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
        roles = []
        for key in ('dataroot_vis', 'dataroot_ir', 'dataroot_mask'):
            root = ds.get(key)
            if key == 'dataroot_mask' and ds['phase'] != 'train':
                continue  # masks are only read for training
            if isinstance(root, str) and root not in ('', 'auto', 'none'):
                if not Path(root).is_dir():
                    probs.add(prefix + key, _missing_folder(root, key, probs.source))
                else:
                    roles.append((key[len('dataroot_'):], root))
        # unmatched names stop training; test and validation sets skip them by name instead
        if phase == 'train' and {r for r, _ in roles} >= {'vis', 'ir'} and not any(
                item.startswith(prefix) for item in probs.items):
            try:
                pairs = pair_by_stem(roles)
            except DataError as exc:
                probs.add(f"datasets.{phase}", str(exc)[:400])
            else:
                check_train_images(pairs, ds.get('patch_size', 128), prefix, probs)
    if is_train and 'train' not in datasets:
        probs.add('datasets.train', 'missing required dataset phase')


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


def validate_train_sections(opt: Dict[str, Any], probs: Problems) -> None:
    """Check the registered sections under ``network_g`` and ``train`` (types and ranges)."""
    check_type_section(ARCH_REGISTRY, opt.get('network_g'), 'network_g.', probs)
    if isinstance(opt.get('network_g'), dict):
        check_ranges(opt['network_g'], ARCH_RANGES, 'network_g.', probs)
    try_build('network_g', lambda: build_from_cfg(ARCH_REGISTRY, opt['network_g'], 'network_g'), probs)
    train = opt.get('train')
    if not isinstance(train, dict):
        return
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
    convention = metrics.get('convention', 'cddfuse')
    if not names or convention not in ('vifb', 'tang', 'cddfuse'):
        return  # an unknown convention is reported once, by the schema
    available = [n for n in METRIC_REGISTRY.keys()
                 if convention in getattr(METRIC_REGISTRY.get(n), 'conventions', ())]
    for i, name in enumerate(names):
        if name not in available:
            hint = _hint(name, available)
            probs.add(f"val.metrics.names.{i}", f"{brief(name)} is not a {convention} metric (available: "
                      f"{', '.join(available)})" + (f"; did you mean '{hint}'?" if hint else ''))


def check_paths(opt: Dict[str, Any], probs: Problems, is_train: bool) -> None:
    """Input files the run reads and the output folder it writes, checked without writing."""
    from basicsr.utils.errors import OutputError
    from basicsr.utils.fs import check_output_dir
    path_opt = opt.get('path') if isinstance(opt.get('path'), dict) else {}
    ckpt = path_opt.get('pretrain_network_g')
    if isinstance(ckpt, str) and ckpt and resolve_checkpoint_path(ckpt) is None:
        probs.add('path.pretrain_network_g',
                  f"'{brief(ckpt)[1:-1]}' is neither a checkpoint file nor a folder holding checkpoints")
    resume = path_opt.get('resume_state')
    if is_train and isinstance(resume, str) and resume and not Path(resume).is_file():
        probs.add('path.resume_state', f"'{brief(resume)[1:-1]}' is not a checkpoint file")
    root_key = 'experiments_root' if is_train else 'results_root'
    root, name = path_opt.get(root_key), opt.get('name')
    if isinstance(root, str) and isinstance(name, str) and not any(
            item.startswith('name:') for item in probs.items):
        try:
            check_output_dir(Path(root) / name, 'experiment folder' if is_train else 'results folder')
        except OutputError as exc:
            probs.add(f"path.{root_key}", str(exc))


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

    ``--dry-run`` and the real run go through the same checks (data folders, masks, checkpoint
    paths, output folder, value ranges); only non-fatal remarks end up in ``warnings``.

    Args:
        path: YAML option file.
        is_train: validate against the training layout (else the test layout).
        overrides: ``key.path=value`` strings from ``--set``.
        dry_run: kept for callers; the checks are the same either way.

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
        hint = _hint(opt.get('model_type'), MODEL_REGISTRY.keys())
        probs.add('model_type', f"unknown model type {brief(opt.get('model_type'))} (available: "
                  f"{', '.join(MODEL_REGISTRY.keys())})" + (f"; did you mean '{hint}'?" if hint else ''))
    validate_datasets(opt, probs, is_train)
    if is_train:
        validate_train_sections(opt, probs)
    else:
        check_type_section(ARCH_REGISTRY, opt.get('network_g'), 'network_g.', probs)
    validate_metrics(opt, probs)
    check_paths(opt, probs, is_train)
    probs.raise_if_any()
    return LoadedOptions(opt, path.read_text(encoding='utf-8'), str(path), probs.warnings)

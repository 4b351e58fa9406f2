"""Option-file building blocks that know no registry contents: value ranges, the fixed-schema
filler, constructor-signature checks of ``type:`` sections, the problem collector, devices and
checkpoint paths. :mod:`basicsr.config` puts them together with the filled registries.
"""
from __future__ import annotations

import copy
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from basicsr.utils.checkpoint_folder import resolve_checkpoint_path
from basicsr.utils.errors import ConfigError, brief, first_line
from basicsr.utils.registry import Registry, did_you_mean, unknown_name


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
DATASET_RANGES: Dict[str, Range] = {'patch_size': Range(MIN_PATCH_SIZE), 'enlarge_ratio': AT_LEAST_ONE,
                                     'max_bad_fraction': UNIT, 'border': NON_NEGATIVE}
ARCH_RANGES: Dict[str, Range] = {'channels': AT_LEAST_ONE}
LOSS_RANGES: Dict[str, Range] = {'loss_weight': NON_NEGATIVE, 'window_size': AT_LEAST_ONE}


def check_ranges(section: Dict[str, Any], ranges: Dict[str, Range], prefix: str,
                 probs: 'Problems') -> None:
    """Report every value of ``section`` outside its range in ``ranges``."""
    for key, rng in ranges.items():
        msg = rng.problem(section.get(key))
        if msg:
            probs.add(prefix + key, msg)


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
            probs.add(path, 'unknown key' + did_you_mean(
                key, schema, prefix, quote=False, otherwise=f" (known here: {', '.join(schema)})"))
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
            probs.add(path, f"{brief(value)} is not one of {', '.join(map(str, spec.choices))}"
                      + did_you_mean(value, spec.choices))
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
                probs.add(prefix + key, f"unknown option for {obj.__name__}" + did_you_mean(
                    key, accepted, prefix, quote=False,
                    otherwise=f" (accepted: {', '.join(accepted)})"))
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
        probs.add(prefix + 'type', unknown_name(f"{registry._name} type", name, registry.keys()))
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
        probs.add(key, f"rejected: {first_line(exc)}")


def _constructor_params(obj: Any, skip: Sequence[str] = ()) -> List[str]:
    import inspect
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return []
    return [n for n, p in params.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in skip]


def _missing_folder(root: str, key: str, source: str, download: Optional[str] = None) -> str:
    """The problem text of a data folder that does not exist, with the command that makes or
    fetches it (``download``: the downloader's command for a public set's folder)."""
    msg = f"folder '{root}' does not exist"
    if key == 'dataroot_mask':
        msg += (f"; scripts/gen_saliency.py -opt {source} makes the masks (or set dataroot_mask: "
                f"auto to compute them on the fly)")
    elif 'demo' in Path(root).parts:
        msg += '; python -m basicsr.data.demo makes the demo dataset'
    elif download:
        msg += f"; get it with: {download}"
    return msg


def check_train_images(pairs: List[Dict[str, Path]], patch_size: Any, prefix: str,
                       probs: Problems, border: int = 0) -> None:
    """Headers only: training images smaller than ``patch_size`` (once ``border`` pixels are cut
    from each side) or above the pixel limit."""
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
            elif isinstance(patch_size, int) and min(size) - 2 * border < patch_size and role == 'vis':
                size = (size[0] - 2 * border, size[1] - 2 * border)
                small.append(f"{pair[role].name} ({size[0]}x{size[1]})")
    if huge:
        probs.add(prefix.rstrip('.'), f"{len(huge)} image(s) declare more than {limit / 1e6:g} MP "
                  f"(DGFUSION_MAX_PIXELS): {', '.join(huge[:3])}")
    if small:
        probs.add(prefix + 'patch_size', f"{patch_size} is larger than {len(small)} training "
                  f"image(s): {', '.join(small[:3])}" + (' ...' if len(small) > 3 else ''))


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
        else:
            # test.py also reads a checkpoint (training may resume from its own folder)
            ckpt_file = None if is_train or not isinstance(ckpt, str) or not ckpt else \
                resolve_checkpoint_path(ckpt)
            _check_apart_from_data(opt, probs, f"path.{root_key}", (
                'experiment folder' if is_train else 'results folder', Path(root) / name),
                [('path.pretrain_network_g', ckpt_file)] if ckpt_file else [])
    _check_masks_apart(opt, probs)


def _data_roots(opt: Dict[str, Any], keys: Sequence[str]) -> List[Tuple[str, str]]:
    """``(dotted key, folder)`` of each dataset folder under ``keys`` that the run reads
    (mask folders only for training sets; ``auto``/``none`` are no folder)."""
    datasets = opt.get('datasets') if isinstance(opt.get('datasets'), dict) else {}
    return [(f"datasets.{phase}.{key}", ds[key]) for phase, ds in datasets.items()
            if isinstance(ds, dict) for key in keys
            if isinstance(ds.get(key), str) and ds[key] not in ('', 'auto', 'none')
            and (key != 'dataroot_mask' or ds.get('phase', phase) == 'train')]


def _check_apart_from_data(opt: Dict[str, Any], probs: Problems, key: str,
                           run_folder: Tuple[str, Path], others: Sequence[Tuple[str, Path]] = ()) -> None:
    """The run's output folder may not be, contain or lie inside a folder the datasets read
    (nor one of ``others``)."""
    from basicsr.utils.fs import overlap_problem
    problem = overlap_problem(run_folder, _data_roots(
        opt, ('dataroot_vis', 'dataroot_ir', 'dataroot_mask')) + list(others))
    if problem:
        probs.add(key, problem)


def _check_masks_apart(opt: Dict[str, Any], probs: Problems) -> None:
    """A mask folder (written by ``scripts/gen_saliency.py``) may not be, contain or lie
    inside an image folder of the datasets."""
    from basicsr.utils.fs import overlap_problem
    images = _data_roots(opt, ('dataroot_vis', 'dataroot_ir'))
    for mask_key, mask in _data_roots(opt, ('dataroot_mask',)):
        problem = overlap_problem(('mask folder', mask), images)
        if problem:
            probs.add(mask_key, problem)

"""Building blocks of option checking that know no registry: value ranges, fixed-schema
fields and their filler, the problem collector."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from basicsr.utils.errors import ConfigError, brief
from basicsr.utils.registry import did_you_mean


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


def option(types, default=REQUIRED, choices=None, doc='', minimum=None, range=None) -> Field:
    """A :class:`Field` from one type or a tuple of types; ``minimum``: a closed lower bound."""
    types = types if isinstance(types, tuple) else (types,)
    return Field(types, default, choices, doc, range or (Range(minimum) if minimum is not None else None))


NUM = (int, float)
OPT_STR = (str, type(None))

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


def type_name(types: Tuple[type, ...]) -> str:
    names = {int: 'integer', float: 'number', str: 'string', bool: 'true/false', dict: 'mapping',
             list: 'list', type(None): 'null'}
    return ' or '.join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def type_ok(value: Any, types: Tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False  # YAML true is not a number
    return isinstance(value, types)


def fill_schema(schema: Dict[str, Any], data: Dict[str, Any], prefix: str, probs: Problems) -> None:
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
            fill_schema(spec, value, path + '.', probs)
        elif not type_ok(value, spec.types):
            probs.add(path, f"expected {type_name(spec.types)}, got {type(value).__name__} {brief(value)}")
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
            fill_schema(spec, data[key], f"{prefix}{key}.", probs)
        elif spec.default is REQUIRED:
            probs.add(f"{prefix}{key}", f"missing required key ({type_name(spec.types)})")
        else:
            data[key] = copy.deepcopy(spec.default)

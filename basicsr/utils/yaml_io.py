"""Safe YAML reading with numbers parsed the way people write them."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from basicsr.utils.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` and ``3e5`` as floats (YAML 1.1 needs a dot)."""


_FLOAT = re.compile(r'^[-+]?(?:\d[\d_]*)?(?:\.\d*)?[eE][-+]?\d+$|^[-+]?\d[\d_]*\.\d*$|^[-+]?\.\d+$'
                    r'|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$')
_Loader.add_implicit_resolver('tag:yaml.org,2002:float', _FLOAT, list('-+0123456789.'))


def load_yaml_text(text: str, source: str = '<string>') -> Any:
    """Parse YAML text safely; syntax errors become a one-line :class:`ConfigError`."""
    loader = _Loader(text)  # a SafeLoader: plain data only, never arbitrary objects
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, 'problem_mark', None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ''
        problem = getattr(exc, 'problem', None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}:{where}: invalid YAML ({problem})") from None
    finally:
        loader.dispose()


def load_yaml_file(path: str | Path) -> Any:
    """Read and parse a YAML file; a missing file is a :class:`ConfigError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding='utf-8')
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read option file ({exc.strerror})") from None
    return load_yaml_text(text, str(path))


def parse_scalar(text: str) -> Any:
    """Parse a ``--set`` value with the same rules as the option files (no eval)."""
    return load_yaml_text(text, '--set value') if text.strip() else ''


def dump_yaml(data: Any) -> str:
    """Serialise plain data to block-style YAML, keeping key order."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)

"""Safe YAML reading with numbers parsed the way people write them.

Beyond the safe loader (plain data only), option files are bounded: aliases may not expand
the document beyond :data:`MAX_NODES` nodes (a "billion laughs" file is refused before it is
built), a file may not exceed :data:`MAX_BYTES`, and a key written twice in one mapping is an
error naming both lines instead of the last one silently winning.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, Set

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from basicsr.utils.errors import ConfigError

MAX_NODES = 100_000  # after alias expansion; option files have a few hundred
MAX_BYTES = 1 << 20


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` and ``3e5`` as floats (YAML 1.1 needs a dot) and
    refuses duplicated keys."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> Dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: Dict[Any, int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, ScalarNode) or key_node.tag == 'tag:yaml.org,2002:merge':
                    continue  # '<<' merges may override keys on purpose
                key = self.construct_object(key_node)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                    if first is None:
                        seen[key] = line
                        continue
                except TypeError:
                    continue  # unhashable: reported by the constructor below
                name = key if isinstance(key, str) else repr(key)
                raise _DuplicateKey(f"duplicate key '{name[:80]}' on lines {first} and {line} (the "
                                    f"second would silently replace the first)")
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(Exception):
    pass


_FLOAT = re.compile(r'^[-+]?(?:\d[\d_]*)?(?:\.\d*)?[eE][-+]?\d+$|^[-+]?\d[\d_]*\.\d*$|^[-+]?\.\d+$'
                    r'|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$')
_Loader.add_implicit_resolver('tag:yaml.org,2002:float', _FLOAT, list('-+0123456789.'))


def _expanded_size(root: Node, source: str) -> int:
    """Node count of the document with every alias expanded, computed without expanding
    (each shared node is counted once per reference, memoised by identity)."""
    sizes: Dict[int, int] = {}
    active: Set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ConfigError(f"{source}: line {node.start_mark.line + 1}: an alias refers to its "
                              f"own enclosing node (recursive structures are not allowed)")
        active.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        active.discard(key)
        sizes[key] = total
        return total

    return size(root)


def load_yaml_text(text: str, source: str = '<string>') -> Any:
    """Parse YAML text safely; any problem becomes a one-line :class:`ConfigError`."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{source}: {len(text)} characters; an option file is expected to stay "
                          f"below {MAX_BYTES} (1 MiB)")
    loader = _Loader(text)  # a SafeLoader: plain data only, never arbitrary objects
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        nodes = _expanded_size(node, source)
        if nodes > MAX_NODES:
            raise ConfigError(f"{source}: aliases expand the document to {nodes:.3g} nodes "
                              f"(limit {MAX_NODES}); write the values out instead of nesting aliases")
        return loader.construct_document(node)
    except _DuplicateKey as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, 'problem_mark', None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ''
        problem = getattr(exc, 'problem', None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}:{where}: invalid YAML ({problem[:200]})") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply") from None
    finally:
        loader.dispose()


def load_yaml_file(path: str | Path) -> Any:
    """Read and parse a YAML file; a missing file is a :class:`ConfigError`."""
    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size > MAX_BYTES:
            raise ConfigError(f"{path}: {path.stat().st_size} bytes; an option file is expected to "
                              f"stay below {MAX_BYTES} (1 MiB)")
        text = path.read_text(encoding='utf-8')
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read option file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    return load_yaml_text(text, str(path))


def parse_scalar(text: str) -> Any:
    """Parse a ``--set`` value with the same rules as the option files (no eval)."""
    return load_yaml_text(text, '--set value') if text.strip() else ''


def dump_yaml(data: Any) -> str:
    """Serialise plain data to block-style YAML, keeping key order."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)

"""Name -> class/function registries that option files select from with ``type:``."""
from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable, Dict, Iterator, Optional

from basicsr.utils.errors import RegistryError, brief


def closest_match(name: str, choices) -> Optional[str]:
    """Return the choice closest to ``name`` (case-insensitive), or None; long values (pasted
    text) get no suggestion."""
    if len(name) > 100:
        return None
    lowered = {str(c).lower(): str(c) for c in choices}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.5)
    return lowered[hits[0]] if hits else None


def did_you_mean(name: Any, choices, prefix: str = '', quote: bool = True,
                 otherwise: str = '') -> str:
    """``"; did you mean 'prefix+closest'?"`` for the choice closest to ``name``, else
    ``otherwise``: the one suggestion builder of every message."""
    hint = closest_match(str(name), choices)
    if hint is None:
        return otherwise
    return f"; did you mean {prefix}{hint}?" if not quote else f"; did you mean '{prefix}{hint}'?"


def unknown_name(what: str, name: Any, choices) -> str:
    """``unknown <what> 'name' (available: a, b); did you mean 'a'?``"""
    choices = list(choices)
    return (f"unknown {what} {brief(name)} (available: {', '.join(map(str, choices))})"
            + did_you_mean(name, choices))


class Registry:
    """A named mapping from strings to classes or functions.

    Example:
        >>> LOSS_REGISTRY.register()(MyLoss)       # or as a decorator
        >>> LOSS_REGISTRY.get('MyLoss')
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._obj_map: Dict[str, Any] = {}

    def register(self, obj: Any = None, name: Optional[str] = None) -> Callable:
        """Register ``obj`` under ``name`` (default: its ``__name__``); usable as a decorator."""

        def _do(o: Any) -> Any:
            key = name or o.__name__
            if key in self._obj_map:
                first = self._obj_map[key]
                raise RegistryError(
                    f"{self._name} registry: name '{key}' registered twice (first by "
                    f"{first.__module__}.{getattr(first, '__qualname__', first)}, again by "
                    f"{o.__module__}.{getattr(o, '__qualname__', o)})")
            self._obj_map[key] = o
            return o

        return _do if obj is None else _do(obj)

    def get(self, name: str) -> Any:
        """Return the object registered as ``name``; unknown names list the available ones."""
        if name not in self._obj_map:
            raise RegistryError(unknown_name(f"{self._name} type", name, sorted(self._obj_map)))
        return self._obj_map[name]

    def __contains__(self, name: str) -> bool:
        return name in self._obj_map

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._obj_map))

    def keys(self):
        return sorted(self._obj_map)

    def __repr__(self) -> str:
        return f"Registry({self._name}: {', '.join(self.keys())})"


def check_kwargs(obj: Callable, kwargs: Dict[str, Any], where: str) -> None:
    """Raise if ``kwargs`` holds a key that ``obj``'s signature does not accept.

    The constructor signature is the schema of a registered option section.
    """
    params = inspect.signature(obj).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in kwargs:
        if key not in allowed:
            hint = did_you_mean(key, allowed, otherwise=f" (accepted: {', '.join(allowed)})")
            raise RegistryError(f"{where}.{key}: unknown option for {obj.__name__}{hint}")


def build_from_cfg(registry: Registry, cfg: Dict[str, Any], where: str = '', **extra: Any) -> Any:
    """Instantiate ``registry.get(cfg['type'])(**rest_of_cfg, **extra)`` without mutating ``cfg``."""
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise RegistryError(f"{where or registry._name}: expected a mapping with a 'type' key, got {cfg!r}")
    kwargs = {k: v for k, v in cfg.items() if k != 'type'}
    obj = registry.get(cfg['type'])
    check_kwargs(obj, kwargs, where or cfg['type'])
    return obj(**kwargs, **extra)


ARCH_REGISTRY = Registry('arch')
DATASET_REGISTRY = Registry('dataset')
LOSS_REGISTRY = Registry('loss')
METRIC_REGISTRY = Registry('metric')
MODEL_REGISTRY = Registry('model')
OPTIMIZER_REGISTRY = Registry('optimizer')
SCHEDULER_REGISTRY = Registry('scheduler')
NETWORK_SPEC_REGISTRY = Registry('network spec')  # keyed by the arch's registered name (archs/contract.py)
LAYOUT_REGISTRY = Registry('layout')  # benchmark folder layouts (basicsr/data/layouts.py)

"""Checks of ``type:`` sections against the constructor signature of the registered class."""
from __future__ import annotations

import typing
from typing import Any, Dict, List, Optional, Sequence, Tuple

from basicsr.options.fields import Problems, type_name, type_ok
from basicsr.utils.errors import brief, first_line
from basicsr.utils.registry import Registry, did_you_mean, unknown_name


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
        if types is not None and not type_ok(value, types):
            probs.add(prefix + key, f"expected {type_name(types)}, got {type(value).__name__} {brief(value)}")
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


def constructor_params(obj: Any, skip: Sequence[str] = ()) -> List[str]:
    import inspect
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return []
    return [n for n, p in params.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in skip]

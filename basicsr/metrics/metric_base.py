"""Registration of plane metrics: one :class:`MetricSpec` per metric name in ``METRIC_REGISTRY``.

A plane function has the signature ``fn(fused, vis, ir, convention) -> float`` where the three
inputs are prepared 2-D float64 arrays of equal shape holding integer values 0..255 and
``convention`` is one of ``vifb``, ``tang``, ``cddfuse``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Tuple, Union

import numpy as np

from basicsr.metrics.prepare import PreparedInputs, check_convention, prepare_inputs
from basicsr.utils.errors import ConfigError, RegistryError
from basicsr.utils.registry import METRIC_REGISTRY


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric: its plane function, the conventions defining it, and its direction."""

    name: str
    fn: Callable
    conventions: Tuple[str, ...]
    higher_better: Dict[str, bool]

    def __call__(self, fused: Any, vis: Any, ir: Any, convention: str = 'cddfuse') -> float:
        """The metric on whole images: ``METRIC_REGISTRY.get('EN')(fused, vis, ir, 'tang')``.

        Images as for ``compute_metrics`` (RGB or gray arrays, 0..255); the convention's input
        preparation is applied. ``fn`` is the plane-level function behind it.
        """
        check_convention(convention)
        if convention not in self.conventions:
            raise ConfigError(f"metric '{self.name}' is not defined in convention '{convention}' "
                              f"(defined in: {', '.join(self.conventions)})")
        return self.evaluate(prepare_inputs(fused, vis, ir, convention))

    def evaluate(self, prepared: PreparedInputs) -> float:
        """The metric on prepared planes (see :func:`basicsr.metrics.prepare.prepare_inputs`).

        ``vifb``: the plain mean of the per-channel values, except SF, which is computed once
        on the H x 3W folded planes (as the VIFB toolbox does).
        """
        conv = prepared.convention
        if conv == 'vifb' and self.name == 'SF':
            return float(self.fn(*prepared.folded, conv))
        values = [float(self.fn(*plane, conv)) for plane in prepared.planes]
        return values[0] if len(values) == 1 else float(np.mean(values))


def register_metric(name: str, conventions: Tuple[str, ...],
                    higher_better: Union[bool, Dict[str, bool]] = True) -> Callable:
    """Decorator storing ``MetricSpec(name, fn, conventions, higher_better)`` in the
    metric registry.

    ``higher_better`` is either one bool for every convention or a dict per convention.
    The decorated function is returned unchanged.
    """
    conventions = tuple(conventions)
    if isinstance(higher_better, dict):
        missing = [c for c in conventions if c not in higher_better]
        if missing:
            raise ValueError(f"register_metric('{name}'): higher_better lacks conventions "
                             f"{missing}")
        direction = {c: bool(higher_better[c]) for c in conventions}
    else:
        direction = {c: bool(higher_better) for c in conventions}

    def _wrap(fn: Callable) -> Callable:
        if name in METRIC_REGISTRY:
            first = METRIC_REGISTRY.get(name).fn
            raise RegistryError(f"metric registry: name '{name}' registered twice (first by "
                                f"{first.__module__}.{first.__qualname__}, again by "
                                f"{fn.__module__}.{fn.__qualname__})")
        METRIC_REGISTRY.register(MetricSpec(name, fn, conventions, direction), name=name)
        return fn

    return _wrap

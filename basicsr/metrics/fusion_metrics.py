"""Front of the fusion metrics: one call evaluates many metrics under one convention.

Three reference evaluators report different numbers under the same metric names:
``vifb`` (VIFB MATLAB toolbox, RGB per channel), ``tang`` (Tang's
Evaluation-for-Image-Fusion MATLAB code) and ``cddfuse`` (CDDFuse ``Evaluator.py``, the
default). Every reported number must carry its convention; never mix conventions in a table.

Example:
    >>> scores = compute_metrics(fused_rgb, vis_rgb, ir_gray, convention='cddfuse')
    >>> scores['EN'], scores['SSIM']
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Union

import numpy as np

from basicsr.metrics.metric_base import MetricSpec
from basicsr.metrics.prepare import CONVENTIONS, PreparedInputs, check_convention, prepare_inputs
from basicsr.utils.errors import ConfigError
from basicsr.utils.registry import METRIC_REGISTRY

DEFAULT_METRICS = ('EN', 'SD', 'SF', 'MI', 'SCD', 'VIF', 'Qabf', 'SSIM')
DEFAULT_CONVENTION = 'cddfuse'
# Order of columns in tables; metrics registered under other names follow alphabetically.
METRIC_ORDER = ('EN', 'SD', 'SF', 'AG', 'MI', 'CC', 'SCD', 'VIF', 'Qabf', 'Nabf', 'SSIM',
                'MS_SSIM', 'PSNR', 'MSE', 'RMSE', 'CE', 'EI', 'Qcb', 'Qcv', 'FMI')

__all__ = ['CONVENTIONS', 'DEFAULT_METRICS', 'DEFAULT_CONVENTION', 'METRIC_ORDER', 'metrics_for',
           'default_metrics', 'higher_is_better', 'compute_metrics', 'evaluate_prepared']


def _ordered_names() -> List[str]:
    known = [n for n in METRIC_ORDER if n in METRIC_REGISTRY]
    return known + sorted(n for n in METRIC_REGISTRY.keys() if n not in METRIC_ORDER)


def _spec(name: str, convention: str) -> MetricSpec:
    """Registered spec of ``name``; ConfigError when unknown or undefined in ``convention``."""
    spec = METRIC_REGISTRY.get(name)  # RegistryError (a ConfigError) lists the known names
    if convention not in spec.conventions:
        raise ConfigError(f"metric '{name}' is not defined in convention '{convention}' "
                          f"(defined in: {', '.join(spec.conventions)})")
    return spec


def metrics_for(convention: str) -> List[str]:
    """Names of the metrics defined in ``convention``, in table order."""
    check_convention(convention)
    return [n for n in _ordered_names() if convention in METRIC_REGISTRY.get(n).conventions]


def default_metrics(convention: str) -> List[str]:
    """``DEFAULT_METRICS`` restricted to those defined in ``convention``
    (``vifb`` has no SCD and no VIF)."""
    defined = set(metrics_for(convention))
    return [n for n in DEFAULT_METRICS if n in defined]


def higher_is_better(name: str, convention: str = DEFAULT_CONVENTION) -> bool:
    """Whether a larger value of ``name`` is better under ``convention``."""
    check_convention(convention)
    return _spec(name, convention).higher_better[convention]


def evaluate_prepared(prepared: PreparedInputs, names: Iterable[str]) -> Dict[str, float]:
    """Evaluate metrics on already prepared planes (see ``prepare.prepare_inputs``).

    ``vifb``: each metric is the plain mean of its per-channel values, except SF, which is
    computed once on the H x 3W folded planes.
    """
    return {name: _spec(name, prepared.convention).evaluate(prepared) for name in names}


def compute_metrics(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray,
                    names: Optional[Union[str, Iterable[str]]] = None,
                    convention: str = DEFAULT_CONVENTION) -> Dict[str, float]:
    """Compute fusion metrics of one image triple.

    Args:
        fused, vis, ir: numpy arrays in **RGB** order, (H, W, 3), or gray (H, W), of equal
            H, W; uint8, or float holding values 0..255 (non-integers are rounded to 8 bits
            with a warning; 16-bit and other integer dtypes raise DataError).
        names: metric names (registered names, e.g. ``['EN', 'MI']``), ``'all'`` for every metric
            of the convention, or None for ``default_metrics(convention)``.
        convention: ``'cddfuse'`` (default), ``'tang'`` or ``'vifb'``.

    Returns:
        ``{name: value}`` in the order requested; values may be NaN or inf on degenerate input
        (constant images, identical images; documented per metric).

    Raises:
        ConfigError: unknown convention or metric, or a metric undefined in the convention.
        DataError: bad dtype, shape or size mismatch, 1-channel fused with RGB source for vifb.
    """
    check_convention(convention)
    if names is None:
        names = default_metrics(convention)
    elif isinstance(names, str):
        names = metrics_for(convention) if names == 'all' else [names]
    names = list(names)
    for name in names:
        _spec(name, convention)
    return evaluate_prepared(prepare_inputs(fused, vis, ir, convention), names)

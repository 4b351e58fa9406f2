"""Front of the fusion metrics: one call evaluates many metrics under one convention.

Three reference evaluators report different numbers under the same metric names
(spec ``metrics.md``): ``vifb`` (VIFB MATLAB toolbox, RGB per channel), ``tang`` (Tang's
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
           'default_metrics', 'higher_is_better', 'compute_metrics', 'evaluate_prepared',
           'metric_en', 'metric_sd', 'metric_sf', 'metric_ag', 'metric_mi', 'metric_cc',
           'metric_scd', 'metric_vif', 'metric_qabf', 'metric_nabf', 'metric_ssim',
           'metric_ms_ssim', 'metric_psnr', 'metric_mse', 'metric_rmse', 'metric_ce',
           'metric_ei', 'metric_qcb', 'metric_qcv', 'metric_fmi']


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
    computed once on the H x 3W folded planes (spec §3.11).
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
        names: metric names (spec names, e.g. ``['EN', 'MI']``), ``'all'`` for every metric
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


def _one(name: str, fused: np.ndarray, vis: np.ndarray, ir: np.ndarray, convention: str) -> float:
    return compute_metrics(fused, vis, ir, [name], convention)[name]


# One function per metric. Arguments as ``compute_metrics``; arrows: better direction.

def metric_en(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray,
              convention: str = 'cddfuse') -> float:
    """EN (up): entropy of F's 256-bin histogram, bits. Same on equal gray data in every
    convention; ``vifb`` averages the R, G, B planes."""
    return _one('EN', fused, vis, ir, convention)


def metric_sd(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray,
              convention: str = 'cddfuse') -> float:
    """SD (up): population standard deviation of F (``vifb``: per-channel mean)."""
    return _one('SD', fused, vis, ir, convention)


def metric_sf(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray,
              convention: str = 'cddfuse') -> float:
    """SF (up): ``sqrt(RF + CF)`` of squared neighbour differences. ``tang``/``cddfuse``: means
    over the differences; ``vifb``: RGB folded to H x 3W, both sums divided by H*3W."""
    return _one('SF', fused, vis, ir, convention)


def metric_ag(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray,
              convention: str = 'cddfuse') -> float:
    """AG (up): ``sqrt((gx^2 + gy^2)/2)`` with MATLAB gradients; ``cddfuse`` takes the mean,
    ``vifb``/``tang`` divide the sum by (H-1)(W-1)."""
    return _one('AG', fused, vis, ir, convention)


def metric_mi(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray,
              convention: str = 'cddfuse') -> float:
    """MI (up): ``MI(IR, F) + MI(VI, F)``; nats for ``cddfuse``/``vifb``, bits with 254/255
    merged in the joint histogram for ``tang``."""
    return _one('MI', fused, vis, ir, convention)


def metric_cc(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray,
              convention: str = 'cddfuse') -> float:
    """CC (up): ``(corr(IR, F) + corr(VI, F)) / 2``; ``tang``, ``cddfuse``; NaN on constants."""
    return _one('CC', fused, vis, ir, convention)


def metric_scd(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray,
               convention: str = 'cddfuse') -> float:
    """SCD (up): ``corr(F - VI, IR) + corr(F - IR, VI)``; ``tang``, ``cddfuse``."""
    return _one('SCD', fused, vis, ir, convention)


def metric_vif(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray,
               convention: str = 'cddfuse') -> float:
    """VIF (up): multi-scale pixel VIF ``vifp(IR, F) + vifp(VI, F)``; a NaN term is 1.0 under
    ``cddfuse`` and stays NaN under ``tang``."""
    return _one('VIF', fused, vis, ir, convention)


def metric_qabf(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray,
                convention: str = 'cddfuse') -> float:
    """Qabf (up): Xydeas-Petrovic edge preservation; ``vifb`` scales the images by 255 first."""
    return _one('Qabf', fused, vis, ir, convention)


def metric_nabf(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray,
                convention: str = 'tang') -> float:
    """Nabf (down): Kumar's fusion-artefact measure, ``tang`` only, with the reference's
    permuted roles (IR in the fused slot)."""
    return _one('Nabf', fused, vis, ir, convention)


def metric_ssim(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray,
                convention: str = 'cddfuse') -> float:
    """SSIM (up): ``cddfuse`` 7x7 uniform, L = 2, sum over sources (0..2); ``vifb`` Gaussian 11,
    L = 255, sum (0..2); ``tang`` MATLAB ssim, L = 1, mean (0..1)."""
    return _one('SSIM', fused, vis, ir, convention)


def metric_ms_ssim(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray,
                   convention: str = 'tang') -> float:
    """MS_SSIM (up): Ma et al.'s MEF-MS-SSIM of F against {IR, VI}, 3 levels; ``tang`` only;
    -inf when min(H, W) < 44."""
    return _one('MS_SSIM', fused, vis, ir, convention)


def metric_psnr(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray,
                convention: str = 'cddfuse') -> float:
    """PSNR (up): ``cddfuse`` ``10 log10(max(F)^2 / MSE)``; ``tang`` peak 255 over the 0..1
    MSE; ``vifb`` from the root-of-sum distance. Three unrelated scales (10-15, 59-66, 54-59 dB)."""
    return _one('PSNR', fused, vis, ir, convention)


def metric_mse(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray,
               convention: str = 'cddfuse') -> float:
    """MSE (down): mean of ``mean((S - F)^2)`` over the sources; 0..255 for ``cddfuse``,
    0..1 for ``tang``."""
    return _one('MSE', fused, vis, ir, convention)


def metric_rmse(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray,
                convention: str = 'vifb') -> float:
    """RMSE (down): VIFB's ``mean_S sqrt(sum((S - F)^2)) / N``; ``vifb`` only."""
    return _one('RMSE', fused, vis, ir, convention)


def metric_ce(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray,
              convention: str = 'vifb') -> float:
    """CE (down): VIFB cross entropy (a KL divergence, bits) averaged over the sources."""
    return _one('CE', fused, vis, ir, convention)


def metric_ei(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray,
              convention: str = 'vifb') -> float:
    """EI (up): mean Sobel gradient magnitude of F, replicate border; ``vifb`` only."""
    return _one('EI', fused, vis, ir, convention)


def metric_qcb(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray,
               convention: str = 'vifb') -> float:
    """Qcb (up): Chen-Blum perceptual quality with a CSF filter; ``vifb`` only."""
    return _one('Qcb', fused, vis, ir, convention)


def metric_qcv(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray,
               convention: str = 'vifb') -> float:
    """Qcv (down): Chen-Varshney block-weighted filtered distortion; ``vifb`` only."""
    return _one('Qcv', fused, vis, ir, convention)


def metric_fmi(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray,
               convention: str = 'tang') -> float:
    """FMI (up): feature mutual information on edge maps, 3x3 windows; ``tang`` only,
    best effort (no exact reference exists)."""
    return _one('FMI', fused, vis, ir, convention)


"""Fusion quality metrics under three reference conventions (``vifb``, ``tang``, ``cddfuse``).

Every metric module is imported explicitly so that importing the package registers all
metrics in ``METRIC_REGISTRY``; the public API lives in ``fusion_metrics``. One metric on whole
images is its registered :class:`MetricSpec`: ``METRIC_REGISTRY.get('EN')(fused, vis, ir, 'tang')``.
"""
from basicsr.metrics import common, metric_base, prepare  # noqa: F401
from basicsr.metrics import basic_metrics, ssim_metrics  # noqa: F401
from basicsr.metrics import contrast_metrics, fmi_metric, gradient_metrics, vif_metric  # noqa: F401
from basicsr.metrics.fusion_metrics import (CONVENTIONS, DEFAULT_CONVENTION, DEFAULT_METRICS,
                                            METRIC_ORDER, compute_metrics, default_metrics,
                                            evaluate_prepared, higher_is_better, metrics_for)
from basicsr.metrics.metric_base import MetricSpec, register_metric
from basicsr.metrics.prepare import PreparedInputs, prepare_inputs, read_image_rgb

__all__ = [
    'CONVENTIONS', 'DEFAULT_CONVENTION', 'DEFAULT_METRICS', 'METRIC_ORDER', 'MetricSpec',
    'PreparedInputs', 'compute_metrics', 'default_metrics', 'evaluate_prepared',
    'higher_is_better', 'metrics_for', 'prepare_inputs', 'read_image_rgb', 'register_metric',
]

"""Fusion quality metrics under three reference conventions (``vifb``, ``tang``, ``cddfuse``).

Every metric module is imported explicitly so that importing the package registers all
metrics in ``METRIC_REGISTRY``; the public API lives in ``fusion_metrics``.
"""
from basicsr.metrics import common, metric_base, prepare  # noqa: F401
from basicsr.metrics import basic_metrics, ssim_metrics  # noqa: F401
from basicsr.metrics import contrast_metrics, fmi_metric, gradient_metrics, vif_metric  # noqa: F401
from basicsr.metrics.fusion_metrics import (CONVENTIONS, DEFAULT_CONVENTION, DEFAULT_METRICS,
                                            METRIC_ORDER, compute_metrics, default_metrics,
                                            evaluate_prepared, higher_is_better, metric_ag,
                                            metric_cc, metric_ce, metric_ei, metric_en,
                                            metric_fmi, metric_mi, metric_ms_ssim, metric_mse,
                                            metric_nabf, metric_psnr, metric_qabf, metric_qcb,
                                            metric_qcv, metric_rmse, metric_scd, metric_sd,
                                            metric_sf, metric_ssim, metric_vif, metrics_for)
from basicsr.metrics.metric_base import MetricSpec, register_metric
from basicsr.metrics.prepare import PreparedInputs, prepare_inputs, read_image_rgb

__all__ = [
    'CONVENTIONS', 'DEFAULT_CONVENTION', 'DEFAULT_METRICS', 'METRIC_ORDER', 'MetricSpec',
    'PreparedInputs', 'compute_metrics', 'default_metrics', 'evaluate_prepared',
    'higher_is_better', 'metrics_for', 'prepare_inputs', 'read_image_rgb', 'register_metric',
    'metric_ag', 'metric_cc', 'metric_ce', 'metric_ei', 'metric_en', 'metric_fmi', 'metric_mi',
    'metric_ms_ssim', 'metric_mse', 'metric_nabf', 'metric_psnr', 'metric_qabf', 'metric_qcb',
    'metric_qcv', 'metric_rmse', 'metric_scd', 'metric_sd', 'metric_sf', 'metric_ssim',
    'metric_vif',
]

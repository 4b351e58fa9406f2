"""Training losses. Each loss module is imported explicitly so its classes register themselves."""
from typing import Any, Dict

import torch.nn as nn

from basicsr.losses import fusion_losses  # noqa: F401  (registers the fusion losses)
from basicsr.losses.fusion_losses import (FrequencyAmplitudeLoss, MaxGradientLoss,
                                          MaxIntensityLoss, SaliencyMaskL1Loss, SSIMFusionLoss,
                                          frequency_amplitude_loss, max_gradient_loss,
                                          max_intensity_loss, saliency_mask_l1_loss,
                                          sobel_gradient, ssim_fusion_loss)
from basicsr.utils.registry import LOSS_REGISTRY, build_from_cfg

__all__ = [
    'build_loss', 'FrequencyAmplitudeLoss', 'MaxGradientLoss', 'MaxIntensityLoss',
    'SaliencyMaskL1Loss', 'SSIMFusionLoss', 'frequency_amplitude_loss', 'max_gradient_loss',
    'max_intensity_loss', 'saliency_mask_l1_loss', 'sobel_gradient', 'ssim_fusion_loss',
]


def build_loss(cfg: Dict[str, Any], where: str = 'train.losses') -> nn.Module:
    """Build a loss from an option dict such as ``{'type': 'MaxIntensityLoss', 'loss_weight': 10.0}``.

    ``where`` is the dotted option path used in error messages; ``cfg`` is not modified.
    """
    return build_from_cfg(LOSS_REGISTRY, cfg, where=where)

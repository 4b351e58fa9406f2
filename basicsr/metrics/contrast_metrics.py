"""Human-perception fusion metrics of the ``vifb`` convention: Qcb and Qcv.

* Qcb: Y. Chen and R. S. Blum, "A new automated quality assessment algorithm for image
  fusion", Image and Vision Computing 27(10), 2009.
* Qcv: H. Chen and P. K. Varshney, "A human perception inspired quality metric for image
  fusion based on regional information", Information Fusion 8(2), 2007.

Both take one channel plane (H, W) of the fused, visible and infrared images as float64
holding integers 0..255, re-normalise each to 0..255 and filter it in the frequency domain
with a contrast sensitivity function (CSF).
"""
from __future__ import annotations


import cv2
import numpy as np

from basicsr.metrics.common import SOBEL_X, SOBEL_Y, filter2_same
from basicsr.metrics.metric_base import register_metric
from basicsr.utils.errors import ConfigError
from basicsr.utils.rounding import matlab_round


# Qcb: CSF of Mannos-Sakrison type (difference of Gaussians) and local-contrast constants.
_CB_F0, _CB_F1, _CB_A = 15.3870, 1.3456, 0.7622
_CB_SIGMAS = (2.0, 4.0)
_CB_HALF = 15  # 31x31 windows
_CB_Z = 1e-4
# Qcv: block size and saliency exponent.
_CV_BLOCK = 16
_CV_ALPHA = 5


def _check(name: str, convention: str) -> None:
    if convention != 'vifb':
        raise ConfigError(f"{name}: convention '{convention}' not supported (defined in vifb only)")


def norm255(x: np.ndarray) -> np.ndarray:
    """VIFB ``normalize1``: an all-zero plane is kept; otherwise round(255 * (x-min)/(max-min)).

    A constant non-zero plane gives NaN (0/0) exactly as the reference does.
    """
    x = np.asarray(x, dtype=np.float64)
    hi, lo = x.max(), x.min()
    if hi == 0 and lo == 0:
        return x.copy()
    with np.errstate(divide='ignore', invalid='ignore'):
        return matlab_round((x - lo) / (hi - lo) * 255.0)


def _radial_frequency(shape, scale_div: float) -> np.ndarray:
    """``r = sqrt(u^2 + v^2)`` on MATLAB's ``freqspace`` grid, u scaled by W/div, v by H/div.

    Returned in unshifted (FFT) order, i.e. already ``ifftshift``-ed.
    """
    h, w = shape
    fu = (np.arange(w) - w // 2) * (2.0 / w) * (w / scale_div)
    fv = (np.arange(h) - h // 2) * (2.0 / h) * (h / scale_div)
    r = np.sqrt(fu[None, :] ** 2 + fv[:, None] ** 2)
    return np.fft.ifftshift(r)


def _csf_filter(image: np.ndarray, response: np.ndarray) -> np.ndarray:
    """Real part of ``IFFT2(FFT2(image) * response)`` (response in FFT order).

    The response depends on |frequency| only, so it is symmetric under k -> -k and the
    half-spectrum transforms give the same real result at half the cost.
    """
    w = image.shape[1]
    return np.fft.irfft2(np.fft.rfft2(image) * response[:, :w // 2 + 1], s=image.shape)


def _gauss_filter_same(image: np.ndarray, sigma: float) -> np.ndarray:
    """``filter2(G, image, 'same')``, G = exp(-(x^2+y^2)/(2 s^2))/(2 pi s^2) on 31x31, zero padding."""
    ax = np.arange(-_CB_HALF, _CB_HALF + 1, dtype=np.float64)
    k = np.exp(-(ax * ax) / (2.0 * sigma * sigma))
    return cv2.sepFilter2D(np.ascontiguousarray(image), cv2.CV_64F, k, k / (2.0 * np.pi * sigma * sigma),
                           borderType=cv2.BORDER_CONSTANT)


def _masked_contrast(image: np.ndarray, csf: np.ndarray) -> np.ndarray:
    filtered = _csf_filter(image, csf)
    with np.errstate(divide='ignore', invalid='ignore'):
        c = np.abs(_gauss_filter_same(filtered, _CB_SIGMAS[0])
                   / _gauss_filter_same(filtered, _CB_SIGMAS[1]) - 1.0)
        return c ** 3 / (c ** 2 + _CB_Z)


@register_metric('Qcb', conventions=('vifb',), higher_better=True)
def qcb(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray, convention: str) -> float:
    """Chen-Blum Qcb on one plane; range 0..1.

    NaN in degenerate 0/0 cases: a constant non-zero plane (see :func:`norm255`), or zero
    masked contrast in all three images at some pixel.
    """
    _check('Qcb', convention)
    vis_n, ir_n, fused_n = norm255(vis), norm255(ir), norm255(fused)
    r = _radial_frequency(fused_n.shape, 30.0)
    csf = np.exp(-(r / _CB_F0) ** 2) - _CB_A * np.exp(-(r / _CB_F1) ** 2)
    c_vis = _masked_contrast(vis_n, csf)
    c_ir = _masked_contrast(ir_n, csf)
    c_f = _masked_contrast(fused_n, csf)
    with np.errstate(divide='ignore', invalid='ignore'):
        q_vis = np.where(c_vis < c_f, c_vis / c_f, c_f / c_vis)
        q_ir = np.where(c_ir < c_f, c_ir / c_f, c_f / c_ir)
        total = c_vis ** 2 + c_ir ** 2
        lam_vis = c_vis ** 2 / total
        lam_ir = c_ir ** 2 / total
    return float(np.mean(lam_vis * q_vis + lam_ir * q_ir))


def _block_sums(x: np.ndarray) -> np.ndarray:
    """Sums over non-overlapping 16x16 blocks from the top-left, partial blocks zero-padded."""
    h, w = x.shape
    b = _CV_BLOCK
    ph, pw = -(-h // b) * b, -(-w // b) * b
    padded = np.zeros((ph, pw))
    padded[:h, :w] = x
    return padded.reshape(ph // b, b, pw // b, b).sum(axis=(1, 3))


@register_metric('Qcv', conventions=('vifb',), higher_better=False)
def qcv(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray, convention: str) -> float:
    """Chen-Varshney Qcv on one plane; lower is better, 0 when F equals both sources.

    NaN when neither source has any edge (all block saliencies 0) or a plane is constant
    and non-zero (see :func:`norm255`).
    """
    _check('Qcv', convention)
    vis_n, ir_n, fused_n = norm255(vis), norm255(ir), norm255(fused)
    r = _radial_frequency(fused_n.shape, 8.0)
    csf = 2.6 * (0.0192 + 0.144 * r) * np.exp(-(0.144 * r) ** 1.1)
    num = 0.0
    den = 0.0
    for src in (vis_n, ir_n):
        gx = filter2_same(SOBEL_X, src)
        gy = filter2_same(-SOBEL_Y, src)  # [[-1,-2,-1],[0,0,0],[1,2,1]]
        saliency = _block_sums(np.sqrt(gx * gx + gy * gy) ** _CV_ALPHA)
        diff = _csf_filter(src - fused_n, csf)
        distortion = _block_sums(diff * diff) / float(_CV_BLOCK * _CV_BLOCK)
        num = num + saliency * distortion
        den = den + saliency
    with np.errstate(divide='ignore', invalid='ignore'):
        return float(np.sum(num) / np.sum(den))

"""Building blocks shared by the fusion metrics (numpy float64, MATLAB semantics).

All functions take 2-D float arrays and return float64 arrays or scalars.
"""
from __future__ import annotations

import cv2
import numpy as np

# The one Sobel pair of the metrics (MATLAB's orientation: y points up); others are +-these / 8.
SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
SOBEL_Y = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])


def gaussian_1d(size: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian (size,), float64; its outer product is MATLAB's
    ``fspecial('gaussian', size, sigma)`` (no entry falls below its eps cut-off here)."""
    return cv2.getGaussianKernel(size, sigma, cv2.CV_64F).ravel()



def filter2_same(kernel: np.ndarray, image: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(kernel, image, 'same')``: correlation with zero padding, odd kernels."""
    kh, kw = kernel.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"filter2_same expects an odd-sized kernel, got {kernel.shape}")
    image = np.ascontiguousarray(image, dtype=np.float64)
    return cv2.filter2D(image, cv2.CV_64F, np.ascontiguousarray(kernel, dtype=np.float64),
                        borderType=cv2.BORDER_CONSTANT)


def conv2_same(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """MATLAB ``conv2(image, kernel, 'same')``: true convolution (flipped kernel), zero padding."""
    return filter2_same(np.ascontiguousarray(kernel[::-1, ::-1]), image)


def corr2(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation over all pixels (MATLAB ``corr2``); NaN when a side is constant."""
    dx = np.asarray(x, np.float64) - np.mean(x)
    dy = np.asarray(y, np.float64) - np.mean(y)
    with np.errstate(invalid='ignore', divide='ignore'):
        return float(np.sum(dx * dy) / np.sqrt(np.sum(dx * dx) * np.sum(dy * dy)))


def entropy_from_counts(counts: np.ndarray, base: float = 2.0) -> float:
    """Shannon entropy of a histogram of counts (any shape); empty bins are skipped."""
    counts = np.asarray(counts, dtype=np.float64).ravel()
    p = counts[counts > 0] / counts.sum()
    return float(-np.sum(p * np.log(p)) / np.log(base))


def histogram256(image: np.ndarray) -> np.ndarray:
    """Counts of the integer values 0..255 of ``image`` (values must already be integers)."""
    return np.bincount(np.asarray(image).astype(np.int64).ravel(), minlength=256)[:256]


def joint_histogram256(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """256x256 joint counts of two integer images with values 0..255 (rows: a, columns: b)."""
    idx = np.asarray(a).astype(np.int64).ravel() * 256 + np.asarray(b).astype(np.int64).ravel()
    return np.bincount(idx, minlength=65536).reshape(256, 256)

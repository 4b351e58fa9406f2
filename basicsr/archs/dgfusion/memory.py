"""DGFusion's memory model for the memory guard of :func:`basicsr.inference.fuse`.

A whole-frame DGFusion pass keeps several full-resolution maps and their spectra alive at once
(the FFTs are global), so its peak memory grows with the pixel count times the width C. The
network's lean inference path (what it runs without autograd) keeps at most eight 4C-channel
maps at full size. Measured peak, float32 under ``torch.inference_mode`` on a CPU (peak
resident memory of a fresh process during one 512x640 pass minus its level before, large
blocks returned to the OS as the entry points set it), in bytes per pixel:

====  =========  ==================
 C    512x640    model 512 + 160 C
====  =========  ==================
 2    455        832
 4    815        1152
 8    1283       1792
 16   2253       3072
====  =========  ==================

:func:`bytes_per_pixel` is that linear model, with a margin for glibc's default allocator
(which keeps freed blocks resident: 2.8 KB per pixel at C=16) and for the fixed overhead of
small frames: about 3 KiB per pixel at the published width C=16, so a 640x512 frame needs
~1 GB and a 4000x3000 photo ~37 GB. On a GPU the same tensors live in device memory, plus the
FFT library's work space, which the 10% margin of the guard leaves room for.
"""
from __future__ import annotations

import torch.nn as nn

BASE_BYTES_PER_PIXEL = 512
BYTES_PER_PIXEL_PER_CHANNEL = 160


def bytes_per_pixel(channels: int) -> int:
    """Peak bytes per pixel of one whole-frame forward pass at width ``channels``."""
    return BASE_BYTES_PER_PIXEL + BYTES_PER_PIXEL_PER_CHANNEL * int(channels)


def network_bytes_per_pixel(net: nn.Module) -> int:
    """:func:`bytes_per_pixel` at ``net``'s width (the memory model of DGFusion's spec)."""
    return bytes_per_pixel(net.channels)

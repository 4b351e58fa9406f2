"""DGFusion's building blocks and the wiring of its spectra, shared by every evaluation
(module forward, lean inference, reference, export).

The blocks are ``nn.Sequential`` subclasses that name their convolutions (``first``,
``second``, ``convs``), so the evaluations read the weights by name while the state-dict keys
stay those of the published code (``amp_joint.0.weight`` ...). :func:`stage1_spectra` and
:func:`attention_inputs` state once which spectrum feeds which attention input.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple, TypeVar

import torch
import torch.nn as nn

from basicsr.archs.dgfusion.spectral import LRELU_SLOPE

T = TypeVar('T')


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    """3x3 convolution, stride 1, zero padding 1, with bias (size-preserving)."""
    return nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=True)


def lrelu() -> nn.LeakyReLU:
    """In-place LeakyReLU(0.1): autograd keeps the output instead of a second copy of the
    convolution output (the slope is positive, so the output determines the gradient)."""
    return nn.LeakyReLU(LRELU_SLOPE, inplace=True)


class TwoConvBlock(nn.Sequential):
    """A sequence of layers with two convolutions, ``first`` (index 0) and ``second`` (index
    ``SECOND``): the indices are the published parameter names, the properties what code reads."""

    SECOND = 2

    @property
    def first(self) -> nn.Conv2d:
        return self[0]

    @property
    def second(self) -> nn.Conv2d:
        return self[self.SECOND]


class ConvLReLUBlock(TwoConvBlock):
    """conv(cin->hidden), lrelu, conv(hidden->cout), lrelu (``hidden`` defaults to ``cout``).

    (B,cin,H,W) -> (B,cout,H,W).
    """

    def __init__(self, cin: int, cout: int, hidden: Optional[int] = None) -> None:
        hidden = cout if hidden is None else hidden
        super().__init__(conv3x3(cin, hidden), lrelu(), conv3x3(hidden, cout), lrelu())


class ShallowEncoder(nn.Sequential):
    """conv(1->C), lrelu, conv(C->2C), lrelu, conv(2C->4C); no final activation.

    (B,1,H,W) -> (B,4C,H,W); ``convs`` are the three convolutions in order.
    """

    def __init__(self, c: int) -> None:
        super().__init__(conv3x3(1, c), lrelu(), conv3x3(c, 2 * c), lrelu(), conv3x3(2 * c, 4 * c))

    @property
    def convs(self) -> Tuple[nn.Conv2d, nn.Conv2d, nn.Conv2d]:
        return self[0], self[2], self[4]


class Projection(TwoConvBlock):
    """An attention block's ``wq``/``wk``/``wv``: conv(8C->8C), ReLU, conv(8C->8C)."""

    def __init__(self, c8: int) -> None:
        super().__init__(conv3x3(c8, c8), nn.ReLU(inplace=True), conv3x3(c8, c8))

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(first(x))``, the input of ``second``."""
        return self[1](self.first(x))


class Gate(TwoConvBlock):
    """conv(8C->4C), conv(4C->8C), sigmoid; the convolutions are ``first`` and ``second``."""

    SECOND = 1

    def __init__(self, channels: int) -> None:
        super().__init__(conv3x3(8 * channels, 4 * channels), conv3x3(4 * channels, 8 * channels),
                         nn.Sigmoid())


def stage1_spectra(amp_joint: T, pha_joint: T, amp_disc: T, pha_disc: T) -> Tuple[Tuple[T, T], ...]:
    """The three spectra of stage 1 as (amplitude, phase) pairs: ``S_d`` (refined
    discrepancy), ``S_ap`` (joint amplitude, discrepancy phase), ``S_pa`` (discrepancy
    amplitude, joint phase). Works on tensors and on names alike."""
    return (amp_disc, pha_disc), (amp_joint, pha_disc), (amp_disc, pha_joint)


def attention_inputs(s_d: T, s_ap: T, s_pa: T) -> Dict[str, Tuple[T, T, T]]:
    """(q, k, v) of each attention block of stage 2: ``frequency`` q=S_d, k=S_pa, v=S_ap;
    ``spatial`` q=S_d, k=S_ap, v=S_pa. Both blocks share q, hence the skip ``Re ifft2(q)``."""
    return {'frequency': (s_d, s_pa, s_ap), 'spatial': (s_d, s_ap, s_pa)}

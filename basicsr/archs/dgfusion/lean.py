"""Lean inference forward of DGFusion: the same function as the module's forward, computed
with less time and memory. ``DGFusion.forward`` takes it by itself when autograd is off.

What makes it lean (each measured, see ``scripts/benchmark.py``):

* every convolution chain between two FFT stages (encoders, joint amplitude/phase blocks,
  refine blocks, attention projections, gates + reconstruction) runs in horizontal bands of
  rows with a halo of one row per convolution, so its intermediates never exist at full size;
  each convolution trims the rows its zero padding made wrong, so the result is exact;
* channels-last memory layout, the layout the CPU and GPU convolution kernels run fastest in;
* spectra of the real feature maps come from the one-sided ``rfft2``; amplitudes and phases
  are taken on that half and mirrored (``|X(-k)| = |X(k)|``, ``angle X(-k) = -angle X(k)``);
* the three stacked spectra ``S_d``, ``S_ap``, ``S_pa`` are never stored: each band rebuilds
  the pieces it needs from four amplitude/phase maps; the skip ``Re ifft2(S_d)`` shared by both
  attention blocks is computed once; inverse FFTs run in channel chunks;
* every full-size intermediate is released as soon as it is dead.

Tensors: inputs (B,1,H,W) in [0,1]; full-size maps are (B,K,H,W) channels-last in the spectral
dtype (float32, or float64 for a float64 network); under autocast the convolutions run in the
autocast dtype and every spectral step in float32, as in the module's forward.

Under bfloat16 autocast (inference ``--precision bf16``) the full-size maps that only feed
convolutions are stored in bfloat16 too: the joint blocks' inputs and outputs (joint amplitude and
phase) and the stacked q/k/v products before their inverse FFT. The refined discrepancy maps feed
the attention skip, a spectral step, and stay float32, as do the encoder outputs, every FFT,
amplitude, phase and layer norm, and the output.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from basicsr.archs.dgfusion.blocks import (ConvLReLUBlock, Projection, ShallowEncoder,
                                           attention_inputs, stage1_spectra)
from basicsr.archs.dgfusion.spectral import (LRELU_SLOPE, NONFINITE_FILL, canonical_rfft2,
                                             canonicalize_phase_, full_precision, mirrored_columns,
                                             to_float32, unfold_half_)

CHANNELS_LAST = torch.channels_last
# Band height. On a CPU a frame is cut into about CPU_BANDS bands: a band's intermediates are
# then ~2 maps' worth next to the 8 full-size ones, and the halo rows (one per convolution of a
# chain) cost 3-7% more convolution work. A GPU runs up to ~2 Mpx (batch included) per band.
CPU_BANDS = 5
MIN_BAND_ROWS = 16
GPU_BAND_PIXELS = 1 << 21
IFFT_CHUNK = 16  # complex channels per inverse-FFT call


def band_rows(batch: int, height: int, width: int, device: torch.device) -> int:
    """Rows per band for a batch of (H, W) frames on ``device``."""
    if device.type == 'cpu':
        rows = math.ceil(height / CPU_BANDS)
    else:
        rows = math.ceil(GPU_BAND_PIXELS / max(batch * width, 1))
    return max(MIN_BAND_ROWS, min(height, rows))


class Band:
    """Rows [start, stop) of a frame, read with a halo so that ``n_convs`` size-preserving 3x3
    convolutions give exact values on the band's own rows.

    Each :meth:`conv` trims one row at every band edge that is not an image edge (the zero
    padding made those rows wrong); after the chain's convolutions only the own rows remain.
    """

    def __init__(self, start: int, stop: int, height: int, n_convs: int) -> None:
        self.read = slice(max(0, start - n_convs), min(height, stop + n_convs))
        self.trim_top = 1 if self.read.start > 0 else 0
        self.trim_bottom = 1 if self.read.stop < height else 0
        # rows of the chain's output (after n_convs trims) that belong to this band
        first = self.read.start + n_convs * self.trim_top
        self.own = slice(start - first, stop - first)

    def take(self, x: torch.Tensor) -> torch.Tensor:
        """The band's rows of full-size ``x`` (B,K,H,W), halo included."""
        return x[:, :, self.read]

    def crop(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """Drop ``n`` rows at each artificial edge (to align a residual with a conv output)."""
        top, bottom = n * self.trim_top, n * self.trim_bottom
        return x[:, :, top:x.shape[2] - bottom]

    def conv(self, layer: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        """``layer(x)`` (3x3, padding 1) with the rows its padding made wrong trimmed away."""
        # the module's weights are channels-last already: no copy unless a caller changed that
        weight = layer.weight.contiguous(memory_format=CHANNELS_LAST)
        return self.crop(F.conv2d(x, weight, layer.bias, padding=1), 1)

    def own_rows(self, x: torch.Tensor) -> torch.Tensor:
        """The band's own rows of a chain's output ``x`` (all its convolutions applied)."""
        return x[:, :, self.own]


def empty_map(like: torch.Tensor, channels: int, dtype: torch.dtype) -> torch.Tensor:
    """Uninitialised channels-last (B,channels,H,W) map on ``like``'s device."""
    b, _, h, w = like.shape
    return torch.empty((b, channels, h, w), dtype=dtype, device=like.device,
                       memory_format=CHANNELS_LAST)


def run_banded(chain: Callable[..., None], inputs: Sequence[torch.Tensor], n_convs: int,
               out_channels: int, dtype: torch.dtype) -> torch.Tensor:
    """Full-size output of ``chain(band, dst, *band_inputs)``, computed band by band.

    ``chain`` reads the band's rows of ``inputs`` (halo included) and writes the exact values of
    the band's own rows into ``dst``, the (B,out_channels,rows,W) rows of the output (a view:
    its last element-wise step writes there directly, see :func:`emit`); ``n_convs`` is the
    number of 3x3 convolutions it runs on its longest path.
    """
    first = inputs[0]
    height, width = first.shape[-2:]
    out = empty_map(first, out_channels, dtype)
    step = band_rows(first.shape[0], height, width, first.device)
    for start in range(0, height, step):
        band = Band(start, min(height, start + step), height, n_convs)
        chain(band, out[:, :, start:start + step], *(band.take(x) for x in inputs))
    return out


def emit(dst: torch.Tensor, values: torch.Tensor, act: Optional[str] = None) -> None:
    """``dst = act(values)`` (``act``: None, ``'lrelu'``) in one pass where the dtypes allow
    (a bfloat16 band into a float32 map takes one extra pass)."""
    if act is None:
        dst.copy_(values)
    elif values.dtype == dst.dtype:
        torch.ops.aten.leaky_relu.out(values, LRELU_SLOPE, out=dst)
    else:
        dst.copy_(lrelu(values))


def conv_storage_dtype(x: torch.Tensor, dtype: torch.dtype) -> torch.dtype:
    """Dtype of the full-size maps that only feed convolutions: bfloat16 under bfloat16
    autocast on ``x``'s device, else ``dtype``."""
    device = x.device.type
    if torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == torch.bfloat16:
        return torch.bfloat16
    return dtype


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu_(x, LRELU_SLOPE)


def polar_band(amp: torch.Tensor, pha: torch.Tensor) -> torch.Tensor:
    """(B,K,r,W) amplitude and phase -> (B,2K,r,W) cat(amp*cos, amp*sin), channels-last, in
    ``amp``'s dtype; a bfloat16 map is computed in float32 and rounded once."""
    out = torch.empty((amp.shape[0], 2 * amp.shape[1], *amp.shape[2:]), dtype=amp.dtype,
                      device=amp.device, memory_format=CHANNELS_LAST)
    k = amp.shape[1]
    amp, pha = to_float32(amp), to_float32(pha)
    torch.mul(amp, torch.cos(pha), out=out[:, :k])
    torch.mul(amp, torch.sin(pha), out=out[:, k:])
    return out


def real_ifft2_parts(real: torch.Tensor, imag: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out = Re ifft2(real + i*imag)`` for real (B,K,H,W) ``real``, ``imag``.

    For real maps X and Y, ``Re ifft2(X) = Re fft2(X) / N`` (even in the output position) and
    ``-Im ifft2(Y) = Im fft2(Y) / N`` (odd), so two one-sided ``rfft2`` give the result without
    building a complex tensor: the half is ``(Re X^ + Im Y^) / N``, its mirror
    ``(Re X^ - Im Y^) / N``.
    """
    h, w = out.shape[-2:]
    scale = 1.0 / (h * w)
    even = torch.fft.rfft2(to_float32(real)).real.mul_(scale)
    odd = torch.fft.rfft2(to_float32(imag)).imag.mul_(scale)
    wh = even.shape[-1]
    torch.add(even, odd, out=out[..., :wh])
    if w > wh:
        out[..., wh:] = mirrored_columns(even, w).sub_(mirrored_columns(odd, w))
    return out


def real_ifft2_stacked(stacked: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out = Re ifft2(stacked as complex)``: (B,2K,H,W) real -> (B,K,H,W), in channel chunks
    (a bfloat16 ``stacked`` is transformed in float32, chunk by chunk)."""
    k = stacked.shape[1] // 2
    for c in range(0, k, IFFT_CHUNK):
        d = min(IFFT_CHUNK, k - c)
        real_ifft2_parts(stacked[:, c:c + d], stacked[:, k + c:k + c + d], out[:, c:c + d])
    return out


def real_ifft2_polar(amp: torch.Tensor, pha: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out = Re ifft2(amp * exp(i pha))``: (B,K,H,W) each, in channel chunks."""
    for c in range(0, amp.shape[1], IFFT_CHUNK):
        a, p = amp[:, c:c + IFFT_CHUNK], pha[:, c:c + IFFT_CHUNK]
        real_ifft2_parts(a * torch.cos(p), a * torch.sin(p), out[:, c:c + IFFT_CHUNK])
    return out


def channel_layer_norm(x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
    """Channel layer norm of channels-last (B,K,H,W) ``x`` with ``norm``'s weight, bias, eps."""
    k = x.shape[1]
    y = F.layer_norm(x.permute(0, 2, 3, 1), (k,), norm.weight.to(x.dtype), norm.bias.to(x.dtype),
                     norm.eps)
    return y.permute(0, 3, 1, 2)


# ------------------------------------------------------------------ convolution chains

def conv_lrelu_block(band: Band, block: ConvLReLUBlock, x: torch.Tensor) -> torch.Tensor:
    """``block(x)`` on a band: conv, lrelu, conv, lrelu (2 convolutions)."""
    return lrelu(band.conv(block.second, lrelu(band.conv(block.first, x))))


def encoder_chain(encoder: ShallowEncoder) -> Callable[..., None]:
    def chain(band: Band, dst: torch.Tensor, x: torch.Tensor) -> None:
        first, second, third = encoder.convs
        x = lrelu(band.conv(first, x))
        x = lrelu(band.conv(second, x))
        emit(dst, band.own_rows(band.conv(third, x)))
    return chain


def joint_chain(joint: ConvLReLUBlock, proj: ConvLReLUBlock) -> Callable[..., None]:
    """``proj(joint(x) + x)``: 4 convolutions."""
    def chain(band: Band, dst: torch.Tensor, x: torch.Tensor) -> None:
        h = conv_lrelu_block(band, joint, x).add_(band.crop(x, 2))
        h = band.conv(proj.second, lrelu(band.conv(proj.first, h)))
        emit(dst, band.own_rows(h), 'lrelu')
    return chain


def refine_chain(first: ConvLReLUBlock, second: ConvLReLUBlock) -> Callable[..., None]:
    """``second(first(x)) + x``: 4 convolutions."""
    def chain(band: Band, dst: torch.Tensor, x: torch.Tensor) -> None:
        h = conv_lrelu_block(band, second, conv_lrelu_block(band, first, x))
        torch.add(band.own_rows(h), band.own_rows(band.crop(x, 4)), out=dst)
    return chain


def projection(band: Band, proj: Projection, x: torch.Tensor) -> torch.Tensor:
    """conv, ReLU, conv (an attention block's ``wq``/``wk``/``wv``)."""
    return band.conv(proj.second, F.relu_(band.conv(proj.first, x)))


def product_chain(wq: Projection, wk: Projection) -> Callable[..., None]:
    """``wq(polar(a_q, p_q)) * wk(polar(a_k, p_k))``: 2 convolutions on each path."""
    def chain(band: Band, dst: torch.Tensor, amp_q: torch.Tensor, pha_q: torch.Tensor,
              amp_k: torch.Tensor, pha_k: torch.Tensor) -> None:
        q = projection(band, wq, polar_band(amp_q, pha_q))
        k = projection(band, wk, polar_band(amp_k, pha_k))
        torch.mul(band.own_rows(q), band.own_rows(k).to(q.dtype), out=dst)
    return chain


def value_chain(wv: Projection) -> Callable[..., None]:
    def chain(band: Band, dst: torch.Tensor, amp: torch.Tensor, pha: torch.Tensor) -> None:
        emit(dst, band.own_rows(projection(band, wv, polar_band(amp, pha))))
    return chain


def output_chain(net: nn.Module, nonfinite: List[torch.Tensor]) -> Callable[..., None]:
    """Gates, weighted sum, non-finite fill and reconstruction: 4 convolutions. The count of
    replaced features over the band's own rows is appended to ``nonfinite``."""
    gate, recon = net.fusion.gate, net.reconstruction

    def chain(band: Band, dst: torch.Tensor, fre: torch.Tensor, spa: torch.Tensor) -> None:
        g = torch.sigmoid(band.conv(gate.second, band.conv(gate.first, torch.cat([fre, spa], 1))))
        k = fre.shape[1]
        fre, spa = band.crop(fre, 2), band.crop(spa, 2)
        res = fre * g[:, :k].to(fre.dtype) + spa * g[:, k:].to(spa.dtype)
        del g
        finite = torch.isfinite(res)
        own = slice(band.own.start + 2 * band.trim_top, band.own.stop + 2 * band.trim_top)
        nonfinite.append((~finite[:, :, own]).sum())
        res = torch.where(finite, res, torch.full((), NONFINITE_FILL, dtype=res.dtype,
                                                  device=res.device))
        h = band.conv(recon.second, lrelu(band.conv(recon.first, res)))
        emit(dst, band.own_rows(h), 'lrelu')
    return chain


# ------------------------------------------------------------------ forward

def lean_forward(net: nn.Module, vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    """DGFusion forward without autograd: (B,1,H,W) ``vis_y``, ``ir`` -> (B,1,H,W) fused Y.

    Sets ``net.last_nonfinite`` like the module's forward.
    """
    enh, fre_att, spa_att = net.enhancer, net.extractor.frequency, net.extractor.spatial
    c4 = 4 * net.channels
    out_dtype = vis_y.dtype
    dtype = torch.float64 if out_dtype == torch.float64 else torch.float32
    vis_y = vis_y.contiguous(memory_format=CHANNELS_LAST)
    ir = ir.contiguous(memory_format=CHANNELS_LAST)
    width = vis_y.shape[-1]
    store = conv_storage_dtype(vis_y, dtype)

    def banded(chain, inputs, n_convs, out_channels, out_dtype=dtype):
        return run_banded(chain, inputs, n_convs, out_channels, out_dtype)

    # Stage 1: spectra of the two encodings, on the one-sided half
    with full_precision(vis_y):
        vis_half = canonical_rfft2(banded(encoder_chain(enh.vis_encoder), [vis_y], 3, c4))
        ir_half = canonical_rfft2(banded(encoder_chain(enh.ir_encoder), [ir], 3, c4))
        amp_cat, pha_cat = empty_map(vis_y, 2 * c4, store), empty_map(vis_y, 2 * c4, store)
        unfold_half_(amp_cat[:, :c4], vis_half.abs(), odd=False)
        unfold_half_(amp_cat[:, c4:], ir_half.abs(), odd=False)
        unfold_half_(pha_cat[:, :c4], vis_half.angle(), odd=True)
        unfold_half_(pha_cat[:, c4:], ir_half.angle(), odd=True)
        disc = vis_half.mul_(enh.a.to(dtype)).sub_(ir_half.mul_(enh.b.to(dtype)))
        del ir_half
        canonicalize_phase_(disc, width=width)
        amp_d = unfold_half_(empty_map(vis_y, c4, dtype), disc.abs(), odd=False)
        pha_d = unfold_half_(empty_map(vis_y, c4, dtype), disc.angle(), odd=True)
        del disc, vis_half

    amp_f = banded(joint_chain(enh.amp_joint, enh.amp_proj), [amp_cat], 4, c4, store)
    del amp_cat
    pha_f = banded(joint_chain(enh.pha_joint, enh.pha_proj), [pha_cat], 4, c4, store)
    del pha_cat
    amp_d = banded(refine_chain(enh.amp_refine1, enh.amp_refine2), [amp_d], 4, c4)
    pha_d = banded(refine_chain(enh.pha_refine1, enh.pha_refine2), [pha_d], 4, c4)

    # Stage 2, wired by stage1_spectra and attention_inputs applied to the names of the four
    # maps (each spectrum an (amplitude, phase) pair of them). The order below frees the maps
    # as early as possible (peak: 8 maps of 4C channels).
    maps: Dict[str, torch.Tensor] = {'amp_joint': amp_f, 'pha_joint': pha_f, 'amp_disc': amp_d,
                                     'pha_disc': pha_d}
    del amp_f, pha_f, amp_d, pha_d
    wiring = attention_inputs(*stage1_spectra('amp_joint', 'pha_joint', 'amp_disc', 'pha_disc'))

    def polar_maps(block: str, *roles: int) -> List[torch.Tensor]:
        """Amplitude and phase maps of the inputs ``roles`` (0: q, 1: k, 2: v) of ``block``."""
        return [maps[name] for role in roles for name in wiring[block][role]]

    def attention_part(chain, inputs, norm) -> torch.Tensor:
        stacked = banded(chain, inputs, 2, 2 * c4, store)
        with full_precision(vis_y):
            part = real_ifft2_stacked(stacked, empty_map(vis_y, c4, dtype))
        del stacked
        return channel_layer_norm(part, norm)

    fre_v = attention_part(value_chain(fre_att.wv), polar_maps('frequency', 2), fre_att.norm_v)
    spa_qk = attention_part(product_chain(spa_att.wq, spa_att.wk), polar_maps('spatial', 0, 1),
                            spa_att.norm_qk)
    del maps['amp_joint']
    fre_qk = attention_part(product_chain(fre_att.wq, fre_att.wk), polar_maps('frequency', 0, 1),
                            fre_att.norm_qk)
    with full_precision(vis_y):  # the skip Re ifft2(q) is shared by both blocks
        skip = real_ifft2_polar(*polar_maps('frequency', 0), empty_map(vis_y, c4, dtype))
    del maps['pha_disc']
    fre = channel_layer_norm(fre_qk.mul_(fre_v).add_(skip), fre_att.norm_out)
    del fre_qk, fre_v
    spa_v = attention_part(value_chain(spa_att.wv), polar_maps('spatial', 2), spa_att.norm_v)
    maps.clear()
    spa = channel_layer_norm(spa_qk.mul_(spa_v).add_(skip), spa_att.norm_out)
    del spa_qk, spa_v, skip

    # Stages 3-4: gates, fusion, reconstruction
    nonfinite: List[torch.Tensor] = []
    fused = banded(output_chain(net, nonfinite), [fre, spa], 4, 1)
    net.last_nonfinite = torch.stack(nonfinite).sum()
    return fused.to(out_dtype).contiguous()

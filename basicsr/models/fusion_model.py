"""FusionModel: one training step and one fusion step of DGFusion on RGB/thermal batches."""
from __future__ import annotations

import copy
import logging
import math
from typing import Any, Dict, List, Optional

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from basicsr.archs import build_network
from basicsr.archs.contract import prepare_compile
from basicsr.losses import build_loss
from basicsr.models.optim import build_optimizer, build_scheduler
from basicsr.models.precision import autocast, check_precision
from basicsr.utils.color import merge_luma, split_luma
from basicsr.utils.dist import get_world_size, reduce_mean
from basicsr.utils.errors import ConfigError, DGFusionError, first_line
from basicsr.utils.registry import MODEL_REGISTRY

logger = logging.getLogger(__name__)


class TrainingDiverged(DGFusionError):
    """Too many consecutive non-finite losses."""


class CompileFailed(ConfigError):
    """``torch.compile`` could not compile the training step (``train.compile``)."""


COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune')


def compile_for_training(net: nn.Module, mode: str = 'default') -> nn.Module:
    """A ``torch.compile`` wrapper of ``net`` for the training forward.

    ``net`` itself stays eager: it shares its parameters with the wrapper, so its
    ``state_dict`` keys (no ``_orig_mod.`` prefix), the EMA, checkpoints, validation and the
    lean inference path are those of an uncompiled run. The network's own compile preparation
    (its spec's ``prepare_compile``) runs first. Compilation happens at the first call.
    """
    if mode not in COMPILE_MODES:
        raise ConfigError(f"train.compile_mode: {mode!r} is not one of {', '.join(COMPILE_MODES)}")
    prepare_compile(net)
    return torch.compile(net, mode=mode)


@MODEL_REGISTRY.register()
class FusionModel:
    """Holds the network, its EMA copy, losses, optimiser and scheduler.

    The trainer calls :meth:`train_step` once per iteration and :meth:`fuse` to validate;
    everything else (logging, checkpoints, data) lives in the trainer.

    Args:
        opt: validated options (see ``basicsr.options``).
        device: where the network lives.
        net: an already built network (e.g. loaded from a checkpoint); built from
            ``opt['network_g']`` when None.
        is_train: build losses/optimiser/EMA.
    """

    def __init__(self, opt: Dict[str, Any], device: torch.device, net: Optional[nn.Module] = None,
                 is_train: bool = True) -> None:
        self.opt, self.device = opt, device
        self.is_train = is_train  # False: network only (no losses, optimiser, EMA)
        self.net_g = (net if net is not None else build_network(opt['network_g'])).to(device)
        self.net_g_ema: Optional[nn.Module] = None
        self.nonfinite_in_a_row = 0
        self.nonfinite_total = 0
        self.scaler_skipped = 0  # fp16 steps the gradient scaler skipped (overflow at this scale)
        if not is_train:
            self.net_g.train(False)
            return
        train = opt['train']
        self.ema_decay = float(train['ema_decay'])
        if self.ema_decay > 0:
            self.net_g_ema = copy.deepcopy(self.net_g).train(False)
            for p in self.net_g_ema.parameters():
                p.requires_grad_(False)
        self.losses = nn.ModuleList([build_loss(cfg) for cfg in train['losses']]).to(device)
        self.loss_names = [cfg['type'] for cfg in train['losses']]
        self.needs_mask = any(getattr(loss, 'needs_mask', False) for loss in self.losses)
        self.optimizer = build_optimizer(train['optim_g'], [p for p in self.net_g.parameters()
                                                            if p.requires_grad])
        self.scheduler = build_scheduler(train['scheduler'], self.optimizer) if train['scheduler'] else None
        self.precision = train.get('precision') or ('fp16' if train.get('use_amp') else 'fp32')
        check_precision(self.precision, device)
        # float16 needs loss scaling; bfloat16 has float32's exponent range and does not
        self.use_scaler = self.precision == 'fp16'
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.use_scaler)
        if self.precision != 'fp32':
            logger.info('train.precision: %s (convolutions in %s; spectra, losses, optimiser, '
                        'EMA and checkpoints in float32)', self.precision,
                        'bfloat16' if self.precision == 'bf16' else 'float16')
        self.grad_clip = train['grad_clip']
        self.max_nonfinite = train['max_nonfinite_steps']
        self.compiled = bool(train.get('compile', False))
        # what the training forward calls: net_g, its compiled wrapper, and/or their DDP wrapper
        self.train_net: nn.Module = self.net_g
        if self.compiled:
            mode = train.get('compile_mode', 'default')
            self.train_net = compile_for_training(self.net_g, mode)
            logger.info('train.compile: the training forward is compiled (mode %s) in the first '
                        'iterations, which are slow', mode)
        self.ddp: Optional[nn.Module] = None
        if get_world_size() > 1:
            # PyTorch's advice for DDP: compile the inner module, then wrap it
            self.ddp = DistributedDataParallel(
                self.train_net, device_ids=[device.index] if device.type == 'cuda' else None)
            self.train_net = self.ddp
        self.net_g.train()

    # ------------------------------------------------------------------ training
    def train_step(self, batch: Dict[str, Any]) -> Dict[str, float]:
        """One optimisation step (see :meth:`_train_step`); with ``train.compile`` a failure of
        ``torch.compile`` (at the first step, or at a later recompilation) is one
        :class:`CompileFailed` line instead of a compiler traceback.
        """
        if not self.compiled:
            return self._train_step(batch)
        from torch._dynamo.exc import TorchDynamoException
        try:
            return self._train_step(batch)
        except TorchDynamoException as exc:
            reason = first_line(exc)
            hint = (' (on a CPU it needs a working C++ compiler)'
                    if self.device.type == 'cpu' and ('C++' in reason or 'Cxx' in reason) else '')
            raise CompileFailed(
                f"train.compile: torch.compile failed on the training step{hint}: {reason}; "
                f"set train.compile=false to train without it") from exc

    def _train_step(self, batch: Dict[str, Any]) -> Dict[str, float]:
        """One optimisation step on ``batch`` (``vis`` (B,3,H,W), ``ir`` (B,1,H,W), ``mask``).

        Returns the losses averaged over processes (``total`` and one per loss type), ``lr``,
        and ``skipped`` (1.0 when no update happened: a non-finite loss or gradient, or, under
        fp16, a gradient overflow the scaler skipped; the EMA is not updated then either).

        Raises:
            TrainingDiverged: after ``max_nonfinite_steps`` non-finite losses in a row.
        """
        terms = self._loss_terms(self.train_net, batch)
        total = torch.stack(terms).sum()
        finite = torch.isfinite(total).float()
        # every process must agree before backward, or DDP would wait forever
        all_finite = bool(reduce_mean(finite.detach()).item() == 1.0)
        self.optimizer.zero_grad(set_to_none=True)
        grad_norm = float('nan')
        scaler_skips = False
        if all_finite:
            self.scaler.scale(total).backward()
            if self.use_scaler:
                self.scaler.unscale_(self.optimizer)
            max_norm = float(self.grad_clip) if self.grad_clip else float('inf')
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), max_norm))
            # with fp16 the scaler skips inf/NaN gradients itself and lowers its scale: a normal
            # event while the scale settles, not a sign of divergence
            scaler_skips = self.use_scaler and not math.isfinite(grad_norm)
            all_finite = self.use_scaler or math.isfinite(grad_norm)
        if not all_finite:
            self.optimizer.zero_grad(set_to_none=True)
            self.nonfinite_in_a_row += 1
            self.nonfinite_total += 1
            logger.warning('non-finite loss or gradient: step skipped (%d in a row, %d in total)',
                           self.nonfinite_in_a_row, self.nonfinite_total)
            if self.nonfinite_in_a_row >= self.max_nonfinite:
                raise TrainingDiverged(
                    f"{self.nonfinite_in_a_row} non-finite losses in a row: training stopped "
                    f"(lower train.optim_g.lr, set train.grad_clip, or check the data); the last "
                    f"good checkpoint is intact")
            out = {'total': float('nan'), 'skipped': 1.0}
        else:
            self.nonfinite_in_a_row = 0
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if scaler_skips:  # no update happened, so the EMA must not move either
                self.scaler_skipped += 1
                logger.info('fp16 gradient overflow: step skipped by the gradient scaler '
                            '(scale now %g, %d skipped in total)', self.scaler.get_scale(),
                            self.scaler_skipped)
            else:
                self.update_ema()
            logged = reduce_mean(torch.stack([total.detach()] + [t.detach() for t in terms]))
            out = {'total': float(logged[0]), 'skipped': float(scaler_skips), 'grad_norm': grad_norm}
            for name, value in zip(self.loss_names, logged[1:].tolist()):
                out[name] = out.get(name, 0.0) + value
        if self.scheduler is not None:
            self.scheduler.step()
        out['lr'] = self.optimizer.param_groups[0]['lr']
        return out

    def _loss_terms(self, net: nn.Module, batch: Dict[str, Any]) -> List[torch.Tensor]:
        """The configured losses (unweighted sum = total) of ``net`` on ``batch``: ``vis``
        (B,3,H,W) RGB, ``ir`` (B,1,H,W), optional ``mask`` (B,1,H,W), all in [0,1]."""
        vis = batch['vis'].to(self.device, non_blocking=True)
        ir = batch['ir'].to(self.device, non_blocking=True)
        mask = batch['mask'].to(self.device, non_blocking=True) if 'mask' in batch else None
        if self.needs_mask and mask is None:
            raise DGFusionError('a configured loss needs visible-weight masks but the training '
                                'dataset has none: set datasets.train.dataroot_mask (a folder or auto)')
        vis_y, _ = split_luma(vis)
        with autocast(self.precision, self.device):
            fused_y = net(vis_y, ir)
        fused_y = fused_y.float()
        return [loss(fused_y, vis_y, ir, mask) for loss in self.losses]

    @torch.no_grad()
    def batch_loss(self, batch: Dict[str, Any], use_ema: bool = False) -> float:
        """Total loss of the current weights (or the EMA's) on ``batch``, without a step.

        Judges the weights a checkpoint would hold (see :mod:`basicsr.utils.divergence`):
        evaluated in inference mode, so nothing of the training state changes.
        """
        net = self.net_g_ema if (use_ema and self.net_g_ema is not None) else self.net_g
        was_training = net.training
        net.train(False)
        try:
            return float(torch.stack(self._loss_terms(net, batch)).sum())
        finally:
            net.train(was_training)

    @torch.no_grad()
    def update_ema(self) -> None:
        """``ema = decay * ema + (1 - decay) * net`` for every parameter and buffer."""
        if self.net_g_ema is None:
            return
        src = dict(self.net_g.named_parameters())
        for name, p in self.net_g_ema.named_parameters():
            p.mul_(self.ema_decay).add_(src[name].detach(), alpha=1 - self.ema_decay)
        src_b = dict(self.net_g.named_buffers())
        for name, b in self.net_g_ema.named_buffers():
            b.copy_(src_b[name])

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def fuse(self, vis: torch.Tensor, ir: torch.Tensor, use_ema: bool = True) -> torch.Tensor:
        """Fuse (B,3,H,W) RGB (or (B,1,H,W) gray) visible with (B,1,H,W) infrared, all in [0,1].

        Returns the fused image in the visible image's colour space, clamped to [0,1].
        """
        net = self.net_g_ema if (use_ema and self.net_g_ema is not None) else self.net_g
        was_training = net.training
        net.train(False)
        vis_y, cbcr = split_luma(vis.to(self.device))
        fused_y = net(vis_y, ir.to(self.device))
        net.train(was_training)
        return merge_luma(fused_y.float(), cbcr)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> Dict[str, Any]:
        """Network, EMA, optimiser, scheduler and scaler states (plain tensors/primitives);
        an inference-only model (``is_train=False``) has the network only."""
        if not self.is_train:
            return {'params': self.net_g.state_dict(), 'params_ema': None}
        return {
            'params': self.net_g.state_dict(),
            'params_ema': self.net_g_ema.state_dict() if self.net_g_ema is not None else None,
            'optimizer': self.optimizer.state_dict(),
            'scheduler': self.scheduler.state_dict() if self.scheduler is not None else None,
            'scaler': self.scaler.state_dict(),
            'nonfinite_total': self.nonfinite_total,
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (network shapes must match); an
        inference-only model takes the EMA weights when there are any."""
        if not self.is_train:
            self.net_g.load_state_dict(state.get('params_ema') or state['params'])
            return
        self.net_g.load_state_dict(state['params'])
        if self.net_g_ema is not None:
            self.net_g_ema.load_state_dict(state['params_ema'] or state['params'])
        self.optimizer.load_state_dict(state['optimizer'])
        if self.scheduler is not None and state.get('scheduler'):
            self.scheduler.load_state_dict(state['scheduler'])
        if state.get('scaler'):
            self.scaler.load_state_dict(state['scaler'])
        self.nonfinite_total = int(state.get('nonfinite_total', 0))

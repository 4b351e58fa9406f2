"""When are trained weights good enough to resume from? The rule of the resume point.

A checkpoint becomes the resume point (``latest``) only if every tensor of the network and of
its EMA is finite and the loss has not diverged. "Diverged" is judged on the weights being
saved, by one extra forward pass on the last training batch:

* the loss of the saved weights (and of the EMA weights) on that batch must be finite;
* the loss of the saved weights must be at most :data:`LOSS_FACTOR` times the larger of
  (a) the median of the last :data:`WINDOW` finite step losses and (b) that batch's own loss
  before the step (so one hard batch is not mistaken for divergence).

A learning rate far too high (e.g. ``lr: 1e30``) throws the weights to ~1e30 in one step;
they are still finite, but their loss is non-finite or astronomically larger than the
recent losses, so that state is never offered for resuming.
"""
from __future__ import annotations

import math
import statistics
from collections import deque
from typing import Deque, Optional

WINDOW = 100       # step losses the running median is taken over
LOSS_FACTOR = 10.0  # how far above the reference loss the saved weights' loss may be


class LossWatch:
    """Running record of the training losses and the divergence rule of the resume point.

    Args:
        window: number of recent finite step losses kept for the median.
        factor: the largest allowed ratio of the saved weights' loss to the reference loss.
    """

    def __init__(self, window: int = WINDOW, factor: float = LOSS_FACTOR) -> None:
        self.recent: Deque[float] = deque(maxlen=window)
        self.factor = factor

    def record(self, loss: float) -> None:
        """Add one step's total loss (non-finite losses, i.e. skipped steps, are not kept)."""
        if math.isfinite(loss):
            self.recent.append(float(loss))

    def reference(self, loss_before: float) -> Optional[float]:
        """The larger of the running median and ``loss_before`` (None when neither is known)."""
        candidates = [statistics.median(self.recent)] if self.recent else []
        if math.isfinite(loss_before):
            candidates.append(float(loss_before))
        return max(candidates) if candidates else None

    def problem(self, loss_after: float, loss_before: float = math.nan) -> Optional[str]:
        """Why weights whose loss on the last batch is ``loss_after`` are not a resume point
        (the batch's loss before the step was ``loss_before``), or None when they are."""
        if not math.isfinite(loss_after):
            return f"their loss on the last training batch is {loss_after}"
        ref = self.reference(loss_before)
        if ref is not None and ref > 0 and loss_after > self.factor * ref:
            return (f"their loss on the last training batch, {loss_after:.4g}, is more than "
                    f"{self.factor:g} x {ref:.4g} (the recent loss): training diverged")
        return None

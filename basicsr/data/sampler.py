"""Iteration-based sampling that is identical for any number of processes and resumable."""
from __future__ import annotations

from typing import Iterator, Tuple

import numpy as np
from torch.utils.data import Sampler


class StreamSampler(Sampler):
    """Endless stream of ``(index, augmentation_seed)`` keys for one process.

    The global stream visits ``num_items`` in a fresh permutation per epoch (seeded by
    ``seed`` and the epoch). Iteration ``t`` consumes stream positions
    ``[t*G, (t+1)*G)`` with ``G = batch_size * world_size``; rank ``r`` takes the ``r``-th
    chunk of ``batch_size``. So N processes with batch b see exactly the samples one process
    with batch N*b sees, and a run resumed at ``start_iter`` continues the same stream. The
    augmentation seed is derived from the stream position, so crops and flips match too.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int = 0, world_size: int = 1,
                 rank: int = 0, start_iter: int = 0) -> None:
        if num_items < 1:
            raise ValueError('StreamSampler needs a non-empty dataset')
        self.num_items, self.batch_size = num_items, batch_size
        self.seed, self.world_size, self.rank = abs(int(seed)), world_size, rank
        self.start_iter = start_iter

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_items)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        global_batch = self.batch_size * self.world_size
        it = self.start_iter
        epoch, perm = -1, None
        while True:
            first = it * global_batch + self.rank * self.batch_size
            for pos in range(first, first + self.batch_size):
                e = pos // self.num_items
                if e != epoch:
                    epoch, perm = e, self._permutation(e)
                yield int(perm[pos % self.num_items]), (self.seed << 32) + pos
            it += 1

    def __len__(self) -> int:  # endless; DataLoader only needs a number for progress
        return 2 ** 62

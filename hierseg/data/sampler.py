"""Multi-dataset batch sampler (DSSPN 4.3: every batch is drawn from one dataset).

Indices are global positions in a ``ConcatDataset`` of the datasets, in the order of ``sizes``. Per epoch each
dataset is shuffled from ``(seed, epoch, dataset)``, cut into batches of its own size (DSSPN 4.1 uses 4 images
for COCO-Stuff/ADE20K and 6 for Cityscapes/Mapillary), and the batches of all datasets are interleaved by a second
shuffle. Without weights every sample is seen once per epoch; sampling weights set how many batches each dataset
contributes (a weighted dataset cycles through fresh permutations when it needs more). Under DDP every rank takes every
``world_size``-th batch of the same sequence, so shares are disjoint and all ranks run the same number of
steps. :meth:`resume` skips the steps already taken in the epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from hierseg.core.errors import HiersegError


class MultiDatasetBatchSampler(Sampler[list[int]]):
    """``batch_size`` is one size for every dataset or one per dataset."""

    def __init__(self, sizes: Sequence[int], batch_size: int | Sequence[int], weights: Sequence[float] | None = None,
                 seed: int = 0, rank: int = 0, world_size: int = 1, steps_per_epoch: int | None = None) -> None:
        sizes = list(sizes)
        batch_sizes = [batch_size] * len(sizes) if isinstance(batch_size, int) else [int(b) for b in batch_size]
        if len(batch_sizes) != len(sizes):
            raise HiersegError(f"{len(batch_sizes)} batch sizes for {len(sizes)} datasets")
        if min(batch_sizes, default=1) < 1:
            raise HiersegError(f"batch_size must be at least 1, got {min(batch_sizes)}")
        short = [i for i, (n, b) in enumerate(zip(sizes, batch_sizes, strict=True)) if n < b]
        if not sizes:
            raise HiersegError("no datasets to sample from")
        if short:
            raise HiersegError(f"every dataset needs at least batch_size={batch_sizes[short[0]]} samples, got sizes "
                               f"{sizes}" + ("" if isinstance(batch_size, int) else f" for batch sizes {batch_sizes}"))
        if weights is not None and (len(weights) != len(sizes) or min(weights) < 0 or sum(weights) <= 0):
            raise HiersegError(f"weights {list(weights)} must be one non-negative number per dataset, not all zero")
        if not 0 <= rank < world_size:
            raise HiersegError(f"rank {rank} is outside world size {world_size}")
        self.sizes, self.batch_sizes, self.seed = sizes, batch_sizes, seed
        self.rank, self.world_size = rank, world_size
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(int)
        natural = [size // b for size, b in zip(self.sizes, batch_sizes, strict=True)]
        total = steps_per_epoch * world_size if steps_per_epoch else sum(natural)
        if weights is None:
            # every dataset's samples seen at the same rate: batches in proportion to size / batch size, in
            # integers (size * lcm / batch size) so that equal batch sizes split exactly as the sizes do
            lcm = int(np.lcm.reduce(batch_sizes))
            rate = [size * (lcm // b) for size, b in zip(self.sizes, batch_sizes, strict=True)]
            self.batches_per_dataset = natural if not steps_per_epoch else self._split(total, rate)
        else:
            self.batches_per_dataset = self._split(total, weights)
        self.epoch, self.start_step = 0, 0

    @staticmethod
    def _split(total: int, weights: Sequence[float]) -> list[int]:
        """``total`` batches in proportion to ``weights``, largest remainders first, summing exactly to ``total``."""
        share = np.asarray(weights, dtype=float) / float(sum(weights)) * total
        counts = np.floor(share).astype(int)
        for i in np.argsort(-(share - counts), kind="stable")[: total - counts.sum()]:
            counts[i] += 1
        return counts.tolist()

    @property
    def batch_size(self) -> int:
        """The one batch size of every dataset (an error when they differ: ask :attr:`batch_sizes`)."""
        if len(set(self.batch_sizes)) > 1:
            raise AttributeError("datasets have different batch sizes; see batch_sizes")
        return self.batch_sizes[0]

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.start_step = epoch, 0

    def resume(self, epoch: int, step: int) -> None:
        """Continue ``epoch`` after ``step`` batches of this rank were already taken."""
        if not 0 <= step <= len(self):
            raise HiersegError(f"cannot resume at step {step}: an epoch has {len(self)} steps per rank")
        self.epoch, self.start_step = epoch, step

    def __len__(self) -> int:
        return sum(self.batches_per_dataset) // self.world_size

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """Every rank's batches of ``epoch``, in the order they are handed out (before the rank split)."""
        batches = []
        for d, count in enumerate(self.batches_per_dataset):
            rng = np.random.default_rng([self.seed, epoch, d])
            mine: list[list[int]] = []
            while len(mine) < count:  # a fresh permutation each pass, so no batch holds a sample twice
                order = rng.permutation(self.sizes[d]) + self.offsets[d]
                size = self.batch_sizes[d]
                mine += [order[b:b + size].tolist() for b in range(0, self.sizes[d] - size + 1, size)]
            batches += mine[:count]
        shuffle = np.random.default_rng([self.seed, epoch, len(self.sizes)]).permutation(len(batches))
        batches = [batches[i] for i in shuffle]
        return batches[: len(self) * self.world_size]

    def dataset_of(self, batch: list[int]) -> int:
        return int(np.searchsorted(self.offsets, batch[0], side="right") - 1)

    def __iter__(self) -> Iterator[list[int]]:
        mine = self.epoch_batches(self.epoch)[self.rank::self.world_size]
        yield from mine[self.start_step:]

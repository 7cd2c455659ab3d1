"""One ``DataLoader`` over several datasets, each batch from one of them (their labels stay in their own ids)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import ConcatDataset, DataLoader

from hierseg.data.readers import SegmentationDataset
from hierseg.data.sampler import MultiDatasetBatchSampler


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack a one-dataset batch: ``image (B,3,H,W)``, ``label (B,H,W)``, and the dataset's name once."""
    names = {s["dataset"] for s in samples}
    if len(names) != 1:
        raise ValueError(f"a batch mixes datasets {sorted(names)}; use MultiDatasetBatchSampler")
    return {"image": torch.stack([s["image"] for s in samples]), "label": torch.stack([s["label"] for s in samples]),
            "dataset": names.pop(), "index": [s["index"] for s in samples], "path": [s["path"] for s in samples],
            "problems": [p for s in samples for p in s.get("problems", ())]}  # samples skipped (on_error="skip")


def multi_dataset_loader(datasets: Sequence[SegmentationDataset], batch_size: int | Sequence[int],
                         weights: Sequence[float] | None = None,
                         seed: int = 0, rank: int = 0, world_size: int = 1, workers: int = 2,
                         steps_per_epoch: int | None = None) -> tuple[DataLoader, MultiDatasetBatchSampler]:
    """The loader and its sampler (call ``sampler.set_epoch`` / ``resume``; datasets' ``set_epoch`` too).

    ``batch_size``: one for every dataset, or one per dataset (each batch holds its dataset's number of images)."""
    sampler = MultiDatasetBatchSampler([len(d) for d in datasets], batch_size, weights, seed, rank, world_size,
                                       steps_per_epoch)
    loader = DataLoader(ConcatDataset(datasets), batch_sampler=sampler, num_workers=workers, collate_fn=collate,
                        pin_memory=torch.cuda.is_available(), persistent_workers=False)
    return loader, sampler


def shutdown_workers(batches: Any) -> None:
    """Shut a loader iterator's workers down now. After an error the traceback holds the iterator (its own frames
    are in it) until interpreter exit, where Python terminates the workers and PyTorch's SIGCHLD handler turns
    that into a second error; a clean shutdown first takes them off its watch list."""
    shutdown = getattr(batches, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()

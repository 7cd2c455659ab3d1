"""Readers for the official on-disk layouts, and a generic images-plus-masks folder.

Listing a split pairs every image with its label up front (an image without a label, or a label without an
image, is a one-line error naming the file), so a broken copy fails before training starts. Loading checks
sizes and label values. With ``on_error="skip"`` each problem is a warning and a count in :attr:`problems`, and
a broken sample is replaced by the next good one; the sample that replaces it carries the problems in
``sample["problems"]``, so a process that reads through ``DataLoader`` workers learns of them too.

In a ``DataLoader`` worker a broken sample raises :class:`SampleError`, which comes back to the main process as
the same one-line message (PyTorch re-raises a worker's exception from its formatted traceback).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch.utils.data import Dataset

from hierseg.data.layouts import dataset_root, layout, recodes
from hierseg.taxonomy.annotations import Recode, read_dataset_label
from hierseg.taxonomy.errors import HiersegError
from hierseg.taxonomy.io import check_regular
from hierseg.taxonomy.specs import DatasetSpec, load_spec

OnError = Literal["raise", "skip"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class SampleError(HiersegError):
    """A sample that cannot be loaded. PyTorch re-creates a worker's exception in the main process as
    ``SampleError("Caught SampleError in DataLoader worker process N.\nOriginal Traceback ...")``; the message is
    taken back from the traceback's last line, so the user reads what a run without workers says."""

    def __init__(self, message: str) -> None:
        if message.startswith(f"Caught {type(self).__name__} "):
            last = message.rstrip().rsplit("\n", 1)[-1]
            message = last.partition(": ")[2] or last
        super().__init__(message)


@dataclass(frozen=True)
class Pair:
    image: Path
    label: Path


def read_image(path: Path) -> np.ndarray:
    """An RGB image as ``(H, W, 3)`` uint8."""
    from PIL import Image, UnidentifiedImageError

    check_regular(path, "image")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise HiersegError(f"{path}: cannot read image ({exc})") from None


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    check_regular(path, "image")
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise HiersegError(f"{path}: cannot read image ({exc})") from None


def _files(folder: Path, pattern: str) -> list[Path]:
    return sorted(p for p in folder.rglob(pattern) if not p.name.startswith("."))


def list_official(dataset: str, root: str | Path, split: str) -> tuple[list[Pair], list[str]]:
    """Pairs of one split of an official layout, and the pairing problems (orphan images or labels)."""
    spec = layout(dataset)
    root = dataset_root(dataset, root)
    if not root.is_dir():
        raise HiersegError(f"{root}: no such dataset root")
    if split not in spec.splits:
        raise HiersegError(f"{dataset}: no split {split!r}; the official layout has {', '.join(spec.splits)}")
    image_dir, label_dir = spec.image_dir(root, split), spec.label_dir(root, split)
    for folder in (image_dir, label_dir):
        if not folder.is_dir():
            raise HiersegError(f"{folder}: missing; the {dataset} layout puts split {split!r} there")
    pairs, problems, claimed = [], [], set()
    for image in _files(image_dir, spec.image_glob):
        label = spec.label_of(root, image, split)
        alt = spec.alternative(label)
        claimed.update((label, alt))
        if label.is_file():
            pairs.append(Pair(image, label))
        elif alt is not None and alt.is_file():
            pairs.append(Pair(image, alt))  # read through the layout's recode table
        else:
            problems.append(f"{image}: no label (expected {label})")
    problems += [f"{label}: label without an image" for label in _files(label_dir, spec.label_glob)
                 if label not in claimed]
    if spec.alt_suffix is not None:
        problems += [f"{label}: label without an image" for label in _files(label_dir, f"*{spec.alt_suffix}")
                     if label not in claimed]
    return pairs, problems


def list_folder(root: str | Path, images: str = "images", masks: str = "masks") -> tuple[list[Pair], list[str]]:
    """Pairs of a generic folder: ``images/**/NAME.{jpg,png}`` with ``masks/**/NAME.png`` (same relative path)."""
    root = Path(root)
    image_dir, mask_dir = root / images, root / masks
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise HiersegError(f"{folder}: missing; a generic dataset has {images}/ and {masks}/ folders")
    pairs, problems, claimed = [], [], set()
    for image in _files(image_dir, "*"):
        if image.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        label = (mask_dir / image.relative_to(image_dir)).with_suffix(".png")
        claimed.add(label)
        if label.is_file():
            pairs.append(Pair(image, label))
        else:
            problems.append(f"{image}: no mask (expected {label})")
    problems += [f"{mask}: mask without an image" for mask in _files(mask_dir, "*.png") if mask not in claimed]
    return pairs, problems


class SegmentationDataset(Dataset):
    """Samples of one dataset split: ``{"image", "label", "dataset", "index", "path"}``.

    ``image`` is ``(H, W, 3)`` uint8 and ``label`` ``(H, W)`` in the dataset's own ids before ``transform``; a
    transform is called as ``transform(image, label, rng)`` with a generator seeded from
    ``(seed, epoch, index)``, so augmentation is reproducible whatever the worker.
    """

    def __init__(self, name: str, spec: DatasetSpec, pairs: list[Pair], problems: list[str],
                 transform: Callable[..., dict[str, Any]] | None = None, on_error: OnError = "raise",
                 seed: int = 0, verify: bool = False, recodes: tuple[Recode, ...] = ()) -> None:
        self.name, self.spec, self.transform, self.on_error, self.seed = name, spec, transform, on_error, seed
        self.recodes = recodes
        self.epoch = 0
        self.problems: list[str] = []
        self._valid = np.zeros(65536, dtype=bool)
        self._valid[[*spec.ids, spec.ignore]] = True
        for problem in problems:
            self._problem(problem)
        self.pairs = pairs
        if verify:
            self.pairs = [pair for pair in pairs if self._verify(pair)]
        if not self.pairs:
            raise HiersegError(f"{name}: no samples found" + (f" ({self.problems[0]})" if self.problems else ""))

    def _problem(self, message: str) -> None:
        if self.on_error == "raise":
            raise HiersegError(message)
        warnings.warn(message, stacklevel=3)
        self.problems.append(message)

    def _verify(self, pair: Pair) -> bool:
        try:
            self.load(pair)
        except HiersegError as exc:
            self._problem(str(exc))
            return False
        return True

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def load(self, pair: Pair) -> tuple[np.ndarray, np.ndarray]:
        """Decode and check one pair: same size, every label value one of the dataset's ids."""
        image, label = read_image(pair.image), read_dataset_label(pair.label, self.recodes)
        if image.shape[:2] != label.shape:
            raise HiersegError(f"{pair.label}: label is {label.shape[1]}x{label.shape[0]} but its image "
                               f"{pair.image.name} is {image.shape[1]}x{image.shape[0]}")
        bad = ~np.take(self._valid, label)
        if bad.any():
            value = int(label[bad].flat[0])
            raise HiersegError(f"{pair.label}: value {value} is not a {self.name} label id")
        return image, label

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self.pairs) <= index < len(self.pairs):
            raise IndexError(f"{self.name}: index {index} out of range for {len(self.pairs)} samples")
        index %= len(self.pairs)
        skipped: list[str] = []
        for attempt in range(len(self.pairs)):
            i = (index + attempt) % len(self.pairs)
            try:
                image, label = self.load(self.pairs[i])
            except HiersegError as exc:
                if self.on_error == "raise":
                    raise SampleError(str(exc)) from None
                self._problem(str(exc))
                skipped.append(str(exc))
                continue
            sample = {"image": image, "label": label}
            if self.transform is not None:
                sample = self.transform(image, label, np.random.default_rng([self.seed, self.epoch, i]))
            return {**sample, "dataset": self.name, "index": i, "path": str(self.pairs[i].image),
                    "problems": tuple(skipped)}
        raise SampleError(f"{self.name}: no loadable sample left" + (f" ({skipped[0]})" if skipped else ""))


def official(dataset: str, root: str | Path, split: str, **kwargs: Any) -> SegmentationDataset:
    """One split of an official release (ADE20K, COCO-Stuff 164k, Cityscapes gtFine, Mapillary Vistas v1.2)."""
    pairs, problems = list_official(dataset, root, split)
    return SegmentationDataset(dataset, load_spec(dataset), pairs, problems, recodes=recodes(dataset), **kwargs)


def folder(root: str | Path, labels: str | Path, name: str, ignore: int = 255, images: str = "images",
           masks: str = "masks", **kwargs: Any) -> SegmentationDataset:
    """A user's dataset: ``images/`` and ``masks/`` under ``root`` and a label CSV (id,name,synonyms,color,evaluated)."""
    spec = DatasetSpec.from_csv(labels, name, ignore)
    pairs, problems = list_folder(root, images, masks)
    return SegmentationDataset(name, spec, pairs, problems, **kwargs)

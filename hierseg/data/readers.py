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

from hierseg.core.errors import HiersegError
from hierseg.core.io import check_regular
from hierseg.data.layouts import FOLDER, Layout, dataset_root, layout, layout_name, read_split_list, recodes
from hierseg.taxonomy.annotations import Recode, image_too_large, read_dataset_label
from hierseg.taxonomy.specs import DatasetSpec, dataset_spec
from hierseg.taxonomy.tree import Taxonomy

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
    """An RGB image as ``(H, W, 3)`` uint8. A 16-bit or float image is refused: converting it to 8 bits would clip
    every value above 255 (Pillow's conversion does), and how to scale it is the user's to say."""
    from PIL import Image, UnidentifiedImageError

    check_regular(path, "image")
    try:
        with Image.open(path) as image:
            if image.mode in ("I", "F") or image.mode.startswith("I;16"):
                raise HiersegError(f"{path}: a {'16-bit' if image.mode.startswith('I') else 'floating-point'} image "
                                   f"(mode {image.mode}); hierseg reads 8-bit images: convert it to 8 bits first")
            return np.asarray(image.convert("RGB"))
    except Image.DecompressionBombError as exc:
        raise image_too_large(path, exc) from None
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise HiersegError(f"{path}: cannot read image ({exc})") from None


def _files(folder: Path, pattern: str) -> list[Path]:
    return sorted(p for p in folder.rglob(pattern) if not p.name.startswith("."))


def list_official(dataset: str, root: str | Path, split: str, layout_of: str | None = None) -> tuple[list[Pair], list[str]]:
    """Pairs of one split of an official layout (``layout_of``, default the dataset's own), and the pairing problems
    (orphan images or labels; for a layout that lists its splits, listed samples without an image or label)."""
    name = layout_of or dataset
    spec = layout(name)
    root = dataset_root(name, root)
    if not root.is_dir():
        raise HiersegError(f"{root}: no such dataset root")
    if split not in spec.splits:
        raise HiersegError(f"{dataset}: no split {split!r}; the official layout has {', '.join(spec.splits)}")
    image_dir, label_dir = spec.image_dir(root, split), spec.label_dir(root, split)
    for folder in (image_dir, label_dir):
        if not folder.is_dir():
            raise HiersegError(f"{folder}: missing; the {name} layout puts split {split!r} there")
    if spec.list_file is not None:
        return _list_from_file(spec, root, split)
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


def _list_from_file(spec: Layout, root: Path, split: str) -> tuple[list[Pair], list[str]]:
    """A split given as a list of stems, one a line (VOC's ImageSets): the other files belong to other splits and
    tasks, so only listed samples are paired, and a listed stem without its image or label is the problem. Where an
    entry names a group of samples (ScanNet's scenes), each of its samples is paired, and an empty group is the
    problem."""
    listing, text = read_split_list(spec, root, split)
    lines = text.splitlines()
    pairs, problems, seen = [], [], {}
    for lineno, line in enumerate(lines, start=1):
        entry = line.strip()
        if not entry:
            continue
        where = f"{listing}:{lineno}"
        if entry in seen:
            problems.append(f"{where}: {entry} listed twice (first on line {seen[entry]})")
            continue
        seen[entry] = lineno
        stems = [entry] if spec.list_members is None else spec.list_members(root, entry)
        if not stems:
            problems.append(f"{where}: {entry}: no images (expected {spec.image_of(root, split, f'{entry}/*')})")
        for stem in stems:
            image = spec.image_of(root, split, stem)
            label = spec.label_of(root, image, split)
            if not image.is_file():
                problems.append(f"{where}: {stem}: no image (expected {image})")
            elif not label.is_file():
                problems.append(f"{where}: {stem}: no label (expected {label})")
            else:
                pairs.append(Pair(image, label))
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


def official(dataset: str, root: str | Path, split: str, *, taxonomy: Taxonomy | None = None,
             **kwargs: Any) -> SegmentationDataset:
    """One split of an official release (ADE20K, COCO-Stuff 164k, Cityscapes gtFine, Mapillary Vistas v1.2), or of a
    dataset added to the tree (``taxonomy``: the extended tree) whose spec names an official layout (PASCAL VOC,
    PASCAL-Context, CamVid, KITTI, WildDash, ScanNet)."""
    spec = dataset_spec(dataset, taxonomy.artifact if taxonomy is not None else None)
    name = layout_name(dataset, taxonomy)
    pairs, problems = list_official(dataset, root, split, name)
    return SegmentationDataset(dataset, spec, pairs, problems, recodes=recodes(name), **kwargs)


def folder(root: str | Path, labels: str | Path | None = None, name: str = FOLDER, ignore: int = 255,
           images: str = "images", masks: str = "masks", *, taxonomy: Taxonomy | None = None, split: str | None = None,
           **kwargs: Any) -> SegmentationDataset:
    """A user's dataset: ``images/`` and ``masks/`` under ``root`` (``images/<split>/`` with ``split``).

    Its labels come from the tree when ``taxonomy`` is an extended tree holding dataset ``name`` (``taxonomy build
    --add``): then the tree knows the dataset, and :class:`~hierseg.taxonomy.NeuronGraph` gives its universal
    targets. Otherwise from a label CSV (``labels``: id,name,synonyms,color,evaluated) with ``ignore``.
    """
    artifact = taxonomy.artifact if taxonomy is not None else None
    if artifact is not None:
        if name not in artifact.get("datasets", {}):
            raise HiersegError(f"the tree has no dataset {name!r} ({', '.join(artifact.get('datasets', {}))}); add it "
                               "with `hierseg taxonomy build --add SPEC.yaml` and pass that tree")
        spec = dataset_spec(name, artifact)
        if labels is not None:
            table = DatasetSpec.from_csv(labels, name, spec.ignore)
            if table.ids != spec.ids:
                raise HiersegError(f"{labels}: its ids differ from dataset {name!r} in the tree; pass one of them")
    elif labels is not None:
        spec = DatasetSpec.from_csv(labels, name, ignore)
    else:
        raise HiersegError(f"folder dataset {name!r} needs its labels: a label CSV, or the tree it was added to")
    if split is not None:
        images, masks = f"{images}/{split}", f"{masks}/{split}"
    pairs, problems = list_folder(root, images, masks)
    return SegmentationDataset(name, spec, pairs, problems, **kwargs)


def open_split(dataset: str, root: str | Path, split: str | None = None, *, taxonomy: Taxonomy | None = None,
               **kwargs: Any) -> SegmentationDataset:
    """One split of any dataset the tree covers, read the way its files lie: a built-in dataset by its official
    layout (``split`` defaults to the layout's training split); an added one by the layout its spec names in
    ``taxonomy``: an official one such as ``pascal_voc``, or ``folder``."""
    name = layout_name(dataset, taxonomy)
    if name == FOLDER:
        return folder(root, name=dataset, taxonomy=taxonomy, split=split, **kwargs)
    return official(dataset, root, split or layout(name).splits[0], taxonomy=taxonomy, **kwargs)

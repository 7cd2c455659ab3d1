"""Scoring a folder of prediction PNGs made elsewhere (another toolkit, another dataset's model) against a split.

Predictions may be in any label space the tree knows: the dataset's own ids, another dataset's (MSeg's cross-
dataset protocol), or tree concept indices (16-bit). Each prediction value is read as the dataset's label whose
extent holds its concept (:mod:`hierseg.evaluation.reading`): right where the ground truth is that label (``equal``
or ``finer``), wrong everywhere when no label holds it (``coarser``: the tree's ``vehicle`` on Cityscapes,
``outside``), and a miss when it has no concept (``not comparable``: void or ignore values, as the official
Cityscapes evaluation counts a prediction of a void id).

The report is the one checkpoint evaluation gives (:mod:`hierseg.evaluation.scoring`: flat, per-level and mistake
scores), with the pixel count of each kind. Every ground-truth file of the split needs exactly one prediction,
found anywhere under the folder by name: the sample's stem, its image's stem or its label's stem, with ``.png``
(mmsegmentation's and ``hierseg predict``'s image-named files, ...), or else ``STEM_<anything>.png`` as the
Cityscapes script looks for ``frankfurt_000000_000019*.png``.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hierseg.core.errors import HiersegError
from hierseg.data.layouts import layout, locate, recodes, resolve_split, split_labels
from hierseg.evaluation.comparison import comparison
from hierseg.evaluation.metrics import EvalClasses
from hierseg.evaluation.reading import Reading, reading
from hierseg.evaluation.report import Report
from hierseg.evaluation.scoring import report_of
from hierseg.evaluation.tally import Tally
from hierseg.taxonomy.annotations import Recode, map_files, read_dataset_label, read_label
from hierseg.taxonomy.labelspace import TREE, TREE_IGNORE, label_space
from hierseg.taxonomy.tree import Taxonomy


@dataclass(frozen=True)
class Judge:
    """Lookup tables that turn a prediction map into compact codes (:class:`~hierseg.evaluation.reading.Reading`),
    and the ground truth into class indices."""

    space: str
    reading: Reading
    codes: np.ndarray  # prediction value -> code (uint16); UNDEFINED for values the space does not define
    truth: np.ndarray  # ground-truth id -> class index (uint16), K for ids not evaluated, UNDEFINED for others
    k: int  # evaluated classes

    UNDEFINED = Reading.UNDEFINED

    @classmethod
    def of(cls, taxonomy: Taxonomy, space: str, dataset: str, classes: EvalClasses) -> Judge:
        read = reading(taxonomy, space, classes)
        k = len(classes)
        truth_space = label_space(taxonomy, dataset)
        truth = np.full(max(truth_space.size, 256), cls.UNDEFINED, dtype=np.uint16)
        for value in (*truth_space.ids, truth_space.ignore):
            truth[value] = classes.lut[value] if value < len(classes.lut) else k
        return cls(space, read, read.codes(), truth, k)

    def count(self, truth: np.ndarray, pred: np.ndarray, truth_where: str | Path = "ground truth",
              pred_where: str | Path = "prediction", dataset: str = "dataset") -> np.ndarray:
        """``(K + 1, codes)`` pixel counts of one label map pair: ground-truth class (K: not evaluated) by prediction
        code. A value either map does not define is an error naming ``truth_where``/``pred_where``.

        The (truth, prediction) value pairs are counted first, one packed integer per pixel, and only the few
        distinct pairs go through the lookup tables.
        """
        if truth.shape != pred.shape:
            raise HiersegError(f"{pred_where}: prediction is {pred.shape[1]}x{pred.shape[0]} but its ground truth "
                               f"{Path(truth_where).name} is {truth.shape[1]}x{truth.shape[0]}")
        if truth.dtype == np.uint8 and pred.dtype == np.uint8:
            bits, packed = 8, (truth.astype(np.uint16) << np.uint16(8)) | pred
            counts = np.bincount(packed.ravel(), minlength=1 << 16)
            values = np.flatnonzero(counts)
            counts = counts[values]
        else:  # 16-bit maps (tree predictions): too many pairs for a table, so count the distinct ones
            bits, packed = 16, (truth.astype(np.uint32) << np.uint32(16)) | pred.astype(np.uint32)
            values, counts = np.unique(packed, return_counts=True)
        rows = _lookup(self.truth, (values >> bits).astype(np.int64), truth_where, f"{dataset} label id")
        codes = _lookup(self.codes, (values & ((1 << bits) - 1)).astype(np.int64), pred_where, self.what)
        out = np.zeros((self.k + 1, len(self.reading)), dtype=np.int64)
        np.add.at(out, (rows.astype(np.int64), codes.astype(np.int64)), counts)
        return out

    @property
    def what(self) -> str:
        if self.space == TREE:
            return f"tree label id (concept indices 0..{len(self.reading) - 3}, {TREE_IGNORE} for ignore)"
        return f"{self.space} label id"


_state: dict[str, Any] = {}


def _init(judge: Judge, dataset: str, recode: tuple[Recode, ...]) -> None:
    _state.update(judge=judge, dataset=dataset, recodes=recode)


def _lookup(table: np.ndarray, values: np.ndarray, where: str | Path, what: str) -> np.ndarray:
    """``table[values]`` for the distinct values of a file; one it does not define is an error naming the file."""
    bad = values[values >= len(table)]
    if not len(bad):
        out = table[values]
        bad = values[out == Judge.UNDEFINED]
        if not len(bad):
            return out
    raise HiersegError(f"{where}: value {int(bad[0])} is not a {what}")


def _score_one(pair: tuple[Path, Path]) -> np.ndarray:
    """The counts of one ground-truth file and its prediction file (:meth:`Judge.count`)."""
    truth_path, pred_path = pair
    truth, pred = read_dataset_label(truth_path, _state["recodes"]), read_label(pred_path)
    return _state["judge"].count(truth, pred, truth_path, pred_path, _state["dataset"])


def _names(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def match_predictions(folder: Path, dataset: str, root: Path, split: str, truths: list[Path]) -> list[Path]:
    """The prediction file of each ground-truth file; missing, extra or ambiguous files are one error line."""
    spec = layout(dataset)
    by_stem: dict[str, list[Path]] = {}
    by_prefix: dict[str, list[Path]] = {}  # "frankfurt_000000_000019" -> files named frankfurt_000000_000019_*.png
    for path in sorted(folder.rglob("*.png")):
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts):
            by_stem.setdefault(path.stem, []).append(path)
            parts = path.stem.split("_")
            for i in range(1, len(parts)):
                by_prefix.setdefault("_".join(parts[:i]), []).append(path)
    found, missing, clashes, used = [], [], [], set()
    for truth in truths:
        stem = spec.stem_of(truth)
        names = dict.fromkeys((stem, spec.image_of(root, split, stem).stem, truth.stem))
        # exact names first; then, as the Cityscapes script matches them, STEM_<anything>.png
        hits = [p for name in names for p in by_stem.get(name, [])] or by_prefix.get(stem, [])
        if not hits:
            missing.append(stem)
        elif len(hits) > 1:
            clashes.append(f"{stem} ({', '.join(str(p.relative_to(folder)) for p in hits[:3])})")
        else:
            found.append(hits[0])
            used.add(hits[0])
    extra = [str(p.relative_to(folder)) for paths in by_stem.values() for p in paths if p not in used]
    if missing or clashes or extra:
        parts = []
        if missing:
            parts.append(f"no prediction for {len(missing)} of {len(truths)} {dataset} {split} images "
                         f"({_names(missing)})")
        if clashes:
            parts.append(f"several predictions for {len(clashes)} images ({_names(clashes, 2)})")
        if extra:
            parts.append(f"{len(extra)} files match no image ({_names(sorted(extra))})")
        hint = ""
        if (folder / "labels").is_dir() and (folder / "overlays").is_dir():
            hint = f"; for hierseg predict's output pass {folder / 'labels'}"
        raise HiersegError(f"{folder}: {'; '.join(parts)}{hint}")
    return found


def score_predictions(folder: str | Path, dataset: str, root: str | Path, split: str = "val", space: str | None = None,
                      *, taxonomy: Taxonomy | None = None, workers: int = 1,
                      on_image: Callable[[int], None] | None = None) -> Report:
    """Score the prediction PNGs under ``folder`` (in label space ``space``: a dataset or ``tree``; default
    ``dataset``) against ``split`` of ``dataset`` under ``root`` (its official layout; images are not needed)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HiersegError(f"{folder}: no such folder of predictions")
    taxonomy = taxonomy if taxonomy is not None else Taxonomy.load()
    space = space or dataset
    split = resolve_split(dataset, split)
    root, split = locate(dataset, root, split)
    truths = split_labels(dataset, root, split)
    if not truths:
        raise HiersegError(f"{layout(dataset).label_dir(root, split)}: no {dataset} label files")
    classes = EvalClasses.of(dataset, taxonomy)
    judge = Judge.of(taxonomy, space, dataset, classes)
    predictions = match_predictions(folder, dataset, root, split, truths)
    k, start = len(classes), time.perf_counter()
    joint = np.zeros((k + 1, len(judge.reading)), dtype=np.int64)
    for counts in map_files(_score_one, list(zip(truths, predictions, strict=True)), workers, _init,
                            (judge, dataset, recodes(dataset))):
        joint += counts
        if on_image is not None:
            on_image(1)
    tally = Tally(classes, judge.reading, joint[:k], taxonomy)
    settings = {"predictions": str(folder), "space": space}
    return report_of(tally, split, len(truths), time.perf_counter() - start, settings, extra=(comparison(tally),))

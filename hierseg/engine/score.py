"""Scoring a folder of prediction PNGs made elsewhere (another toolkit, another dataset's model) against a split.

Predictions may be in any label space the tree knows: the dataset's own ids, another dataset's (MSeg's cross-
dataset protocol), or tree concept indices (16-bit). Each prediction value is judged through the tree against the
ground truth's label space, by the translation :func:`hierseg.taxonomy.translate.translation` gives:

- ``equal``: the same concept; scored as that class;
- ``finer``: the prediction lies inside one ground-truth label's extent (Mapillary's lane marking on Cityscapes'
  road): scored as that class, so it is right where the truth is that label;
- ``coarser``: the prediction spans several ground-truth labels (the tree's ``vehicle`` on Cityscapes): always
  wrong, a miss of the true class and nobody's false positive;
- ``outside``: a concept the dataset does not label at all: wrong, likewise;
- ``not comparable``: a prediction value with no concept (the space's ignore or void values): the pixel cannot be
  compared; it counts as a miss, as the official Cityscapes evaluation counts a prediction of a void id.

The report is the one checkpoint evaluation gives (:class:`~hierseg.engine.evaluate.EvalReport`), with the pixel
count of each kind. Every ground-truth file of the split needs exactly one prediction, found anywhere under the
folder by name: the sample's stem, its image's stem or its label's stem, with ``.png`` (mmsegmentation's and
``hierseg predict``'s image-named files, ...), or else ``STEM_<anything>.png`` as the Cityscapes script looks for
``frankfurt_000000_000019*.png``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hierseg.core.errors import HiersegError
from hierseg.data.layouts import layout, locate, recodes, split_labels
from hierseg.engine.evaluate import EvalReport, resolve_split
from hierseg.engine.metrics import EvalClasses, compute_metrics
from hierseg.taxonomy.annotations import Recode, map_files, read_dataset_label, read_label
from hierseg.taxonomy.labelspace import label_space
from hierseg.taxonomy.translate import translation
from hierseg.taxonomy.tree import Taxonomy

KINDS = ("equal", "finer", "coarser", "outside", "not_comparable")
# A prediction whose label only overlaps the truth's (taxonomy ``overlaps``) is, like a coarser one, no class's.
_KIND_OF_RELATION = {"equal": "equal", "coarser": "finer", "finer-ambiguous": "coarser", "overlap": "coarser"}


@dataclass(frozen=True)
class Judge:
    """Lookup tables that turn a prediction map into compact codes, and each code into a matrix column and kind."""

    space: str
    codes: np.ndarray  # prediction value -> code (uint16); UNDEFINED for values the space does not define
    columns: np.ndarray  # code -> column of the K x (K + 1) matrix (K: no evaluated class)
    kinds: np.ndarray  # code -> index into KINDS
    truth: np.ndarray  # ground-truth id -> class index (uint16), K for ids not evaluated, UNDEFINED for others

    UNDEFINED = np.iinfo(np.uint16).max

    @classmethod
    def of(cls, taxonomy: Taxonomy, space: str, dataset: str, classes: EvalClasses) -> Judge:
        table = translation(taxonomy, space, dataset)
        k = len(classes)
        codes = np.full(max(table.source.size, 256), cls.UNDEFINED, dtype=np.uint16)
        columns, kinds = [], []
        for code, entry in enumerate(table.entries):
            codes[entry.source_id] = code
            kind = _KIND_OF_RELATION.get(entry.relation)
            if kind is None:
                kind = "not_comparable" if entry.source_concept is None else "outside"
            scored = kind in ("equal", "finer") and entry.target_id < len(classes.lut)
            columns.append(int(classes.lut[entry.target_id]) if scored else k)
            kinds.append(KINDS.index(kind))
        truth_space = label_space(taxonomy, dataset)
        truth = np.full(max(truth_space.size, 256), cls.UNDEFINED, dtype=np.uint16)
        for value in (*truth_space.ids, truth_space.ignore):
            truth[value] = classes.lut[value] if value < len(classes.lut) else k
        return cls(space, codes, np.array(columns), np.array(kinds), truth)


_state: dict[str, Any] = {}


def _init(judge: Judge, dataset: str, recode: tuple[Recode, ...], k: int) -> None:
    _state.update(judge=judge, dataset=dataset, recodes=recode, k=k)


def _lookup(table: np.ndarray, values: np.ndarray, path: Path, what: str) -> np.ndarray:
    """``table[values]`` for the distinct values of a file; one it does not define is an error naming the file."""
    bad = values[values >= len(table)]
    if not len(bad):
        out = table[values]
        bad = values[out == Judge.UNDEFINED]
        if not len(bad):
            return out
    raise HiersegError(f"{path}: value {int(bad[0])} is not a {what} label id")


def _score_one(pair: tuple[Path, Path]) -> np.ndarray:
    """``(K + 1, codes)`` pixel counts of one image: ground-truth class (K: not evaluated) by prediction code.

    The (truth, prediction) value pairs are counted first, one packed integer per pixel, and only the few distinct
    pairs go through the lookup tables.
    """
    truth_path, pred_path = pair
    judge: Judge = _state["judge"]
    truth, pred = read_dataset_label(truth_path, _state["recodes"]), read_label(pred_path)
    if truth.shape != pred.shape:
        raise HiersegError(f"{pred_path}: prediction is {pred.shape[1]}x{pred.shape[0]} but its ground truth "
                           f"{truth_path.name} is {truth.shape[1]}x{truth.shape[0]}")
    if truth.dtype == np.uint8 and pred.dtype == np.uint8:
        bits, packed = 8, (truth.astype(np.uint16) << np.uint16(8)) | pred
        counts = np.bincount(packed.ravel(), minlength=1 << 16)
        values = np.flatnonzero(counts)
        counts = counts[values]
    else:  # 16-bit maps (tree predictions): too many pairs for a table, so count the distinct ones
        bits, packed = 16, (truth.astype(np.uint32) << np.uint32(16)) | pred.astype(np.uint32)
        values, counts = np.unique(packed, return_counts=True)
    rows = _lookup(judge.truth, (values >> bits).astype(np.int64), truth_path, _state["dataset"])
    codes = _lookup(judge.codes, (values & ((1 << bits) - 1)).astype(np.int64), pred_path, judge.space)
    out = np.zeros((_state["k"] + 1, len(judge.columns)), dtype=np.int64)
    np.add.at(out, (rows.astype(np.int64), codes.astype(np.int64)), counts)
    return out


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
                      on_image: Callable[[int], None] | None = None) -> EvalReport:
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
    joint = np.zeros((k + 1, len(judge.columns)), dtype=np.int64)
    for counts in map_files(_score_one, list(zip(truths, predictions, strict=True)), workers, _init,
                            (judge, dataset, recodes(dataset), k)):
        joint += counts
        if on_image is not None:
            on_image(1)
    scored = joint[:k]
    onehot = np.zeros((len(judge.columns), k + 1), dtype=np.int64)
    onehot[np.arange(len(judge.columns)), judge.columns] = 1
    matrix = scored @ onehot
    per_kind = np.bincount(judge.kinds, weights=scored.sum(0), minlength=len(KINDS))  # float64: exact below 2**53
    comparison = {"space": space, "pixels": int(scored.sum()), **dict(zip(KINDS, map(int, per_kind), strict=True))}
    settings = {"predictions": str(folder), "space": space}
    return EvalReport(dataset, split, len(truths), time.perf_counter() - start, compute_metrics(matrix, classes),
                      settings, comparison)

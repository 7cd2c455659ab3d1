"""Segmentation metrics from one confusion matrix over a dataset's evaluated classes.

The classes are the labels a benchmark scores (``evaluated`` in the dataset's spec: Cityscapes' 19 by labelId,
COCO-Stuff's 171, ADE20K's 150, Mapillary's 65). The matrix is ``K x (K + 1)``: rows are ground-truth classes,
columns predicted classes plus one column for predictions of any other value (void, ignore, non-evaluated ids),
which count as misses of the true class but as nobody's false positive. Pixels whose ground truth is not an
evaluated class are skipped. :class:`ConfusionMatrix` keeps the prediction's id itself (``K x (ids + 1)``), so the
tree-aware scores can see what a wrong prediction was (:mod:`hierseg.evaluation.tally`); the flat matrix is a view.

From the matrix: mean IoU, pixel accuracy and class-average accuracy (the columns of the DSSPN tables), per-class
IoU and accuracy, the mIoU of the classes grouped by their concept's depth, and for a dataset whose label table has
a ``category`` column (Cityscapes' flat, construction, object, nature, sky, human, vehicle) the category IoU of the
official Cityscapes evaluation: a category's evaluated classes pooled, a prediction of another class of the same
category counted as right. Classes absent from both ground truth and prediction have no IoU (NaN) and are left out
of every mean, as in mmsegmentation.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from hierseg.core.errors import HiersegError
from hierseg.evaluation.sections import COUNT, TEXT, Field, Section
from hierseg.taxonomy.specs import DatasetSpec, dataset_spec
from hierseg.taxonomy.tree import Taxonomy

INNER = "inner"  # group of classes whose concept is an inner node of the tree


@dataclass(frozen=True)
class EvalClass:
    id: int
    name: str
    concept: str | None  # None when the tree does not cover the dataset
    depth: int | None  # of the concept (root = 0)
    leaf: bool | None  # is the concept a leaf of the tree?
    category: str | None = None  # the label table's category column (Cityscapes), if it has one


@dataclass(frozen=True)
class EvalClasses:
    """The evaluated classes of one dataset, in id order, and the table from its ids to class indices."""

    dataset: str
    classes: tuple[EvalClass, ...]
    lut: np.ndarray  # dataset id -> class index; len(classes) for every id that is not evaluated

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(c.id for c in self.classes)

    @classmethod
    def of(cls, dataset: str | DatasetSpec, taxonomy: Taxonomy | None = None) -> EvalClasses:
        """From a dataset name (its spec: shipped, or carried by an extended ``taxonomy``) or a spec; concepts from
        ``taxonomy`` (default: the shipped tree)."""
        taxonomy = taxonomy if taxonomy is not None else Taxonomy.load()
        spec = dataset_spec(dataset, taxonomy.artifact) if isinstance(dataset, str) else dataset
        covered = spec.name in taxonomy.datasets
        classes = []
        for label in spec.labels:
            if not label.evaluated:
                continue
            concept = taxonomy.concept_of(spec.name, label.id) if covered else None
            classes.append(EvalClass(label.id, label.name, concept,
                                     taxonomy[concept].depth if concept else None,
                                     taxonomy.is_leaf(concept) if concept else None,
                                     label.extra.get("category") or None))
        if not classes:
            raise HiersegError(f"{spec.name}: no label is marked evaluated in its label table")
        lut = np.full(spec.num_ids, len(classes), dtype=np.int64)
        lut[[c.id for c in classes]] = np.arange(len(classes))
        return cls(spec.name, tuple(classes), lut)


class ConfusionMatrix:
    """Accumulates ``(ground truth, prediction)`` pixel counts with one ``torch.bincount`` per batch, on the
    device of the predictions (int64, so no count overflows). Rows are the evaluated classes, columns the
    predicted ids of the dataset plus one for any other value; :attr:`matrix` is the flat ``K x (K + 1)`` view."""

    def __init__(self, classes: EvalClasses, device: str | torch.device = "cpu") -> None:
        self.classes = classes
        k, ids = len(classes), len(classes.lut)
        self.counts = torch.zeros(k, ids + 1, dtype=torch.int64, device=device)
        self._lut = torch.from_numpy(classes.lut).to(device)

    def _index(self, values: torch.Tensor, table: torch.Tensor | None, other: int) -> torch.Tensor:
        """Dataset ids through ``table`` (or as they are); values outside the ids become ``other``."""
        size = len(self._lut)
        values = values.long()
        inside = (values >= 0) & (values < size)
        clamped = values.clamp(0, size - 1)
        return torch.where(inside, clamped if table is None else table[clamped], other)

    def update(self, prediction: torch.Tensor, label: torch.Tensor) -> None:
        """Add a batch: ``prediction`` and ``label`` of the same shape, both in the dataset's ids."""
        if prediction.shape != label.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} and label {tuple(label.shape)} differ in shape")
        if self.counts.device != prediction.device:
            self.counts, self._lut = self.counts.to(prediction.device), self._lut.to(prediction.device)
        k, columns = self.counts.shape
        truth = self._index(label.to(prediction.device), self._lut, k)
        pred = self._index(prediction, None, columns - 1)
        valid = truth < k
        self.counts += torch.bincount(truth[valid] * columns + pred[valid], minlength=k * columns).view(k, columns)

    @property
    def matrix(self) -> torch.Tensor:
        """The flat ``K x (K + 1)`` matrix: predicted ids as classes, every id not evaluated in column K."""
        k = len(self.classes)
        columns = torch.cat([self._lut, self._lut.new_tensor([k])])
        return self.counts.new_zeros(k, k + 1).index_add_(1, columns, self.counts)

    def reduced(self) -> torch.Tensor:
        """The counts summed over DDP ranks when a process group is up; the local counts otherwise."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            total = self.counts.clone()
            torch.distributed.all_reduce(total)
            return total
        return self.counts


def confusion_matrix(prediction: torch.Tensor, label: torch.Tensor, classes: EvalClasses) -> torch.Tensor:
    """The ``K x (K + 1)`` matrix of one batch."""
    matrix = ConfusionMatrix(classes, prediction.device)
    matrix.update(prediction, label)
    return matrix.matrix


@dataclass(frozen=True)
class ClassScore:
    id: int
    name: str
    concept: str | None
    depth: int | None
    leaf: bool | None
    iou: float  # NaN when the class is in neither ground truth nor prediction
    acc: float  # NaN when the class is not in the ground truth
    pixels: int  # ground-truth pixels
    predicted: int  # pixels predicted as this class


@dataclass(frozen=True)
class GroupScore:
    """mIoU over a group of classes: the leaf-concept classes at one depth, or the inner-concept classes."""

    group: str  # "depth 4", ..., or "inner"
    depth: int | None
    classes: int  # classes in the group
    present: int  # of those, classes with an IoU (in ground truth or prediction)
    miou: float


@dataclass(frozen=True)
class CategoryScore:
    """IoU of a category (Cityscapes' ``getIouScoreForCategory``): its evaluated classes taken as one."""

    category: str
    classes: int
    iou: float  # NaN when the category is in neither ground truth nor prediction


@dataclass(frozen=True)
class Metrics:
    miou: float
    pixel_acc: float
    mean_acc: float  # class-average accuracy
    pixels: int  # evaluated ground-truth pixels
    classes: tuple[ClassScore, ...]
    groups: tuple[GroupScore, ...]
    categories: tuple[CategoryScore, ...] = ()  # empty when the dataset's label table has no categories

    @property
    def category_miou(self) -> float:
        return nanmean(np.array([c.iou for c in self.categories])) if self.categories else math.nan

    def sections(self) -> tuple[Section, ...]:
        """Overall figures, the depth groups, Cityscapes' categories, and every class (detail)."""
        present = sum(1 for c in self.classes if not math.isnan(c.iou))
        out = [Section(
            "overall", "overall",
            ((Field("miou", "mIoU"), self.miou), (Field("pixel_acc", "pixel acc."), self.pixel_acc),
             (Field("mean_acc", "class-average acc."), self.mean_acc), (Field("pixels", "pixels", COUNT), self.pixels),
             (Field("classes", "classes", COUNT), len(self.classes)), (Field("present", "present", COUNT), present)),
            scalars={"mIoU": self.miou, "pixel_acc": self.pixel_acc, "mean_acc": self.mean_acc},
            note="present: evaluated classes in the ground truth or the predictions (the others have no IoU)")]
        if self.groups:
            out.append(Section(
                "depth_groups", "mIoU of the classes grouped by their concept's depth",
                columns=(Field("group", "group", TEXT), Field("depth", "depth", COUNT), Field("classes", "classes", COUNT),
                         Field("present", "present", COUNT), Field("miou", "mIoU")),
                rows=tuple((g.group, g.depth, g.classes, g.present, g.miou) for g in self.groups),
                note="depth d: the classes whose concept is a leaf at depth d; inner: those whose concept has children. "
                     "Not a level of the tree: see levels"))
        if self.categories:
            out.append(Section(
                "categories", "categories", ((Field("miou", "category mIoU"), self.category_miou),),
                (Field("category", "category", TEXT), Field("classes", "classes", COUNT), Field("iou", "IoU")),
                tuple((c.category, c.classes, c.iou) for c in self.categories),
                scalars={"category_mIoU": self.category_miou}))
        out.append(Section(
            "classes", "per class",
            columns=(Field("id", "id", COUNT), Field("name", "class", TEXT), Field("concept", "concept", TEXT),
                     Field("depth", "depth", COUNT), Field("leaf", "leaf", TEXT), Field("iou", "IoU"),
                     Field("acc", "acc."), Field("pixels", "pixels", COUNT), Field("predicted", "predicted", COUNT)),
            rows=tuple((c.id, c.name, c.concept, c.depth, c.leaf, c.iou, c.acc, c.pixels, c.predicted)
                       for c in self.classes),
            detail=True))
        return tuple(out)


def nanmean(values: np.ndarray) -> float:
    """Mean of the finite values; NaN (without numpy's warning) when there are none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, math.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _numpy(matrix: torch.Tensor | np.ndarray) -> np.ndarray:
    return matrix.cpu().numpy() if isinstance(matrix, torch.Tensor) else np.asarray(matrix)


def class_scores(matrix: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class IoU and accuracy, ground-truth and predicted pixel counts of a ``K x (K + 1)`` matrix.

    IoU = TP / (TP + FP + FN) with FP counted over the K class columns only; accuracy = TP / ground-truth pixels.
    """
    m = _numpy(matrix)
    k = m.shape[0]
    if m.shape != (k, k + 1):
        raise ValueError(f"expected a K x (K + 1) matrix, got {m.shape}")
    tp = np.diag(m[:, :k]).astype(np.float64)
    truth = m.sum(1).astype(np.float64)
    predicted = m[:, :k].sum(0).astype(np.float64)
    return _ratio(tp, truth + predicted - tp), _ratio(tp, truth), truth.astype(np.int64), predicted.astype(np.int64)


def group_scores(classes: EvalClasses, iou: np.ndarray) -> tuple[GroupScore, ...]:
    """mIoU per depth over the classes whose concept is a leaf of the tree, deepest last; then one ``inner`` group
    for the classes whose concept has children (Cityscapes' ``road`` above Mapillary's markings): such a class
    stands for a whole subtree, so it belongs to no single depth. Classes without a concept are in no group."""
    members: dict[int | None, list[int]] = defaultdict(list)
    for i, c in enumerate(classes.classes):
        if c.concept is not None:
            members[c.depth if c.leaf else None].append(i)

    def score(name: str, depth: int | None) -> GroupScore:
        values = iou[members[depth]]
        return GroupScore(name, depth, len(values), int(np.isfinite(values).sum()), nanmean(values))

    depths = sorted(d for d in members if d is not None)
    return tuple([score(f"depth {d}", d) for d in depths] + ([score(INNER, None)] if None in members else []))


def category_scores(matrix: np.ndarray, classes: EvalClasses) -> tuple[CategoryScore, ...]:
    """Per category, in order of first appearance: TP = the category's rows and columns, FN = the rest of its rows
    (other columns included), FP = its columns in the rows of evaluated classes of other categories."""
    members: dict[str, list[int]] = {}
    for i, c in enumerate(classes.classes):
        if c.category is not None:
            members.setdefault(c.category, []).append(i)
    k, out = len(classes), []
    for category, rows in members.items():
        others = [i for i in range(k) if i not in rows]
        tp = int(matrix[np.ix_(rows, rows)].sum())
        fn = int(matrix[rows].sum()) - tp
        fp = int(matrix[np.ix_(others, rows)].sum())
        union = tp + fp + fn
        out.append(CategoryScore(category, len(rows), tp / union if union else math.nan))
    return tuple(out)


def compute_metrics(matrix: torch.Tensor | np.ndarray, classes: EvalClasses) -> Metrics:
    """Every score of a confusion matrix (reduce it across ranks first: :meth:`ConfusionMatrix.reduced`)."""
    matrix = _numpy(matrix)
    iou, acc, truth, predicted = class_scores(matrix)
    if len(iou) != len(classes):
        raise ValueError(f"matrix has {len(iou)} classes, {classes.dataset} evaluates {len(classes)}")
    total = int(truth.sum())
    correct = int(np.trace(matrix[:, :len(iou)]))
    per_class = tuple(ClassScore(c.id, c.name, c.concept, c.depth, c.leaf, float(iou[i]), float(acc[i]), int(truth[i]),
                                 int(predicted[i])) for i, c in enumerate(classes.classes))
    return Metrics(miou=nanmean(iou), pixel_acc=correct / total if total else math.nan, mean_acc=nanmean(acc),
                   pixels=total, classes=per_class, groups=group_scores(classes, iou),
                   categories=category_scores(matrix, classes))

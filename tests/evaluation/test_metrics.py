"""Confusion matrix and the scores derived from it: against brute force, hand-made cases and the real tree."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hierseg.evaluation.metrics import INNER, ConfusionMatrix, EvalClasses, class_scores, compute_metrics, confusion_matrix
from hierseg.taxonomy import Taxonomy, load_spec
from hierseg.taxonomy.specs import DatasetSpec, Label


@pytest.fixture(scope="module")
def tax() -> Taxonomy:
    return Taxonomy.load()


def toy_spec() -> DatasetSpec:
    """Ids 1..5, ignore 0; id 4 is a void label that is not evaluated."""
    labels = [Label(1, "a"), Label(2, "b"), Label(3, "c"), Label(4, "void", evaluated=False), Label(5, "d")]
    return DatasetSpec("toy", "toy", 0, "ignore", tuple(labels))


def brute_force(pred: np.ndarray, label: np.ndarray, ids: list[int]) -> np.ndarray:
    k = len(ids)
    matrix = np.zeros((k, k + 1), dtype=np.int64)
    for p, t in zip(pred.ravel().tolist(), label.ravel().tolist(), strict=True):
        if t not in ids:
            continue
        matrix[ids.index(t), ids.index(p) if p in ids else k] += 1
    return matrix


def test_evaluated_classes_follow_the_specs(tax):
    for dataset, k in (("cityscapes", 19), ("coco_stuff", 171), ("ade20k", 150), ("mapillary", 65)):
        classes = EvalClasses.of(dataset, tax)
        spec = load_spec(dataset)
        assert len(classes) == k
        assert classes.ids == tuple(label.id for label in spec.labels if label.evaluated)
        assert classes.lut[spec.ignore] == k and len(classes.lut) == spec.num_ids
        assert all(c.concept == tax.concept_of(dataset, c.id) for c in classes.classes)
    cityscapes = EvalClasses.of("cityscapes", tax)
    assert cityscapes.lut[4] == 19  # 'static' is void: not scored
    assert cityscapes.classes[cityscapes.lut[7]].name == "road"


def test_confusion_matrix_matches_a_brute_force_loop():
    classes = EvalClasses.of("cityscapes")
    ids = list(classes.ids)
    rng = np.random.default_rng(0)
    matrix = ConfusionMatrix(classes)
    expected = np.zeros((19, 20), dtype=np.int64)
    scored = 0
    for _ in range(3):
        # every cityscapes value incl. ignore 0 and void ids, plus predictions outside the label table
        label = rng.integers(0, 34, size=(2, 9, 11))
        pred = np.where(rng.random(label.shape) < 0.5, label, rng.integers(-3, 260, size=label.shape))
        matrix.update(torch.from_numpy(pred), torch.from_numpy(label))
        expected += brute_force(pred, label, ids)
        scored += int(np.isin(label, ids).sum())
    assert matrix.matrix.dtype == torch.int64
    assert np.array_equal(matrix.matrix.numpy(), expected)
    assert int(matrix.matrix.sum()) == scored
    one = confusion_matrix(torch.tensor([[7, 8, 4]]), torch.tensor([[7, 7, 0]]), classes)
    assert one.sum() == 2 and one[0, 0] == 1 and one[0, 1] == 1  # ignore pixel skipped; road predicted as sidewalk


def test_confusion_matrix_skips_pixels_whose_truth_is_not_evaluated():
    classes = EvalClasses.of(toy_spec(), Taxonomy.load())
    label = torch.tensor([0, 4, 1, 1, 2, 5])
    pred = torch.tensor([1, 1, 1, 4, 0, 5])
    m = confusion_matrix(pred, label, classes).numpy()
    # rows/cols: a, b, c, d (+ other); ignore (0) and void (4) truths are skipped, void/ignore predictions are 'other'
    assert m.tolist() == [[1, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 0, 0, 1, 0]]
    with pytest.raises(ValueError, match="differ in shape"):
        confusion_matrix(pred[:3], label, classes)


def test_scores_on_a_hand_made_matrix():
    classes = EvalClasses.of(toy_spec(), Taxonomy.load())
    #             a  b  c  d  other     (ground truth rows a, b, c, d)
    m = np.array([[3, 1, 1, 0, 0],
                  [0, 2, 0, 0, 2],
                  [0, 0, 0, 0, 0],
                  [0, 0, 0, 0, 0]])
    iou, acc, truth, predicted = class_scores(m)
    # a: TP 3, FN 2, FP 0 -> 3/5; b: TP 2, FN 2, FP 1 -> 2/5; c: only a false positive -> 0; d: nowhere -> NaN
    assert np.allclose(iou[:3], [0.6, 0.4, 0.0]) and math.isnan(iou[3])
    assert np.allclose(acc[:2], [0.6, 0.5]) and math.isnan(acc[2]) and math.isnan(acc[3])
    assert truth.tolist() == [5, 4, 0, 0] and predicted.tolist() == [3, 3, 1, 0]
    metrics = compute_metrics(m, classes)
    assert metrics.miou == pytest.approx(1 / 3)
    assert metrics.pixel_acc == pytest.approx(5 / 9)
    assert metrics.mean_acc == pytest.approx(0.55)
    assert metrics.pixels == 9
    assert [c.name for c in metrics.classes] == ["a", "b", "c", "d"]
    assert metrics.groups == ()  # the toy dataset is not in the tree: no concepts, no depth groups

    empty = compute_metrics(np.zeros((4, 5), dtype=np.int64), classes)
    assert math.isnan(empty.miou) and math.isnan(empty.pixel_acc) and math.isnan(empty.mean_acc)


def test_depth_groups_on_the_real_tree(tax):
    classes = EvalClasses.of("mapillary", tax)
    k = len(classes)
    rng = np.random.default_rng(1)
    m = np.zeros((k, k + 1), dtype=np.int64)
    m[np.arange(k), np.arange(k)] = rng.integers(1, 50, size=k)
    m[:, k] = rng.integers(0, 50, size=k)  # misses: IoU = TP / (TP + misses), different per class
    m[5] = 0  # one class absent: no IoU, left out of its group's mean
    metrics = compute_metrics(m, classes)
    iou = {c.id: c.iou for c in metrics.classes}

    expected: dict[object, list[int]] = {}
    for label in load_spec("mapillary").labels:
        concept = tax.concept_of("mapillary", label.id)
        key = tax[concept].depth if tax.is_leaf(concept) else INNER
        expected.setdefault(key, []).append(label.id)
    groups = {g.depth if g.depth is not None else g.group: g for g in metrics.groups}
    assert set(groups) == set(expected)
    assert [g.group for g in metrics.groups][-1] == INNER
    assert sum(g.classes for g in metrics.groups) == k
    for key, members in expected.items():
        scores = [iou[i] for i in members if not math.isnan(iou[i])]
        assert groups[key].classes == len(members) and groups[key].present == len(scores)
        assert groups[key].miou == pytest.approx(sum(scores) / len(scores))
    depths = [g.depth for g in metrics.groups if g.depth is not None]
    assert depths == sorted(depths) and all(d <= tax.max_depth for d in depths)


def test_reduction_only_with_a_process_group(tmp_path, monkeypatch):
    classes = EvalClasses.of("cityscapes")
    matrix = ConfusionMatrix(classes)
    matrix.update(torch.tensor([[7, 8]]), torch.tensor([[7, 8]]))
    calls = []

    def spy(tensor, *args, **kwargs):
        calls.append(tensor.clone())
        tensor.mul_(2)  # as if a second rank had the same counts

    monkeypatch.setattr(torch.distributed, "all_reduce", spy)
    assert torch.equal(matrix.reduced(), matrix.counts) and not calls  # no process group: never called

    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        total = matrix.reduced()
    finally:
        torch.distributed.destroy_process_group()
    assert len(calls) == 1 and torch.equal(total, 2 * matrix.counts)
    assert int(matrix.counts.sum()) == 2  # the local counts are left as they were


def test_category_iou_pools_each_categorys_evaluated_classes():
    classes = EvalClasses.of("cityscapes")
    spec = load_spec("cityscapes")
    category = {label.id: label.extra["category"] for label in spec.labels}
    evaluated = set(classes.ids)
    rng = np.random.default_rng(3)
    label = rng.integers(0, 34, size=(40, 50))
    pred = np.where(rng.random(label.shape) < 0.4, label, rng.integers(0, 34, size=label.shape))
    metrics = compute_metrics(confusion_matrix(torch.from_numpy(pred), torch.from_numpy(label), classes), classes)
    names = [c.category for c in metrics.categories]
    assert names == ["flat", "construction", "object", "nature", "sky", "human", "vehicle"]  # void: none evaluated
    for score in metrics.categories:
        in_cat = np.vectorize(lambda v, c=score.category: v in evaluated and category.get(int(v)) == c)
        gt, pr = in_cat(label), in_cat(pred)
        scored = np.isin(label, list(evaluated))
        tp = int((gt & pr).sum())
        fn = int((gt & ~pr).sum())
        fp = int((scored & ~gt & pr).sum())
        assert math.isclose(score.iou, tp / (tp + fp + fn))
    assert math.isclose(metrics.category_miou, np.mean([c.iou for c in metrics.categories]))
    assert compute_metrics(np.zeros((4, 5)), EvalClasses.of(toy_spec(), Taxonomy.load())).categories == ()

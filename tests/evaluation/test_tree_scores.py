"""mIoU at each level of the tree and mistake severity, worked out by hand on a tree built here: nested labels, a
label without a concept of its own below it, predictions at inner concepts, finer, coarser, outside and void."""

from __future__ import annotations

import csv
import io
import json
import math
from fractions import Fraction as F

import numpy as np
import pytest

from hierseg.evaluation.comparison import Comparison, comparison
from hierseg.evaluation.levels import LevelScores
from hierseg.evaluation.metrics import EvalClasses
from hierseg.evaluation.reading import reading
from hierseg.evaluation.score import Judge
from hierseg.evaluation.scoring import report_of, scalar_names
from hierseg.evaluation.sections import Field, Section
from hierseg.evaluation.severity import Severity
from hierseg.evaluation.tally import Tally
from hierseg.taxonomy.labelspace import TREE_IGNORE
from hierseg.taxonomy.specs import DatasetSpec, Label
from hierseg.taxonomy.tree import Taxonomy

#   root ─┬─ things ─┬─ animal ─┬─ dog        toy labels (ignore 0): 1 dog, 2 cat, 3 vehicle, 4 car, 5 road, 6 sky
#         │          │          └─ cat        evaluated; 7 void (no concept), 8 bus (labelled, not evaluated).
#         │          └─ vehicle ┬─ car        vehicle has car and bus below it: its extent is vehicle itself
#         │                     └─ bus        (the self output of a tree prediction that rests at vehicle);
#         └─ stuff ──┬─ road ─── lane         road's extent holds lane, which toy does not label;
#                    ├─ sky                   tree (a plant) is a concept toy labels nothing at, above or below.
#                    └─ tree
EDGES = [("root", None), ("things", "root"), ("animal", "things"), ("dog", "animal"), ("cat", "animal"),
         ("vehicle", "things"), ("car", "vehicle"), ("bus", "vehicle"), ("stuff", "root"), ("road", "stuff"),
         ("lane", "road"), ("sky", "stuff"), ("tree", "stuff")]
LABELS = {"dog": 1, "cat": 2, "vehicle": 3, "car": 4, "road": 5, "sky": 6, "bus": 8}

# (true toy label, prediction as a tree concept), one pixel each; the numbers below are worked out from this list
PIXELS = [
    ("dog", "dog"),  # right
    ("dog", "cat"),  # sibling: severity 1
    ("dog", "animal"),  # coarser (toy labels nothing at animal): wrong, meets dog at animal: 1
    ("cat", "cat"),  # right
    ("cat", "car"),  # meets at things: 2
    ("vehicle", "vehicle"),  # a prediction resting at vehicle is toy's vehicle: right
    ("vehicle", "bus"),  # toy's bus, not evaluated: wrong; below the true concept: 0
    ("car", "vehicle"),  # read as toy's vehicle: a false positive of vehicle; stopped one level early: 1
    ("car", "car"),  # right
    ("road", "lane"),  # finer: inside road's extent, so road: right
    ("road", "road"),  # right
    ("road", "sky"),  # meets at stuff: 1
    ("sky", "things"),  # coarser: meets at the root: 2
    ("sky", None),  # void (the tree's ignore value): no concept, a child of the root of its own: 2
    ("sky", "tree"),  # outside: meets at stuff: 1
    ("sky", "sky"),  # right
    (0, "dog"),  # ignore and void ground truth: not evaluated
    (7, "dog"),
]


def toy_tree() -> Taxonomy:
    depth, concepts = {}, []
    for cid, parent in EDGES:
        depth[cid] = 0 if parent is None else depth[parent] + 1
        labels = {"toy": [LABELS[cid]]} if cid in LABELS else {}
        concepts.append({"id": cid, "name": cid, "parent": parent, "depth": depth[cid], "labels": labels})
    return Taxonomy({"root": "root", "concepts": concepts, "datasets": {"toy": {"ignore": 0, "void": {"7": "void"}}}})


def toy_spec() -> DatasetSpec:
    labels = [Label(i, name, evaluated=i <= 6) for name, i in sorted(LABELS.items(), key=lambda x: x[1])]
    return DatasetSpec("toy", "toy", 0, "ignore", tuple(sorted([*labels, Label(7, "void", evaluated=False)],
                                                               key=lambda lb: lb.id)))


@pytest.fixture(scope="module")
def tally() -> Tally:
    tax = toy_tree()
    index = {c.id: i for i, c in enumerate(tax)}
    classes = EvalClasses.of(toy_spec(), tax)
    judge = Judge.of(tax, "tree", "toy", classes)
    truth = np.array([[LABELS.get(t, t) for t, _ in PIXELS]], dtype=np.uint16)
    pred = np.array([[TREE_IGNORE if p is None else index[p] for _, p in PIXELS]], dtype=np.uint16)
    counts = judge.count(truth, pred)
    return Tally(classes, judge.reading, counts[:len(classes)], tax)


def test_flat_scores_by_hand(tally):
    m = report_of(tally, "val", 1, 0.0).metrics
    # rows dog, cat, vehicle, car, road, sky; IoU = TP / (truth + predicted - TP), predicted over the six columns
    expected = {"dog": F(1, 3), "cat": F(1, 3), "vehicle": F(1, 3), "car": F(1, 3), "road": F(2, 3), "sky": F(1, 5)}
    assert {c.name: c.iou for c in m.classes} == pytest.approx({k: float(v) for k, v in expected.items()})
    assert m.miou == pytest.approx(float(sum(expected.values()) / 6))  # 11/30
    assert m.pixel_acc == pytest.approx(7 / 16) and m.pixels == 16


def test_miou_at_each_level_by_hand(tally):
    levels = report_of(tally, "val", 1, 0.0).get(LevelScores)
    assert [s.level for s in levels.levels] == [1, 2, 3]
    one, two, three = levels.levels
    # level 1: things (9 true pixels, all predicted things; sky -> things is a false positive) and stuff (7 true
    # pixels; 5 predicted stuff: lane, road, sky, tree, sky; nothing else predicted stuff)
    assert one.concepts == ("things", "stuff") and one.iou == pytest.approx((9 / 10, 5 / 7))
    # level 2: animal (dog, cat: 5 pixels, 4 predicted animal, car -> vehicle), vehicle (4 pixels, all predicted
    # vehicle, plus cat -> car), road (3 pixels, 2 right), sky (4 pixels, 1 right, road -> sky); the prediction
    # things stays at depth 1 and tree is no level-2 concept of toy's: misses
    assert two.concepts == ("animal", "vehicle", "road", "sky")
    assert two.iou == pytest.approx((4 / 5, 4 / 5, 2 / 3, 1 / 5)) and two.miou == pytest.approx(37 / 60)
    # the deepest level: every concept stays itself, so it is the flat mIoU
    assert three.concepts == ("dog", "cat", "vehicle", "car", "road", "sky")
    assert three.iou == pytest.approx(tuple(c.iou for c in report_of(tally, "val", 1, 0.0).metrics.classes))
    assert three.miou == pytest.approx(11 / 30)
    assert three.pixels == (3, 2, 2, 2, 3, 4)


def test_mistake_severity_by_hand(tally):
    severity = report_of(tally, "val", 1, 0.0).get(Severity)
    # wrong: dog->cat 1, dog->animal 1, cat->car 2, vehicle->bus 0, car->vehicle 1, road->sky 1, sky->things 2,
    # sky->void 2, sky->tree 1
    assert severity.wrong == 9 and severity.pixels == 16
    assert severity.counts == (1, 5, 3, 0)
    assert severity.mean == pytest.approx(11 / 9)
    # in the true concept's parent's subtree: cat (animal), animal (animal), bus (things), vehicle (vehicle), sky
    # (stuff), tree (stuff); not car (under things, not animal), things (not under stuff), void
    assert severity.within_parent == pytest.approx(6 / 9)


def test_each_prediction_is_read_as_the_label_that_holds_its_concept(tally):
    assert comparison(tally) == Comparison("tree", 16, {"equal": 11, "finer": 1, "coarser": 2, "outside": 1,
                                                        "not_comparable": 1})


def test_one_report_in_every_form(tally):
    extra = Section("reachable", "mIoU over reachable labels", ((Field("miou", "mIoU"), 0.5),),
                    scalars={"reachable/mIoU": 0.5})  # what a later path adds, with no change to the renderers
    report = report_of(tally, "val", 1, 0.25, {"mode": "whole"}, extra=(type("Extra", (), {
        "sections": lambda self: (extra,)})(),))
    scalars = report.scalars()
    # class accuracies: dog 1/3, cat 1/2, vehicle 1/2, car 1/2, road 2/3, sky 1/4
    assert scalars == pytest.approx({"mIoU": 11 / 30, "pixel_acc": 7 / 16, "mean_acc": 11 / 24,
                                     "mIoU_level/1": (9 / 10 + 5 / 7) / 2, "mIoU_level/2": 37 / 60,
                                     "mIoU_level/3": 11 / 30, "severity/mean": 11 / 9,
                                     "severity/within_parent": 6 / 9, "reachable/mIoU": 0.5})
    doc = json.loads(report.to_json())
    assert doc["reachable"] == {"miou": 0.5} and doc["severity"]["mean"] == pytest.approx(11 / 9)
    assert [r["pixels"] for r in doc["severity"]["rows"]] == [1, 5, 3, 0]
    assert doc["levels"]["rows"][1] == {"level": 2, "concepts": 4, "present": 4, "miou": pytest.approx(37 / 60)}
    assert "level_concepts" in doc and "level_concepts" not in report.to_dict(per_class=False)
    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    by_key = {(r["section"], r["key"]): r for r in rows}
    assert float(by_key["reachable", "miou"]["value"]) == 0.5
    assert float(by_key["levels", "2"]["miou"]) == pytest.approx(37 / 60)
    assert by_key["severity", "2"]["pixels"] == "3" and by_key["report", "settings.mode"]["value"] == "whole"
    assert math.isnan(report_of(Tally(tally.classes, tally.reading, np.zeros_like(tally.counts), tally.taxonomy),
                                "val", 0, 0.0).get(Severity).mean)


def test_the_scalars_a_report_of_a_dataset_can_have():
    """What a training hook can check its metric name against before a run (every class present, some mistakes)."""
    names = scalar_names("cityscapes")
    assert names == ["mIoU", "pixel_acc", "mean_acc", "category_mIoU", *(f"mIoU_level/{d}" for d in range(1, 6)),
                     "severity/mean", "severity/within_parent"]
    assert "category_mIoU" not in scalar_names("ade20k")  # only Cityscapes' label table has categories


@pytest.mark.parametrize("space", ["mapillary", "cityscapes", "tree"])
def test_on_the_real_tree_the_deepest_level_is_flat_and_severity_is_the_lca_depth(space):
    """Random counts of Mapillary ground truth against predictions in three spaces: the deepest level's IoUs are the
    flat ones, and the severity distribution matches one computed pair by pair from the tree's paths."""
    tax = Taxonomy.load()
    classes = EvalClasses.of("mapillary", tax)
    read = reading(tax, space, classes)
    counts = np.random.default_rng(7).integers(0, 4, (len(classes), len(read)))
    tally = Tally(classes, read, counts, tax)
    report = report_of(tally, "val", 1, 0.0)
    deepest = report.get(LevelScores).levels[-1]
    assert dict(zip(deepest.concepts, deepest.iou, strict=True)) == pytest.approx(
        {c.concept: c.iou for c in report.metrics.classes}, nan_ok=True)
    assert deepest.miou == pytest.approx(report.miou)

    concepts = [c.id for c in tax]
    expected = np.zeros(tax.max_depth + 1, dtype=np.int64)
    for i, c in enumerate(classes.classes):
        truth = tax.path(c.concept)
        for j in np.flatnonzero((read.columns != i) & (counts[i] > 0)):
            pred = tax.path(concepts[read.concepts[j]]) if read.concepts[j] >= 0 else ()
            common = next((d for d, (a, b) in enumerate(zip(truth, pred, strict=False)) if a != b),
                          min(len(truth), len(pred)))  # the length of the paths' common prefix
            expected[len(truth) - max(common, 1)] += counts[i, j]  # depth(t) - depth(LCA); the root is depth 0
    severity = report.get(Severity)
    assert severity.counts == tuple(expected) and severity.wrong == counts.sum() - np.trace(tally.matrix)

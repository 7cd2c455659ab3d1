"""``hierseg eval --predictions``: prediction folders in any label space, checked against the official Cityscapes
evaluation (cityscapesscripts) on the same files, and the tree's judgement of finer and coarser predictions."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hierseg.core.errors import HiersegError
from hierseg.data.layouts import layout, resolve_split
from hierseg.data.synth import samples, scene, synthesize
from hierseg.evaluation.comparison import Comparison
from hierseg.evaluation.levels import LevelScores
from hierseg.evaluation.score import score_predictions
from hierseg.evaluation.severity import Severity
from hierseg.taxonomy import Taxonomy, translation
from hierseg.taxonomy.annotations import read_label
from hierseg.taxonomy.labelspace import TREE_IGNORE
from hierseg.taxonomy.specs import DATASETS, load_spec
from tests.conftest import run_cli
from tests.data import official_layouts as lay

lay_save = lay.save

SAMPLES = ("frankfurt_000000_000019", "frankfurt_000001_000058", "lindau_000002_000019", "munster_000003_000019")


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    """A Cityscapes val split (with color, instanceIds, polygons and labelTrainIds beside every labelIds) and a flat
    folder of predictions in labelIds named as the official script finds them."""
    tmp = tmp_path_factory.mktemp("score")
    root = tmp / "cityscapes"
    truths = lay.cityscapes(root, "val", samples=SAMPLES, h=48, w=64, seed=11)
    rng = np.random.default_rng(5)
    preds = tmp / "pred"
    preds.mkdir()
    for rel, label in truths.items():
        stem = Path(rel).name.removesuffix("_gtFine_labelIds.png")
        pred = np.where(rng.random(label.shape) < 0.6, label, rng.integers(0, 34, label.shape)).astype(np.uint8)
        Image.fromarray(pred).save(preds / f"{stem}_leftImg8bit.png")
    return tmp, root, preds, truths


@pytest.fixture(scope="module")
def official(city) -> dict:
    _, root, preds, _ = city
    return official_scores(root, preds)


def official_scores(root: Path, preds: Path) -> dict:
    if not hasattr(np, "in1d"):  # removed in numpy 2.4; the official script still calls it
        np.in1d = lambda a, b, assume_unique=False, invert=False: np.isin(  # type: ignore[attr-defined]
            np.ravel(a), b, assume_unique=assume_unique, invert=invert)
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev

    ev.args.quiet, ev.args.JSONOutput, ev.args.predictionPath, ev.args.predictionWalk = True, False, str(preds), None
    truths = sorted(str(p) for p in (root / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))
    predictions = [ev.getPrediction(ev.args, t) for t in truths]
    return ev.evaluateImgLists(predictions, truths, ev.args)


def test_agrees_with_the_official_cityscapes_evaluation(city, official):
    tmp, root, preds, _ = city
    result = run_cli("eval", "--predictions", str(preds), "--dataset", "cityscapes", str(root), "--format", "json",
                     "--per-class")
    assert result.returncode == 0, result.stderr
    ours = json.loads(result.stdout)
    assert ours["images"] == len(SAMPLES)
    assert abs(ours["overall"]["miou"] - official["averageScoreClasses"]) < 1e-6
    for row in ours["classes"]["rows"]:
        theirs = official["classScores"][row["name"]]
        assert (row["iou"] is None and math.isnan(theirs)) or abs(row["iou"] - theirs) < 1e-9, row["name"]
    assert abs(ours["categories"]["miou"] - official["averageScoreCategories"]) < 1e-6
    for row in ours["categories"]["rows"]:
        assert abs(row["iou"] - official["categoryScores"][row["category"]]) < 1e-9, row["category"]
    comparison = {row["kind"]: row["pixels"] for row in ours["comparison"]["rows"]}
    assert ours["comparison"]["pixels"] == sum(r["pixels"] for r in ours["classes"]["rows"])
    assert comparison["equal"] + comparison["not_comparable"] == ours["comparison"]["pixels"]  # void ids: 0..6 etc.
    assert comparison["not_comparable"] > 0
    # the tree's deepest level leaves every concept as it is: its mIoU is the flat one
    assert ours["levels"]["rows"][-1]["miou"] == ours["overall"]["miou"]


def category_tree() -> Taxonomy:
    """A tree whose depth-1 concepts are Cityscapes' categories, each over its evaluated labels (the others void):
    what cityscapesscripts pools in ``getIouScoreForCategory``."""
    spec = load_spec("cityscapes")
    concepts = [{"id": "root", "name": "root", "parent": None, "depth": 0}]
    for label in spec.labels:
        if label.evaluated:
            category = label.extra["category"]
            if category not in {c["id"] for c in concepts}:
                concepts.append({"id": category, "name": category, "parent": "root", "depth": 1})
            concepts.append({"id": f"label_{label.id}", "name": label.name, "parent": category, "depth": 2,
                             "labels": {"cityscapes": [label.id]}})
    return Taxonomy({"root": "root", "concepts": concepts, "datasets": {"cityscapes": {"ignore": spec.ignore}}})


def test_level_one_of_a_category_tree_is_the_official_category_iou(city, official):
    _, root, preds, _ = city
    report = score_predictions(preds, "cityscapes", root, "val", taxonomy=category_tree())
    one, two = report.get(LevelScores).levels
    assert one.concepts == ("flat", "construction", "object", "nature", "sky", "human", "vehicle")
    for concept, iou in zip(one.concepts, one.iou, strict=True):
        assert abs(iou - official["categoryScores"][concept]) < 1e-12, concept
    assert abs(one.miou - official["averageScoreCategories"]) < 1e-12
    assert abs(two.miou - official["averageScoreClasses"]) < 1e-12 and len(two.concepts) == 19


@pytest.mark.parametrize("dataset", DATASETS)
def test_perfect_predictions_score_100_in_every_space(tmp_path, dataset):
    """The ground truth itself, the ground truth translated to the tree (a label with a self output, Cityscapes'
    building, included), and the fine concepts the scene was drawn from: each scores 100 everywhere, no mistake."""
    tax = Taxonomy.load()
    root = tmp_path / dataset
    synthesize(dataset, root, n=1, size=48)
    to_tree, lay = translation(tax, dataset, "tree"), layout(dataset)
    for sample in samples(dataset, 1):
        truth = read_label(lay.label_path(root, sample.split, sample.stem))
        fine = scene(dataset, sample.index, 48)[1].astype(np.uint16)
        for folder, label in (("own", truth), ("remapped", to_tree.apply(truth)[0]), ("fine", fine)):
            lay_save(tmp_path / folder / sample.split / f"{sample.stem}.png", label)
    split = resolve_split(dataset, "val")
    for folder, space in (("own", dataset), ("remapped", "tree"), ("fine", "tree")):
        report = score_predictions(tmp_path / folder / split, dataset, root, split, space, taxonomy=tax)
        assert report.metrics.pixels > 0 and report.miou == 1.0 and report.pixel_acc == 1.0, (folder, space)
        assert all(level.miou == 1.0 for level in report.get(LevelScores).levels), (folder, space)
        assert report.get(Severity).wrong == 0


def test_ground_truth_remapped_to_the_tree_scores_100_as_a_user_runs_it(tmp_path):
    """Issue 26's probe: `labels remap --to tree`, then `eval --predictions --space tree` (87.5 before, since
    Cityscapes' building, with bridge and tunnel below it, could never be right in tree space)."""
    synthesize("cityscapes", tmp_path / "cityscapes", n=3, size=64)
    result = run_cli("labels", "remap", "--from", "cityscapes", "--to", "tree", str(tmp_path / "cityscapes"),
                     str(tmp_path / "tree"), "--split", "val")
    assert result.returncode == 0, result.stderr
    result = run_cli("eval", "--predictions", str(tmp_path / "tree"), "--space", "tree", "--dataset", "cityscapes",
                     str(tmp_path / "cityscapes"), "--format", "json", "--per-class")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    building = next(row for row in doc["classes"]["rows"] if row["name"] == "building")
    assert building["pixels"] > 0 and building["iou"] == 1.0
    assert doc["overall"]["miou"] == 1.0 and {row["miou"] for row in doc["levels"]["rows"]} == {1.0}
    assert doc["severity"]["wrong"] == 0 and doc["severity"]["mean"] is None


def test_tree_predictions_finer_right_coarser_wrong_void_not_comparable(tmp_path):
    tax = Taxonomy.load()
    index = {c.id: i for i, c in enumerate(tax)}
    spec = load_spec("cityscapes")
    by_name = {label.name: label.id for label in spec.labels}
    road, car, sky = (tax.concept_of("cityscapes", by_name[n]) for n in ("road", "car", "sky"))
    finer = "lane_marking"
    assert tax[finer].parent == road
    coarser = tax[car].parent
    root = tmp_path / "cityscapes"
    stem = "frankfurt_000000_000019"
    label = np.zeros((4, 6), np.uint8)
    label[0], label[1], label[2] = by_name["road"], by_name["car"], by_name["sky"]
    lay.save(root / "gtFine/val/frankfurt" / f"{stem}_gtFine_labelIds.png", label)
    pred = np.full(label.shape, TREE_IGNORE, np.uint16)
    pred[0], pred[1] = index[finer], index[coarser]
    pred[3] = index[road]  # on unlabeled ground truth: not scored at all
    lay.save(tmp_path / "pred" / f"{stem}.png", pred)
    report = score_predictions(tmp_path / "pred", "cityscapes", root, "val", "tree")
    scores = {c.name: c for c in report.metrics.classes}
    assert scores["road"].iou == 1.0 and scores["car"].iou == 0.0 and scores["sky"].iou == 0.0
    assert scores["car"].predicted == 0  # a coarse prediction is nobody's false positive
    assert report.get(Comparison) == Comparison("tree", 18, {"equal": 0, "finer": 6, "coarser": 6, "outside": 0,
                                                             "not_comparable": 6})
    # the same in Mapillary's ids (a file named as the Cityscapes script finds it): lane marking is finer than road
    m = {lb.name: lb.id for lb in load_spec("mapillary").labels}
    lay.save(tmp_path / "pm" / f"{stem}_pred.png", np.full(label.shape, m["marking--general"], np.uint8))
    report = score_predictions(tmp_path / "pm", "cityscapes", root, "val", "mapillary")
    assert report.get(Comparison).kinds["finer"] == 18
    assert {c.name: c.iou for c in report.metrics.classes}["road"] == 6 / 18


def test_missing_extra_and_bad_prediction_files(city, tmp_path):
    _, root, preds, _ = city
    (preds / "frankfurt_000000_000019_leftImg8bit.png").rename(tmp_path / "moved.png")
    (preds / "notes").mkdir()
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(preds / "notes" / "berlin_000000_000019.png")
    try:
        result = run_cli("eval", "--predictions", str(preds), "--dataset", "cityscapes", str(root))
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ")
        assert "no prediction for 1 of 4 cityscapes val images (frankfurt_000000_000019)" in lines[0]
        assert "1 files match no image (notes/berlin_000000_000019.png)" in lines[0]
    finally:
        (tmp_path / "moved.png").rename(preds / "frankfurt_000000_000019_leftImg8bit.png")
        (preds / "notes" / "berlin_000000_000019.png").unlink()
        (preds / "notes").rmdir()
    bad = tmp_path / "bad"
    bad.mkdir()
    for i, stem in enumerate(SAMPLES):
        size = (64, 48) if i else (10, 10)
        Image.fromarray(np.full(size[::-1], 7, np.uint8)).save(bad / f"{stem}.png")
    result = run_cli("eval", "--predictions", str(bad), "--dataset", "cityscapes", str(root))
    assert result.returncode == 2
    assert "frankfurt_000000_000019.png: prediction is 10x10 but its ground truth" in result.stderr
    Image.fromarray(np.full((48, 64), 200, np.uint8)).save(bad / f"{SAMPLES[0]}.png")
    result = run_cli("eval", "--predictions", str(bad), "--dataset", "cityscapes", str(root))
    assert result.returncode == 2 and "value 200 is not a cityscapes label id" in result.stderr
    wide = np.full((48, 64), 7, np.uint16)
    wide[5, 5] = 400  # past the tree's 359 concepts
    lay.save(bad / f"{SAMPLES[0]}.png", wide)
    result = run_cli("eval", "--predictions", str(bad), "--dataset", "cityscapes", str(root), "--space", "tree")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"error: {bad / SAMPLES[0]}.png: value 400 is not a tree label id (concept "
                                    "indices 0..358, 65535 for ignore)")
    with pytest.raises(HiersegError, match=f"{SAMPLES[0]}.png: value 400 is not a cityscapes label id$"):
        score_predictions(bad, "cityscapes", root)
    result = run_cli("eval", "--predictions", str(bad), "--dataset", "cityscapes", str(root), "--space", "kitti")
    assert result.returncode == 2 and "--space kitti: not a label space of the tree" in result.stderr
    result = run_cli("eval", "--dataset", "cityscapes", str(root))
    assert result.returncode == 2 and "give --checkpoint" in result.stderr


def test_csv_and_table_reports(city):
    _, root, preds, _ = city
    result = run_cli("eval", "--predictions", str(preds), "--dataset", "cityscapes", str(root), "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    keys = [(r["section"], r["key"]) for r in rows]
    assert ("comparison", "not_comparable") in keys and ("categories", "miou") in keys and ("levels", "5") in keys
    result = run_cli("eval", "--predictions", str(preds), "--dataset", "cityscapes", str(root), "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "not_comparable" in result.stdout and "category mIoU" in result.stdout
    assert "mIoU at each level of the tree" in result.stdout


def test_per_class_results_as_a_dataframe(city):
    _, root, preds, _ = city
    report = score_predictions(preds, "cityscapes", root, "val")
    frame = report.to_frame()
    classes = report.metrics.classes
    assert list(frame.index) == [c.id for c in classes] and frame.index.name == "id"
    assert frame.loc[classes[0].id, "name"] == classes[0].name
    assert math.isclose(frame["iou"].mean(skipna=True), report.miou)  # mIoU: the mean over classes with an IoU
    assert frame["pixels"].sum() == report.metrics.pixels
    levels = report.to_frame("levels")
    assert levels.index.name == "level" and levels.index.is_monotonic_increasing
    with pytest.raises(HiersegError, match="no table 'nope'; its tables are .*classes"):
        report.to_frame("nope")

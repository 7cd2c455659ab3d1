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

from hierseg.evaluation.comparison import Comparison
from hierseg.evaluation.score import score_predictions
from hierseg.taxonomy import Taxonomy
from hierseg.taxonomy.labelspace import TREE_IGNORE
from hierseg.taxonomy.specs import load_spec
from tests.conftest import run_cli
from tests.data import official_layouts as lay

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


def official_scores(root: Path, preds: Path) -> dict:
    if not hasattr(np, "in1d"):  # removed in numpy 2.4; the official script still calls it
        np.in1d = lambda a, b, assume_unique=False, invert=False: np.isin(  # type: ignore[attr-defined]
            np.ravel(a), b, assume_unique=assume_unique, invert=invert)
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev

    ev.args.quiet, ev.args.JSONOutput, ev.args.predictionPath, ev.args.predictionWalk = True, False, str(preds), None
    truths = sorted(str(p) for p in (root / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))
    predictions = [ev.getPrediction(ev.args, t) for t in truths]
    return ev.evaluateImgLists(predictions, truths, ev.args)


def test_agrees_with_the_official_cityscapes_evaluation(city):
    tmp, root, preds, _ = city
    result = run_cli("eval", "--predictions", str(preds), "--dataset", "cityscapes", str(root), "--format", "json",
                     "--per-class")
    assert result.returncode == 0, result.stderr
    ours = json.loads(result.stdout)
    official = official_scores(root, preds)
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

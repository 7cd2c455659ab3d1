"""``hierseg eval`` and ``hierseg predict`` end to end with a saved checkpoint, and their one-line errors."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from hierseg.cli.main import app
from hierseg.core.errors import HiersegError
from hierseg.data.synth import synthesize
from hierseg.engine.checkpoint import save_checkpoint
from hierseg.models import create_model
from hierseg.taxonomy import load_spec
from tests.conftest import run_cli

KWARGS = {"datasets": ["cityscapes"], "aspp_channels": 16}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval_cli")
    synthesize("cityscapes", tmp / "cityscapes", n=2, size=64)
    checkpoint = save_checkpoint(tmp / "model.pt", "deeplab_resnet18", KWARGS,
                                 create_model("deeplab_resnet18", **KWARGS))
    return tmp, checkpoint


def test_eval_json_as_a_user_runs_it(setup):
    tmp, checkpoint = setup
    out = tmp / "scores.json"
    result = run_cli("eval", "--checkpoint", str(checkpoint), "--dataset", "cityscapes", str(tmp / "cityscapes"),
                     "--format", "json", "--out", str(out), "--per-class", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stderr
    doc = json.loads(out.read_text())
    assert doc["dataset"] == "cityscapes" and doc["split"] == "val" and doc["images"] == 2
    classes, overall = doc["classes"]["rows"], doc["overall"]
    ious = [c["iou"] for c in classes if c["iou"] is not None]
    assert len(classes) == 19 and overall["miou"] == pytest.approx(sum(ious) / len(ious))
    evaluated = [label.id for label in load_spec("cityscapes").labels if label.evaluated]
    truth = [np.asarray(Image.open(p)) for p in (tmp / "cityscapes" / "gtFine" / "val").rglob("*.png")]
    assert overall["pixels"] == sum(int(np.isin(t, evaluated).sum()) for t in truth) and 0.0 <= overall["pixel_acc"] <= 1
    assert [row["level"] for row in doc["levels"]["rows"]] == [1, 2, 3, 4, 5]
    assert doc["levels"]["rows"][-1]["miou"] == pytest.approx(overall["miou"])


def test_predict_writes_labels_and_overlays(setup):
    tmp, checkpoint = setup
    images = tmp / "cityscapes" / "leftImg8bit" / "val"
    result = CliRunner().invoke(app, ["predict", "--checkpoint", str(checkpoint), str(images), "--out",
                                      str(tmp / "pred"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "wrote 2 label maps and overlays" in result.output
    labels = sorted((tmp / "pred" / "labels").rglob("*.png"))
    assert [p.relative_to(tmp / "pred" / "labels") for p in labels] == sorted(
        p.relative_to(images) for p in images.rglob("*.png"))
    ids = set(load_spec("cityscapes").ids)
    for path in labels:
        label = np.asarray(Image.open(path))
        assert label.shape == (64, 64) and label.dtype == np.uint8 and set(np.unique(label).tolist()) <= ids
        assert (tmp / "pred" / "overlays" / path.relative_to(tmp / "pred" / "labels")).is_file()


def test_eval_table_and_csv(setup):
    tmp, checkpoint = setup
    runner = CliRunner()
    args = ["eval", "--checkpoint", str(checkpoint), "--dataset", "cityscapes", str(tmp / "cityscapes"), "--device",
            "cpu", "--limit", "1"]
    result = runner.invoke(app, [*args, "--per-class"])
    assert result.exit_code == 0, result.output
    assert "cityscapes val: 1 images" in result.output and "classes 19" in result.output
    assert "mIoU at each level of the tree" in result.output and "traffic light" in result.output
    assert "grouped by their concept's depth" in result.output
    assert "category mIoU" in result.output and "construction" in result.output
    assert "traffic light" not in runner.invoke(app, args).output  # per-class rows only when asked

    out = tmp / "scores.csv"  # the suffix picks the format
    result = runner.invoke(app, [*args, "--out", str(out), "--mode", "slide", "--crop", "48"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["section"] == "report" and rows[0]["key"] == "dataset" and rows[0]["value"] == "cityscapes"
    assert {r["section"] for r in rows} == {"report", "overall", "depth_groups", "categories", "levels", "severity"}
    categories = [r["key"] for r in rows if r["section"] == "categories"]
    assert categories == ["miou", "flat", "construction", "object", "nature", "sky", "human", "vehicle"]
    values = {(r["section"], r["key"]): r["value"] for r in rows}
    assert math.isclose(float(values["overall", "classes"]), 19) and values["report", "settings.mode"] == "slide"


def test_bad_input_exits_2_with_one_line(setup):
    tmp, checkpoint = setup
    root = str(tmp / "cityscapes")
    cases = [
        (["eval", "--checkpoint", str(tmp / "nope.pt"), "--dataset", "cityscapes", root], "nope.pt: no such checkpoint"),
        (["eval", "--checkpoint", str(checkpoint), "--dataset", "cityscapes", str(tmp / "nowhere")],
         "no such dataset root"),
        (["eval", "--checkpoint", str(checkpoint), "--dataset", "kitti", root], "unknown dataset 'kitti'"),
        (["predict", "--checkpoint", str(checkpoint), str(tmp / "missing.png"), "--out", str(tmp / "p")],
         "no such image or folder"),
    ]
    for args, message in cases:  # these fail before the model zoo is imported: cheap to run as a user would
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("error: ") and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    # Found once the checkpoint is loaded; main() turns it into exit 2 like the others.
    result = CliRunner().invoke(app, ["eval", "--checkpoint", str(checkpoint), "--dataset", "ade20k", root])
    assert isinstance(result.exception, HiersegError)
    assert str(result.exception) == "this checkpoint predicts cityscapes, not 'ade20k'; pass --dataset cityscapes"

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
    ious = [c["iou"] for c in doc["classes"] if c["iou"] is not None]
    assert len(doc["classes"]) == 19 and doc["miou"] == pytest.approx(sum(ious) / len(ious))
    evaluated = [label.id for label in load_spec("cityscapes").labels if label.evaluated]
    truth = [np.asarray(Image.open(p)) for p in (tmp / "cityscapes" / "gtFine" / "val").rglob("*.png")]
    assert doc["pixels"] == sum(int(np.isin(t, evaluated).sum()) for t in truth) and 0.0 <= doc["pixel_acc"] <= 1.0


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
    assert "cityscapes val: 1 images, 19 evaluated classes" in result.output
    assert "mIoU by concept depth" in result.output and "traffic light" in result.output
    assert "category mIoU" in result.output and "construction" in result.output
    assert "traffic light" not in runner.invoke(app, args).output  # per-class rows only when asked

    out = tmp / "scores.csv"  # the suffix picks the format
    result = runner.invoke(app, [*args, "--out", str(out), "--mode", "slide", "--crop", "48"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["kind"] == "overall" and rows[0]["key"] == "cityscapes"
    assert {r["kind"] for r in rows} == {"overall", "group", "category"}
    categories = [r["key"] for r in rows if r["kind"] == "category"]
    assert categories == ["mean", "flat", "construction", "object", "nature", "sky", "human", "vehicle"]
    assert math.isclose(float(rows[0]["classes"]), 19)


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

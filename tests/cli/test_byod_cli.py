"""The worked example of docs/byod.md, as a user runs it: PASCAL VOC 2012's labels go from `taxonomy suggest` to a
spec, an extended tree, a few training steps of a universal DSSPN on synthetic VOC + Cityscapes, and `eval` in VOC's
own ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from hierseg.engine.checkpoint import read_checkpoint
from hierseg.taxonomy.specs import SPEC_DIR
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]


def ok(*args: str) -> str:
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def voc_labels(tree: Path) -> dict[int, str]:
    maps = tree.parent / "label_maps" / "pascal_voc.csv"
    rows = [line.split(",") for line in maps.read_text().splitlines()[1:]]
    return {int(row[0]): row[2] for row in rows}


def test_voc_from_suggestions_to_evaluation(tmp_path):
    # 1. suggest: a spec stub from the devkit's label list
    stub = tmp_path / "suggested" / "pascal_voc.yaml"
    ok("taxonomy", "suggest", "--labels", str(SPEC_DIR / "pascal_voc2012.csv"), "--dataset", "pascal_voc",
       "--format", "yaml", "--out", str(stub))
    spec = yaml.safe_load(stub.read_text())
    assert spec["ignore"] == 255 and list(spec["void"]["pascal_voc"]) == [0] and len(spec["labels"]["pascal_voc"]) == 20
    # 2. the stub builds as it is; the shipped spec is the reviewed stub: two lines changed, each saying why
    ok("taxonomy", "build", "--add", str(stub), "--out", str(tmp_path / "suggested" / "tree.json"))
    tree = tmp_path / "tree" / "tree.json"
    ok("taxonomy", "build", "--add", str(SPEC_DIR / "pascal_voc.yaml"), "--out", str(tree))
    suggested, reviewed = voc_labels(tmp_path / "suggested" / "tree.json"), voc_labels(tree)
    changed = {i for i in reviewed if suggested[i] != reviewed[i]}
    assert changed == {4, 20}, changed  # boat -> vessel (ships too), tvmonitor -> tv (as MSeg; suggested: monitor)
    assert reviewed[15] == "person"  # riders included: COCO's person, above pedestrian and rider, as suggested
    # 3. synthetic VOC (its devkit layout) and Cityscapes
    data = tmp_path / "data"
    ok("data", "synth", "--dataset", "pascal_voc", "--taxonomy", str(tree), "--out", str(data / "pascal_voc"),
       "--n", "2", "--size", "72")
    ok("data", "synth", "--dataset", "cityscapes", "--out", str(data / "cityscapes"), "--n", "2", "--size", "72")
    assert (data / "pascal_voc" / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "train.txt").is_file()
    # 4. a few steps of a universal DSSPN with the shipped worked-example config, pointed at these files
    run = tmp_path / "run"
    ok("train", "--config", str(REPO / "configs" / "synth_dsspn_resnet18_voc_cityscapes.yaml"),
       "--set", f"model.kwargs.taxonomy={tree}", "--set", f"data.datasets.0.root={data / 'pascal_voc'}",
       "--set", f"data.datasets.1.root={data / 'cityscapes'}", "--set", "data.datasets.0.crop=65",
       "--set", "data.datasets.1.crop=65", "--set", "data.datasets.0.batch_size=2",
       "--set", "data.datasets.1.batch_size=2", "--set", "schedule.steps=3", "--set", f"output.dir={run}")
    checkpoint = read_checkpoint(run / "model.pt")
    assert "pascal_voc" in checkpoint["taxonomy"]["datasets"]  # the checkpoint carries the extended tree
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 3 and {d for m in metrics for d in m["datasets"]} <= {"pascal_voc", "cityscapes"}
    tree.unlink()  # from here on the checkpoint alone knows VOC
    # 5. eval in VOC's own ids, its benchmark's 21 classes: background (void in the tree) is what the model's tree
    #    prediction puts on none of VOC's concepts
    report = json.loads(ok("eval", "--checkpoint", str(run / "model.pt"), "--dataset", "pascal_voc",
                           str(data / "pascal_voc"), "--format", "json", "--per-class"))
    assert report["dataset"] == "pascal_voc" and report["split"] == "val" and report["images"] == 2
    classes, pixels = report["classes"]["rows"], report["overall"]["pixels"]
    assert [c["id"] for c in classes] == list(range(21))
    assert classes[0]["concept"] is None and classes[4]["concept"] == "vessel"
    assert pixels > 0 and classes[0]["pixels"] > pixels / 2
    # background has no concept: at every level of the tree it is a concept of its own
    assert all("(background)" in {r["concept"] for r in report["level_concepts"]["rows"] if r["level"] == d}
               for d in range(1, 6))
    assert report["levels"]["rows"][-1]["miou"] == pytest.approx(report["overall"]["miou"])
    # 6. predictions in VOC's ids, with VOC's colours in the overlays
    ok("predict", "--checkpoint", str(run / "model.pt"), "--dataset", "pascal_voc", "--out", str(tmp_path / "pred"),
       str(data / "pascal_voc" / "VOCdevkit" / "VOC2012" / "JPEGImages"))
    written = sorted((tmp_path / "pred" / "labels").glob("*.png"))
    assert len(written) == 4
    assert all(set(np.unique(np.asarray(Image.open(p)))) <= set(range(21)) for p in written)
    result = run_cli("eval", "--checkpoint", str(run / "model.pt"), "--dataset", "pascal_context",
                     str(data / "pascal_voc"))
    assert result.returncode == 2 and "unknown dataset 'pascal_context'" in result.stderr

"""``hierseg eval``/``predict``/``models info`` with ``--taxonomy EXTENDED.json``: a checkpoint trained on the plain
tree scored zero-shot on a synthetic held-out dataset (ScanNet-20, added with its spec) through the tree, and the
one-line refusals of a tree that is no superset, a dataset neither tree defines, a dataset it cannot reach."""

from __future__ import annotations

import copy
import csv
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from hierseg.data.synth import synthesize
from hierseg.engine.checkpoint import save_checkpoint
from hierseg.models import create_model
from hierseg.taxonomy import Taxonomy, load_spec
from hierseg.taxonomy.authoring.extend import extend_artifact, load_addition
from hierseg.taxonomy.specs import SPEC_DIR, dataset_spec
from tests.cli.test_os_faults_cli import in_process, one_error

DEEPLAB = {"datasets": ["cityscapes", "mapillary"], "aspp_channels": 16, "output_stride": 16}
DSSPN = {"m": 8, "m0": 16, "output_stride": 16}
SHOWER_CURTAIN = 28  # ScanNet-20's shower curtain: a concept scannet.yaml adds below curtain


def trained_deeplab() -> torch.nn.Module:
    """Two SGD steps of universal DeepLab on Cityscapes-id labels: a model of the plain tree, as training leaves it."""
    torch.manual_seed(0)
    model = create_model("deeplab_resnet18", **DEEPLAB)
    ids = torch.tensor([label.id for label in load_spec("cityscapes").labels if label.evaluated])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(2):
        image, label = torch.randn(2, 3, 32, 32), ids[torch.randint(len(ids), (2, 32, 32))]
        optimizer.zero_grad()
        model(image, label, "cityscapes")["loss"].backward()
        optimizer.step()
    return model


@pytest.fixture(scope="module")
def env(tmp_path_factory, artifact, wordnet):
    tmp = tmp_path_factory.mktemp("zero_shot")
    extended = extend_artifact(artifact, [load_addition(SPEC_DIR / "scannet.yaml")], wordnet, any_size=True)
    tree = tmp / "tree.json"
    tree.write_text(json.dumps(extended))
    synthesize("scannet", tmp / "scannet", n=4, size=48, taxonomy=tree)
    trained = {"config": {"data": {"datasets": [{"name": "cityscapes", "root": "x"}]}}, "stage": "main", "done": True}
    plain = Taxonomy(artifact)
    deeplab = save_checkpoint(tmp / "deeplab.pt", "deeplab_resnet18", DEEPLAB, trained_deeplab(), plain, trained)
    dsspn = save_checkpoint(tmp / "dsspn.pt", "dsspn_resnet18", DSSPN,
                            create_model("dsspn_resnet18", taxonomy=plain, **DSSPN), plain, trained)
    return {"tmp": tmp, "tree": tree, "artifact": artifact, "extended": extended, "deeplab": deeplab, "dsspn": dsspn}


def test_eval_on_a_held_out_dataset_reports_what_the_model_cannot_reach(env):
    out = env["tmp"] / "scores.json"
    result = in_process("eval", "--checkpoint", str(env["deeplab"]), "--taxonomy", str(env["tree"]), "--dataset",
                        "scannet", str(env["tmp"] / "scannet"), "--device", "cpu", "--per-class", "--out", str(out))
    assert result.returncode == 0, result.stderr
    doc = json.loads(out.read_text())
    assert doc["dataset"] == "scannet" and doc["images"] == 4 and doc["settings"]["projection"] == "sum"
    reach = doc["reach"]
    assert reach["rows"] == [{"id": SHOWER_CURTAIN, "name": "shower curtain", "concept": "shower_curtain",
                              "reason": "its concept is not in the model's tree"}]
    assert reach["reachable"] == 19 and reach["unreachable"] == 1 and reach["projection"] == "sum"
    classes = doc["classes"]["rows"]
    assert len(classes) == 20 and reach["miou_all"] == pytest.approx(doc["overall"]["miou"])
    ious = [c["iou"] for c in classes if c["iou"] is not None and c["id"] != SHOWER_CURTAIN]
    assert reach["miou_reachable"] == pytest.approx(sum(ious) / len(ious))
    # the other rule, as CSV: the same section, the same unreachable label
    result = in_process("eval", "--checkpoint", str(env["deeplab"]), "--taxonomy", str(env["tree"]), "--dataset",
                        "scannet", str(env["tmp"] / "scannet"), "--device", "cpu", "--format", "csv",
                        "--projection", "argmax")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    values = {(r["section"], r["key"]): r["value"] for r in rows}
    assert values["reach", "projection"] == "argmax" and values["report", "settings.projection"] == "argmax"
    assert [r["name"] for r in rows if r["section"] == "reach" and r["key"] == str(SHOWER_CURTAIN)] == ["shower curtain"]


def test_dsspn_predicts_a_held_out_dataset_through_its_extent_plan(env):
    out = env["tmp"] / "pred"
    result = in_process("predict", "--checkpoint", str(env["dsspn"]), "--taxonomy", str(env["tree"]), "--dataset",
                        "scannet", str(env["tmp"] / "scannet" / "scene0000_00" / "color"), "--out", str(out),
                        "--device", "cpu", "--no-overlays")
    assert result.returncode == 0, result.stderr
    assert "note: this model never predicts 3 of scannet's labels: shower curtain, whiteboard, night stand" \
        in result.stderr
    labels = sorted((out / "labels").rglob("*.png"))
    values = set().union(*(np.unique(np.asarray(Image.open(p))).tolist() for p in labels))
    scannet = {label.id for label in dataset_spec("scannet", env["extended"]).labels}
    frames = list((env["tmp"] / "scannet" / "scene0000_00" / "color").iterdir())
    assert len(labels) == len(frames) and values <= scannet - {SHOWER_CURTAIN, 30, 32}  # ids the model can reach


def test_models_info_lists_the_unreachable_labels(env):
    result = in_process("models", "info", "deeplab_resnet18", "--set", "datasets=[cityscapes,mapillary]",
                        "--taxonomy", str(env["tree"]), "--dataset", "scannet", "--format", "json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    # shelves: ScanNet labels shelf and bookcase below it apart, and no dataset of the model labels shelf itself,
    # so the model has no "shelf/other" output: shelves is out of reach, as are the three concepts scannet.yaml adds
    assert [line.split(" (")[0] for line in info["unreachable_labels"]] == \
        ["15 shelves", "28 shower curtain", "30 whiteboard", "32 night stand"]
    assert info["reachable_labels"] == info["target_labels"] - 4


def edited(env, name: str, edit) -> str:
    artifact = copy.deepcopy(env["extended"])
    edit(artifact)
    path = env["tmp"] / name
    path.write_text(json.dumps(artifact))
    return str(path)


def test_bad_trees_and_datasets_exit_2_with_one_line_and_write_nothing(env):
    plain = Taxonomy(env["artifact"])
    leaf = next(c for c in plain if plain.is_leaf(c.id))
    parent = plain[leaf.parent]
    other = next(c.id for c in plain if c.depth == parent.depth and c.id != parent.id)

    def drop(artifact):
        artifact["concepts"] = [c for c in artifact["concepts"] if c["id"] != leaf.id]

    def move(artifact):
        next(c for c in artifact["concepts"] if c["id"] == leaf.id)["parent"] = other

    def novel(artifact):  # a dataset whose only label is a concept the checkpoint's tree lacks
        artifact["datasets"]["novel"] = {"ignore": 255, "void": {}, "labels": [{"id": 0, "name": "shower curtain"}]}
        next(c for c in artifact["concepts"] if c["id"] == "shower_curtain")["labels"]["novel"] = [0]

    dropped, moved, unreachable = edited(env, "dropped.json", drop), edited(env, "moved.json", move), \
        edited(env, "novel.json", novel)
    root, out = str(env["tmp"] / "scannet"), env["tmp"] / "never"
    cases = [
        (dropped, "scannet", f"error: {dropped}: concept {leaf.id!r} of the checkpoint's tree is missing"),
        (moved, "scannet", f"error: {moved}: concept {leaf.id!r} moved: under {parent.id!r} in the checkpoint's "
                           f"tree, under {other!r} here"),
        (str(env["tree"]), "nope", f"error: {env['tree']}: dataset 'nope' is in neither the checkpoint's tree nor "
                                   "this one"),
        (unreachable, "novel", f"error: {unreachable}: dataset 'novel': none of its labels is reachable by this model "
                               "(first: 'shower curtain', concept 'shower_curtain'"),
    ]
    for tree, dataset, message in cases:
        for command in (["eval", "--dataset", dataset, root, "--out", str(out.with_suffix(".json"))],
                        ["predict", "--dataset", dataset, root, "--out", str(out)]):
            if dataset == "novel" and command[0] == "eval":
                continue  # no layout to read a novel dataset's files from; predict needs none
            result = in_process(*command, "--checkpoint", str(env["deeplab"]), "--taxonomy", tree, "--device", "cpu")
            assert one_error(result).startswith(message), (command, result.stderr)
            assert not out.exists() and not out.with_suffix(".json").exists()
    # the checkpoint's own tree does not know ScanNet: the message says where an added dataset comes from
    result = in_process("eval", "--checkpoint", str(env["deeplab"]), "--dataset", "scannet", root, "--device", "cpu")
    assert "unknown dataset 'scannet'" in one_error(result) and "--taxonomy EXTENDED.json" in result.stderr

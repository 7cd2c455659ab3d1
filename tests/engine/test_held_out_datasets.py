"""Evaluation on MSeg's held-out test datasets added to the tree: their own splits (KITTI's labelled ``training``,
ScanNet's scene lists), their scored classes, and KITTI's Cityscapes categories."""

from __future__ import annotations

import json

import pytest

from hierseg.data.synth import synthesize
from hierseg.engine.evaluate import evaluate, resolve_split
from hierseg.evaluation.metrics import EvalClasses
from hierseg.taxonomy import HiersegError, Taxonomy
from hierseg.taxonomy.authoring.extend import extend_artifact, load_addition
from hierseg.taxonomy.specs import SPEC_DIR
from tests.engine.test_added_datasets import TreeStub


@pytest.fixture(scope="module")
def tree(tmp_path_factory, artifact, wordnet) -> tuple[Taxonomy, object]:
    additions = [load_addition(SPEC_DIR / f"{name}.yaml") for name in ("kitti", "scannet")]
    extended = extend_artifact(artifact, additions, wordnet, any_size=True)
    path = tmp_path_factory.mktemp("held_out_eval") / "tree.json"
    path.write_text(json.dumps(extended))
    return Taxonomy(extended), path


def test_kitti_is_scored_like_cityscapes(tmp_path, tree):
    tax, path = tree
    classes = EvalClasses.of("kitti", tax)
    cityscapes = EvalClasses.of("cityscapes")
    assert [(c.id, c.name, c.category) for c in classes.classes] == \
        [(c.id, c.name, c.category) for c in cityscapes.classes]  # its 19 classes in Cityscapes' 7 categories
    with pytest.raises(HiersegError, match="kitti: no split 'val'; the official layout has training"):
        resolve_split("kitti", "val", tax)  # only KITTI's training frames are labelled
    synthesize("kitti", tmp_path / "kitti", n=2, size=48, taxonomy=path)
    report = evaluate(TreeStub(tax, "road_surface", "sky_stuff"), "kitti", tmp_path / "kitti",
                      resolve_split("kitti", "train", tax), taxonomy=tax)
    assert report.images == 2 and len(report.metrics.classes) == 19 and report.metrics.categories


def test_scannet_val_is_the_scenes_its_list_names(tmp_path, tree):
    tax, path = tree
    synthesize("scannet", tmp_path / "scannet", n=4, size=48, taxonomy=path)
    report = evaluate(TreeStub(tax, "wall_stuff", "floor_stuff"), "scannet", tmp_path / "scannet", "val",
                      taxonomy=tax)
    assert report.images == 4 and [c.name for c in report.metrics.classes][:2] == ["wall", "floor"]
    assert len(report.metrics.classes) == 20  # the benchmark's VALID_CLASS_IDS

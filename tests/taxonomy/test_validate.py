from __future__ import annotations

import copy
import json

import pytest

from hierseg.taxonomy.authoring.validate import validate_artifact
from tests.conftest import run_cli


def _corrupt(artifact, how):
    bad = copy.deepcopy(artifact)
    concepts = {c["id"]: c for c in bad["concepts"]}
    if how == "cycle":
        concepts["things"]["parent"] = "person"
    elif how == "duplicate id":
        concepts["cat"]["id"] = "dog"
    elif how == "unknown synset":
        concepts["dog"]["synset"] = "dog.n.42"
    elif how == "unmapped label":
        concepts["lane_marking"]["labels"].pop("mapillary")
    elif how == "two labels on one concept":
        concepts["road"]["labels"]["cityscapes"].append(8)
        concepts["walkway"]["labels"].pop("cityscapes")
    elif how == "wrong depth":
        concepts["dog"]["depth"] = 2
    elif how == "two roots":
        concepts["stuff"]["parent"] = None
    elif how == "unknown format":
        bad["format"] = "hierseg-taxonomy/9"
    elif how == "non-integer ignore":
        bad["datasets"]["cityscapes"]["ignore"] = "zero"
    elif how == "labels naming an undefined dataset":
        concepts["dog"]["labels"]["kitti"] = [3]
    elif how == "labels not a list":
        concepts["dog"]["labels"]["coco_stuff"] = "18"
    elif how == "void ids not integers":
        bad["datasets"]["cityscapes"]["void"] = {"two": "?"}
    elif how == "overlap within one dataset":
        bad["overlaps"] = [{"labels": ["coco_stuff:46", "coco_stuff:50"], "reason": "cup and bowl"}]
    elif how == "overlap on one path":
        bad["overlaps"] = [{"labels": ["cityscapes:20", "ade20k:44"], "reason": "traffic sign and signboard"}]
    elif how == "a user's dataset":  # as `taxonomy build --add` writes one: defined in the table, so not unknown
        bad["datasets"]["mine"] = {"title": "Mine", "ignore": 255, "void": {}}
        concepts["dog"]["labels"]["mine"] = [1]
    return bad


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("cycle", "cycle"),
        ("duplicate id", "concept dog: duplicate id"),
        ("unknown synset", "concept dog: synset 'dog.n.42' is not in WordNet 3.0"),
        ("unmapped label", "dataset mapillary: label 24 'marking--general' is not mapped"),
        ("two labels on one concept", "concept road: 2 cityscapes labels on one concept"),
        ("wrong depth", "concept dog: depth 2 but it is 4 below the root"),
        ("overlap within one dataset", "overlap #0 (coco_stuff:46, coco_stuff:50): two labels of one dataset"),
        ("overlap on one path", "overlap #0 (cityscapes:20, ade20k:44): 'traffic_sign_front' and 'signboard' lie on one "
                                "path of the tree"),
        ("two roots", "expected exactly one root, found 2"),
        ("unknown format", "artifact: format 'hierseg-taxonomy/9' is not 'hierseg-taxonomy/1'"),
        ("non-integer ignore", "dataset cityscapes: ignore 'zero' is not an integer label value 0..65535"),
        ("labels naming an undefined dataset", "concept dog: labels name dataset 'kitti', which the artifact's "
                                               "'datasets' does not define"),
        ("labels not a list", "concept dog: labels.coco_stuff must be a list of integer label ids 0..65535, not '18'"),
        ("void ids not integers", "dataset cityscapes: void must map integer label ids to reasons"),
    ],
)
def test_each_violation_is_reported(artifact, wordnet, how, expected):
    problems = validate_artifact(_corrupt(artifact, how), wordnet=wordnet)
    assert any(expected in p for p in problems), problems


def test_shipped_tree_is_valid_and_size_is_enforced(artifact, wordnet):
    assert validate_artifact(artifact, wordnet=wordnet) == []
    smaller = copy.deepcopy(artifact)
    smaller["concepts"] = [c for c in smaller["concepts"] if c["id"] != "clouds"]
    assert "tree: 358 concepts, expected exactly 359" in validate_artifact(smaller)


@pytest.mark.parametrize("how", ["cycle", "duplicate id", "unknown synset", "unmapped label"])
def test_cli_validate_exits_2_with_one_line_per_violation(artifact, tmp_path, how):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_corrupt(artifact, how)))
    result = run_cli("taxonomy", "validate", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines and all(line.startswith(f"error: {path}: ") for line in lines)
    assert "Traceback" not in result.stderr


def test_cli_validate_broken_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"concepts": [\n  {"id": "entity",\n')
    result = run_cli("taxonomy", "validate", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}:3: not valid JSON (")


def test_cli_validate_shipped_tree():
    result = run_cli("taxonomy", "validate")
    assert result.returncode == 0, result.stderr
    assert "359 concepts, maximal depth 5" in result.stdout


def test_a_dataset_the_artifact_defines_is_not_unknown(artifact):
    assert validate_artifact(_corrupt(artifact, "a user's dataset")) == []


@pytest.mark.parametrize("how", ["labels not a list", "labels naming an undefined dataset", "non-integer ignore"])
def test_malformed_records_are_one_line_in_every_command(artifact, tmp_path, how):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_corrupt(artifact, how)))
    for command in (["validate", "--no-wordnet"], ["show"], ["stats"]):
        result = run_cli("taxonomy", command[0], str(path), *command[1:])
        if how != "labels not a list" and command[0] != "validate":
            continue  # loadable: only the validator has something to say
        assert result.returncode == 2, (command, result.stdout[-300:])
        assert result.stderr.startswith(f"error: {path}: ") and "Traceback" not in result.stderr, result.stderr

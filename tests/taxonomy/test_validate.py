from __future__ import annotations

import copy
import json

import pytest

from hierseg.taxonomy.validate import validate_artifact
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
        concepts["pavement"]["labels"].pop("cityscapes")
    elif how == "wrong depth":
        concepts["dog"]["depth"] = 2
    elif how == "two roots":
        concepts["stuff"]["parent"] = None
    return bad


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("cycle", "cycle"),
        ("duplicate id", "concept dog: duplicate id"),
        ("unknown synset", "concept dog: synset 'dog.n.42' is not in WordNet 3.0"),
        ("unmapped label", "dataset mapillary: label 24 'marking--general' is not mapped"),
        ("two labels on one concept", "concept road: 2 cityscapes labels on one concept"),
        ("wrong depth", "concept dog: depth 2 but it is 5 below the root"),
        ("two roots", "expected exactly one root, found 2"),
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

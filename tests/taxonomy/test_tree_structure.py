"""The one tree loader checks structure: a parent cycle, an unknown parent, two roots, a root that is not a string,
a wrong depth or a field of the wrong type is one line naming the concept, in every command that reads a tree
(each run with a deadline: before, a cycle hung stats, diff, draw, export and labels export, and show printed half
the tree)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from hierseg.core.errors import HiersegError
from hierseg.taxonomy.tree import DEFAULT_ARTIFACT, Taxonomy
from tests.taxonomy.toy import toy_taxonomy


def toy_artifact() -> dict:
    return copy.deepcopy(toy_taxonomy().artifact)


def concept(artifact: dict, cid: str) -> dict:
    return next(c for c in artifact["concepts"] if c["id"] == cid)


def refused(artifact: dict) -> str:
    with pytest.raises(HiersegError) as info:
        Taxonomy(artifact)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_parent_cycle_is_named():
    artifact = toy_artifact()
    concept(artifact, "animal")["parent"] = "dog"  # animal -> dog -> animal, cut off from the root
    assert refused(artifact) == ("concept animal: its parents form a cycle (animal -> dog -> animal), so it does not "
                                 "lie below the root root")
    artifact = toy_artifact()
    concept(artifact, "root")["parent"] = "sky"  # no root left at all
    assert "the concepts without a parent are: none" in refused(artifact)


@pytest.mark.parametrize(("change", "expected"), [
    (lambda a: concept(a, "car").update(parent="truck"), "concept car: unknown parent 'truck'"),
    (lambda a: concept(a, "sky").update(parent=None, depth=0), "the concepts without a parent are: root, sky"),
    (lambda a: a.update(root=7), "needs a 'root' id, a string"),
    (lambda a: a.update(root="things"), "the root is declared 'things'"),
    (lambda a: concept(a, "lane").update(depth=1), "concept lane: depth 1, but it is 3 below the root"),
    (lambda a: concept(a, "bus").update(name=["bus"]), "concept bus: name must be a string"),
    (lambda a: concept(a, "bus").update(id=5), "concept 5: id and parent must be strings"),
    (lambda a: a["concepts"].append(dict(concept(a, "bus"))), "concept bus: given twice"),
    (lambda a: a.update(datasets=["coarse"]), "'datasets' must map each dataset name"),
])
def test_structural_faults_are_one_line(change, expected):
    artifact = toy_artifact()
    change(artifact)
    assert expected in refused(artifact)


COMMANDS = [["taxonomy", "stats", "{tree}"], ["taxonomy", "show", "{tree}"], ["taxonomy", "diff", "{tree}"],
            ["taxonomy", "export", "{tree}"], ["taxonomy", "draw", "{tree}", "--out", "{out}"],
            ["labels", "export", "--dataset", "cityscapes", "--taxonomy", "{tree}"]]


@pytest.mark.parametrize("fault", ["cycle", "unknown parent"])
def test_every_command_that_reads_a_tree_refuses_a_broken_one(tmp_path, fault):
    artifact = json.loads(DEFAULT_ARTIFACT.read_text())
    road = concept(artifact, "road")
    if fault == "cycle":
        concept(artifact, road["parent"])["parent"] = "road"
    else:
        road["parent"] = "roadway_that_is_not_there"
    tree = tmp_path / "tree.json"
    tree.write_text(json.dumps(artifact))
    for command in COMMANDS:
        args = [a.format(tree=tree, out=tmp_path / "t.svg") for a in command]
        result = subprocess.run([sys.executable, "-m", "hierseg.cli.main", *args], capture_output=True, text=True,
                                timeout=60)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr, (args, result.stderr)
        assert ("its parents form a cycle" if fault == "cycle" else "unknown parent") in errors[0]
        assert result.stdout == ""  # not half a tree
    assert not (tmp_path / "t.svg").exists()

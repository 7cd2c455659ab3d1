from __future__ import annotations

import csv
import io
import json
import shutil

import pytest

from hierseg.taxonomy.specs import SPEC_DIR
from hierseg.taxonomy.tree import DEFAULT_ARTIFACT
from tests.conftest import run_cli


def test_build_writes_tree_and_label_maps(tmp_path):
    out = tmp_path / "tree.json"
    result = run_cli("taxonomy", "build", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "built 359 concepts, maximal depth 5" in result.stdout
    assert out.read_bytes() == DEFAULT_ARTIFACT.read_bytes()
    header = (tmp_path / "label_maps" / "cityscapes.csv").read_text().splitlines()[0]
    assert header == "dataset_id,name,concept,concept_path,ignore,evaluated"
    assert not list(tmp_path.glob("**/*.tmp"))


def test_stats_json_and_csv():
    data = json.loads(run_cli("taxonomy", "stats", "--format", "json").stdout)
    assert data["concepts"] == 359
    csv_out = run_cli("taxonomy", "stats", "--format", "csv").stdout.splitlines()
    assert csv_out[0] == "statistic,value" and "concepts,359" in csv_out


def test_show_marks_datasets_and_filters():
    result = run_cli("taxonomy", "show", "--dataset", "cityscapes", "--root", "vehicle_things")
    assert result.returncode == 0
    assert "car [CASM]" in result.stdout and "caravan [SM]" in result.stdout
    assert "airplane" not in result.stdout


def test_unknown_concept_is_a_clean_error():
    result = run_cli("taxonomy", "show", "--root", "unicorn")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: unknown concept 'unicorn'"


def test_build_from_a_broken_spec_names_each_line_and_writes_nothing(tmp_path):
    specs = tmp_path / "specs"
    shutil.copytree(SPEC_DIR, specs)
    merge = specs / "merge.yaml"
    text = merge.read_text()
    text = text.replace("{id: tower, parent: building_stuff,", "{id: tower, parent: nowhere,")
    text = text.replace("synset: hovel.n.01,", "synset: hovel.n.77,")
    merge.write_text(text)
    out = tmp_path / "tree.json"
    result = run_cli("taxonomy", "build", "--specs", str(specs), "--out", str(out))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith("error: merge.yaml:") and "unknown parent 'nowhere'" in line for line in lines)
    assert "Traceback" not in result.stderr
    assert not out.exists() and not (tmp_path / "label_maps").exists()


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


@pytest.mark.parametrize(("old", "new", "message"), [
    # Cityscapes' traffic sign (20) lies below ADE20K's signboard (44): one contains the other
    ("  - {label: coco_stuff:46, with: [ade20k:148],", "  - {label: cityscapes:20, with: [ade20k:44],",
     "overlap between cityscapes:20 and ade20k:44, but 'signboard' is an ancestor of 'traffic_sign_front'"),
    # two labels of one dataset (COCO's cup and bowl)
    ("  - {label: coco_stuff:46, with: [ade20k:148],", "  - {label: coco_stuff:46, with: [coco_stuff:50],",
     "overlap between coco_stuff:46 and coco_stuff:50, two labels of one dataset"),
    # the same concept: Cityscapes' and Mapillary's terrain are one
    ("  - {label: coco_stuff:46, with: [ade20k:148],", "  - {label: cityscapes:22, with: [mapillary:29],",
     "overlap between cityscapes:22 and mapillary:29, but the same concept"),
    # a void label has no concept to overlap
    ("  - {label: coco_stuff:46, with: [ade20k:148],", "  - {label: coco_stuff:44, with: [ade20k:148],",
     "overlap names coco_stuff:44, which is no mapped label of the tree"),
    # not a label reference
    ("  - {label: coco_stuff:46, with: [ade20k:148],", "  - {label: coco_stuff46, with: [ade20k:148],",
     "'coco_stuff46' is not a label reference 'dataset:id'"),
])
def test_bad_overlap_is_one_error_line_naming_the_spec_line(tmp_path, old, new, message):
    specs = tmp_path / "specs"
    shutil.copytree(SPEC_DIR, specs)
    merge = specs / "merge.yaml"
    text = merge.read_text()
    line = _line(text, old)
    merge.write_text(text.replace(old, new, 1))
    out = tmp_path / "tree.json"
    result = run_cli("taxonomy", "build", "--specs", str(specs), "--out", str(out))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: merge.yaml:{line}: {message}"), lines
    assert not out.exists() and not (tmp_path / "label_maps").exists()


def test_diff_lists_moves_additions_removals_and_labels(tmp_path):
    old = json.loads(DEFAULT_ARTIFACT.read_text())
    concepts = {c["id"]: c for c in old["concepts"]}
    concepts["lake"]["parent"] = "water_stuff"  # the old placement: beside water-other
    concepts["lake"]["depth"] = 3
    concepts["grass"]["labels"].pop("ade20k")
    concepts["vegetation"]["labels"]["ade20k"] = [10]  # ADE20K's grass on vegetation
    old["concepts"] = [c for c in old["concepts"] if c["id"] != "pedestrian"]
    concepts["person"]["labels"]["cityscapes"] = [24]
    old["concepts"].append({"id": "unicorn", "name": "unicorn", "parent": "animal_things", "depth": 3, "labels": {}})
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    result = run_cli("taxonomy", "diff", str(path), "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = {(r["kind"], r["item"]): (r["before"], r["after"]) for r in csv.DictReader(io.StringIO(result.stdout))}
    assert rows[("moved", "lake")] == ("entity/stuff/water_stuff/lake", "entity/stuff/water_stuff/water_other/lake")
    assert rows[("added", "pedestrian")][1].endswith("/person/pedestrian")
    assert rows[("removed", "unicorn")] == ("entity/things/animal_things/unicorn", "")
    assert rows[("label", "ade20k:10")] == ("entity/stuff/plant_stuff/vegetation",
                                           "entity/stuff/terrain/ground_vegetation/grass")
    assert rows[("label", "cityscapes:24")][1].endswith("/person/pedestrian")
    assert rows[("label", "mapillary:19")] == ("", rows[("label", "cityscapes:24")][1])  # it lost its concept
    assert len(rows) == 6
    same = run_cli("taxonomy", "diff", str(DEFAULT_ARTIFACT))
    assert same.returncode == 0 and same.stdout == ""


def test_stats_report_weak_placements():
    data = json.loads(run_cli("taxonomy", "stats", "--format", "json").stdout)
    placements = data["placements"]
    assert placements["weak"] == len(placements["weak_concepts"]) and "light" in placements["weak_concepts"]
    table = run_cli("taxonomy", "stats").stdout
    assert "placements weak" in table

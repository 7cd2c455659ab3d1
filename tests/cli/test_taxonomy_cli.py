from __future__ import annotations

import json
import shutil

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

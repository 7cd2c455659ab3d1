"""Specs and label tables through the one YAML loader and the CSV reader: a ``!!python/`` tag in a dataset spec
constructs nothing and names its line, merge.yaml's root must be given once and be a string, and a label named in
another script is a name (it was called "empty")."""

from __future__ import annotations

import textwrap

import pytest

from hierseg.core.errors import HiersegError
from hierseg.taxonomy.authoring.extend import load_addition
from hierseg.taxonomy.authoring.labeltable import normalize, read_label_table
from hierseg.taxonomy.authoring.mergespec import load_merge_spec
from hierseg.taxonomy.specs import SPEC_DIR


def test_a_python_tag_in_a_dataset_spec_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "mine.csv").write_text("id,name\n0,background\n1,dog\n")
    spec = tmp_path / "mine.yaml"
    spec.write_text(textwrap.dedent(f"""\
        dataset: mine
        table: mine.csv
        ignore: !!python/object/apply:pathlib.Path.touch [{str(marker)!r}]
        labels:
          mine: {{1: dog}}
        """))
    with pytest.raises(HiersegError) as info:
        load_addition(spec)
    assert str(info.value).startswith(f"{spec}:3: not valid YAML (tag !!python/object/apply:pathlib.Path.touch")
    assert not marker.exists()


@pytest.mark.parametrize(("change", "expected"), [
    (lambda text: text.replace("root: entity", "root: entity\nroot: stuff", 1), "key 'root' given twice"),
    (lambda text: text.replace("root: entity", "root: 5", 1), "'root' must be a concept id \\(a string\\)"),
    (lambda text: text.replace("root: entity", "root: [entity]", 1), "'root' must be a concept id \\(a string\\)"),
])
def test_merge_spec_root_is_given_once_as_a_string(tmp_path, change, expected):
    text = (SPEC_DIR / "merge.yaml").read_text()
    assert "root: entity" in text
    path = tmp_path / "merge.yaml"
    path.write_text(change(text))
    with pytest.raises(HiersegError, match=expected):
        load_merge_spec(path)


def test_labels_in_other_scripts_are_names(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("id,name\n1,草地\n2,café\n3,Road\n4,---\n", encoding="utf-8")
    with pytest.raises(HiersegError) as info:
        read_label_table(path)
    assert str(info.value) == f"{path}:5: empty name '---'"  # only the line that really holds no letter
    path.write_text("id,name\n1,草地\n2,café\n3,Road\n", encoding="utf-8")
    assert [label.name for label in read_label_table(path).labels] == ["草地", "café", "Road"]
    assert normalize("Potted-Plant") == "potted plant" and normalize("草地") == "草地"

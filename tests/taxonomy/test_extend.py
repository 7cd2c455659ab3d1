"""`taxonomy build --add`: a dataset of one's own joins the tree; everything downstream works from the artifact."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from hierseg.core.errors import ProblemList
from hierseg.taxonomy import NeuronGraph, Taxonomy, activated_batch, translation
from hierseg.taxonomy.authoring.extend import extend_artifact, load_addition
from hierseg.taxonomy.authoring.validate import validate_artifact
from hierseg.taxonomy.neurons import self_concepts
from hierseg.taxonomy.specs import SPEC_DIR, dataset_spec
from tests.conftest import run_cli

VOC = SPEC_DIR / "pascal_voc.yaml"


@pytest.fixture(scope="module")
def voc(artifact, wordnet) -> dict:
    return extend_artifact(artifact, [load_addition(VOC)], wordnet)


def write_spec(folder: Path, body: str, table: str = "id,name\n0,background\n1,dolphin\n2,dog\n255,void\n",
               name: str = "mine.yaml") -> Path:
    (folder / "mine.csv").write_text(table)
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


def test_voc_joins_the_tree_without_moving_anything(voc, artifact, wordnet):
    # the same 359 concepts in the same order (tree label values stay valid), with VOC's labels added
    stripped = [{**c, "labels": {k: v for k, v in c["labels"].items() if k != "pascal_voc"}} for c in voc["concepts"]]
    assert stripped == artifact["concepts"]
    assert sum("pascal_voc" in c["labels"] for c in voc["concepts"]) == 20
    assert validate_artifact(voc, wordnet=wordnet) == []
    tax = Taxonomy(voc)
    assert tax.datasets[-1] == "pascal_voc" and voc["name"] == "dsspn359+pascal_voc"
    assert tax.concept_of("pascal_voc", 15) == "person" and tax.concept_of("pascal_voc", 0) is None
    spec = dataset_spec("pascal_voc", voc)
    assert spec.ignore == 255 and spec.ignore_name == "void" and len(spec.labels) == 21
    # background is void in the tree, but scored: predicted wherever the tree sees none of VOC's classes
    assert spec.label(0).evaluated and sum(lab.evaluated for lab in spec.labels) == 21
    assert spec.label(20).color == (0, 64, 128)
    # the built-in datasets are untouched
    for dataset in ("coco_stuff", "ade20k", "cityscapes", "mapillary"):
        assert tax.dataset_concepts(dataset) == Taxonomy(artifact).dataset_concepts(dataset)


def test_masks_targets_subgraphs_and_translations_of_an_added_dataset(voc, artifact):
    tax = Taxonomy(voc)
    graph = NeuronGraph(tax)
    base = NeuronGraph(Taxonomy(artifact))
    # no new concept, so the same children everywhere; a self output is added exactly where VOC labels a concept
    # with children that no built-in dataset labels (a VOC pixel may stop there)
    assert {n.concept: n.children for n in graph.neurons if len(n.children) > 1} == \
        {n.concept: n.children for n in base.neurons if len(n.children) > 1}
    voc_inner = {c for c in tax.dataset_concepts("pascal_voc").values() if not tax.is_leaf(c)}
    added = {n.concept for n in graph.neurons if n.has_self} - {n.concept for n in base.neurons if n.has_self}
    assert added == voc_inner - set(self_concepts(Taxonomy(artifact)))
    label = np.array([[0, 15, 8, 255]], dtype=np.uint8)  # background, person, cat, void
    targets = graph.targets("pascal_voc", label)
    assert (targets[:, 0, [0, 3]] == 255).all()  # void and background supervise nothing
    person_route = dict(graph.route("person"))
    assert all(targets[n, 0, 1] == c for n, c in person_route.items())
    # VOC labels neither pedestrians nor riders apart: person's neuron (pedestrian, rider, itself) learns nothing
    assert graph["person"].has_self and targets[graph.index["person"], 0, 1] == 255
    mask = graph.mask("pascal_voc")
    assert mask.active[graph.index["ground_animal"]] and not mask.active[graph.index["road"]]
    sub = activated_batch(graph, "pascal_voc", [label])
    assert graph.index["ground_animal"] in sub.neurons
    to_voc = translation(tax, "mapillary", "pascal_voc")
    assert to_voc.entry(20).relation == "coarser" and to_voc.entry(20).target_id == 15  # bicyclist -> person
    from_voc = translation(tax, "pascal_voc", "coco_stuff")
    assert from_voc.entry(15).relation == "equal" and from_voc.entry(15).target_name == "person"  # riders in both
    assert translation(tax, "pascal_voc", "cityscapes").entry(15).relation == "finer-ambiguous"  # pedestrian or rider
    assert from_voc.entry(12).relation == "equal" and from_voc.entry(12).target_name == "dog"


def test_new_concepts_need_any_size_and_are_appended(tmp_path, artifact, wordnet):
    spec = write_spec(tmp_path, """\
        dataset: mine
        table: mine.csv
        ignore: 255
        background: 0
        added:
          - {id: dolphin, parent: animal_things, synset: dolphin.n.02}
        void:
          mine: {0: "background: the rest"}
        labels:
          mine:
            1: dolphin
            2: dog
        """)
    with pytest.raises(ProblemList, match="adds 1 concept.*dolphin.*build with --any-size"):
        extend_artifact(artifact, [load_addition(spec)], wordnet)
    out = extend_artifact(artifact, [load_addition(spec)], wordnet, any_size=True)
    assert len(out["concepts"]) == 360 and out["concepts"][-1]["id"] == "dolphin"
    dolphin = out["concepts"][-1]
    assert dolphin["parent"] == "animal_things" and dolphin["depth"] == 3 and dolphin["source"] == "mine"
    assert dolphin["placement"] == "wordnet:animal_things" and dolphin["labels"] == {"mine": [1]}
    assert out["extends"]["datasets"]["mine"]["concepts_added"] == ["dolphin"]
    graph = NeuronGraph(Taxonomy(out))
    assert "dolphin" in graph["animal_things"].children
    from hierseg.models.outputs import LeafClasses

    outputs = LeafClasses(graph, ["mine", "coco_stuff"])
    assert "dolphin" in outputs.names and outputs.label_outputs("mine")[1] == (outputs.names.index("dolphin"),)


@pytest.mark.parametrize(("added", "message"), [
    ("{id: dolphin, parent: vehicle_things, synset: dolphin.n.02}",
     "dolphin.n.02 (dolphin) does not have conveyance.n.03 (vehicle_things) among its WordNet hypernyms"),
    ("{id: dolphin, parent: vehicle_things, synset: dolphin.n.02, exception: true}",
     "concept 'dolphin' needs a reason"),
    ("{id: dolphin, parent: animal_things, synset: dolphin.n.02, exception: true, reason: aquatic}",
     "'dolphin' is marked as an exception, but animal.n.01 (animal_things) is already among its hypernyms"),
    ("{id: dolphin, parent: nowhere, synset: dolphin.n.02}", "concept 'dolphin' has unknown parent 'nowhere'"),
    ("{id: dog, parent: animal_things, synset: dog.n.01}", "concept id 'dog' already exists"),
    ("{id: dolphin, parent: animal_things, synset: dolphin.n.77}", "synset 'dolphin.n.77' of concept 'dolphin' is not"),
    ("{id: dolphin, parent: animal_things, synset: null}", "concept 'dolphin' needs a reason"),
])
def test_new_concepts_go_through_the_builders_checks(tmp_path, artifact, wordnet, added, message):
    spec = write_spec(tmp_path, f"""\
        dataset: mine
        table: mine.csv
        ignore: 255
        added:
          - {added}
        void:
          mine: {{0: "background"}}
        labels:
          mine: {{1: dolphin, 2: dog}}
        """)
    with pytest.raises(ProblemList) as info:
        extend_artifact(artifact, [load_addition(spec)], wordnet, any_size=True)
    assert any(p.startswith(f"{spec}:5: ") and message in p for p in info.value.problems), info.value.problems


def test_bad_specs_report_every_problem_with_file_and_line(tmp_path, artifact, wordnet):
    spec = write_spec(tmp_path, """\
        dataset: mine
        table: mine.csv
        ignore: 255
        void:
          mine: {0: "background"}
        labels:
          mine:
            1: unicorn
            2: dog
            3: dog
        """, table="id,name\n0,background\n1,dolphin\n2,dog\n3,puppy\n4,cat\n")
    with pytest.raises(ProblemList) as info:
        extend_artifact(artifact, [load_addition(spec)], wordnet)
    assert info.value.problems == [
        f"{spec}:8: label 1 maps to unknown concept 'unicorn'",
        f"{spec}:10: label 3 maps to 'dog', which label 2 (line 9) already holds; one concept takes one label of a "
        "dataset",
        f"{tmp_path / 'mine.csv'}:6: label 4 'cat' is neither mapped nor void in mine.yaml",
    ]


@pytest.mark.parametrize(("body", "message"), [
    ("dataset: cityscapes\ntable: mine.csv\nignore: 255\nlabels: {cityscapes: {1: dog}}\n",
     ":1: dataset name 'cityscapes' clashes with a built-in dataset"),
    ("dataset: Mine\ntable: mine.csv\nignore: 255\nlabels: {Mine: {1: dog}}\n", ":1: dataset name 'Mine' must be lower"),
    ("dataset: mine\ntable: other.csv\nignore: 255\nlabels: {mine: {1: dog}}\n", ":2: label table"),
    ("dataset: mine\ntable: mine.csv\nignore: 255\nlabels: {yours: {1: dog}}\n",
     ":4: 'labels' is for dataset 'yours', but this spec adds 'mine'"),
    ("dataset: mine\ntable: mine.csv\nignore: 255\nlabels: {mine: {9: dog}}\n", ":4: mine.csv has no label id 9"),
    ("dataset: mine\ntable: mine.csv\nignore: 255\nlabels: {mine: {1: dog}}\ncolour: red\n", ":5: unknown key 'colour'"),
    ("dataset: mine\ntable: mine.csv\nignore: 255\nadded:\n  - {id: x, parent: dog, adopts: [cat]}\n"
     "labels: {mine: {1: dog}}\n", ":5: an added dataset cannot move the tree's concepts"),
    ("dataset: mine\ntable: mine.csv\nignore: 255\nbackground: 1\nlabels: {mine: {1: dog}}\n",
     ":4: background 1 must be one of the void labels"),
    ("dataset: mine\ntable: mine.csv\nignore: 255\nvoid: {mine: {0: ''}}\nlabels: {mine: {1: dog}}\n",
     ":4: void label 0 needs a reason"),
])
def test_spec_errors_name_file_and_line(tmp_path, body, message):
    spec = write_spec(tmp_path, body)
    with pytest.raises(ProblemList) as info:
        load_addition(spec)
    assert any(p.startswith(str(spec)) and message in p for p in info.value.problems), info.value.problems


def test_cli_build_add_writes_tree_label_maps_and_states_it(tmp_path):
    out = tmp_path / "voc" / "tree.json"
    result = run_cli("taxonomy", "build", "--add", str(VOC), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "built 359 concepts, maximal depth 5; added pascal_voc (21 labels, 0 new concepts)" in result.stdout
    rows = (tmp_path / "voc" / "label_maps" / "pascal_voc.csv").read_text().splitlines()
    assert rows[0] == "dataset_id,name,concept,concept_path,ignore,evaluated" and len(rows) == 23
    assert rows[1] == "0,background,,,1,1" and rows[-1] == "255,void,,,1,0"
    assert rows[5].startswith("4,boat,vessel,entity/things/")
    stats = json.loads(run_cli("taxonomy", "stats", str(out), "--format", "json").stdout)
    assert stats["concepts"] == 359 and stats["extended_from"] == "dsspn359" and stats["any_size"] is False
    assert stats["added_datasets"] == {"pascal_voc": {"spec": "pascal_voc.yaml", "new_concepts": "-"}}
    assert stats["datasets"]["pascal_voc"]["labels"] == 20
    assert run_cli("taxonomy", "validate", str(out)).returncode == 0
    shown = run_cli("taxonomy", "show", str(out), "--dataset", "pascal_voc", "--root", "vehicle_things").stdout
    shown_concepts = {line.lstrip("│├└─ ").split(" [")[0] for line in shown.splitlines()}
    assert "vessel [CM+]" in shown and {"vessel", "car", "two_wheeler"} <= shown_concepts
    assert not shown_concepts & {"boat", "ship", "van"}  # below VOC's labels: not part of its view
    exported = run_cli("labels", "export", "--taxonomy", str(out), "--dataset", "pascal_voc", "--to", "cityscapes")
    assert exported.returncode == 0 and "2,bicycle,bicycle,33,bicycle,bicycle,equal" in exported.stdout


def test_cli_new_concepts_are_stated_and_validated_with_any_size(tmp_path):
    spec = write_spec(tmp_path, """\
        dataset: mine
        table: mine.csv
        ignore: 255
        added:
          - {id: dolphin, parent: animal_things, synset: dolphin.n.02}
        void: {mine: {0: "background"}}
        labels: {mine: {1: dolphin, 2: dog}}
        """)
    out = tmp_path / "tree.json"
    result = run_cli("taxonomy", "build", "--add", str(spec), "--out", str(out))
    assert result.returncode == 2 and not out.exists() and "--any-size" in result.stderr
    result = run_cli("taxonomy", "build", "--add", str(spec), "--out", str(out), "--any-size")
    assert result.returncode == 0, result.stderr
    stats = json.loads(run_cli("taxonomy", "stats", str(out), "--format", "json").stdout)
    assert stats["concepts"] == 360 and stats["any_size"] is True and stats["added_concepts"] == 1
    assert stats["added_datasets"]["mine"]["new_concepts"] == "dolphin"
    assert "360 concepts, expected exactly 359" in run_cli("taxonomy", "validate", str(out)).stderr
    assert run_cli("taxonomy", "validate", str(out), "--any-size").returncode == 0


def test_cli_bad_input_one_error_line_each_and_nothing_written(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    first = write_spec(good, """\
        dataset: mine
        table: mine.csv
        ignore: 255
        void: {mine: {0: "background"}}
        labels: {mine: {1: unicorn, 2: dog}}
        """)
    clash = tmp_path / "clash"
    clash.mkdir()
    second = write_spec(clash, "dataset: mine\ntable: mine.csv\nignore: 255\nlabels: {mine: {1: dog, 2: cat}}\n"
                               "void: {mine: {0: x}}\n")
    out = tmp_path / "out" / "tree.json"
    result = run_cli("taxonomy", "build", "--add", str(first), "--add", str(second), "--out", str(out))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [f"error: {second}:1: dataset 'mine' clashes with {first}"]
    second.write_text(second.read_text().replace("dataset: mine", "dataset: yours").replace("{mine:", "{yours:"))
    result = run_cli("taxonomy", "build", "--add", str(first), "--add", str(second), "--out", str(out))
    assert result.stderr.splitlines() == [f"error: {first}:5: label 1 maps to unknown concept 'unicorn'"]
    bad_table = tmp_path / "bad"
    bad_table.mkdir()
    third = write_spec(bad_table, "dataset: third\ntable: mine.csv\nignore: 255\nlabels: {third: {1: dog}}\n",
                       table="id,name\n1,dog\n1,cat\n2,\n")
    result = run_cli("taxonomy", "build", "--add", str(third), "--add", str(VOC), "--out", str(out))
    assert result.stderr.splitlines() == [f"error: {bad_table / 'mine.csv'}:3: duplicate id 1 (first on line 2)",
                                          f"error: {bad_table / 'mine.csv'}:4: empty name (id 2)"]
    assert not out.parent.exists()
    result = run_cli("taxonomy", "build", "--add", str(VOC))
    assert result.returncode == 2 and "name its file with --out" in result.stderr

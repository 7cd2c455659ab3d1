"""`taxonomy suggest`: accuracy on label sets the tree was not built from, judged against a hand-written key, and the
behaviour of each kind of evidence."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from hierseg.taxonomy.authoring.extend import load_addition
from hierseg.taxonomy.authoring.labeltable import read_label_table
from hierseg.taxonomy.authoring.suggest import Suggester, key_accuracy, suggest_table
from hierseg.taxonomy.specs import SPEC_DIR, Label
from hierseg.taxonomy.tree import Taxonomy
from tests.conftest import run_cli

DATA = Path(__file__).parent / "data"


def read_key(dataset: str) -> dict[int, tuple[str, ...]]:
    """The key: per label, the concept its dataset's definition means, and the others it accepts (`also`)."""
    with (DATA / "suggest_key.csv").open(encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["dataset"] == dataset]
    return {int(row["id"]): (row["concept"], *(a for a in row["also"].split(";") if a)) for row in rows}


def context59_table(tmp_path: Path) -> Path:
    """PASCAL-Context-59 as a label table: labels.txt's name, and 59_labels.txt's name as a synonym where it differs."""
    with (DATA / "pascal_context_59.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    path = tmp_path / "pascal_context_59.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "synonyms"])
        for row in rows:
            other = row["name_in_59_labels"]
            writer.writerow([row["id"], row["name"], other if other != row["name"] else ""])
    return path


@pytest.fixture(scope="module")
def suggester(wordnet) -> Suggester:
    return Suggester(Taxonomy.load(), wordnet)


def test_the_key_names_concepts_of_the_tree(wordnet):
    """Every key entry is a concept of the tree, with the synset it has there (so the key can be re-mapped)."""
    tax = Taxonomy.load()
    with (DATA / "suggest_key.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            assert row["concept"] in tax, row
            assert (tax[row["concept"]].synset or "") == row["synset"], row
            for also in filter(None, row["also"].split(";")):
                assert also.removeprefix("new:") in tax, row


@pytest.mark.parametrize(("dataset", "table"), [("pascal_voc2012", None), ("pascal_context_59", context59_table)])
def test_top1_accuracy_on_unseen_label_sets(suggester, wordnet, tmp_path, dataset, table):
    path = SPEC_DIR / "pascal_voc2012.csv" if table is None else table(tmp_path)
    report = suggest_table(read_label_table(path), suggester.taxonomy, wordnet, dataset, suggester)
    key = read_key(dataset)
    assert len(key) == (20 if dataset == "pascal_voc2012" else 59)
    score = key_accuracy(report.suggestions, key)
    assert score["labels"] == len(key)
    assert score["top1"] >= 0.9, score["misses"]
    assert score["top3"] >= score["top1"]


def test_key_accuracy_counts_what_it_should(suggester):
    suggestions = suggester.suggest([Label(1, "dog"), Label(2, "crate"), Label(3, "boat")])
    key = {1: ("dog",), 2: ("new:box",), 3: ("vessel",), 4: ("tree",)}
    score = key_accuracy(suggestions, key)
    assert score["labels"] == 3 and score["top1"] == pytest.approx(2 / 3)
    assert score["misses"] == [(3, "boat", "boat", ("vessel",))]
    assert score["top3"] == 1.0  # vessel is boat's first alternative


def test_names_synonyms_and_compounds(suggester):
    by_name = {s.name: s for s in suggester.suggest([
        Label(1, "Dining-Table"), Label(2, "pottedplant"), Label(3, "sofa"), Label(4, "aeroplane"),
        Label(5, "shelves"), Label(6, "Lane Marking"), Label(7, "tvmonitor")])}
    assert by_name["Dining-Table"].concept == "dining_table"  # case and separators
    assert by_name["pottedplant"].concept == "potted_plant"  # a closed compound of a name
    assert by_name["sofa"].concept == "couch" and any("ade20k label 24" in e.detail for e in by_name["sofa"].evidence)
    assert by_name["aeroplane"].concept == "airplane"
    assert by_name["shelves"].concept == "shelf"  # a plural
    assert by_name["Lane Marking"].concept == "lane_marking"
    tv = by_name["tvmonitor"]  # tv + monitor: split into WordNet words, both parts name concepts
    assert {tv.concept, *(c.concept for c in tv.alternatives)} >= {"tv", "monitor"}
    assert tv.review and any(e.kind == "part" for e in tv.evidence)


def test_catch_alls_are_void(suggester):
    for name in ("background", "Unlabeled", "void", "other"):
        s = suggester.suggest_label(Label(0, name))
        assert s.status == "void" and s.concept is None and s.answer == "void"


def test_a_label_the_tree_lacks_gets_a_new_concept_checked_against_wordnet(suggester):
    crate = suggester.suggest_label(Label(1, "crate"))
    assert crate.status == "new" and crate.review and crate.concept is None
    assert (crate.new.parent, crate.new.synset, crate.new.placed) == ("box", "crate.n.01", True)
    # Coarser than a concept of the tree: beside it, and WordNet disagrees with COCO about fabric, so an exception.
    bedclothes = suggester.suggest_label(Label(2, "bedclothes"))
    assert (bedclothes.new.parent, bedclothes.new.synset, bedclothes.new.placed) == ("textile_stuff",
                                                                                     "bedclothes.n.01", False)
    assert bedclothes.alternatives[0].concept == "blanket"


def test_given_synset_and_description_steer_the_senses(suggester):
    plain = suggester.suggest_label(Label(1, "mouse"))
    assert plain.concept == "mouse" and not plain.review  # computer mouse: the tree names it so
    rodent = suggester.suggest_label(Label(2, "field mouse", extra={"synset": "mouse.n.01"}))
    assert rodent.status == "new" and rodent.new.synset == "mouse.n.01" and rodent.new.parent == "animal_things"
    described = suggester.suggest_label(Label(3, "mouse", extra={"description": "a small rodent"}))
    assert described.review and described.note == "the description shares nothing with it"
    # ground's first sense is land.n.04 (COCO's ground group); a description of its soil sense, land.n.02, picks
    # ADE20K's "land; ground; soil" instead, close enough to the group to ask for a look
    ground = suggester.suggest_label(Label(4, "ground"))
    soil = suggester.suggest_label(Label(5, "ground", extra={"description": "the soil in which plants grow"}))
    assert ground.concept == "ground_stuff" and soil.concept == "land" and soil.review


def test_cli_json_records(tmp_path):
    table = tmp_path / "mine.csv"
    table.write_text("id,name\n0,background\n1,dog\n2,crate\n")
    result = run_cli("taxonomy", "suggest", "--labels", str(table), "--format", "json")
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert [r["id"] for r in records] == [0, 1, 2]
    assert all({"id", "name", "concept", "score", "alternatives"} <= set(r) for r in records)
    dog = records[1]
    assert dog["concept"] == "dog" and dog["status"] == "match" and len(dog["alternatives"]) == 2
    assert records[2]["concept"] is None and records[2]["new"]["parent"] == "box"


def test_cli_table(tmp_path):
    table = tmp_path / "mine.csv"
    table.write_text("id,name\n1,dog\n2,crate\n")
    result = run_cli("taxonomy", "suggest", "--labels", str(table))
    assert result.returncode == 0, result.stderr
    assert "new crate under box" in result.stdout and "1 matched, 1 new concepts, 0 void" in result.stdout


def test_yaml_stub_is_a_spec_that_builds_once_reviewed(tmp_path, wordnet, artifact):
    from hierseg.taxonomy.authoring.extend import extend_artifact

    table = tmp_path / "mine.csv"
    table.write_text("id,name\n0,background\n1,dog\n2,crate\n3,sky\n255,void\n")
    out = tmp_path / "specs" / "mine.yaml"
    result = run_cli("taxonomy", "suggest", "--labels", str(table), "--dataset", "mine", "--format", "yaml",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    spec = yaml.safe_load(out.read_text())
    assert spec["dataset"] == "mine" and spec["table"] == "../mine.csv" and spec["ignore"] == 255
    assert spec["labels"] == {"mine": {1: "dog", 2: "crate", 3: "sky_stuff"}}
    assert list(spec["void"]["mine"]) == [0]
    assert spec["added"][0]["id"] == "crate" and spec["added"][0]["parent"] == "box"
    # The drafted TODO reason must be rewritten before the builder takes it.
    with pytest.raises(Exception, match="still the drafted TODO"):
        load_addition(out)
    out.write_text(out.read_text().replace('reason: "TODO', 'reason: "checked: '))
    extended = extend_artifact(artifact, [load_addition(out)], wordnet, any_size=True)
    tax = Taxonomy(extended)
    assert len(tax) == 360 and tax["crate"].parent == "box" and tax.concept_of("mine", 2) == "crate"


def test_suggest_against_an_extended_tree_knows_the_added_labels(tmp_path, wordnet, artifact):
    """An added dataset's label names become evidence too."""
    from hierseg.taxonomy.authoring.extend import extend_artifact

    extended = Taxonomy(extend_artifact(artifact, [load_addition(SPEC_DIR / "pascal_voc.yaml")], wordnet))
    s = Suggester(extended, wordnet).suggest_label(Label(1, "tvmonitor"))
    assert s.concept == "tv" and any("pascal_voc label 20" in e.detail for e in s.evidence)
    plain = Suggester(Taxonomy(artifact), wordnet).suggest_label(Label(1, "tvmonitor"))
    assert plain.concept != "tv"  # without VOC's label the closed compound's head, monitor, comes first


@pytest.mark.parametrize(("args", "message"), [
    (["--dataset", "cityscapes"], "--dataset 'cityscapes': the tree already has a dataset"),
    (["--dataset", "Bad Name"], "--dataset 'Bad Name': a dataset name is lower snake case"),
])
def test_cli_bad_dataset_names(tmp_path, args, message):
    table = tmp_path / "mine.csv"
    table.write_text("id,name\n1,dog\n")
    result = run_cli("taxonomy", "suggest", "--labels", str(table), *args)
    assert result.returncode == 2 and result.stderr.startswith(f"error: {message}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_cli_bad_table_one_line_per_problem(tmp_path):
    table = tmp_path / "bad.csv"
    table.write_bytes(b"id,name,synset\n1,dog,\n1,cat,\n2,,\n3,caf\xe9,\n")
    result = run_cli("taxonomy", "suggest", "--labels", str(table))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: {table}:5: not UTF-8 (byte 0xe9 at column 6); save the table as UTF-8"]
    table.write_text("id,name,synset\n1,dog,\n1,cat,\n2,,\n3,bird,bird.n.99\n")
    result = run_cli("taxonomy", "suggest", "--labels", str(table))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [f"error: {table}:3: duplicate id 1 (first on line 2)",
                                          f"error: {table}:4: empty name (id 2)"]
    table.write_text("id,name,synset\n1,dog,\n3,bird,bird.n.99\n")
    result = run_cli("taxonomy", "suggest", "--labels", str(table))
    assert result.stderr.splitlines() == [f"error: {table}:3: synset 'bird.n.99' of 'bird' is not in WordNet 3.0"]

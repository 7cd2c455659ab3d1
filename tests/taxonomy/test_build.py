from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hierseg.taxonomy.build import BuildError, build_artifact, dumps_artifact, label_map_csv
from hierseg.taxonomy.specs import DATASETS, SPEC_DIR, load_spec
from hierseg.taxonomy.tree import DEFAULT_ARTIFACT, Taxonomy

REPO = Path(__file__).resolve().parents[2]


def test_shipped_tree_has_paper_shape(artifact):
    tax = Taxonomy(artifact)
    assert len(tax) == 359
    assert tax.max_depth == 5
    assert tax.root == "entity" and tax["entity"].parent is None
    assert tax.graph.number_of_edges() == 358


def test_build_is_deterministic_and_committed_artifact_is_current(artifact, wordnet):
    again = build_artifact(wordnet=wordnet)
    assert dumps_artifact(again) == dumps_artifact(artifact)
    assert DEFAULT_ARTIFACT.read_text(encoding="utf-8") == dumps_artifact(artifact), "run `hierseg taxonomy build`"
    for dataset in DATASETS:
        committed = (REPO / "data" / "label_maps" / f"{dataset}.csv").read_text(encoding="utf-8")
        assert committed == label_map_csv(artifact, dataset)


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_label_is_mapped_once(artifact, dataset):
    tax = Taxonomy(artifact)
    spec = load_spec(dataset)
    mapped = tax.dataset_concepts(dataset)
    void = {int(k) for k in artifact["datasets"][dataset]["void"]}
    assert set(mapped) | void == set(spec.ids)
    assert len(set(mapped.values())) == len(mapped), "two labels of one dataset share a concept"


def test_coarse_and_fine_labels_sit_on_one_path(artifact):
    tax = Taxonomy(artifact)
    animal = tax.concept_of("ade20k", 127)
    dog = tax.concept_of("coco_stuff", 17)
    assert animal == "animal_things" and animal in tax.ancestors(dog)
    road = tax.concept_of("cityscapes", 7)
    for mapillary_id in (13, 23, 24, 8):  # road, zebra crossing, lane marking, plain crosswalk
        assert tax.ancestors(tax.concept_of("mapillary", mapillary_id))[0] == road
    # Cityscapes' not-evaluated labels share their Mapillary equivalents' concepts.
    for cityscapes_id, mapillary_id in ((9, 10), (10, 12), (14, 4), (15, 16), (16, 18), (29, 56), (30, 60)):
        assert tax.concept_of("cityscapes", cityscapes_id) == tax.concept_of("mapillary", mapillary_id)
    # COCO-Stuff's 11 unannotated things stay in the tree.
    assert tax.concept_of("coco_stuff", 11) == "street_sign"


def test_placements_are_checked_against_wordnet(artifact, wordnet):
    by_id = {c["id"]: c for c in artifact["concepts"]}
    checked = [c for c in artifact["concepts"] if c["placement"].startswith("wordnet:")]
    assert len(checked) > 60
    for concept in checked:
        anchor = by_id[concept["placement"].split(":", 1)[1]]
        hypernyms = wordnet.synset(concept["synset"]).closure(lambda s: s.hypernyms() + s.instance_hypernyms())
        assert wordnet.synset(anchor["synset"]) in set(hypernyms)
    for concept in artifact["concepts"]:
        if concept["placement"] == "exception":
            assert concept["reason"] or by_id[concept["parent"]]["reason"]
        if concept["synset"]:
            assert concept["definition"] == wordnet.synset(concept["synset"]).definition()


@pytest.fixture()
def spec_copy(tmp_path):
    target = tmp_path / "specs"
    shutil.copytree(SPEC_DIR, target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), start=1) if needle in line)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("{id: tower, parent: building_stuff,", "{id: tower, parent: no_such_parent,", "unknown parent 'no_such_parent'"),
        ("synset: tower.n.01,", "synset: tower.n.99,", "'tower.n.99' of concept 'tower' is not in WordNet 3.0"),
        ("{id: tower, parent: building_stuff,", "{id: tower, parent: animal_things,", "does not have animal.n.01"),
        ("    85: tower              # tower\n", "", "ade20k label 85 'tower' is neither mapped nor void"),
    ],
)
def test_spec_errors_name_the_line(spec_copy, wordnet, old, new, message):
    merge = spec_copy / "merge.yaml"
    line = _line_of(merge, "{id: tower,")
    _edit(merge, old, new)
    with pytest.raises(BuildError) as info:
        build_artifact(spec_copy, wordnet=wordnet)
    hits = [p for p in info.value.problems if message in p]
    assert hits, info.value.problems
    if "label" not in message:
        assert hits[0].startswith(f"merge.yaml:{line}:")


def test_unneeded_exception_is_rejected(spec_copy, wordnet):
    merge = spec_copy / "merge.yaml"
    _edit(merge, "{id: tower, parent: building_stuff, synset: tower.n.01, source: ade20k}",
          "{id: tower, parent: building_stuff, synset: tower.n.01, source: ade20k, exception: true, reason: x}")
    with pytest.raises(BuildError) as info:
        build_artifact(spec_copy, wordnet=wordnet)
    assert any("remove it from `exception: true`" in p for p in info.value.problems)

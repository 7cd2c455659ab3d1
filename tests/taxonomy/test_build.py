from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from hierseg.taxonomy.authoring.build import BuildError, build_artifact, dumps_artifact, label_map_csv
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
    for mapillary_id in (13, 24):  # road, lane marking: parts of Cityscapes' road, "including road markings"
        assert tax.ancestors(tax.concept_of("mapillary", mapillary_id))[0] == road
    for mapillary_id in (23, 8):  # zebra and plain crosswalk: a crosswalk, in the road
        assert tax.ancestors(tax.concept_of("mapillary", mapillary_id))[:2] == ("crosswalk", road)
    # Cityscapes' not-evaluated labels share their Mapillary equivalents' concepts.
    for cityscapes_id, mapillary_id in ((9, 10), (10, 12), (14, 4), (15, 16), (16, 18), (29, 56), (30, 60)):
        assert tax.concept_of("cityscapes", cityscapes_id) == tax.concept_of("mapillary", mapillary_id)
    # COCO-Stuff's eleven unannotated things are void (no pixel carries them), plate too; ADE20K's plate keeps the
    # concept. Cityscapes' polegroup ("multiple poles") is a pole.
    unannotated = [label.id for label in load_spec("coco_stuff").labels if not label.evaluated]
    assert len(unannotated) == 11 and not [i for i in unannotated if tax.concept_of("coco_stuff", i)]
    assert {str(i) for i in unannotated} == set(artifact["datasets"]["coco_stuff"]["void"])
    assert tax.concept_of("ade20k", 143) == "plate"
    assert tax.ancestors(tax.concept_of("cityscapes", 18))[0] == tax.concept_of("cityscapes", 17) == "pole"


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
    _edit(merge, "{id: tower, parent: building_stuff, synset: tower.n.01, source: ade20k,",
          "{id: tower, parent: building_stuff, synset: tower.n.01, source: ade20k, exception: true,")
    with pytest.raises(BuildError) as info:
        build_artifact(spec_copy, wordnet=wordnet)
    assert any("remove it from `exception: true`" in p for p in info.value.problems)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        # a guard rail is a railing (WordNet): beside it, the closer parent is missed
        ("{id: guard_rail, parent: railing,", "{id: guard_rail, parent: structural_stuff,",
         "guardrail.n.01 (guard_rail) has railing.n.01 (railing) among its WordNet hypernyms, deeper than its parent"),
        # a mark that is not needed
        ("{id: pier, parent: platform, synset: pier.n.01, source: ade20k}",
         "{id: pier, parent: platform, synset: pier.n.01, source: ade20k, not_below: {fence: x}}",
         "'pier' marks 'fence' under `not_below`, but 'fence' is no WordNet hypernym"),
        # two concepts with one synset
        ("{id: pier, parent: platform, synset: pier.n.01,", "{id: pier, parent: platform, synset: stage.n.03,",
         "'pier' and 'stage' (merge.yaml:"),
        ("{id: pier, parent: platform, synset: pier.n.01, source: ade20k}",
         "{id: pier, parent: platform, synset: pier.n.01, source: ade20k, shares_synset: {stage: x}}",
         "'pier' marks 'stage' under `shares_synset`, but they do not share a synset"),
        # a removed COCO concept must be childless, and its label must go somewhere
        ("  - {id: stop_sign, parent: traffic_sign_front,", "  - {id: stop_sign, parent: street_sign,",
         "cannot remove 'street_sign', it still has children (stop_sign); move them, or lift them"),
        ("    11: \"street sign: removed from COCO (no annotations in stuffthingmaps)\"\n", "",
         "coco_stuff label 11 'street sign' has no concept of its name; map it under labels or list it under void"),
        ("  - {id: hat, reason:", "  - {id: tower, reason:",
         "only a COCO-Stuff concept the merge does not place can be removed, not 'tower'"),
        # a concept placed under a lifted (removed) level
        ("{id: terrain, parent: stuff,", "{id: terrain, parent: outdoor_super_stuff,",
         "'terrain' is placed under 'outdoor_super_stuff', which line"),
        # marks of COCO-Stuff's own concepts: only for concepts the merge does not place, and only when needed
        ("  - {id: skis, exception: true,", "  - {id: bottle, exception: true,",
         "only a COCO-Stuff concept the merge does not place can be kept, not 'bottle'"),
        ("  - {id: skis, exception: true,", "  - {id: bicycle, exception: true,",
         "only a COCO-Stuff concept the merge does not place can be kept, not 'bicycle'"),
        ("  - {id: skis, exception: true,", "  - {id: skis, exception: true, not_below: {board: x},",
         "'skis' marks 'board' under `not_below`, but 'board' is no WordNet hypernym"),
        ("  - {id: skis, exception: true,", "  - {id: book, exception: true,",
         "'book' is marked as an exception, but object.n.01 (things) is already among its hypernyms"),
        ("  - {id: mud, parent: dirt,", "  - {id: mud, parent: nowhere,", "concept 'mud' has unknown parent 'nowhere'"),
    ],
)
def test_stronger_checks_name_the_line(spec_copy, wordnet, old, new, message):
    merge = spec_copy / "merge.yaml"
    _edit(merge, old, new)
    with pytest.raises(BuildError) as info:
        build_artifact(spec_copy, wordnet=wordnet)
    hits = [p for p in info.value.problems if message in p]
    assert hits, info.value.problems
    assert hits[0].startswith("merge.yaml"), hits[0]


def test_marks_make_the_same_placements_pass(spec_copy, wordnet):
    merge = spec_copy / "merge.yaml"
    _edit(merge, "{id: guard_rail, parent: railing,",
          "{id: guard_rail, parent: structural_stuff, not_below: {railing: 'kept beside', barrier: 'likewise'},")
    _edit(merge, "{id: pier, parent: platform, synset: pier.n.01, source: ade20k}",
          "{id: pier, parent: platform, synset: stage.n.03, source: ade20k, shares_synset: {stage: 'this test'}}")
    artifact = build_artifact(spec_copy, wordnet=wordnet)
    by_id = {c["id"]: c for c in artifact["concepts"]}
    assert by_id["guard_rail"]["parent"] == "structural_stuff" and by_id["pier"]["synset"] == "stage.n.03"


@pytest.mark.parametrize("how", ["no entry", "no exception"])
def test_coco_stuff_concepts_are_checked_too(spec_copy, wordnet, how):
    # without its mark, COCO-Stuff's own food group fails the check like any placement the merge makes
    merge = spec_copy / "merge.yaml"
    line = _line_of(merge, "  - {id: food_things, exception: true,")
    text = merge.read_text(encoding="utf-8")
    if how == "no entry":
        text, where = re.sub(r"  - \{id: food_things, exception: true,.*?\}\n", "", text, count=1, flags=re.S), \
            "coco_stuff_hierarchy.csv (food-things)"
    else:
        text, where = text.replace("  - {id: food_things, exception: true,", "  - {id: food_things,"), f"merge.yaml:{line}"
    merge.write_text(text, encoding="utf-8")
    with pytest.raises(BuildError) as info:
        build_artifact(spec_copy, wordnet=wordnet)
    message = f"{where}: food.n.02 (food_things) does not have object.n.01 (things) among its WordNet hypernyms"
    assert any(p.startswith(message) for p in info.value.problems), info.value.problems


def test_lifted_levels_leave_their_children_in_place(artifact, spec_copy, wordnet):
    tax = Taxonomy(artifact)
    # COCO-Stuff's super-categories, in its own order, directly below things and stuff
    assert tax.children("things")[:6] == ("kitchen_things", "food_things", "furniture_things", "electronic_things",
                                          "appliance_things", "indoor_things")
    assert tax.children("stuff")[:6] == ("rawmaterial_stuff", "wall_stuff", "ceiling_stuff", "floor_stuff",
                                         "window_stuff", "furniture_stuff")
    assert not {"indoor_super_things", "outdoor_super_stuff"} & {c.id for c in tax}
    merge = spec_copy / "merge.yaml"
    _edit(merge, "  - {id: indoor_super_stuff, lift: true,", "  - {id: indoor_super_stuff,")
    with pytest.raises(BuildError) as info:
        build_artifact(spec_copy, wordnet=wordnet)
    assert any("cannot remove 'indoor_super_stuff', it still has children (rawmaterial_stuff" in p
               for p in info.value.problems)


def test_every_merge_placement_has_its_reason_and_no_synset_is_shared(artifact):
    by_id = {c["id"]: c for c in artifact["concepts"]}
    by_synset: dict[str, list[str]] = {}
    for concept in artifact["concepts"]:
        if concept["synset"]:
            by_synset.setdefault(concept["synset"], []).append(concept["id"])
        if concept["source"] != "coco_stuff":  # added by the merge: its reason, or its adopting super-class's
            assert concept["reason"] or by_id[concept["parent"]]["reason"] or concept["synset"], concept["id"]
        if concept["placement"] == "exception":  # WordNet overruled, COCO-Stuff's own concepts included
            assert concept["reason"] or by_id[concept["parent"]]["reason"], concept["id"]
    shared = {s: ids for s, ids in by_synset.items() if len(ids) > 1}
    assert shared == {"sidewalk.n.01": ["pavement", "sidewalk"]}  # marked: Mapillary splits COCO's pavement

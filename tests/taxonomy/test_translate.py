"""Label translation: toy relations worked out by hand, then the real cases the issue names."""

from __future__ import annotations

import numpy as np
import pytest

from hierseg.taxonomy import HiersegError, Taxonomy, load_spec
from hierseg.taxonomy.authoring.export import export_lut
from hierseg.taxonomy.labelspace import TREE_IGNORE
from hierseg.taxonomy.overlaps import check_overlaps
from hierseg.taxonomy.translate import RELATIONS, translation
from tests.taxonomy.toy import toy_taxonomy


@pytest.fixture(scope="module")
def toy() -> Taxonomy:
    return toy_taxonomy()


@pytest.fixture(scope="module")
def real() -> Taxonomy:
    return Taxonomy.load()


def relations(table) -> dict[int, tuple[int, str]]:
    return {e.source_id: (e.target_id, e.relation) for e in table.entries}


def ids(dataset: str) -> dict[str, int]:
    return {label.name: label.id for label in load_spec(dataset).labels}


def test_toy_fine_to_coarse_coarsens_exactly(toy):
    # dog, cat -> animal; car = car; lane, crosswalk -> road; sky = sky; fine's ignore 0 -> coarse's ignore 255
    assert relations(translation(toy, "fine", "coarse")) == {
        0: (255, "none"), 1: (0, "coarser"), 2: (0, "coarser"), 3: (1, "equal"), 4: (3, "coarser"),
        5: (3, "coarser"), 6: (4, "equal")}


def test_toy_coarse_to_fine_is_ambiguous_where_fine_splits(toy):
    # animal covers dog and cat; bus has no fine label; road covers lane, crosswalk and road itself; 5 is void
    assert relations(translation(toy, "coarse", "fine")) == {
        0: (0, "finer-ambiguous"), 1: (3, "equal"), 2: (0, "none"), 3: (0, "finer-ambiguous"), 4: (6, "equal"),
        5: (0, "none"), 255: (0, "none")}


def test_toy_nested_labels_have_exclusive_extents(toy):
    # nested's vehicle excludes car, so it is vehicle-or-bus: fine labels neither
    assert relations(translation(toy, "nested", "fine"))[0] == (0, "none")
    # coarse's bus falls under nested's vehicle; its car is nested's car
    coarse_to_nested = relations(translation(toy, "coarse", "nested"))
    assert coarse_to_nested[2] == (0, "coarser") and coarse_to_nested[1] == (1, "equal")


def test_toy_tree_targets_and_sources(toy):
    # the tree's values are concept indices in artifact order: root 0, things 1, animal 2, dog 3, ...
    to_tree = relations(translation(toy, "coarse", "tree"))
    assert to_tree[0] == (2, "equal") and to_tree[3] == (9, "equal") and to_tree[5] == (TREE_IGNORE, "none")
    from_tree = relations(translation(toy, "tree", "fine"))
    assert from_tree[3] == (1, "equal")            # dog
    assert from_tree[2] == (0, "finer-ambiguous")  # animal: dog or cat
    assert from_tree[7] == (0, "none")             # bus


def test_apply_is_a_gather_and_rejects_undefined_values(toy):
    table = translation(toy, "fine", "coarse")
    label = np.array([[1, 2, 3], [4, 6, 0]], dtype=np.uint8)
    out, unknown = table.apply(label)
    assert out.tolist() == [[0, 0, 1], [3, 4, 255]] and unknown == 0
    assert np.array_equal(out, np.take(export_lut(table), label))
    bad = np.array([[1, 9], [9, 2]], dtype=np.uint8)
    with pytest.raises(HiersegError, match=r"x\.png: value 9 is not a fine label id"):
        table.apply(bad, where="x.png")
    out, unknown = table.apply(bad, unknown="ignore")
    assert out.tolist() == [[0, 255], [255, 0]] and unknown == 2


def test_apply_with_a_full_target_codomain_still_detects_undefined(real):
    # COCO-Stuff uses 0..181 and 255, so the sentinel cannot be the largest uint8 value
    table = translation(real, "mapillary", "coco_stuff")
    assert table.sentinel != 255
    with pytest.raises(HiersegError, match="value 70 is not a mapillary label id"):
        table.apply(np.array([0, 70], dtype=np.uint8))


def test_mapillary_to_cityscapes_lane_markings_and_crosswalks_coarsen_to_road(real):
    m, c = ids("mapillary"), ids("cityscapes")
    rel = relations(translation(real, "mapillary", "cityscapes"))
    for name in ("marking--general", "marking--crosswalk-zebra", "construction--flat--crosswalk-plain",
                 "construction--flat--road", "construction--flat--bike-lane", "object--pothole"):
        assert rel[m[name]] == (c["road"], "coarser"), name
    assert rel[m["object--vehicle--car"]] == (c["car"], "equal")
    assert rel[m["construction--flat--curb-cut"]] == (c["sidewalk"], "coarser")
    # a curb is sidewalk ("the curbs are included"), or terrain ("may also include a possibly adjacent curb")
    assert rel[m["construction--barrier--curb"]] == (0, "overlap")
    assert rel[m["object--manhole"]] == (0, "overlap")  # in the road or in the sidewalk
    assert rel[m["object--bench"]] == (0, "none")  # Cityscapes has no bench: its ignore value


def test_cityscapes_to_mapillary_road_is_finer_ambiguous(real):
    m, c = ids("mapillary"), ids("cityscapes")
    rel = relations(translation(real, "cityscapes", "mapillary"))
    assert rel[c["pole"]] == (65, "finer-ambiguous")  # utility pole, sign frame or other pole
    assert rel[c["rider"]] == (65, "finer-ambiguous")
    # road splits into Mapillary's nine road concepts and shares its manholes with the sidewalk: overlap wins
    assert rel[c["road"]] == (65, "overlap")
    assert rel[c["car"]] == (m["object--vehicle--car"], "equal")
    assert rel[c["static"]] == (65, "none")


def test_a_translation_as_a_dataframe(real):
    """What a notebook user filters: Mapillary's labels that become Cityscapes' road, and the counts per relation."""
    m, c = ids("mapillary"), ids("cityscapes")
    table = translation(real, "mapillary", "cityscapes")
    frame = table.to_frame()
    assert list(frame.index) == [e.source_id for e in table.entries]
    assert list(frame.columns) == ["source_name", "source_concept", "target_id", "target_name", "target_concept",
                                   "relation", "overlaps"]
    to_road = frame.query("relation == 'coarser' and target_name == 'road'")
    assert {m[name] for name in ("marking--general", "construction--flat--bike-lane")} <= set(to_road.index)
    assert (to_road.target_id == c["road"]).all()
    # Cityscapes' sidewalk holds the curb; its terrain "may also include a possibly adjacent curb": an overlap
    assert frame.loc[m["construction--barrier--curb"], "overlaps"] == f"{c['terrain']} terrain"
    assert frame.relation.value_counts().to_dict() == dict(table.counts)


def test_ade20k_animal_against_coco_stuff_animals(real):
    a, k = ids("ade20k"), ids("coco_stuff")
    animals = [name for name, i in k.items()
               if real.concept_of("coco_stuff", i) and "animal_things" in real.ancestors(real.concept_of("coco_stuff", i))]
    assert {"dog", "cat", "horse", "elephant", "giraffe"} <= set(animals)
    assert relations(translation(real, "ade20k", "coco_stuff"))[a["animal"]] == (255, "finer-ambiguous")
    to_ade = relations(translation(real, "coco_stuff", "ade20k"))
    for name in animals:
        assert to_ade[k[name]] == (a["animal"], "coarser"), name


def _with_overlaps(toy: Taxonomy, *pairs: tuple[str, str]) -> Taxonomy:
    artifact = {**toy.artifact, "overlaps": [{"labels": list(p), "reason": "worked out by hand"} for p in pairs]}
    return Taxonomy(artifact)


def test_toy_overlap_replaces_the_tree_relation_both_ways(toy):
    tax = _with_overlaps(toy, ("coarse:4", "fine:5"))  # coarse's sky and fine's crosswalk share some pixels
    to_fine = translation(tax, "coarse", "fine")
    assert relations(to_fine)[4] == (0, "overlap") and to_fine.entry(4).overlaps == (5,)
    to_coarse = translation(tax, "fine", "coarse")
    assert relations(to_coarse)[5] == (255, "overlap") and to_coarse.entry(5).overlaps == (4,)  # was road, coarser
    # every other value keeps its relation; the pair means nothing to a third space
    plain = relations(translation(toy, "fine", "coarse"))
    assert {k: v for k, v in relations(to_coarse).items() if k != 5} == {k: v for k, v in plain.items() if k != 5}
    assert relations(translation(tax, "fine", "nested")) == relations(translation(toy, "fine", "nested"))
    assert relations(translation(tax, "fine", "tree")) == relations(translation(toy, "fine", "tree"))
    rows = to_coarse.rows()
    assert [r["overlaps"] for r in rows if r["source_id"] == 5] == ["4 sky"]
    assert all(r["overlaps"] == "" for r in rows if r["source_id"] != 5)
    assert check_overlaps(tax.artifact, tax) == []


def test_toy_overlap_records_that_contradict_the_tree(toy):
    tax = _with_overlaps(toy, ("coarse:3", "fine:4"), ("fine:1", "fine:2"), ("fine:9", "coarse:0"), ("fine", "x"))
    assert check_overlaps(tax.artifact, tax) == [
        "overlap #0 (coarse:3, fine:4): 'road' and 'lane' lie on one path of the tree (one label contains the other)",
        "overlap #1 (fine:1, fine:2): two labels of one dataset",
        "overlap #2 (fine:9, coarse:0): fine:9 is no mapped label of the tree",
        "overlap #3: labels must be two references 'dataset:id', not ['fine', 'x']",
    ]


def test_every_real_pair_is_consistent(real):
    spaces = [*real.datasets, "tree"]
    for source in spaces:
        for target in spaces:
            table = translation(real, source, target)
            for e in table.entries:
                assert e.relation in RELATIONS and bool(e.overlaps) == (e.relation == "overlap")
                if e.relation in ("equal", "coarser"):
                    assert e.target_concept is not None
                    assert (e.target_concept == e.source_concept) == (e.relation == "equal")
                    assert e.target_concept in real.path(e.source_concept)
                else:
                    assert e.target_id == table.target.ignore

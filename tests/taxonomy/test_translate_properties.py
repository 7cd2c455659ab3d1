"""Property tests of label translation and remapping (hypothesis): random trees, random label spaces over them, random
label maps. Each property follows from what a translation promises (hierseg.taxonomy.translate's docstring), not
from its code: a value maps only to a concept that contains it, so a round trip never invents a label; ``apply`` is
the per-pixel lookup of the entries, whatever the array's type, shape or memory layout; ``equal`` goes both ways
unless one side labels something nested inside the concept.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hierseg.core.errors import HiersegError
from hierseg.taxonomy import DATASETS, LabelSpace, Taxonomy, label_space, translation

# Few examples and no deadline: the suite runs on two shared cores; a property that fails usually fails early.
FAST = settings(max_examples=40, deadline=None)


@st.composite
def trees(draw: st.DrawFn) -> Taxonomy:
    """A random tree of 2-14 concepts: concept i hangs below one of the concepts before it."""
    size = draw(st.integers(2, 14))
    parents = [None] + [draw(st.integers(0, i - 1)) for i in range(1, size)]
    depth: list[int] = []
    concepts = []
    for i, parent in enumerate(parents):
        depth.append(0 if parent is None else depth[parent] + 1)
        concepts.append({"id": f"c{i}", "name": f"c{i}", "parent": None if parent is None else f"c{parent}",
                         "depth": depth[i], "labels": {}})
    return Taxonomy({"root": "c0", "concepts": concepts, "datasets": {}})


@st.composite
def spaces(draw: st.DrawFn, taxonomy: Taxonomy, name: str) -> LabelSpace:
    """A flat dataset over ``taxonomy``: some concepts labelled (nested ones too), maybe void values, one ignore."""
    ids = [c.id for c in taxonomy]
    labelled = draw(st.lists(st.sampled_from(ids), min_size=1, unique=True))
    voids = draw(st.integers(0, 2))
    values = draw(st.lists(st.integers(0, 254), min_size=len(labelled) + voids + 1,
                           max_size=len(labelled) + voids + 1, unique=True))
    ignore, values = values[0], values[1:]
    concepts: dict[int, str | None] = dict(zip(values, [*labelled, *[None] * voids], strict=True))
    return LabelSpace(name, ignore, "ignore", {v: f"{name}:{c}" for v, c in concepts.items()}, concepts)


@st.composite
def pairs(draw: st.DrawFn) -> tuple[Taxonomy, LabelSpace, LabelSpace]:
    taxonomy = draw(trees())
    return taxonomy, draw(spaces(taxonomy, "a")), draw(spaces(taxonomy, "b"))


def contains(taxonomy: Taxonomy, outer: str, inner: str) -> bool:
    return outer in taxonomy.path(inner)


@given(pairs())
@FAST
def test_a_value_maps_only_to_a_concept_that_contains_it(case):
    taxonomy, a, b = case
    for entry in translation(taxonomy, a, b).entries:
        if entry.relation in ("equal", "coarser"):
            assert contains(taxonomy, entry.target_concept, entry.source_concept)
            assert (entry.relation == "equal") == (entry.target_concept == entry.source_concept)
        else:
            assert entry.target_id == b.ignore


@given(pairs())
@FAST
def test_a_round_trip_never_invents_a_label(case):
    taxonomy, a, b = case
    there, back = translation(taxonomy, a, b), translation(taxonomy, b, a)
    label = np.array([*a.ids, a.ignore], dtype=np.uint8)
    returned, undefined = back.apply(there.apply(label)[0])
    assert undefined == 0
    for value, result in zip(label.tolist(), returned.tolist(), strict=True):
        if result != a.ignore:  # a value comes back as itself or as a coarser label of the same space
            assert a.concepts[value] is not None and contains(taxonomy, a.concepts[result], a.concepts[value])
    assert returned[-1] == a.ignore


@given(pairs())
@FAST
def test_a_space_translated_to_itself_is_the_identity_on_its_labels(case):
    taxonomy, a, _ = case
    table = translation(taxonomy, a, a)
    for entry in table.entries:
        expected = entry.source_id if entry.source_concept is not None else a.ignore
        assert entry.target_id == expected
        assert entry.relation == ("equal" if entry.source_concept is not None else "none")


@given(pairs())
@FAST
def test_equal_goes_both_ways_unless_a_label_sits_inside_the_concept(case):
    taxonomy, a, b = case
    there, back = translation(taxonomy, a, b), translation(taxonomy, b, a)

    def nested_labels(space: LabelSpace, concept: str) -> bool:
        return any(c is not None and c != concept and contains(taxonomy, concept, c) for c in space.concepts.values())

    for entry in there.entries:
        if entry.relation != "equal":
            continue
        reverse = back.entry(entry.target_id)
        if not nested_labels(a, entry.source_concept) and not nested_labels(b, entry.source_concept):
            assert (reverse.relation, reverse.target_id) == ("equal", entry.source_id)
        elif (reverse.relation, reverse.target_id) != ("equal", entry.source_id):
            assert reverse.relation == "finer-ambiguous" and nested_labels(a, entry.source_concept)


@cache
def shipped(source: str, target: str):
    return translation(Taxonomy.load(), source, target)


SPACES = [*DATASETS, "tree"]
DTYPES = [np.uint8, np.uint16, np.int32, np.int64]


@st.composite
def label_maps(draw: st.DrawFn) -> tuple[object, np.ndarray]:
    """A shipped translation and a label map of its source: defined values, undefined ones, odd and even sizes,
    contiguous or a strided view (``apply`` reads uint8 maps two pixels at a time where it can)."""
    source, target = draw(st.sampled_from(SPACES)), draw(st.sampled_from(SPACES))
    table = shipped(source, target)
    space = table.source
    dtype = np.uint8 if space.dtype == np.uint8 and draw(st.booleans()) else draw(st.sampled_from(DTYPES[1:]))
    defined = st.sampled_from([*space.ids, space.ignore])
    top = min(np.iinfo(dtype).max, len(table.lut) - 1)
    values = st.one_of(defined, defined, st.integers(0, top)) if draw(st.booleans()) else defined
    shape = draw(st.tuples(st.integers(1, 9), st.integers(1, 9)))
    label = draw(arrays(dtype, shape, elements=values))
    if draw(st.booleans()):
        label = label[:, ::2]
    return table, label


@given(label_maps())
@FAST
def test_apply_is_the_per_pixel_lookup_of_the_entries(case):
    table, label = case
    lookup = {e.source_id: e.target_id for e in table.entries}
    defined = np.vectorize(lambda v: int(v) in lookup, otypes=[bool])(label)
    expected = np.vectorize(lambda v: lookup.get(int(v), table.target.ignore), otypes=[np.int64])(label)
    out, undefined = table.apply(label, unknown="ignore")
    assert out.shape == label.shape and out.dtype == table.target.dtype
    assert undefined == int((~defined).sum())
    np.testing.assert_array_equal(out.astype(np.int64), expected)
    if defined.all():
        np.testing.assert_array_equal(table.apply(label)[0], out)
    else:
        with pytest.raises(HiersegError, match=f"is not a {table.source.name} label id"):
            table.apply(label)


@pytest.mark.parametrize("source", SPACES)
def test_the_shipped_tree_keeps_the_properties(source):
    """The shipped tree, not only random ones, for every pair of its spaces; ``overlap`` (definitions that share
    pixels, listed in the merge spec) is the one more reason an ``equal`` does not come back."""
    taxonomy = Taxonomy.load()
    space = label_space(taxonomy, source)
    for target in SPACES:
        there, back = shipped(source, target), shipped(target, source)
        for entry in there.entries:
            if entry.relation not in ("equal", "coarser"):
                continue
            assert contains(taxonomy, entry.target_concept, entry.source_concept)
            returned = back.entry(entry.target_id)
            if returned.target_id != space.ignore:
                assert contains(taxonomy, space.concepts[returned.target_id], entry.source_concept)
            if entry.relation == "equal" and (returned.relation, returned.target_id) != ("equal", entry.source_id):
                nested = any(c is not None and c != entry.source_concept and contains(taxonomy, entry.source_concept, c)
                             for c in space.concepts.values())
                assert returned.relation == "overlap" or (returned.relation == "finer-ambiguous" and nested)

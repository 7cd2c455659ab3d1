"""The audit of every label placement (taxonomy/specs/audit.csv) covers every label and agrees with the built tree."""

from __future__ import annotations

import csv
from collections import Counter

import pytest

from hierseg.taxonomy import DATASETS, Taxonomy, load_spec
from hierseg.taxonomy.overlaps import overlapping
from hierseg.taxonomy.specs import SPEC_DIR

VERDICTS = ("ok", "changed", "left")


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    with (SPEC_DIR / "audit.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def tax() -> Taxonomy:
    return Taxonomy.load()


def test_every_label_has_one_row(rows):
    for dataset in DATASETS:
        listed = [(int(r["id"]), r["name"]) for r in rows if r["dataset"] == dataset]
        assert listed == [(label.id, label.name) for label in load_spec(dataset).labels], dataset
    assert len(rows) == 182 + 150 + 33 + 65
    assert sum(1 for r in rows if r["concept"]) == 414  # the placements: every label but the void ones


def test_rows_agree_with_the_built_tree(rows, tax):
    """Concept, path and overlaps are the tree's; a change to the tree shows here until the audit is reviewed."""
    stale = []
    for r in rows:
        concept = tax.concept_of(r["dataset"], int(r["id"]))
        if r["concept"] != (concept or "") or r["path"] != ("/".join(tax.path(concept)) if concept else ""):
            stale.append(f"{r['dataset']}:{r['id']} {r['name']}")
    assert not stale, f"audit.csv rows no longer match the tree: {stale}"
    for dataset in DATASETS:
        expected: dict[int, set[str]] = {}
        for other in DATASETS:
            names = {label.id: label.name for label in load_spec(other).labels}
            for label, ids in overlapping(tax, dataset, other).items():
                expected.setdefault(label, set()).update(f"{other}:{i} {names[i]}" for i in ids)
        for r in (r for r in rows if r["dataset"] == dataset):
            assert set(filter(None, r["overlaps"].split("; "))) == expected.get(int(r["id"]), set()), r["name"]


def test_every_verdict_says_why(rows):
    counts = Counter(r["verdict"] for r in rows)
    assert set(counts) <= set(VERDICTS)
    for r in rows:
        assert r["definition"].strip(), r["name"]
        if r["verdict"] != "ok" or not r["concept"]:  # a change, a placement left as it is, a void label: why
            assert r["note"].strip(), r["name"]


def test_definitions_are_the_datasets_own(rows):
    specs = {d: {label.id: label for label in load_spec(d).labels} for d in DATASETS}
    for r in rows:
        label = specs[r["dataset"]][int(r["id"])]
        if r["dataset"] == "cityscapes":  # the class definitions of the Cityscapes paper, in cityscapes.csv
            assert r["definition"] == label.extra["description"]
        elif r["dataset"] == "coco_stuff" and label.extra.get("description"):
            assert r["definition"] == label.extra["description"]
        elif r["dataset"] == "ade20k":
            assert r["definition"].startswith(f"'{'; '.join(label.synonyms)}'")
        elif r["dataset"] == "mapillary":
            assert label.name in r["definition"]

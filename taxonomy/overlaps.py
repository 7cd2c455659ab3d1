"""Labels whose definitions overlap without one containing the other (the artifact's ``overlaps``).

A tree can nest a label below another (Mapillary's curb below Cityscapes' sidewalk) but cannot say that two labels
share only part of their pixels: Cityscapes' terrain "may also include a possibly adjacent curb", so some of its
pixels are Mapillary curbs and most are not. The merge spec lists such pairs with their reason; the builder checks
them (two datasets, both labels mapped, neither concept on the other's path) and stores them in the artifact as
``{"labels": ["cityscapes:22", "mapillary:2"], "reason": ...}``. Translations between the two datasets report the
relation ``overlap`` for both labels (:mod:`hierseg.taxonomy.translate`).
"""

from __future__ import annotations

from typing import Any

from hierseg.taxonomy.tree import Taxonomy

LabelRef = tuple[str, int]


def _ref(text: Any) -> LabelRef | None:
    if not isinstance(text, str) or text.count(":") != 1:
        return None
    dataset, _, number = text.partition(":")
    return (dataset, int(number)) if dataset and number.isdigit() else None


def overlap_pairs(artifact: dict[str, Any]) -> list[tuple[LabelRef, LabelRef, str]]:
    """The artifact's overlaps as ``((dataset, id), (dataset, id), reason)``; malformed records are left out (the
    validator reports them)."""
    pairs = []
    for record in artifact.get("overlaps") or ():
        labels = record.get("labels") if isinstance(record, dict) else None
        if not isinstance(labels, list) or len(labels) != 2:
            continue
        a, b = _ref(labels[0]), _ref(labels[1])
        if a is not None and b is not None:
            pairs.append((a, b, str(record.get("reason", ""))))
    return pairs


def overlapping(taxonomy: Taxonomy, source: str, target: str) -> dict[int, tuple[int, ...]]:
    """Source label id -> the target label ids its definition overlaps (empty unless both are datasets)."""
    out: dict[int, set[int]] = {}
    for a, b, _ in overlap_pairs(taxonomy.artifact):
        for (ds, label), (other, other_label) in ((a, b), (b, a)):
            if ds == source and other == target:
                out.setdefault(label, set()).add(other_label)
    return {label: tuple(sorted(ids)) for label, ids in out.items()}


def overlap_reason(taxonomy: Taxonomy, a: LabelRef, b: LabelRef) -> str | None:
    """The reason the spec gives for the overlap of ``a`` and ``b``, or None when they are no listed pair."""
    for x, y, reason in overlap_pairs(taxonomy.artifact):
        if {x, y} == {a, b}:
            return reason
    return None


def check_overlaps(artifact: dict[str, Any], taxonomy: Taxonomy) -> list[str]:
    """One line per malformed or contradictory overlap record of an artifact."""
    problems = []
    records = artifact.get("overlaps", [])
    if not isinstance(records, list):
        return ["artifact: 'overlaps' must be a list of {labels: [dataset:id, dataset:id], reason}"]
    for index, record in enumerate(records):
        labels = record.get("labels") if isinstance(record, dict) else None
        refs = [_ref(x) for x in labels] if isinstance(labels, list) and len(labels) == 2 else [None]
        if None in refs:
            problems.append(f"overlap #{index}: labels must be two references 'dataset:id', not {labels!r}")
            continue
        (da, ia), (db, ib) = refs
        where = f"overlap #{index} ({da}:{ia}, {db}:{ib})"
        if da == db:
            problems.append(f"{where}: two labels of one dataset")
            continue
        concepts = []
        for dataset, label in refs:
            concept = taxonomy.concept_of(dataset, label) if dataset in taxonomy.datasets else None
            if concept is None:
                problems.append(f"{where}: {dataset}:{label} is no mapped label of the tree")
            concepts.append(concept)
        ca, cb = concepts
        if ca is not None and cb is not None and (ca == cb or ca in taxonomy.ancestors(cb) or cb in taxonomy.ancestors(ca)):
            problems.append(f"{where}: {ca!r} and {cb!r} lie on one path of the tree (one label contains the other)")
    return problems

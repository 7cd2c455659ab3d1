"""Cross-check the tree against MSeg's universal taxonomy (``MSeg_master.tsv``, Lambert et al., CVPR 2020).

MSeg maps the labels of several datasets onto 194 flat universal classes. For every universal class that holds
labels of at least two of our datasets, our tree either puts them on **one** concept, makes them a **nested** set
(one of the concepts covers all the others) or keeps some of them **unrelated**. Every cross-dataset pair of labels
MSeg calls one class is reported; an unrelated pair is one where neither concept lies on the other's path, so a
translation between the two datasets cannot carry the pixels from one label to the other.

Many unrelated pairs are MSeg being coarser than one of our datasets: MSeg's car includes caravan, but Cityscapes
and Mapillary label caravan apart. Such a pair is *kept apart by* that dataset: the other label's concept
translates (``equal`` or ``coarser``) to a different label of it. A pair the merge spec lists as an ``overlap``
(definitions that share pixels without one containing the other) says so with its reason. The remaining unrelated
pairs are explained in ``specs/mseg.yaml`` or listed as unexplained.

COCO panoptic's ``*-merged`` classes merge several COCO-Stuff classes and name none of them; they are left out, as
are labels the tree keeps void.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hierseg.core.csvtext import csv_rows
from hierseg.core.errors import HiersegError, ProblemList
from hierseg.core.io import read_text
from hierseg.core.yamltext import read_yaml
from hierseg.taxonomy.overlaps import overlap_reason
from hierseg.taxonomy.specs import SPEC_DIR, load_spec
from hierseg.taxonomy.translate import Translation, owners, translation
from hierseg.taxonomy.tree import Taxonomy

# MSeg column -> our dataset. COCO panoptic 133 names its classes as COCO-Stuff does, merges aside.
COLUMNS: dict[str, str] = {
    "coco-panoptic-133": "coco_stuff",
    "ade20k-150": "ade20k",
    "cityscapes-34": "cityscapes",
    "mapillary-public65": "mapillary",
}
UNIVERSAL = "universal"
UNLABELED = "unlabeled"
MERGED_SUFFIX = "-merged"
NOTES = SPEC_DIR / "mseg.yaml"
_CELL = re.compile(r"^\{(.*)\}$")


class CompareError(ProblemList):
    """The TSV is not a usable MSeg taxonomy; ``problems`` holds one line per problem."""


@dataclass(frozen=True)
class MsegLabel:
    dataset: str
    label_id: int
    name: str  # as MSeg spells it


@dataclass(frozen=True)
class MsegClass:
    name: str
    line: int
    labels: tuple[MsegLabel, ...]
    skipped: tuple[str, ...] = ()  # COCO panoptic merged classes, as "column:name"


@dataclass(frozen=True)
class Pair:
    universal: str
    a: MsegLabel
    b: MsegLabel
    concept_a: str
    concept_b: str
    relation: str  # "same", "nested" or "unrelated"
    a_to_b: str  # translation relation of a into b's dataset
    b_to_a: str
    why: str = ""  # for unrelated pairs


@dataclass
class Comparison:
    classes: list[dict[str, Any]] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def unrelated(self) -> list[Pair]:
        return [p for p in self.pairs if p.relation == "unrelated"]

    def summary(self) -> dict[str, int]:
        kinds = [c["relation"] for c in self.classes]
        unrelated = self.unrelated
        return {
            "classes_spanning_datasets": len(self.classes),
            "one_concept": kinds.count("one concept"),
            "nested": kinds.count("nested"),
            "unrelated": kinds.count("unrelated"),
            "cross_dataset_pairs": len(self.pairs),
            "unrelated_pairs": len(unrelated),
            "unrelated_kept_apart_by_a_dataset": sum(p.why.startswith("kept apart by") for p in unrelated),
            "unrelated_overlaps": sum(p.why.startswith("overlap:") for p in unrelated),
            "unrelated_explained_in_notes": sum(p.why.startswith("notes:") for p in unrelated),
            "unrelated_unexplained": sum(not p.why for p in unrelated),
            "skipped_labels": len(self.skipped),
        }


def _names(dataset: str) -> dict[str, int | None]:
    """Lower-cased names -> label id (None for the dataset's ignore value). Unique ADE20K synonyms count too."""
    spec = load_spec(dataset)
    names: dict[str, int | None] = {spec.ignore_name.lower(): None}
    for label in spec.labels:
        names[label.name.lower()] = label.id
        readable = label.extra.get("readable")
        if readable:
            names[readable.lower()] = label.id
    if dataset == "ade20k":  # MSeg spells a few classes by a later synonym ("television receiver")
        counts: dict[str, list[int]] = {}
        for label in spec.labels:
            for synonym in label.synonyms:
                counts.setdefault(synonym.lower(), []).append(label.id)
        for synonym, ids in counts.items():
            if len(ids) == 1:
                names.setdefault(synonym, ids[0])
    return names


def _split_cell(cell: str) -> list[str] | None:
    cell = cell.strip()
    if not cell:
        return []
    match = _CELL.match(cell)
    if "{" in cell or "}" in cell:
        if match is None or "{" in match.group(1) or "}" in match.group(1):
            return None
        cell = match.group(1)
    return [name.strip() for name in cell.split(",") if name.strip()]


def read_mseg(path: str | Path) -> list[MsegClass]:
    """Parse an ``MSeg_master.tsv``; every problem (missing column, broken row, unknown name) is collected."""
    path = Path(path)
    text = read_text(path, "MSeg taxonomy")  # FIFO-safe and bounded, one line for bytes that are not UTF-8
    rows = list(csv_rows(csv.reader(text.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE), str(path)))
    if not rows:
        raise CompareError([f"{path}: empty file, expected MSeg's tab-separated master taxonomy"])
    header = [h.strip() for h in rows[0]]
    missing = [c for c in (UNIVERSAL, *COLUMNS) if c not in header]
    if missing:
        raise CompareError([f"{path}:1: missing column(s) {', '.join(missing)}"])
    index = {name: header.index(name) for name in (UNIVERSAL, *COLUMNS)}
    names = {dataset: _names(dataset) for dataset in COLUMNS.values()}
    problems: list[str] = []
    classes: list[MsegClass] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problems.append(f"{path}:{line}: {len(row)} tab-separated fields, the header has {len(header)}")
            continue
        universal = row[index[UNIVERSAL]].strip()
        if not universal:
            problems.append(f"{path}:{line}: empty {UNIVERSAL!r} cell")
            continue
        if universal in seen:
            problems.append(f"{path}:{line}: universal class {universal!r} already on line {seen[universal]}")
            continue
        seen[universal] = line
        labels: list[MsegLabel] = []
        skipped: list[str] = []
        for column, dataset in COLUMNS.items():
            cell = _split_cell(row[index[column]])
            if cell is None:
                problems.append(f"{path}:{line}: column {column}: unbalanced braces in {row[index[column]]!r}")
                continue
            for name in cell:
                if dataset == "coco_stuff" and name.endswith(MERGED_SUFFIX):
                    skipped.append(f"{column}:{name}")
                    continue
                label_id = names[dataset].get(name.lower(), -1)
                if label_id == -1:
                    problems.append(f"{path}:{line}: column {column}: unknown {dataset} label {name!r}")
                elif label_id is not None:
                    labels.append(MsegLabel(dataset, label_id, name))
        classes.append(MsegClass(universal, line, tuple(labels), tuple(skipped)))
    if problems:
        raise CompareError(problems)
    return classes


def load_notes(path: str | Path = NOTES) -> dict[str, str]:
    """Universal class -> why our tree keeps its remaining unrelated pairs apart (``specs/mseg.yaml``)."""
    data = read_yaml(path, "MSeg notes") or {}
    notes = data.get("unrelated", {}) if isinstance(data, dict) else None
    if not isinstance(notes, dict) or not all(isinstance(v, str) and v.strip() for v in notes.values()):
        raise HiersegError(f"{path}: 'unrelated' must map MSeg universal class names to a one-line reason")
    return {str(k): v for k, v in notes.items()}


def _on_one_path(taxonomy: Taxonomy, a: str, b: str) -> bool:
    return a == b or a in taxonomy.ancestors(b) or b in taxonomy.ancestors(a)


def _kept_apart(taxonomy: Taxonomy, table: Translation, source: MsegLabel, target: MsegLabel) -> str:
    """Why ``target``'s dataset itself separates the two labels, or ''."""
    entry = table.entry(source.label_id)
    label = entry.target_id if entry.relation in ("equal", "coarser") else None
    if entry.relation == "overlap":  # the label's own concept still lies under one label of the target's
        label = owners(taxonomy, table.target).get(entry.source_concept)
    if label is not None and label != target.label_id:
        return (f"kept apart by {target.dataset}: it labels {source.name!r} as {table.target.name_of(label)!r}, "
                f"not {target.name!r}")
    return ""


def compare(taxonomy: Taxonomy, classes: Iterable[MsegClass], notes: dict[str, str] | None = None) -> Comparison:
    """Relate every MSeg class that spans several of our datasets to the tree."""
    notes = notes or {}
    result = Comparison()
    tables: dict[tuple[str, str], Translation] = {}

    def table(source: str, target: str) -> Translation:
        if (source, target) not in tables:
            tables[(source, target)] = translation(taxonomy, source, target)
        return tables[(source, target)]

    for item in classes:
        result.skipped.extend(f"{item.name}: {name}" for name in item.skipped)
        if item.name == UNLABELED or len({label.dataset for label in item.labels}) < 2:
            continue
        concepts = {label: taxonomy.concept_of(label.dataset, label.label_id) for label in item.labels}
        for label, concept in concepts.items():
            if concept is None:
                result.skipped.append(f"{item.name}: {label.dataset}:{label.name} (void in the tree)")
        labels = [label for label in item.labels if concepts[label] is not None]
        distinct = sorted({concepts[label] for label in labels})
        if len(distinct) == 1:
            kind = "one concept"
        elif any(all(c == top or top in taxonomy.ancestors(c) for c in distinct) for top in distinct):
            kind = "nested"
        else:
            kind = "unrelated"
        pairs = []
        for i, a in enumerate(labels):
            for b in labels[i + 1:]:
                if a.dataset == b.dataset:
                    continue
                ca, cb = concepts[a], concepts[b]
                a_to_b = table(a.dataset, b.dataset).entry(a.label_id).relation
                b_to_a = table(b.dataset, a.dataset).entry(b.label_id).relation
                if ca == cb:
                    relation, why = "same", ""
                elif _on_one_path(taxonomy, ca, cb):
                    relation, why = "nested", ""
                else:
                    relation = "unrelated"
                    overlap = overlap_reason(taxonomy, (a.dataset, a.label_id), (b.dataset, b.label_id))
                    why = (_kept_apart(taxonomy, table(a.dataset, b.dataset), a, b)
                           or _kept_apart(taxonomy, table(b.dataset, a.dataset), b, a)
                           or (f"overlap: {overlap}" if overlap is not None else "")
                           or (f"notes: {notes[item.name]}" if item.name in notes else ""))
                pairs.append(Pair(item.name, a, b, ca, cb, relation, a_to_b, b_to_a, why))
        result.pairs.extend(pairs)
        result.classes.append({
            "universal": item.name, "line": item.line, "relation": kind,
            "labels": [f"{label.dataset}:{label.name}" for label in labels], "concepts": distinct,
            "pairs": len(pairs), "unrelated_pairs": sum(p.relation == "unrelated" for p in pairs),
        })
    return result


def pair_rows(result: Comparison) -> list[dict[str, str]]:
    return [{
        "universal": p.universal, "relation": p.relation,
        "dataset_a": p.a.dataset, "label_a": p.a.name, "concept_a": p.concept_a,
        "dataset_b": p.b.dataset, "label_b": p.b.name, "concept_b": p.concept_b,
        "a_to_b": p.a_to_b, "b_to_a": p.b_to_a, "why": p.why,
    } for p in result.pairs]

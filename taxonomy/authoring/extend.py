"""Add a dataset of one's own to the tree: ``hierseg taxonomy build --add SPEC.yaml``.

A dataset spec is a YAML file in the form of ``specs/merge.yaml``'s dataset sections, plus the dataset's facts::

    dataset: pascal_voc              # lower snake case; not one of the built-in datasets
    title: PASCAL VOC 2012
    table: pascal_voc2012.csv        # id,name[,synonyms,description,synset,color,evaluated]; relative to this file
    ignore: 255                      # the pixel value that carries no label (a table row with this id names it)
    layout: pascal_voc               # optional: how the files lie (an official layout of hierseg.data, or folder)
    background: 0                    # optional: the void value of pixels the dataset labels as none of its classes
    added:                           # optional: concepts the tree lacks, exactly as in merge.yaml
      - {id: dolphin, parent: animal_things, synset: dolphin.n.02, reason: "..."}
    void:                            # labels that denote no concept (catch-alls), with the reason
      pascal_voc: {0: "background: everything that is none of the 20 classes"}
    labels:                          # every other label: its concept
      pascal_voc: {1: airplane, 2: bicycle}

The extended tree is the built tree with the new concepts appended (so every existing concept keeps its index in
the artifact, and tree label maps stay valid) and the dataset's labels on their concepts; the artifact carries the
dataset's label table, so everything downstream (label spaces, masks, translations, readers, training,
evaluation) works from the artifact alone. New concepts go through the builder's own checks (unique id, known
parent, a reason where one is due, the WordNet placement); moving the tree's concepts (``adopts``) is a change to
the tree itself and belongs in ``merge.yaml``. Every problem of every spec is reported, one line each, before
anything is written.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hierseg.core.errors import HiersegError, ProblemList
from hierseg.core.io import read_text
from hierseg.core.yamltext import compose_yaml, yaml_line, yaml_problem, yaml_value
from hierseg.taxonomy.authoring.labeltable import LabelTable, read_label_table
from hierseg.taxonomy.authoring.mergespec import AddedConcept, LabelMapping, MergeSpec
from hierseg.taxonomy.authoring.validate import SHIPPED_CONCEPTS, SHIPPED_MAX_DEPTH, validate_artifact
from hierseg.taxonomy.specs import DATASETS

RESERVED = ("tree", "classes")  # label-space names that are not datasets
# Extra table columns the extended artifact keeps; `category` groups classes for Cityscapes-style category IoU (KITTI
# and WildDash use Cityscapes' labels, categories included).
CARRIED = ("description", "synset", "category")
TODO = "TODO"  # `taxonomy suggest` writes reasons starting with this; a spec must replace them
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_TOP = ("dataset", "title", "table", "ignore", "ignore_name", "layout", "background", "added", "void", "labels")
_ADDED = ("id", "parent", "synset", "name", "reason", "exception", "source")


@dataclass
class DatasetAddition:
    """One dataset spec, read and checked on its own (the tree is not needed yet)."""

    path: Path
    name: str
    title: str
    table: LabelTable
    ignore: int
    ignore_name: str
    merge: MergeSpec  # the spec's added concepts, label mappings and void labels, each with its line
    line: int = 1  # where `dataset:` is
    layout: str | None = None
    background: int | None = None
    void_lines: dict[int, int] = field(default_factory=dict)
    ignore_color: tuple[int, int, int] | None = None

    def where(self, line: int) -> str:
        return f"{self.path}:{line}"


class _SpecMerge(MergeSpec):
    """A spec's concepts and labels in the builder's form; problems name the spec by its path."""

    def where(self, line: int) -> str:
        return f"{self.path}:{line}"


def _scalar(node: yaml.Node) -> Any:
    return yaml_value(node)


def _table_entries(node: yaml.Node, path: Path, dataset: str, section: str,
                   problems: list[str]) -> list[tuple[int, Any, int]]:
    """``{dataset: {id: value}}`` -> ``(id, value, line)``, every problem collected."""
    if not isinstance(node, yaml.MappingNode):
        problems.append(f"{path}:{node.start_mark.line + 1}: '{section}' must map the dataset name to a table of ids")
        return []
    out = []
    for key, table in node.value:
        line = key.start_mark.line + 1
        if key.value != dataset:
            problems.append(f"{path}:{line}: '{section}' is for dataset {key.value!r}, but this spec adds {dataset!r}")
            continue
        if not isinstance(table, yaml.MappingNode):
            problems.append(f"{path}:{line}: '{section}.{dataset}' must map label ids to values")
            continue
        for id_node, value in table.value:
            at = id_node.start_mark.line + 1
            try:
                label_id = int(id_node.value)
            except ValueError:
                problems.append(f"{path}:{at}: label id {id_node.value!r} is not an integer")
                continue
            out.append((label_id, _scalar(value), at))
    return out


def load_addition(path: str | Path) -> DatasetAddition:
    """Read a dataset spec and its label table; raises :class:`ProblemList` with every problem found."""
    path = Path(path)
    text = read_text(path, "dataset spec")
    try:
        root = compose_yaml(text)
    except yaml.YAMLError as exc:
        line = yaml_line(exc)
        raise HiersegError(f"{path}{f':{line}' if line else ''}: not valid YAML ({yaml_problem(exc)})") from None
    if not isinstance(root, yaml.MappingNode):
        raise HiersegError(f"{path}: a dataset spec is a mapping (dataset, table, ignore, labels, ...)")
    problems: list[str] = []
    sections: dict[str, yaml.Node] = {}
    lines: dict[str, int] = {}
    for key, value in root.value:
        line = key.start_mark.line + 1
        if key.value not in _TOP:
            problems.append(f"{path}:{line}: unknown key {key.value!r} (allowed: {', '.join(_TOP)})")
        elif key.value in sections:
            problems.append(f"{path}:{line}: {key.value!r} given twice (first on line {lines[key.value]})")
        else:
            sections[key.value], lines[key.value] = value, line
    missing = [k for k in ("dataset", "table", "ignore", "labels") if k not in sections]
    if missing:
        problems.append(f"{path}: missing key(s) {', '.join(missing)}")
    if "dataset" not in sections or "table" not in sections:
        raise ProblemList(problems)

    name = _scalar(sections["dataset"])
    at = f"{path}:{lines['dataset']}"
    if not isinstance(name, str) or not _ID.match(name):
        raise ProblemList([*problems, f"{at}: dataset name {name!r} must be lower snake case (e.g. pascal_voc)"])
    if name in DATASETS or name in RESERVED:
        problems.append(f"{at}: dataset name {name!r} clashes with a built-in "
                        f"{'dataset' if name in DATASETS else 'label space'}; choose another name")
    table_name = _scalar(sections["table"])
    if not isinstance(table_name, str) or not table_name:
        raise ProblemList([*problems, f"{path}:{lines['table']}: table must be the path of a label CSV"])
    table_path = Path(table_name) if Path(table_name).is_absolute() else path.parent / table_name
    if not table_path.is_file():
        raise ProblemList([*problems, f"{path}:{lines['table']}: label table {table_path} does not exist"])
    try:
        table = read_label_table(table_path)
    except ProblemList as exc:
        raise ProblemList([*problems, *exc.problems]) from None

    ignore, ignore_name = 255, "ignore"
    if "ignore" in sections:
        value = _scalar(sections["ignore"])
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
            problems.append(f"{path}:{lines['ignore']}: ignore must be a pixel value 0..65535, not {value!r}")
        else:
            ignore = value
    # A table row whose id is the ignore value names it (VOC's `255,void`); it is no label.
    named = [label for label in table.labels if label.id == ignore]
    ignore_color = None
    if named:
        ignore_name, ignore_color = named[0].name, named[0].color
        table = LabelTable(table.path, tuple(lab for lab in table.labels if lab.id != ignore), table.lines,
                           table.evaluated_given)
    if "ignore_name" in sections:
        ignore_name = str(_scalar(sections["ignore_name"]))
    ids = {label.id for label in table.labels}

    optional: dict[str, Any] = {}
    for key in ("title", "layout"):
        if key in sections:
            value = _scalar(sections[key])
            if not isinstance(value, str) or not value:
                problems.append(f"{path}:{lines[key]}: {key} must be a string")
            optional[key] = value
    background = None
    if "background" in sections:
        background = _scalar(sections["background"])
        if isinstance(background, bool) or not isinstance(background, int):
            problems.append(f"{path}:{lines['background']}: background must be a label id, not {background!r}")
            background = None

    merge = _SpecMerge(path=path, root="")
    if "added" in sections:
        _added(sections["added"], path, name, merge, problems)
    void_lines: dict[int, int] = {}
    if "void" in sections:
        entries = merge.void.setdefault(name, {})
        for label_id, reason, line in _table_entries(sections["void"], path, name, "void", problems):
            if label_id in entries:
                problems.append(f"{path}:{line}: void label {label_id} listed twice (first on line {void_lines[label_id]})")
            elif label_id not in ids:
                problems.append(f"{path}:{line}: {table.path.name} has no label id {label_id}"
                                + (" (it is the ignore value, void already)" if label_id == ignore else ""))
            elif not isinstance(reason, str) or not reason.strip():
                problems.append(f"{path}:{line}: void label {label_id} needs a reason (why it denotes no concept)")
            else:
                entries[label_id], void_lines[label_id] = (reason, line), line
    if "labels" in sections:
        seen: dict[int, int] = {}
        for label_id, concept, line in _table_entries(sections["labels"], path, name, "labels", problems):
            if label_id in seen:
                problems.append(f"{path}:{line}: label {label_id} mapped twice (first on line {seen[label_id]})")
            elif label_id not in ids:
                problems.append(f"{path}:{line}: {table.path.name} has no label id {label_id}"
                                + (" (it is the ignore value)" if label_id == ignore else ""))
            elif not isinstance(concept, str) or not concept:
                problems.append(f"{path}:{line}: label {label_id} must map to one concept id")
            else:
                seen[label_id] = line
                merge.labels.append(LabelMapping(name, label_id, concept, line))
    if background is not None and background not in merge.void.get(name, {}):
        problems.append(f"{path}:{lines['background']}: background {background} must be one of the void labels")
    if problems:
        raise ProblemList(problems)
    return DatasetAddition(path, name, optional.get("title") or name, table, ignore, ignore_name, merge,
                           lines["dataset"], optional.get("layout"), background, void_lines, ignore_color)


def _added(node: yaml.Node, path: Path, dataset: str, merge: MergeSpec, problems: list[str]) -> None:
    if not isinstance(node, yaml.SequenceNode):
        problems.append(f"{path}:{node.start_mark.line + 1}: 'added' must be a list of concepts")
        return
    for item in node.value:
        line = item.start_mark.line + 1
        where = f"{path}:{line}"
        entry = _scalar(item)
        if not isinstance(entry, dict):
            problems.append(f"{where}: each added concept must be a mapping (id, parent, synset, reason)")
            continue
        if "adopts" in entry or "exempt" in entry:
            problems.append(f"{where}: an added dataset cannot move the tree's concepts (adopts); that is a change to "
                            "the tree itself, in merge.yaml")
            continue
        unknown = sorted(set(entry) - set(_ADDED))
        if unknown:
            problems.append(f"{where}: unknown field(s) {', '.join(unknown)} (allowed: {', '.join(_ADDED)})")
            continue
        bad = [k for k in ("id", "parent") if not isinstance(entry.get(k), str) or not entry[k]]
        if bad:
            problems.append(f"{where}: field(s) {', '.join(bad)} required, as strings")
            continue
        if not _ID.match(entry["id"]):
            problems.append(f"{where}: id {entry['id']!r} must be lower snake case")
            continue
        synset = entry.get("synset")
        if synset is not None and not isinstance(synset, str):
            problems.append(f"{where}: synset must be a WordNet name like 'dolphin.n.02' or null")
            continue
        reason = entry.get("reason")
        if isinstance(reason, str) and reason.strip().startswith(TODO):
            problems.append(f"{where}: the reason of {entry['id']!r} is still the drafted {TODO}; say why it is placed "
                            "there (or drop the reason if WordNet agrees)")
            continue
        merge.added.append(AddedConcept(
            id=entry["id"], parent=entry["parent"], synset=synset, source=str(entry.get("source") or dataset),
            line=line, name=entry.get("name") or entry["id"].replace("_", " "),
            reason=reason if isinstance(reason, str) else None, exception=bool(entry.get("exception", False))))


def _check_labels(addition: DatasetAddition, nodes: dict[str, Any], problems: list[str]) -> None:
    name, merge = addition.name, addition.merge
    held: dict[str, tuple[int, int]] = {}
    mapped = {m.label_id for m in merge.labels}
    void = merge.void.get(name, {})
    for mapping in merge.labels:
        where = addition.where(mapping.line)
        if mapping.concept not in nodes:
            problems.append(f"{where}: label {mapping.label_id} maps to unknown concept {mapping.concept!r}")
            continue
        if mapping.concept in held:
            other, line = held[mapping.concept]
            problems.append(f"{where}: label {mapping.label_id} maps to {mapping.concept!r}, which label {other} "
                            f"(line {line}) already holds; one concept takes one label of a dataset")
            continue
        held[mapping.concept] = (mapping.label_id, mapping.line)
        if mapping.label_id in void:
            problems.append(f"{where}: label {mapping.label_id} is both mapped and void (line {void[mapping.label_id][1]})")
    for label in addition.table.labels:
        if label.id not in mapped and label.id not in void:
            problems.append(f"{addition.table.where(label.id)}: label {label.id} {label.name!r} is neither mapped nor "
                            f"void in {addition.path.name}")


def extend_artifact(artifact: dict[str, Any], additions: list[DatasetAddition], wordnet: Any,
                    any_size: bool = False) -> dict[str, Any]:
    """The artifact with every addition's concepts and labels; raises :class:`ProblemList` listing every problem.

    Without ``any_size``, new concepts (or a deeper tree) are a problem: the shipped tree is 359 concepts.
    """
    from hierseg.taxonomy.authoring.build import add_concepts, check_placements, tree_nodes

    problems: list[str] = []
    nodes = tree_nodes(artifact)
    base = set(nodes)
    taken: dict[str, str] = {d: "a built-in dataset" for d in artifact["datasets"]}
    for addition in additions:
        if addition.name in taken:
            clash = taken[addition.name]
            problems.append(f"{addition.where(addition.line)}: dataset {addition.name!r} clashes with {clash}")
            continue
        taken[addition.name] = str(addition.path)
        add_concepts(nodes, addition.merge, problems)
    if problems:  # the WordNet check walks ancestor paths, which need every parent in place
        raise ProblemList(problems)
    resolved = check_placements(nodes, wordnet, problems)
    for addition in additions:
        _check_labels(addition, nodes, problems)
    new = [cid for cid in nodes if cid not in base]
    if new and not any_size:
        problems.append(f"{', '.join(str(a.path) for a in additions if a.merge.added)}: adds {len(new)} concept(s) "
                        f"({', '.join(new[:5])}{', ...' if len(new) > 5 else ''}); the tree would have {len(nodes)} "
                        f"concepts, not the shipped {SHIPPED_CONCEPTS}: build with --any-size")
    if problems:
        raise ProblemList(problems)

    out = copy.deepcopy(artifact)
    by_id = {entry["id"]: entry for entry in out["concepts"]}
    depth = {cid: entry["depth"] for cid, entry in by_id.items()}
    for addition in additions:
        for mapping in addition.merge.labels:
            if mapping.concept in by_id:
                by_id[mapping.concept]["labels"].setdefault(addition.name, []).append(mapping.label_id)
    pending = [cid for cid in nodes if cid not in base]
    while pending:  # parents before children, in spec order otherwise
        ready = [cid for cid in pending if nodes[cid].parent in depth]
        for cid in ready:
            node = nodes[cid]
            depth[cid] = depth[node.parent] + 1
            labels = {a.name: sorted(m.label_id for m in a.merge.labels if m.concept == cid) for a in additions}
            entry = {"id": cid, "name": node.name, "parent": node.parent, "depth": depth[cid], "synset": node.synset,
                     "definition": resolved[cid].definition() if cid in resolved else node.reason,
                     "source": node.source, "placement": node.check, "reason": node.reason,
                     "labels": {d: ids for d, ids in labels.items() if ids}}
            out["concepts"].append(entry)
            by_id[cid] = entry
        pending = [cid for cid in pending if cid not in depth]
    for entry in by_id.values():
        for ids in entry["labels"].values():
            ids.sort()
    for addition in additions:
        out["datasets"][addition.name] = _dataset_entry(addition)
    base_name = artifact.get("extends", {}).get("base", artifact.get("name", "tree"))
    names = [*artifact.get("extends", {}).get("datasets", {}), *(a.name for a in additions)]
    out["name"] = "+".join([base_name, *names])
    out["extends"] = {
        "base": base_name,
        "base_concepts": artifact.get("extends", {}).get("base_concepts", len(artifact["concepts"])),
        "datasets": {**artifact.get("extends", {}).get("datasets", {}),
                     **{a.name: {"spec": a.path.name, "concepts_added": [c.id for c in a.merge.added]}
                        for a in additions}},
    }
    problems = validate_artifact(out, wordnet=wordnet, expect_concepts=None if any_size else SHIPPED_CONCEPTS,
                                 expect_max_depth=None if any_size else SHIPPED_MAX_DEPTH)
    if problems:
        raise ProblemList(problems)
    return out


def _dataset_entry(addition: DatasetAddition) -> dict[str, Any]:
    void = addition.merge.void.get(addition.name, {})
    labels = []
    for label in addition.table.labels:
        row: dict[str, Any] = {"id": label.id, "name": label.name}
        if label.synonyms:
            row["synonyms"] = list(label.synonyms)
        row["color"] = list(label.color) if label.color is not None else None
        # A void label has no concept to predict, so it is not scored unless the table says otherwise; a background
        # value is predicted where the tree sees none of the dataset's classes, and scored as the benchmark does.
        default = label.id not in void or label.id == addition.background
        row["evaluated"] = label.evaluated if label.id in addition.table.evaluated_given else default
        for key in CARRIED:
            if label.extra.get(key):
                row[key] = label.extra[key]
        labels.append(row)
    entry: dict[str, Any] = {"title": addition.title, "ignore": addition.ignore, "ignore_name": addition.ignore_name,
                             "void": {str(k): v[0] for k, v in sorted(void.items())}, "labels": labels,
                             "spec": addition.path.name}
    if addition.ignore_color is not None:
        entry["ignore_color"] = list(addition.ignore_color)
    if addition.layout is not None:
        entry["layout"] = addition.layout
    if addition.background is not None:
        entry["background"] = addition.background
    return entry


def added_datasets(artifact: dict[str, Any]) -> tuple[str, ...]:
    """The datasets an extended artifact carries beyond the built-in ones."""
    return tuple(d for d in artifact.get("datasets", {}) if d not in DATASETS)

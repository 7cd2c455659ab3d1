"""Build the WordNet-merged concept tree from COCO-Stuff's hierarchy, the label tables and the merge spec.

The build is a pure function of the files in ``taxonomy/specs/`` and WordNet 3.0: same inputs, same bytes.
Every concept of the tree is checked against WordNet, COCO-Stuff's own included (their marks sit under ``kept``):

* the synset of the nearest ancestor that has one must be among the concept's hypernyms (instance hypernyms
  included), unless the spec marks the placement ``exception: true`` and gives its reason;
* no existing concept deeper than the concept's parent may be among its hypernyms (it would be the closer
  parent), unless the spec names it under ``not_below`` with a reason;
* no two concepts of the whole tree may share a synset, unless one names the other under ``shares_synset``.

A mark that is not needed is an error too. The spec's ``overlaps`` (pairs of labels of two datasets whose
definitions overlap without one containing the other) are checked against the built tree: two datasets, two mapped
labels, neither concept on the other's path. Every problem is collected and reported with its spec line.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hierseg.core.csvtext import csv_rows
from hierseg.core.errors import HiersegError, ProblemList
from hierseg.core.io import atomic_write_group, read_text
from hierseg.core.yamltext import read_yaml
from hierseg.taxonomy.authoring.mergespec import MergeSpec, concept_id, load_merge_spec
from hierseg.taxonomy.authoring.validate import validate_artifact
from hierseg.taxonomy.specs import DATASETS, SPEC_DIR, DatasetSpec, dataset_spec, load_spec
from hierseg.taxonomy.tree import DEFAULT_ARTIFACT, FORMAT, Taxonomy


class BuildError(ProblemList):
    """The merge spec does not describe a valid tree; ``problems`` holds one line per violation (the CLI prints
    each as its own ``error: ...``)."""


@dataclass
class _Node:
    id: str
    name: str
    parent: str | None
    synset: str | None
    source: str
    reason: str | None = None
    exception: bool = False
    where: str = ""
    children: list[str] = field(default_factory=list)
    labels: dict[str, list[int]] = field(default_factory=dict)
    check: str = "coco"
    adopter: str | None = None
    exempt: tuple[str, ...] = ()
    not_below: dict[str, str] = field(default_factory=dict)
    shares_synset: dict[str, str] = field(default_factory=dict)
    built: bool = False  # read from a built artifact (tree_nodes): checked when it was built, marks not kept
    coco: bool = False  # placed by COCO-Stuff's hierarchy, not by the merge (its marks sit under `kept`)


def _coco_nodes(spec_dir: Path, root: str) -> dict[str, _Node]:
    synsets = read_yaml(spec_dir / "coco_synsets.yaml", "spec")
    if not isinstance(synsets, dict):
        raise HiersegError(f"{spec_dir / 'coco_synsets.yaml'}: must map each COCO-Stuff node to its synset (or null)")
    nodes: dict[str, _Node] = {}

    def ensure(name: str, parent: str | None) -> _Node:
        cid = root if name == "root" else concept_id(name)
        if cid not in nodes:
            if name not in synsets:
                raise HiersegError(f"coco_synsets.yaml: no entry for COCO-Stuff node {name!r}")
            nodes[cid] = _Node(cid, root if name == "root" else name, parent, synsets[name], "coco_stuff",
                               where=f"coco_stuff_hierarchy.csv ({name})", coco=True)
        return nodes[cid]

    ensure("root", None)
    hierarchy = read_text(spec_dir / "coco_stuff_hierarchy.csv", "spec")
    with io.StringIO(hierarchy, newline="") as handle:
        for row in csv_rows(csv.DictReader(handle), str(spec_dir / "coco_stuff_hierarchy.csv")):
            parent = ensure(row["parent"], None)
            child = ensure(row["child"], parent.id)
            parent.children.append(child.id)
    return nodes


def _ancestors(nodes: dict[str, _Node], cid: str) -> list[str]:
    path, seen = [], {cid}
    node = nodes[cid]
    while node.parent is not None:
        if node.parent in seen:
            raise HiersegError(f"cycle through concept {node.parent!r}")
        seen.add(node.parent)
        path.append(node.parent)
        node = nodes[node.parent]
    return path


def _apply_merge(nodes: dict[str, _Node], merge: MergeSpec, problems: list[str]) -> None:
    for item in merge.added:
        where = merge.where(item.line)
        if item.id in nodes:
            problems.append(f"{where}: concept id {item.id!r} already exists ({nodes[item.id].where})")
            continue
        nodes[item.id] = _Node(item.id, item.name, item.parent, item.synset, item.source, item.reason,
                               item.exception, where, check="parent", exempt=item.exempt,
                               not_below=dict(item.not_below), shares_synset=dict(item.shares_synset))
    for item in merge.added:
        where = merge.where(item.line)
        if item.parent not in nodes:
            problems.append(f"{where}: concept {item.id!r} has unknown parent {item.parent!r}")
            continue
        nodes[item.parent].children.append(item.id)
        if (item.synset is None or item.exception or item.source == "super-class") and not item.reason:
            problems.append(f"{where}: concept {item.id!r} needs a reason (null synset, exception or super-class)")
        for adopted in item.adopts:
            node = nodes.get(adopted)
            if node is None:
                problems.append(f"{where}: {item.id!r} adopts unknown concept {adopted!r}")
                continue
            if node.parent is not None:
                nodes[node.parent].children.remove(adopted)
            node.parent = item.id
            node.check, node.adopter, node.coco = "adopted", item.id, False
            nodes[item.id].children.append(adopted)
        for exempt in sorted(set(item.exempt) - set(item.adopts)):
            problems.append(f"{where}: {item.id!r} exempts {exempt!r}, which it does not adopt")
    for item in merge.moved:
        where = merge.where(item.line)
        node = nodes.get(item.id)
        if node is None:
            problems.append(f"{where}: cannot move unknown concept {item.id!r}")
            continue
        if not (node.coco or node.built):
            problems.append(f"{where}: {item.id!r} is placed by the merge already ({node.where}); set its parent there")
            continue
        if item.parent not in nodes:
            problems.append(f"{where}: concept {item.id!r} has unknown parent {item.parent!r}")
            continue
        if node.parent is not None:
            nodes[node.parent].children.remove(item.id)
        nodes[item.parent].children.append(item.id)
        node.parent, node.check, node.where, node.reason = item.parent, "parent", where, item.reason
        node.coco = False
        node.exception, node.not_below, node.shares_synset = item.exception, dict(item.not_below), dict(item.shares_synset)
    for item in merge.kept:
        where = merge.where(item.line)
        node = _coco_node(nodes, item.id, "kept", where, problems)
        if node is None:
            continue
        node.where, node.reason, node.exception = where, item.reason, item.exception
        node.not_below, node.shares_synset = dict(item.not_below), dict(item.shares_synset)
    for item in merge.removed:
        where = merge.where(item.line)
        node = _coco_node(nodes, item.id, "removed", where, problems)
        if node is None:
            continue
        if node.children and not item.lift:
            problems.append(f"{where}: cannot remove {item.id!r}, it still has children ({', '.join(node.children)}); "
                            "move them, or lift them to its parent with `lift: true`")
            continue
        if node.parent is None:
            problems.append(f"{where}: cannot remove the root {item.id!r}")
            continue
        siblings = nodes[node.parent].children
        at = siblings.index(item.id)
        siblings[at:at + 1] = node.children  # the lifted children take its place, in their order
        for child in node.children:
            nodes[child].parent = node.parent
        del nodes[item.id]
    gone = {item.id: item.line for item in merge.removed if item.id not in nodes}
    for item in (*merge.added, *merge.moved):
        if item.parent in gone:
            problems.append(f"{merge.where(item.line)}: {item.id!r} is placed under {item.parent!r}, which line "
                            f"{gone[item.parent]} removes")


def _coco_node(nodes: dict[str, _Node], concept: str, verb: str, where: str, problems: list[str]) -> _Node | None:
    """The node of a COCO-Stuff concept the merge leaves where COCO put it; else a problem and None."""
    node = nodes.get(concept)
    if node is None or not node.coco:
        problems.append(f"{where}: only a COCO-Stuff concept the merge does not place can be {verb}, not {concept!r}")
        return None
    return node


def _map_labels(nodes: dict[str, _Node], merge: MergeSpec, specs: dict[str, DatasetSpec], problems: list[str]) -> None:
    """COCO-Stuff labels map by name onto their own nodes unless the spec maps or voids them; the others as listed."""
    mapped: dict[tuple[str, int], int] = {}
    for entry in merge.labels:
        where = merge.where(entry.line)
        spec = specs.get(entry.dataset)
        if spec is None:
            problems.append(f"{where}: labels of unknown dataset {entry.dataset!r}")
            continue
        if entry.label_id not in spec.ids:
            problems.append(f"{where}: {entry.dataset} has no label id {entry.label_id}")
            continue
        if (entry.dataset, entry.label_id) in mapped:
            problems.append(f"{where}: {entry.dataset} label {entry.label_id} already mapped on line "
                            f"{mapped[(entry.dataset, entry.label_id)]}")
            continue
        if entry.concept not in nodes:
            problems.append(f"{where}: {entry.dataset} label {entry.label_id} maps to unknown concept {entry.concept!r}")
            continue
        mapped[(entry.dataset, entry.label_id)] = entry.line
        nodes[entry.concept].labels.setdefault(entry.dataset, []).append(entry.label_id)
    coco_void = merge.void.get("coco_stuff", {})
    for label in specs["coco_stuff"].labels:
        if ("coco_stuff", label.id) in mapped or label.id in coco_void:
            continue
        cid = concept_id(label.name)
        if cid not in nodes:
            problems.append(f"{merge.path.name}: coco_stuff label {label.id} {label.name!r} has no concept of its "
                            f"name; map it under labels or list it under void")
            continue
        mapped[("coco_stuff", label.id)] = 0
        nodes[cid].labels.setdefault("coco_stuff", []).append(label.id)
    for dataset in DATASETS:
        void = merge.void.get(dataset, {})
        for label in specs[dataset].labels:
            if (dataset, label.id) not in mapped and label.id not in void:
                problems.append(f"{merge.path.name}: {dataset} label {label.id} {label.name!r} is neither mapped nor void")
            if (dataset, label.id) in mapped and label.id in void:
                problems.append(f"{merge.where(void[label.id][1])}: {dataset} label {label.id} is both mapped and void")


def _check_overlaps(nodes: dict[str, _Node], merge: MergeSpec, problems: list[str]) -> list[dict[str, Any]]:
    """The spec's overlaps, checked against the built tree; returns them as artifact records."""
    concept = {(d, i): cid for cid, node in nodes.items() for d, ids in node.labels.items() for i in ids}
    seen: dict[frozenset, int] = {}
    records = []
    for item in merge.overlaps:
        where = merge.where(item.line)
        a, b = item.label, item.other
        names = f"{a[0]}:{a[1]} and {b[0]}:{b[1]}"
        if a[0] == b[0]:
            problems.append(f"{where}: overlap between {names}, two labels of one dataset; a dataset's own labels "
                            "do not overlap (list pairs of two datasets)")
            continue
        missing = [f"{d}:{i}" for d, i in (a, b) if (d, i) not in concept]
        if missing:
            problems.append(f"{where}: overlap names {', '.join(missing)}, which is no mapped label of the tree "
                            "(unknown dataset or id, or void)")
            continue
        ca, cb = concept[a], concept[b]
        if ca == cb or ca in _ancestors(nodes, cb) or cb in _ancestors(nodes, ca):
            upper, lower = (ca, cb) if ca == cb or ca in _ancestors(nodes, cb) else (cb, ca)
            how = "the same concept" if ca == cb else f"{upper!r} is an ancestor of {lower!r}"
            problems.append(f"{where}: overlap between {names}, but {how}: one label contains the other; an overlap "
                            "is a pair neither contains")
            continue
        key = frozenset((a, b))
        if key in seen:
            problems.append(f"{where}: overlap between {names} is listed already on line {seen[key]}")
            continue
        seen[key] = item.line
        records.append({"labels": [f"{a[0]}:{a[1]}", f"{b[0]}:{b[1]}"], "reason": item.reason})
    return records


def _check_wordnet(nodes: dict[str, _Node], wordnet: Any, problems: list[str]) -> dict[str, Any]:
    """Check every concept but the root and those of a built tree; return the resolved synset of each that has one."""
    from nltk.corpus.reader.wordnet import WordNetError

    resolved: dict[str, Any] = {}
    for node in nodes.values():
        if node.synset is None:
            continue
        try:
            resolved[node.id] = wordnet.synset(node.synset)
        except (WordNetError, ValueError):
            problems.append(f"{node.where}: synset {node.synset!r} of concept {node.id!r} is not in WordNet 3.0")
    for node in nodes.values():
        if node.built:
            continue
        if node.parent is None:
            node.check = "root"
            continue
        if node.id not in resolved:
            node.check = "no synset"
            continue
        if node.adopter is not None:
            # An adopted COCO node is checked against its super-class only; the COCO hierarchy above is official.
            adopter = nodes[node.adopter]
            anchor = adopter.id if adopter.id in resolved else None
            exempt, where = node.id in adopter.exempt, adopter.where
        else:
            anchor = next((a for a in _ancestors(nodes, node.id) if a in resolved), None)
            exempt, where = node.exception, node.where
        if anchor is None:
            node.check = "unchecked"
            continue
        hypernyms = set(resolved[node.id].closure(lambda s: s.hypernyms() + s.instance_hypernyms()))
        placed = resolved[anchor] in hypernyms
        flag = "`exempt`" if node.adopter else "`exception: true`"
        if placed and exempt:
            problems.append(f"{where}: {node.id!r} is marked as an exception, but {resolved[anchor].name()} ({anchor}) "
                            f"is already among its hypernyms; remove it from {flag}")
        elif not placed and not exempt:
            fix = "list it under `kept` with `exception: true`" if node.coco else f"mark it in {flag}"
            problems.append(f"{where}: {node.synset} ({node.id}) does not have {resolved[anchor].name()} ({anchor}) "
                            f"among its WordNet hypernyms; fix the parent or {fix} and a reason")
        node.check = "exception" if exempt else f"wordnet:{anchor}"
    _check_closer(nodes, resolved, problems)
    _check_shared(nodes, resolved, problems)
    return resolved


def _hypernyms(synset: Any) -> set[Any]:
    return set(synset.closure(lambda s: s.hypernyms() + s.instance_hypernyms()))


def _check_closer(nodes: dict[str, _Node], resolved: dict[str, Any], problems: list[str]) -> None:
    """A merge placement whose WordNet hypernyms include a concept deeper than its parent misses its closer parent."""
    by_synset: dict[Any, list[str]] = {}
    for cid, synset in resolved.items():
        by_synset.setdefault(synset, []).append(cid)
    depth = {cid: len(_ancestors(nodes, cid)) for cid in nodes}
    for node in nodes.values():
        if node.built:
            continue
        closer = set()
        if node.id in resolved and node.parent is not None:
            for synset in _hypernyms(resolved[node.id]):
                closer.update(c for c in by_synset.get(synset, ()) if depth[c] > depth[node.parent] and c != node.id)
        for cid in sorted(closer - set(node.not_below)):
            how = ("move it with a `moved` entry that names it under `not_below` with a reason" if node.adopter
                   else "name it under `not_below` of its `kept` entry with a reason" if node.coco
                   else "name it under `not_below` with a reason")
            problems.append(f"{node.where}: {node.synset} ({node.id}) has {resolved[cid].name()} ({cid}) among its "
                            f"WordNet hypernyms, deeper than its parent {node.parent!r}; place it below {cid!r} or {how}")
        for cid in sorted(set(node.not_below) - closer):
            problems.append(f"{node.where}: {node.id!r} marks {cid!r} under `not_below`, but {cid!r} is no WordNet "
                            f"hypernym of it deeper than its parent; remove the mark")


def _check_shared(nodes: dict[str, _Node], resolved: dict[str, Any], problems: list[str]) -> None:
    """Two concepts with one synset are one WordNet concept split in two: an error unless one marks the other."""
    by_synset: dict[Any, list[str]] = {}
    for cid, synset in resolved.items():
        by_synset.setdefault(synset, []).append(cid)
    for node in nodes.values():
        for other in sorted(node.shares_synset):
            if other not in resolved or node.id not in resolved or resolved[other] != resolved[node.id]:
                problems.append(f"{node.where}: {node.id!r} marks {other!r} under `shares_synset`, but they do not "
                                f"share a synset; remove the mark")
    for synset, cids in by_synset.items():
        for i, a in enumerate(cids):
            for b in cids[i + 1:]:
                if b in nodes[a].shares_synset or a in nodes[b].shares_synset or (nodes[a].built and nodes[b].built):
                    continue
                problems.append(f"{nodes[b].where}: {b!r} and {a!r} ({nodes[a].where}) share the synset "
                                f"{synset.name()}; give one another sense or name the other under `shares_synset` "
                                f"with a reason")


def _definition(node: _Node, resolved: dict[str, Any], specs: dict[str, DatasetSpec]) -> str | None:
    if node.id in resolved:
        return resolved[node.id].definition()
    for label_id in node.labels.get("coco_stuff", []):
        description = specs["coco_stuff"].label(label_id).extra.get("description")
        if description:
            return description
    return node.reason


def build_artifact(spec_dir: Path = SPEC_DIR, wordnet: Any = None, expect: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the tree, validate it and return the artifact as a JSON-ready dict.

    Raises :class:`BuildError` listing every problem. ``expect`` overrides the validator's size expectations
    (``expect_concepts``, ``expect_max_depth``) for trees built from other specs.
    """
    if wordnet is None:
        from hierseg.taxonomy.authoring.wordnet import load_wordnet

        wordnet = load_wordnet()
    merge = load_merge_spec(spec_dir / "merge.yaml")
    specs = {name: load_spec(name) for name in DATASETS}
    problems: list[str] = []
    nodes = _coco_nodes(spec_dir, merge.root)
    _apply_merge(nodes, merge, problems)
    _map_labels(nodes, merge, specs, problems)
    if problems:  # the WordNet and overlap checks walk ancestor paths, which need a well-formed tree
        raise BuildError(problems)
    overlaps = _check_overlaps(nodes, merge, problems)
    resolved = _check_wordnet(nodes, wordnet, problems)
    if problems:
        raise BuildError(problems)

    concepts: list[dict[str, Any]] = []

    def visit(cid: str, depth: int) -> None:
        node = nodes[cid]
        concepts.append({
            "id": node.id,
            "name": node.name,
            "parent": node.parent,
            "depth": depth,
            "synset": node.synset,
            "definition": _definition(node, resolved, specs),
            "source": node.source,
            "placement": node.check,
            "reason": node.reason,
            "labels": {d: sorted(node.labels[d]) for d in DATASETS if d in node.labels},
        })
        for child in node.children:
            visit(child, depth + 1)

    visit(merge.root, 0)
    datasets = {
        name: {
            "title": specs[name].title,
            "ignore": specs[name].ignore,
            "void": {str(k): v[0] for k, v in sorted(merge.void.get(name, {}).items())},
        }
        for name in DATASETS
    }
    artifact = {"format": FORMAT, "name": "dsspn359", "wordnet": "3.0", "root": merge.root,
                "datasets": datasets, "concepts": concepts, "overlaps": overlaps}
    problems = validate_artifact(artifact, wordnet=wordnet, **(expect or {}))
    if problems:
        raise BuildError(problems)
    return artifact


def dumps_artifact(artifact: dict[str, Any]) -> str:
    return json.dumps(artifact, indent=1, ensure_ascii=False) + "\n"


def label_map_rows(artifact: dict[str, Any], dataset: str) -> list[dict[str, Any]]:
    """One row per pixel value of ``dataset``: its concept and path, or ``ignore=1`` for void values."""
    spec = dataset_spec(dataset, artifact)
    taxonomy = Taxonomy(artifact)
    rows = []
    for label in spec.labels:
        cid = taxonomy.concept_of(dataset, label.id)
        rows.append({"dataset_id": label.id, "name": label.name, "concept": cid or "",
                     "concept_path": "/".join(taxonomy.path(cid)) if cid else "", "ignore": int(cid is None),
                     "evaluated": int(label.evaluated)})
    rows.append({"dataset_id": spec.ignore, "name": spec.ignore_name, "concept": "", "concept_path": "",
                 "ignore": 1, "evaluated": 0})
    return sorted(rows, key=lambda row: row["dataset_id"])


def label_map_csv(artifact: dict[str, Any], dataset: str) -> str:
    out = io.StringIO()
    columns = ["dataset_id", "name", "concept", "concept_path", "ignore", "evaluated"]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(label_map_rows(artifact, dataset))
    return out.getvalue()


def write_outputs(artifact: dict[str, Any], out: Path = DEFAULT_ARTIFACT, label_map_dir: Path | None = None) -> list[Path]:
    """Write the artifact and, if ``label_map_dir`` is given, one label map per dataset; all atomically."""
    files = {Path(out): dumps_artifact(artifact)}
    if label_map_dir is not None:
        files.update({Path(label_map_dir) / f"{dataset}.csv": label_map_csv(artifact, dataset)
                      for dataset in artifact["datasets"]})
    return atomic_write_group(files)  # one unit: a tree never sits beside label maps of another build


# ---- entry points for adding a dataset to a built tree (taxonomy/authoring/extend.py): the builder's own checks


def tree_nodes(artifact: dict[str, Any]) -> dict[str, _Node]:
    """The concepts of a built artifact as builder nodes. They count as checked: :func:`check_placements` skips them."""
    nodes = {e["id"]: _Node(e["id"], e["name"], e["parent"], e.get("synset"), e.get("source", ""), e.get("reason"),
                            where=f"concept {e['id']}", labels={k: list(v) for k, v in e.get("labels", {}).items()},
                            built=True)
             for e in artifact["concepts"]}
    for cid, node in nodes.items():
        if node.parent is not None:
            nodes[node.parent].children.append(cid)
    return nodes


def add_concepts(nodes: dict[str, _Node], merge: MergeSpec, problems: list[str]) -> None:
    """Add ``merge.added`` to ``nodes`` as the builder does: duplicate ids, unknown parents, missing reasons."""
    _apply_merge(nodes, merge, problems)


def check_placements(nodes: dict[str, _Node], wordnet: Any, problems: list[str]) -> dict[str, Any]:
    """The builder's WordNet check of every node added since :func:`tree_nodes`; returns the resolved synsets."""
    return _check_wordnet(nodes, wordnet, problems)

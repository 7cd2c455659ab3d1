"""Validate a taxonomy artifact: structure, size, dataset coverage and WordNet synsets.

Each violation is one line naming the concept id (or the dataset label) and what is wrong.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hierseg.taxonomy.overlaps import check_overlaps
from hierseg.taxonomy.specs import DATASETS, MAX_ID, dataset_spec
from hierseg.taxonomy.tree import FORMAT, Taxonomy

SHIPPED_CONCEPTS = 359
SHIPPED_MAX_DEPTH = 5
_FIELDS = ("id", "name", "parent", "depth", "synset", "labels")


def validate_artifact(
    artifact: dict[str, Any],
    *,
    expect_concepts: int | None = SHIPPED_CONCEPTS,
    expect_max_depth: int | None = SHIPPED_MAX_DEPTH,
    wordnet: Any = None,
) -> list[str]:
    """Return the list of violations (empty when valid). ``wordnet`` (an nltk reader) enables synset checks."""
    problems: list[str] = []
    concepts = artifact.get("concepts")
    if not isinstance(concepts, list):
        return ["artifact: 'concepts' must be a list"]
    entries: list[dict[str, Any]] = []
    for index, entry in enumerate(concepts):
        missing = [f for f in _FIELDS if not isinstance(entry, dict) or f not in entry]
        if missing:
            label = entry.get("id", f"#{index}") if isinstance(entry, dict) else f"#{index}"
            problems.append(f"concept {label}: missing field(s) {', '.join(missing)}")
            continue
        if not isinstance(entry["id"], str) or not entry["id"]:
            problems.append(f"concept #{index}: id must be a non-empty string")
            continue
        entries.append(entry)

    for field in ("id", "name"):
        for value, count in Counter(e[field] for e in entries).items():
            if count > 1:
                problems.append(f"concept {value}: duplicate {field} ({count} concepts)")
    by_id = {e["id"]: e for e in entries}

    roots = [e["id"] for e in entries if e["parent"] is None]
    if len(roots) != 1:
        problems.append(f"tree: expected exactly one root, found {len(roots)} ({', '.join(roots) or 'none'})")
    elif artifact.get("root") not in (None, roots[0]):
        problems.append(f"tree: root is {roots[0]!r} but the artifact declares {artifact.get('root')!r}")
    for e in entries:
        if e["parent"] is not None and e["parent"] not in by_id:
            problems.append(f"concept {e['id']}: unknown parent {e['parent']!r}")
    problems.extend(_structure(by_id, roots))

    if expect_concepts is not None and len(entries) != expect_concepts:
        problems.append(f"tree: {len(entries)} concepts, expected exactly {expect_concepts}")
    depths = [e["depth"] for e in entries if isinstance(e["depth"], int)]
    if expect_max_depth is not None and depths and max(depths) != expect_max_depth:
        problems.append(f"tree: maximal depth {max(depths)}, expected {expect_max_depth}")

    problems.extend(_records(artifact, entries))
    problems.extend(_coverage(artifact, entries))
    if not problems:  # overlaps are checked on a well-formed tree: they walk ancestor paths
        problems.extend(check_overlaps(artifact, Taxonomy(artifact)))
    if wordnet is not None:
        problems.extend(_synsets(entries, wordnet))
    return problems


def _structure(by_id: dict[str, dict[str, Any]], roots: list[str]) -> list[str]:
    """Arborescence check (networkx) plus stored depth == distance from the root."""
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from(by_id)
    graph.add_edges_from((e["parent"], cid) for cid, e in by_id.items() if e["parent"] in by_id)
    problems = []
    try:
        cycle = nx.find_cycle(graph)
        problems.append(f"concept {cycle[0][0]}: cycle {' -> '.join([u for u, _ in cycle] + [cycle[0][0]])}")
    except nx.NetworkXNoCycle:
        pass
    if problems or len(roots) != 1:
        return problems
    if not nx.is_arborescence(graph):
        unreachable = sorted(set(by_id) - nx.descendants(graph, roots[0]) - {roots[0]})
        problems.append(f"tree: not an arborescence; unreachable from {roots[0]}: {', '.join(unreachable[:5])}")
        return problems
    for cid, distance in nx.single_source_shortest_path_length(graph, roots[0]).items():
        if by_id[cid]["depth"] != distance:
            problems.append(f"concept {cid}: depth {by_id[cid]['depth']} but it is {distance} below the root")
    return problems


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID


def _records(artifact: dict[str, Any], entries: list[dict[str, Any]]) -> list[str]:
    """The format, each dataset's ignore value and void ids, and each concept's labels: every dataset a concept
    names must be one the artifact itself defines in 'datasets' (built-in or added)."""
    problems = []
    if artifact.get("format") != FORMAT:
        problems.append(f"artifact: format {artifact.get('format')!r} is not {FORMAT!r}")
    datasets = artifact.get("datasets")
    if not isinstance(datasets, dict):
        return [*problems, "artifact: 'datasets' must map each dataset name to its ignore value and void ids"]
    for name, info in datasets.items():
        if not isinstance(info, dict):
            problems.append(f"dataset {name}: must be a mapping with 'ignore' (and 'void'), not {info!r}")
            continue
        if not _is_id(info.get("ignore")):
            problems.append(f"dataset {name}: ignore {info.get('ignore')!r} is not an integer label value 0..{MAX_ID}")
        void = info.get("void", {})
        if not isinstance(void, dict) or not all(str(k).isdigit() for k in void):
            problems.append(f"dataset {name}: void must map integer label ids to reasons, not {void!r}")
    for e in entries:
        labels = e["labels"]
        if not isinstance(labels, dict):
            problems.append(f"concept {e['id']}: labels must map dataset names to lists of label ids, not {labels!r}")
            continue
        for dataset, ids in labels.items():
            if dataset not in datasets:
                problems.append(f"concept {e['id']}: labels name dataset {dataset!r}, which the artifact's "
                                "'datasets' does not define")
            if not isinstance(ids, list) or not all(_is_id(i) for i in ids):
                problems.append(f"concept {e['id']}: labels.{dataset} must be a list of integer label ids "
                                f"0..{MAX_ID}, not {ids!r}")
    return problems


def _coverage(artifact: dict[str, Any], entries: list[dict[str, Any]]) -> list[str]:
    problems = []
    datasets = artifact.get("datasets") if isinstance(artifact.get("datasets"), dict) else {}
    added = [d for d, entry in datasets.items() if d not in DATASETS and isinstance(entry, dict) and "labels" in entry]
    for dataset in (*DATASETS, *added):
        if dataset not in datasets:
            problems.append(f"dataset {dataset}: missing from the artifact's 'datasets'")
            continue
        spec = dataset_spec(dataset, artifact)
        void = datasets[dataset].get("void", {}) if isinstance(datasets[dataset], dict) else {}
        void = {int(k) for k in void if str(k).isdigit()} if isinstance(void, dict) else set()
        placed: dict[int, list[str]] = {}
        for e in entries:
            ids = e["labels"].get(dataset, []) if isinstance(e["labels"], dict) else []
            ids = [i for i in ids if _is_id(i)] if isinstance(ids, list) else []  # malformed: reported by _records
            if len(ids) > 1:
                problems.append(f"concept {e['id']}: {len(ids)} {dataset} labels on one concept ({ids})")
            for label_id in ids:
                placed.setdefault(label_id, []).append(e["id"])
        for label_id, where in sorted(placed.items()):
            if label_id not in spec.ids:
                problems.append(f"dataset {dataset}: label {label_id} on concept {where[0]} is not a {dataset} id")
            elif len(where) > 1:
                problems.append(f"dataset {dataset}: label {label_id} mapped to {len(where)} concepts ({', '.join(where)})")
        for label in spec.labels:
            if label.id not in placed and label.id not in void:
                problems.append(f"dataset {dataset}: label {label.id} {label.name!r} is not mapped to any concept")
    return problems


def _synsets(entries: list[dict[str, Any]], wordnet: Any) -> list[str]:
    from nltk.corpus.reader.wordnet import WordNetError

    problems = []
    for e in entries:
        if e["synset"] is None:
            continue
        try:
            wordnet.synset(e["synset"])
        except (WordNetError, ValueError, AttributeError):
            problems.append(f"concept {e['id']}: synset {e['synset']!r} is not in WordNet 3.0")
    return problems


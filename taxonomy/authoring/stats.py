"""Statistics of the tree and of each dataset's part of it."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hierseg.core.errors import HiersegError
from hierseg.taxonomy.neurons import NeuronGraph, self_concepts
from hierseg.taxonomy.overlaps import overlap_pairs
from hierseg.taxonomy.specs import dataset_spec
from hierseg.taxonomy.tree import Taxonomy


def neurons(taxonomy: Taxonomy) -> list[str]:
    """Semantic neurons (DSSPN 3.1): concepts with at least two children or with a self output, in depth order."""
    return [n.concept for n in NeuronGraph(taxonomy).neurons]


WEAK_ANCHORS = ("object.n.01", "entity.n.01")


def placement_stats(taxonomy: Taxonomy) -> dict[str, Any]:
    """How the builder checked each placement (the artifact's ``placement`` field).

    ``root``: the root, nothing to check; ``checked``: against the nearest ancestor's synset; of those, ``weak``
    are checked only against ``object.n.01`` or ``entity.n.01`` (any physical thing passes); ``exception``: marked
    in the spec with a reason; ``no_synset``: the concept has no WordNet sense; ``unchecked``: adopted by a
    super-class without a synset. Trees built before every concept was checked say ``coco`` for COCO-Stuff's own.
    """
    counts = Counter({"root": 0, "checked": 0, "weak": 0, "exception": 0, "no_synset": 0, "unchecked": 0})
    weak = []
    for entry in taxonomy.artifact["concepts"]:
        placement = entry.get("placement", "coco")
        if placement.startswith("wordnet:"):
            counts["checked"] += 1
            anchor = placement.split(":", 1)[1]
            if anchor in taxonomy and taxonomy[anchor].synset in WEAK_ANCHORS:
                weak.append(entry["id"])
        else:
            counts[placement.replace(" ", "_")] += 1
    counts["weak"] = len(weak)
    return {**counts, "weak_concepts": weak}


def tree_stats(taxonomy: Taxonomy) -> dict[str, Any]:
    per_depth = Counter(c.depth for c in taxonomy)
    inner = [len(taxonomy.children(c.id)) for c in taxonomy if not taxonomy.is_leaf(c.id)]
    neuron_ids = set(neurons(taxonomy))
    datasets = {}
    for dataset in taxonomy.datasets:
        mapped = taxonomy.dataset_concepts(dataset)
        on_paths = {a for cid in mapped.values() for a in taxonomy.ancestors(cid)}
        scored = [cid for label, cid in mapped.items() if _evaluated(taxonomy, dataset, label)] or list(mapped.values())
        datasets[dataset] = {
            "labels": len(mapped),
            "concepts": len(set(mapped.values())),
            "inner_labels": sum(1 for cid in mapped.values() if not taxonomy.is_leaf(cid)),
            "concepts_on_paths": len(on_paths | set(mapped.values())),
            "neurons_on_paths": len(on_paths & neuron_ids),
            # decisions a pixel of an evaluated label needs from the root: its depth, and the neurons on its path
            "mean_depth": round(sum(taxonomy[c].depth for c in scored) / len(scored), 3),
            "mean_decisions": round(sum(len(set(taxonomy.ancestors(c)) & neuron_ids) for c in scored) / len(scored), 3),
        }
    return {
        "concepts": len(taxonomy),
        "max_depth": taxonomy.max_depth,
        "leaves": sum(1 for c in taxonomy if taxonomy.is_leaf(c.id)),
        "neurons": len(neuron_ids),
        "self_outputs": len(self_concepts(taxonomy)),
        "concepts_per_depth": {str(d): per_depth[d] for d in sorted(per_depth)},
        "branching_mean": round(sum(inner) / len(inner), 3),
        "branching_max": max(inner),
        "with_synset": sum(1 for c in taxonomy if c.synset),
        "by_source": dict(sorted(Counter(c.source for c in taxonomy).items())),
        "placements": placement_stats(taxonomy),
        "overlaps": len(overlap_pairs(taxonomy.artifact)),  # label pairs whose definitions overlap (translations: overlap)
        "datasets": datasets,
        **_extension(taxonomy),
    }


def _evaluated(taxonomy: Taxonomy, dataset: str, label: int) -> bool:
    try:
        return dataset_spec(dataset, taxonomy.artifact).label(label).evaluated
    except HiersegError:  # a dataset only the artifact knows: every mapped label counts
        return True


def _extension(taxonomy: Taxonomy) -> dict[str, Any]:
    """What `build --add` added: the base tree's size, and per added dataset its spec and new concepts."""
    extends = taxonomy.artifact.get("extends")
    if not extends:
        return {}
    added = {name: info["concepts_added"] for name, info in extends["datasets"].items()}
    return {"extended_from": extends["base"], "base_concepts": extends["base_concepts"],
            "added_concepts": sum(len(ids) for ids in added.values()),
            "any_size": len(taxonomy) != extends["base_concepts"],
            "added_datasets": {name: {"spec": info["spec"], "new_concepts": ", ".join(info["concepts_added"]) or "-"}
                               for name, info in extends["datasets"].items()}}

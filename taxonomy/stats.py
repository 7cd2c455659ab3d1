"""Statistics of the tree and of each dataset's part of it."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hierseg.taxonomy.neurons import NeuronGraph, self_concepts
from hierseg.taxonomy.tree import Taxonomy


def neurons(taxonomy: Taxonomy) -> list[str]:
    """Semantic neurons (DSSPN 3.1): concepts with at least two children or with a self output, in depth order."""
    return [n.concept for n in NeuronGraph(taxonomy).neurons]


def tree_stats(taxonomy: Taxonomy) -> dict[str, Any]:
    per_depth = Counter(c.depth for c in taxonomy)
    inner = [len(taxonomy.children(c.id)) for c in taxonomy if not taxonomy.is_leaf(c.id)]
    neuron_ids = set(neurons(taxonomy))
    datasets = {}
    for dataset in taxonomy.datasets:
        mapped = taxonomy.dataset_concepts(dataset)
        on_paths = {a for cid in mapped.values() for a in taxonomy.ancestors(cid)}
        datasets[dataset] = {
            "labels": len(mapped),
            "concepts": len(set(mapped.values())),
            "inner_labels": sum(1 for cid in mapped.values() if not taxonomy.is_leaf(cid)),
            "concepts_on_paths": len(on_paths | set(mapped.values())),
            "neurons_on_paths": len(on_paths & neuron_ids),
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
        "datasets": datasets,
    }

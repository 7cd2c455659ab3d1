"""Exports: label maps, translation tables and lookup tables; the tree and the neuron graph as GraphML, DOT, JSON."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Literal

import numpy as np

from hierseg.core.errors import HiersegError
from hierseg.taxonomy.labelspace import TREE
from hierseg.taxonomy.neurons import NeuronGraph
from hierseg.taxonomy.translate import Translation, translation

LabelFormat = Literal["csv", "json", "npy"]
GraphFormat = Literal["graphml", "dot", "json"]
GraphKind = Literal["tree", "neurons"]


def export_lut(table: Translation) -> np.ndarray:
    """The lookup table for ``np.take(lut, label)``: undefined source values map to the target's ignore value."""
    lut = table.lut.copy()
    lut[lut == table.sentinel] = table.target.ignore
    return lut.astype(table.target.dtype)


def _to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def label_rows(graph: NeuronGraph, dataset: str) -> list[dict[str, Any]]:
    """The dataset's label map (:func:`~hierseg.taxonomy.authoring.build.label_map_rows`) plus each value's tree value."""
    from hierseg.taxonomy.authoring.build import label_map_rows

    rows = label_map_rows(graph.taxonomy.artifact, dataset)
    for row in rows:
        row["tree_id"] = graph.concept_index[row["concept"]] if row["concept"] else ""
    return rows


def export_labels(graph: NeuronGraph, dataset: str, to: str | None, fmt: LabelFormat) -> bytes:
    """``hierseg labels export``: a label map (no ``to``), or the translation to a dataset or ``"tree"``."""
    if fmt == "npy":
        buffer = io.BytesIO()
        np.save(buffer, export_lut(translation(graph.taxonomy, dataset, to or TREE)))
        return buffer.getvalue()
    if to is None:
        rows = label_rows(graph, dataset)
        if fmt == "csv":
            return _to_csv(rows).encode()
        space = graph.space(dataset)
        doc: dict[str, Any] = {"dataset": dataset, "ignore": space.ignore, "labels": rows}
    else:
        table = translation(graph.taxonomy, dataset, to)
        rows = table.rows()
        if fmt == "csv":
            return _to_csv(rows).encode()
        doc = {"source": table.source.name, "target": table.target.name, "source_ignore": table.source.ignore,
               "target_ignore": table.target.ignore, "relations": dict(sorted(table.counts.items())),
               "entries": rows}
    if fmt != "json":
        raise HiersegError(f"unknown label export format {fmt!r}; choose csv, json or npy")
    return (json.dumps(doc, indent=1) + "\n").encode()


def graph_document(graph: NeuronGraph, kind: GraphKind) -> dict[str, Any]:
    """Nodes and edges with plain scalar attributes (GraphML allows nothing else)."""
    taxonomy = graph.taxonomy
    datasets = taxonomy.datasets
    if kind == "tree":
        nodes = []
        for index, cid in enumerate(graph.concepts):
            c = taxonomy[cid]
            node: dict[str, Any] = {"id": cid, "index": index, "name": c.name, "depth": c.depth,
                                    "synset": c.synset or "", "source": c.source, "neuron": cid in graph.index}
            node.update({d: " ".join(map(str, c.labels.get(d, ()))) for d in datasets})
            nodes.append(node)
        edges = [{"source": c.parent, "target": c.id, "child_index": taxonomy.children(c.parent).index(c.id)}
                 for c in taxonomy if c.parent is not None]
    elif kind == "neurons":
        nodes = []
        for n in graph.neurons:
            node = {"id": n.concept, "index": n.index, "depth": n.depth, "children": " ".join(n.children),
                    "self_output": n.has_self}
            node.update({f"active_{d}": bool(graph.mask(d).active[n.index]) for d in datasets})
            nodes.append(node)
        edges = [{"source": graph.neurons[n.parent].concept, "target": n.concept} for n in graph.neurons
                 if n.parent is not None]
    else:
        raise HiersegError(f"unknown graph {kind!r}; choose tree or neurons")
    return {"format": "hierseg-graph/1", "graph": kind, "nodes": nodes, "edges": edges}


def _dot_quote(value: Any) -> str:
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def export_graph(graph: NeuronGraph, kind: GraphKind, fmt: GraphFormat) -> str:
    """``hierseg taxonomy export``: the tree or the neuron graph as GraphML, DOT or JSON text."""
    doc = graph_document(graph, kind)
    if fmt == "json":
        return json.dumps(doc, indent=1) + "\n"
    if fmt == "graphml":
        import networkx as nx

        nx_graph = nx.DiGraph(name=kind)
        for node in doc["nodes"]:
            nx_graph.add_node(node["id"], **{k: v for k, v in node.items() if k != "id"})
        for edge in doc["edges"]:
            nx_graph.add_edge(edge["source"], edge["target"],
                              **{k: v for k, v in edge.items() if k not in ("source", "target")})
        return "\n".join(nx.generate_graphml(nx_graph)) + "\n"
    if fmt == "dot":
        lines = [f"digraph {kind} {{", "  rankdir=LR;", "  node [shape=box, fontsize=10];"]
        for node in doc["nodes"]:
            fields = {"label": node["id"], **{k: v for k, v in node.items() if k != "id" and v != ""}}
            attrs = ", ".join(f"{k}={_dot_quote(v)}" for k, v in fields.items())
            lines.append(f"  {_dot_quote(node['id'])} [{attrs}];")
        for edge in doc["edges"]:
            lines.append(f"  {_dot_quote(edge['source'])} -> {_dot_quote(edge['target'])};")
        return "\n".join(lines + ["}"]) + "\n"
    raise HiersegError(f"unknown graph format {fmt!r}; choose graphml, dot or json")

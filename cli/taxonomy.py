"""``hierseg taxonomy build | validate | show | stats``."""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from hierseg.cli.choices import Format, GraphFormat, GraphKind
from hierseg.taxonomy.errors import HiersegError
from hierseg.taxonomy.tree import DEFAULT_ARTIFACT, Taxonomy

app = typer.Typer(no_args_is_help=True, help="Build, validate and inspect the concept tree.")

ArtifactArg = Annotated[Path | None, typer.Argument(help="Tree artifact (default: the shipped dsspn359.json).")]
_MARKS = {"coco_stuff": "C", "ade20k": "A", "cityscapes": "S", "mapillary": "M"}


@app.command()
def build(
    out: Annotated[Path | None, typer.Option(help="Where to write the tree artifact (default in a checkout: "
                                             "data/taxonomy/dsspn359.json).")] = None,
    label_maps: Annotated[Path | None, typer.Option(help="Folder for <dataset>.csv label maps "
                                                       "(default: data/label_maps, or label_maps/ beside --out).")] = None,
    specs: Annotated[Path | None, typer.Option(help="Folder with merge.yaml, coco_synsets.yaml and "
                                               "coco_stuff_hierarchy.csv to try another merge (label tables "
                                               "stay the shipped ones).")] = None,
    any_size: Annotated[bool, typer.Option(help="Accept a tree other than 359 concepts / depth 5.")] = False,
) -> None:
    """Build the tree from the label specs, the merge spec and WordNet 3.0, validate it and write it."""
    from hierseg.taxonomy.build import DEFAULT_LABEL_MAP_DIR, BuildError, build_artifact, write_outputs
    from hierseg.taxonomy.specs import SPEC_DIR
    from hierseg.taxonomy.tree import REPO_ROOT

    if out is None:
        if REPO_ROOT is None:
            raise HiersegError("hierseg is installed, not run from a checkout: name the file to write with --out "
                               "(the shipped tree is never overwritten in site-packages)")
        out = DEFAULT_ARTIFACT
    start = time.perf_counter()
    expect = {"expect_concepts": None, "expect_max_depth": None} if any_size else None
    try:
        artifact = build_artifact(specs or SPEC_DIR, expect=expect)
    except BuildError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        raise typer.Exit(2) from None
    if label_maps is None:
        label_maps = DEFAULT_LABEL_MAP_DIR if out.resolve() == DEFAULT_ARTIFACT.resolve() else out.parent / "label_maps"
    written = write_outputs(artifact, out, label_maps)
    depth = max(c["depth"] for c in artifact["concepts"])
    typer.echo(f"built {len(artifact['concepts'])} concepts, maximal depth {depth}, in "
               f"{time.perf_counter() - start:.1f} s")
    for path in written:
        typer.echo(f"wrote {path}")


@app.command()
def validate(
    path: ArtifactArg = None,
    expect_concepts: Annotated[int, typer.Option(help="Required number of concepts.")] = 359,
    expect_depth: Annotated[int, typer.Option(help="Required maximal depth.")] = 5,
    any_size: Annotated[bool, typer.Option(help="Skip the size checks (for trees other than the shipped one).")] = False,
    wordnet: Annotated[bool, typer.Option(help="Check that every synset exists in WordNet 3.0.")] = True,
) -> None:
    """Check a tree artifact; print one line per violation and exit 2 if there is any."""
    from hierseg.taxonomy.tree import read_artifact
    from hierseg.taxonomy.validate import validate_artifact

    path = path or DEFAULT_ARTIFACT
    artifact = read_artifact(path)
    reader = None
    if wordnet:
        from hierseg.taxonomy.wordnet import load_wordnet

        reader = load_wordnet()
    problems = validate_artifact(artifact, expect_concepts=None if any_size else expect_concepts,
                             expect_max_depth=None if any_size else expect_depth, wordnet=reader)
    if problems:
        for problem in problems:
            print(f"error: {path}: {problem}", file=sys.stderr)
        raise typer.Exit(2)
    taxonomy = Taxonomy(artifact)
    typer.echo(f"ok: {path}: {len(taxonomy)} concepts, maximal depth {taxonomy.max_depth}")


@app.command()
def show(
    path: ArtifactArg = None,
    root: Annotated[str | None, typer.Option(help="Concept to start from.")] = None,
    max_depth: Annotated[int | None, typer.Option(help="Deepest level to print (absolute depth).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Only the concepts on the paths to this dataset's labels.")] = None,
) -> None:
    """Print the tree; [C A S M] mark the datasets (COCO-Stuff, ADE20K, Cityscapes, Mapillary) defining a concept."""
    from rich.console import Console
    from rich.tree import Tree

    taxonomy = Taxonomy.load(path)
    start = taxonomy[root].id if root else taxonomy.root
    keep = None
    if dataset is not None:
        keep = set()
        for cid in taxonomy.dataset_concepts(dataset).values():
            keep.update(taxonomy.path(cid))

    def label(cid: str) -> str:
        concept = taxonomy[cid]
        marks = "".join(_MARKS.get(d, "?") for d in concept.labels)
        return f"{concept.id}" + (f" [bold][{marks}][/bold]" if marks else "")

    def grow(node: Tree, cid: str) -> None:
        for child in taxonomy.children(cid):
            if keep is not None and child not in keep:
                continue
            if max_depth is not None and taxonomy[child].depth > max_depth:
                continue
            grow(node.add(label(child)), child)

    tree = Tree(label(start))
    grow(tree, start)
    Console(width=200, soft_wrap=True).print(tree)


@app.command()
def stats(
    path: ArtifactArg = None,
    format: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.table,
) -> None:
    """Concepts per depth, semantic neurons, branching, and per dataset: labels, concepts, neurons on their paths."""
    from hierseg.taxonomy.stats import tree_stats

    data = tree_stats(Taxonomy.load(path))
    if format is Format.json:
        typer.echo(json.dumps(data, indent=2))
        return
    rows = [(key, value) for key, value in data.items() if not isinstance(value, dict)]
    rows += [(f"concepts at depth {d}", n) for d, n in data["concepts_per_depth"].items()]
    rows += [(f"source {s}", n) for s, n in data["by_source"].items()]
    for name, values in data["datasets"].items():
        rows += [(f"{name} {key}", value) for key, value in values.items()]
    if format is Format.csv:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["statistic", "value"])
        writer.writerows(rows)
        typer.echo(out.getvalue(), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("statistic", "value", title="hierseg taxonomy")
    for key, value in rows:
        table.add_row(key, str(value))
    Console(width=100).print(table)




@app.command()
def export(
    path: ArtifactArg = None,
    format: Annotated[GraphFormat, typer.Option("--format", help="graphml (networkx, yEd, Gephi), dot (Graphviz) "
                                                "or json.")] = GraphFormat.json,
    graph: Annotated[GraphKind, typer.Option(help="The concept tree, or the semantic neuron graph.")] = GraphKind.tree,
    out: Annotated[Path | None, typer.Option(help="Output file (default: stdout).")] = None,
) -> None:
    """Export the tree or the neuron graph with every concept's attributes and dataset labels."""
    from hierseg.cli.output import emit
    from hierseg.taxonomy.export import export_graph
    from hierseg.taxonomy.neurons import NeuronGraph

    emit(export_graph(NeuronGraph(Taxonomy.load(path)), graph.value, format.value), out)


@app.command()
def draw(
    out: Annotated[Path, typer.Option(help="Picture to write: .svg or .png.")],
    path: ArtifactArg = None,
    dataset: Annotated[str | None, typer.Option(help="Only the concepts on the paths to this dataset's labels, "
                                                "each marked with its label.")] = None,
) -> None:
    """Render the tree, or one dataset's part of it, as an SVG or PNG picture."""
    from hierseg.taxonomy.draw import draw_tree
    from hierseg.taxonomy.neurons import NeuronGraph

    written = draw_tree(NeuronGraph(Taxonomy.load(path)), out, dataset)
    typer.echo(f"wrote {written}")

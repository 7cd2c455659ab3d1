"""``hierseg taxonomy build | validate | show | stats | compare | diff | export | draw``."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path
from typing import Annotated

import typer

from hierseg.cli.choices import Format, GraphFormat, GraphKind, SuggestFormat
from hierseg.core.errors import HiersegError, ProblemList
from hierseg.taxonomy.tree import DEFAULT_ARTIFACT, Taxonomy

app = typer.Typer(no_args_is_help=True, help="Build, validate and inspect the concept tree.")

ArtifactArg = Annotated[Path | None, typer.Argument(help="Tree artifact (default: the shipped dsspn359.json).")]
_MARKS = {"coco_stuff": "C", "ade20k": "A", "cityscapes": "S", "mapillary": "M"}
_DATASET_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


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
    add: Annotated[list[Path] | None, typer.Option("--add", help="Dataset spec to add to the tree (repeatable; see "
                                                   "taxonomy/specs/pascal_voc.yaml). Needs --out.")] = None,
) -> None:
    """Build the tree from the label specs, the merge spec and WordNet 3.0, validate it and write it."""
    from hierseg.taxonomy.authoring.build import build_artifact, write_outputs
    from hierseg.taxonomy.specs import SPEC_DIR
    from hierseg.taxonomy.tree import LABEL_MAP_DIR, REPO_ROOT

    if out is None:
        if REPO_ROOT is None:
            raise HiersegError("hierseg is installed, not run from a checkout: name the file to write with --out "
                               "(the shipped tree is never overwritten in site-packages)")
        out = DEFAULT_ARTIFACT
    start = time.perf_counter()
    additions = _load_additions(add or [])
    if additions and out.resolve() == DEFAULT_ARTIFACT:
        raise HiersegError("--add builds an extended tree; name its file with --out (the default is the shipped tree)")
    expect = {"expect_concepts": None, "expect_max_depth": None} if any_size else None
    artifact = build_artifact(specs or SPEC_DIR, expect=expect)  # a BuildError: main prints each problem
    if additions:
        from hierseg.taxonomy.authoring.extend import extend_artifact
        from hierseg.taxonomy.authoring.wordnet import load_wordnet

        artifact = extend_artifact(artifact, additions, load_wordnet(), any_size=any_size)
    if label_maps is None:
        label_maps = LABEL_MAP_DIR if out.resolve() == DEFAULT_ARTIFACT.resolve() else out.parent / "label_maps"
    written = write_outputs(artifact, out, label_maps)
    depth = max(c["depth"] for c in artifact["concepts"])
    added = "".join(f"; added {a.name} ({len(a.table.labels)} labels, {len(a.merge.added)} new concepts)"
                    for a in additions)
    typer.echo(f"built {len(artifact['concepts'])} concepts, maximal depth {depth}{added}, in "
               f"{time.perf_counter() - start:.1f} s")
    for path in written:
        typer.echo(f"wrote {path}")


def _load_additions(paths: list[Path]) -> list:
    """Every spec read and checked; the problems of all of them reported together."""
    from hierseg.taxonomy.authoring.extend import load_addition

    additions, problems = [], []
    for path in paths:
        try:
            additions.append(load_addition(path))
        except ProblemList as exc:
            problems += exc.problems
        except HiersegError as exc:
            problems.append(str(exc))
    if problems:
        raise ProblemList(problems)
    return additions


@app.command()
def suggest(
    labels: Annotated[Path, typer.Option("--labels", help="Label CSV: id,name and optionally synonyms (;-separated), "
                                         "description, synset (WordNet 3.0, e.g. dog.n.01).")],
    path: ArtifactArg = None,
    dataset: Annotated[str | None, typer.Option(help="Name of the new dataset, lower snake case (default: from "
                                                "the file name).")] = None,
    format: Annotated[SuggestFormat, typer.Option("--format", help="table, json (a record per label) or yaml (a "
                                                  "dataset spec stub for build --add).")] = SuggestFormat.table,
    out: Annotated[Path | None, typer.Option(help="Output file (default: stdout).")] = None,
) -> None:
    """For each label of a new dataset: the concept it most likely denotes, the evidence, two alternatives; a new
    concept (parent and synset) where none fits. Lines to check are flagged for review."""
    import os

    from hierseg.cli.output import emit
    from hierseg.taxonomy.authoring.extend import RESERVED
    from hierseg.taxonomy.authoring.labeltable import read_label_table
    from hierseg.taxonomy.authoring.mergespec import concept_id
    from hierseg.taxonomy.authoring.suggest import spec_stub, suggest_table
    from hierseg.taxonomy.authoring.wordnet import load_wordnet

    taxonomy = Taxonomy.load(path)
    name = dataset or concept_id(labels.stem)
    if not name or not name[0].isalpha():
        name = f"dataset_{name}"
    if not _DATASET_NAME.match(name):
        raise HiersegError(f"--dataset {name!r}: a dataset name is lower snake case (e.g. pascal_voc)")
    if name in taxonomy.datasets or name in RESERVED:
        raise HiersegError(f"--dataset {name!r}: the tree already has a dataset (or label space) of that name; "
                           "choose another with --dataset")
    table = read_label_table(labels)
    report = suggest_table(table, taxonomy, load_wordnet(), name)
    if format is SuggestFormat.json:
        emit(json.dumps([s.to_dict() for s in report.suggestions], indent=1, ensure_ascii=False) + "\n", out)
        return
    if format is SuggestFormat.yaml:
        base = out.parent if out is not None else Path.cwd()
        emit(spec_stub(report, os.path.relpath(labels.resolve(), base.resolve()), taxonomy), out)
        return
    from rich.console import Console
    from rich.table import Table

    grid = Table("id", "label", "suggestion", "score", "evidence", "alternatives",
                 title=f"{name}: {len(report.suggestions)} labels on {taxonomy.artifact.get('name', 'the tree')}")
    for s in report.suggestions:
        answer = s.answer if s.status != "new" or s.new is None else f"new {s.new.id} under {s.new.parent}"
        grid.add_row(str(s.id), s.name, ("[bold red]! [/bold red]" if s.review else "") + answer, f"{s.score:.2f}",
                     "; ".join(f"{e.kind}: {e.detail}" for e in s.evidence[:2]),
                     ", ".join(f"{c.concept} {c.score:.2f}" for c in s.alternatives))
    counts = {status: sum(s.status == status for s in report.suggestions) for status in ("match", "new", "void")}
    review = sum(s.review for s in report.suggestions)
    console = Console(width=200, file=None if out is None else io.StringIO())
    console.print(grid)
    console.print(f"{counts['match']} matched, {counts['new']} new concepts, {counts['void']} void; {review} flagged "
                  "for review (!)")
    if out is not None:
        emit(console.file.getvalue(), out)


@app.command()
def validate(
    path: ArtifactArg = None,
    expect_concepts: Annotated[int, typer.Option(help="Required number of concepts.")] = 359,
    expect_depth: Annotated[int, typer.Option(help="Required maximal depth.")] = 5,
    any_size: Annotated[bool, typer.Option(help="Skip the size checks (for trees other than the shipped one).")] = False,
    wordnet: Annotated[bool, typer.Option(help="Check that every synset exists in WordNet 3.0.")] = True,
) -> None:
    """Check a tree artifact; print one line per violation and exit 2 if there is any."""
    from hierseg.taxonomy.authoring.validate import validate_artifact
    from hierseg.taxonomy.tree import read_artifact

    path = path or DEFAULT_ARTIFACT
    artifact = read_artifact(path)
    reader = None
    if wordnet:
        from hierseg.taxonomy.authoring.wordnet import load_wordnet

        reader = load_wordnet()
    problems = validate_artifact(artifact, expect_concepts=None if any_size else expect_concepts,
                             expect_max_depth=None if any_size else expect_depth, wordnet=reader)
    if problems:
        raise ProblemList([f"{path}: {problem}" for problem in problems])
    taxonomy = Taxonomy(artifact)
    typer.echo(f"ok: {path}: {len(taxonomy)} concepts, maximal depth {taxonomy.max_depth}")


@app.command()
def show(
    path: ArtifactArg = None,
    root: Annotated[str | None, typer.Option(help="Concept to start from.")] = None,
    max_depth: Annotated[int | None, typer.Option(help="Deepest level to print (absolute depth).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Only the concepts on the paths to this dataset's labels.")] = None,
) -> None:
    """Print the tree; [C A S M] mark the datasets (COCO-Stuff, ADE20K, Cityscapes, Mapillary) defining a concept,
    + an added one."""
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
        marks = "".join(_MARKS.get(d, "+") for d in concept.labels)
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
    """Concepts per depth, neurons, branching, WordNet placement checks, and per dataset: labels, concepts, neurons.

    ``placements weak`` counts the placements checked only against object.n.01 or entity.n.01.
    """
    from hierseg.taxonomy.authoring.stats import tree_stats

    data = tree_stats(Taxonomy.load(path))
    if format is Format.json:
        typer.echo(json.dumps(data, indent=2))
        return
    rows = [(key, value) for key, value in data.items() if not isinstance(value, dict)]
    rows += [(f"concepts at depth {d}", n) for d, n in data["concepts_per_depth"].items()]
    rows += [(f"source {s}", n) for s, n in data["by_source"].items()]
    rows += [(f"placements {k}", v if not isinstance(v, list) else " ".join(v)) for k, v in data["placements"].items()]
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
def compare(
    mseg: Annotated[Path, typer.Option("--mseg", help="MSeg's master taxonomy (MSeg_master.tsv from mseg-api).")],
    path: ArtifactArg = None,
    format: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.table,
) -> None:
    """Cross-check the tree against MSeg: per universal class one concept, nested or unrelated, and every
    cross-dataset label pair MSeg calls one class that the tree keeps unrelated (with why, where known)."""
    from hierseg.taxonomy.authoring.compare import compare as run_compare
    from hierseg.taxonomy.authoring.compare import load_notes, pair_rows, read_mseg

    taxonomy = Taxonomy.load(path)
    classes = read_mseg(mseg)  # a CompareError: main prints each problem
    result = run_compare(taxonomy, classes, load_notes())
    summary = result.summary()
    if format is Format.json:
        typer.echo(json.dumps({"summary": summary, "classes": result.classes, "pairs": pair_rows(result),
                               "skipped": result.skipped}, indent=2))
        return
    if format is Format.csv:
        rows = pair_rows(result)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["universal"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        typer.echo(out.getvalue(), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    table = Table("statistic", "value", title="MSeg cross-check")
    for key, value in summary.items():
        table.add_row(key.replace("_", " "), str(value))
    console.print(table)
    classes = Table("universal", "relation", "concepts", title="MSeg classes our tree does not make one concept")
    for item in result.classes:
        if item["relation"] != "one concept":
            classes.add_row(item["universal"], item["relation"], ", ".join(item["concepts"]))
    console.print(classes)
    pairs = Table("universal", "label a", "label b", "a -> b", "b -> a", "why", title="Unrelated label pairs")
    for pair in result.unrelated:
        pairs.add_row(pair.universal, f"{pair.a.dataset}:{pair.a.name} ({pair.concept_a})",
                      f"{pair.b.dataset}:{pair.b.name} ({pair.concept_b})", pair.a_to_b, pair.b_to_a, pair.why or "-")
    console.print(pairs)


@app.command()
def diff(
    old: Annotated[Path, typer.Argument(help="The earlier tree artifact.")],
    new: ArtifactArg = None,
    format: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.table,
) -> None:
    """List what changed between two trees: each concept added, removed or moved and each dataset label whose
    concept changed, as before -> after paths."""
    from hierseg.taxonomy.authoring.diff import diff_trees

    rows = diff_trees(Taxonomy.load(old), Taxonomy.load(new))
    if format is Format.json:
        typer.echo(json.dumps(rows, indent=2))
        return
    out = io.StringIO()
    if format is Format.csv:
        writer = csv.DictWriter(out, fieldnames=["kind", "item", "before", "after"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        for row in rows:
            out.write(f"{row['kind']:8} {row['item']}: {row['before'] or '-'} -> {row['after'] or '-'}\n")
    typer.echo(out.getvalue(), nl=False)


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
    from hierseg.taxonomy.authoring.export import export_graph
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
    from hierseg.taxonomy.authoring.draw import draw_tree
    from hierseg.taxonomy.neurons import NeuronGraph

    written = draw_tree(NeuronGraph(Taxonomy.load(path)), out, dataset)
    typer.echo(f"wrote {written}")

"""``hierseg labels export | remap | stats``: label maps, translations and whole annotation folders."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from hierseg.cli.choices import Format, LabelFormat, Unknown
from hierseg.core.errors import HiersegError

app = typer.Typer(no_args_is_help=True, help="Export label maps and translations; remap and count annotation folders.")


SplitOption = Annotated[str | None, typer.Option(help="Split of the dataset's official layout when the folder is "
                                              "its root (train, val, training, validation, val2017, ...).")]
GlobOption = Annotated[str | None, typer.Option("--glob", metavar="PATTERN", help="Read a plain folder instead of "
                                                "an official layout: every file matching PATTERN at any depth "
                                                "(e.g. '*.png').")]


def _label_files(dataset: str, folder: Path, split: str | None, pattern: str | None):
    """The label files to read, relative to ``folder``, and how to read the layout's other encodings."""
    import os

    from hierseg.taxonomy.annotations import list_label_files

    if pattern is not None:
        if split is not None:
            raise HiersegError("--glob reads a plain folder; --split picks a split of an official layout: give one")
        files = list_label_files(folder, pattern)
        if not files:
            raise HiersegError(f"{folder}: no files match --glob {pattern!r}")
        return files, ()
    from hierseg.data.layouts import LAYOUTS, locate, recodes, split_labels

    if dataset not in LAYOUTS:
        raise HiersegError(f"{dataset!r} has no official layout to read ({', '.join(LAYOUTS)} do); pass "
                           "--glob PATTERN to read a plain folder")
    base = Path(os.path.abspath(folder))
    root, split = locate(dataset, base, split)
    files = [path.relative_to(base) for path in split_labels(dataset, root, split)]
    if not files:
        raise HiersegError(f"{base}: no {dataset} label files for split {split!r}")
    return files, recodes(dataset)


TreeOption = Annotated[Path | None, typer.Option("--taxonomy", help="Tree artifact (default: the shipped one); an "
                                                  "extended tree (taxonomy build --add) knows its added datasets.")]


def _graph(path: Path | None = None):
    from hierseg.taxonomy.neurons import NeuronGraph
    from hierseg.taxonomy.tree import Taxonomy

    return NeuronGraph(Taxonomy.load(path))


@app.command()
def export(
    dataset: Annotated[str, typer.Option(help="Source dataset: coco_stuff, ade20k, cityscapes, mapillary (or tree).")],
    to: Annotated[str | None, typer.Option(help="Target dataset or 'tree'; without it, the dataset's label map.")] = None,
    format: Annotated[LabelFormat, typer.Option("--format", help="csv/json tables, or npy: the lookup table "
                                                "for np.take(lut, label).")] = LabelFormat.csv,
    out: Annotated[Path | None, typer.Option(help="Output file (default: stdout; npy needs a file).")] = None,
    taxonomy: TreeOption = None,
) -> None:
    """Export a label map, or the translation to another dataset or the tree with each label's relation."""
    from hierseg.cli.output import emit
    from hierseg.taxonomy.authoring.export import export_labels

    if format is LabelFormat.npy and out is None:
        raise HiersegError("--format npy writes binary data; name a file with --out")
    emit(export_labels(_graph(taxonomy), dataset, to, format.value), out)


@app.command()
def remap(
    src: Annotated[Path, typer.Argument(help="The source dataset's root (with --split) or one split's label folder "
                                        "in its official layout; with --glob, any folder.")],
    dst: Annotated[Path, typer.Argument(help="Output folder: the label files only, at their paths relative to SRC.")],
    source: Annotated[str, typer.Option("--from", help="Dataset the labels are in (or tree).")],
    target: Annotated[str, typer.Option("--to", help="Dataset to rewrite them in (or tree: 16-bit PNGs).")],
    split: SplitOption = None,
    glob: GlobOption = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes.")] = 1,
    unknown: Annotated[Unknown, typer.Option(help="A value the source does not define: stop (error) or map it "
                                             "to ignore and count it.")] = Unknown.error,
    taxonomy: TreeOption = None,
    overwrite: Annotated[bool, typer.Option(help="Redo outputs that another translation or an older source made "
                                            "(default: refuse them).")] = False,
) -> None:
    """Rewrite the label files of a dataset split (or of a folder, with --glob) in another dataset's ids under DST.
    Re-running skips finished files; DST/remap_manifest.json records what made each one."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from hierseg.taxonomy.authoring.remap import remap_folder
    from hierseg.taxonomy.translate import translation

    graph = _graph(taxonomy)
    table = translation(graph.taxonomy, source, target)
    files, recodes = _label_files(source, src, split, glob)
    columns = (TextColumn("remap"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("remap", total=len(files))
        report = remap_folder(table, src, dst, workers=workers, unknown=unknown.value,
                              on_file=lambda _: progress.advance(task), files=files, recodes=recodes,
                              overwrite=overwrite)
    rate = report.megapixels / report.seconds if report.seconds else 0.0
    typer.echo(f"{source} -> {target}: {report.files} files, {report.written} written, {report.skipped} already done; "
               f"{report.megapixels:.1f} MP in {report.seconds:.1f} s ({rate:.1f} MP/s)")
    counts = ", ".join(f"{n} {r}" for r, n in sorted(table.counts.items()))
    typer.echo(f"labels: {counts}")
    for relation in ("finer-ambiguous", "overlap"):
        lost = [f"{e.source_id} {e.source_name}" for e in table.entries if e.relation == relation]
        if lost:
            typer.echo(f"{relation} (now {table.target.ignore}, ignore): {'; '.join(lost)}")
    if report.unknown_pixels:
        typer.echo(f"undefined values mapped to ignore: {sum(report.unknown_pixels.values())} pixels in "
                   f"{len(report.unknown_pixels)} files")


@app.command()
def stats(
    root: Annotated[Path, typer.Argument(help="The dataset's root (with --split) or one split's label folder in its "
                                         "official layout (gtFine/val); with --glob, any folder.")],
    dataset: Annotated[str, typer.Option(help="Dataset the labels are in.")],
    split: SplitOption = None,
    glob: GlobOption = None,
    format: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.table,
    batch_size: Annotated[int, typer.Option(min=1, help="Batch size for activated neurons per batch.")] = 8,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the shuffle that forms the batches.")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Processes.")] = 1,
    taxonomy: TreeOption = None,
) -> None:
    """Images, pixel and image frequency per label and per concept, activated neurons per image and per batch."""
    from hierseg.taxonomy.authoring.labelstats import folder_stats

    files, recodes = _label_files(dataset, root, split, glob)
    data = folder_stats(_graph(taxonomy), dataset, root, batch_size=batch_size, seed=seed, workers=workers,
                        files=files, recodes=recodes)
    if format is Format.json:
        typer.echo(json.dumps(data, indent=1))
        return
    if format is Format.csv:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["kind", "key", "name", "pixels", "pixel_freq", "images", "image_freq"])
        for key in ("activated_neurons_per_image", "activated_neurons_per_batch"):
            for stat, value in data[key].items():
                writer.writerow(["summary", f"{key}.{stat}", "", "", "", value, ""])
        for row in data["labels"]:
            writer.writerow(["label", row["id"], row["name"], row["pixels"], f"{row['pixel_freq']:.6g}",
                             row["images"], f"{row['image_freq']:.6g}"])
        for row in data["concepts"]:
            writer.writerow(["concept", row["concept"], "", row["pixels"], f"{row['pixel_freq']:.6g}",
                             row["images"], f"{row['image_freq']:.6g}"])
        typer.echo(out.getvalue(), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    per_image, per_batch = data["activated_neurons_per_image"], data["activated_neurons_per_batch"]
    console.print(f"{dataset}: {data['images']} images, {data['pixels']} pixels under {root}")
    console.print(f"activated neurons per image: mean {per_image['mean']}, median {per_image['median']}, "
                  f"max {per_image['max']}; per batch of {data['batch_size']}: mean {per_batch['mean']}, "
                  f"median {per_batch['median']}, max {per_batch['max']}")
    table = Table("id", "label", "concept", "pixel %", "images", "image %", title="labels present")
    for row in data["labels"]:
        if row["pixels"]:
            table.add_row(str(row["id"]), row["name"], row["concept"] or "-", f"{100 * row['pixel_freq']:.2f}",
                          str(row["images"]), f"{100 * row['image_freq']:.1f}")
    console.print(table)

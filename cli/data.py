"""``hierseg data synth | check``: synthetic datasets in the official layouts, and checking a real split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="Synthesise datasets in the official layouts; check a dataset split.")


@app.command()
def synth(
    dataset: Annotated[str, typer.Option(help="coco_stuff, ade20k, cityscapes, mapillary, or a dataset added to "
                                         "--taxonomy.")],
    out: Annotated[Path, typer.Option(help="Root folder to write the dataset's official layout under.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Images per split.")] = 8,
    size: Annotated[int, typer.Option(min=32, help="Image side in pixels (width = height, at most 8192).")] = 256,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes the same files.")] = 0,
    taxonomy: Annotated[Path | None, typer.Option(help="Tree to draw from: an extended tree (taxonomy build --add) "
                                                  "for an added dataset, written in the layout its spec names.")] = None,
    classes: Annotated[int | None, typer.Option(min=1, help="Draw at most this many classes per scene role.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace the synthetic dataset in --out whole (default: --out must "
                                            "be new or empty, or hold the same dataset).")] = False,
) -> None:
    """Write a small synthetic dataset in exactly DATASET's official layout and id convention."""
    from hierseg.data.synth import synthesize

    written = synthesize(dataset, out, n=n, size=size, seed=seed, taxonomy=taxonomy, classes=classes,
                         overwrite=overwrite)
    typer.echo(f"wrote {written} {dataset} samples under {out}")


@app.command()
def check(
    root: Annotated[Path, typer.Argument(help="Dataset root (the official layout, or images/ + masks/).")],
    dataset: Annotated[str, typer.Option(help="coco_stuff, ade20k, cityscapes, mapillary, or a name for --labels.")],
    split: Annotated[str | None, typer.Option(help="Split of an official layout (e.g. training, train2017, train).")] = None,
    labels: Annotated[Path | None, typer.Option(help="Label CSV of a generic images/ + masks/ folder.")] = None,
    ignore: Annotated[int, typer.Option(help="Ignore value of a generic folder.")] = 255,
    skip: Annotated[bool, typer.Option(help="Report broken samples and go on, instead of stopping at the first.")] = False,
    taxonomy: Annotated[Path | None, typer.Option(help="Extended tree holding DATASET (taxonomy build --add): its "
                                                  "labels and the layout its spec names.")] = None,
) -> None:
    """Pair, decode and check every sample of a split: sizes, label values, readable files."""
    import warnings

    from hierseg.data.readers import folder, official, open_split
    from hierseg.taxonomy.tree import Taxonomy

    on_error = "skip" if skip else "raise"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if taxonomy is not None:
            data = open_split(dataset, root, split, taxonomy=Taxonomy.load(taxonomy), on_error=on_error, verify=True)
        elif labels is not None:
            data = folder(root, labels, dataset, ignore=ignore, on_error=on_error, verify=True)
        else:
            if split is None:
                from hierseg.core.errors import HiersegError

                raise HiersegError("--split is required for an official layout")
            data = official(dataset, root, split, on_error=on_error, verify=True)
    from hierseg.core.errors import one_line
    from hierseg.data.synth_record import check_record

    problems = [*data.problems, *check_record(root)]  # a folder synth wrote: exactly what it wrote, no mix
    for problem in problems:
        typer.echo(f"problem: {one_line(problem)}", err=True)
    typer.echo(f"{dataset}: {len(data)} samples ok, {len(problems)} problems")
    if problems:
        raise typer.Exit(2)

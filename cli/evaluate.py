"""``hierseg eval`` and ``hierseg predict``: score a checkpoint on a dataset split; label maps and overlays for images."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from hierseg.cli.choices import Format, ProjectionRule, choices
from hierseg.core.errors import HiersegError
from hierseg.engine.options import MAX_PIXELS

Mode = choices("Mode", "whole", "slide")
_DATASET_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

CheckpointOption = Annotated[Path, typer.Option("--checkpoint", help="Checkpoint file written by `hierseg train`.")]
TrustOption = Annotated[bool, typer.Option("--trust-checkpoint", help="Also read a checkpoint without a digest (written "
                                           "by hierseg 0.2 or earlier); only for files from a source you trust. "
                                           "Loading never runs code.")]
ModeOption = Annotated[Mode, typer.Option(help="whole: the full image at once; slide: --crop windows every --stride.")]
CropOption = Annotated[int, typer.Option(min=1, help="Window side for --mode slide.")]
StrideOption = Annotated[int | None, typer.Option(min=1, help="Window step for --mode slide (default: 2/3 of --crop).")]
FlipOption = Annotated[bool, typer.Option(help="Average with the horizontally flipped image (flat models).")]
ShortOption = Annotated[int | None, typer.Option(min=1, help="Resize the short side to this before the model "
                                                 "(predictions are scored at full size).")]
DeviceOption = Annotated[str | None, typer.Option(help="cuda, cuda:1 or cpu (default: cuda when available).")]
MaxPixelsOption = Annotated[int, typer.Option(min=1, help="Images whose model input has more pixels run in --crop "
                                              "windows even in --mode whole, so memory stays bounded (0 < N).")]
TaxonomyOption = Annotated[Path | None, typer.Option("--taxonomy", help="A superset of the checkpoint's tree "
                                                     "(taxonomy build --add): --dataset may then be a dataset it "
                                                     "added, scored zero-shot through the tree.")]
ProjectionOption = Annotated[ProjectionRule | None, typer.Option(help="How a universal model's outputs become "
                                                                 "--dataset's labels: sum (probabilities summed over "
                                                                 "each label's extent; DSSPN: the dataset's decision "
                                                                 "plan) or argmax (the tree's answer, then translated)."
                                                                 " Default: sum on a dataset the model never trained "
                                                                 "on, the model's own decoding on one it did.")]


def _check_checkpoint(path: Path) -> None:
    # Checked before torch is imported, so a typo costs a fraction of a second, not the model zoo's import.
    from hierseg.core.io import check_regular

    check_regular(path, "checkpoint (--checkpoint)")


def _load(path: Path, dataset: str | None = None, what: str = "evaluation", trust: bool = False):
    from hierseg.engine.checkpoint import load_model, trained_datasets

    model, payload = load_model(path, map_location="cpu", trust=trust)  # the model carries the checkpoint's tree
    trained = trained_datasets(payload)
    if dataset not in (None, "tree") and trained is not None and dataset not in trained:
        typer.echo(f"warning: {path} was trained on {', '.join(trained)}, not {dataset}: this is cross-dataset "
                   f"{what}", err=True)
    return model, payload


def _extended(path: Path | None):
    """The tree of ``--taxonomy``, read before any model is built (a bad file costs no model loading)."""
    if path is None:
        return None
    from hierseg.taxonomy.tree import Taxonomy

    return Taxonomy.load(path)


def _zero_shot(model, extended, path: Path, dataset: str | None, projection: ProjectionRule | None):
    """Check ``--taxonomy`` against the checkpoint and ``--dataset``: every problem is one line naming the file."""
    from hierseg.engine.evaluate import Predictor, resolve_space
    from hierseg.engine.zero_shot import evaluation_tree
    from hierseg.taxonomy.labelspace import TREE

    rule = projection.value if projection is not None else None
    try:
        evaluation_tree(model, extended)  # the extended tree must hold the model's
        if dataset not in (None, TREE) and dataset not in extended.datasets and dataset not in model.label_spaces:
            raise HiersegError(f"dataset {dataset!r} is in neither the checkpoint's tree nor this one (it covers "
                               f"{', '.join(extended.datasets)})")
        if dataset not in (None, TREE):
            projection = Predictor(model, resolve_space(model, dataset, extended, rule), None, extended, rule).projection
            return None if projection is None else projection.reach
    except HiersegError as exc:
        raise HiersegError(f"{path}: {exc}") from None
    return None


def _table(report, per_class: bool) -> None:
    """Every section of the report: its headline values on one line, its rows as a table (detail sections only
    with --per-class, after the others)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    console.print(f"{report.dataset} {report.split}: {report.images} images, {report.seconds:.1f} s")
    sections = report.sections(per_class)
    for section in sorted(sections, key=lambda s: s.detail):
        values = "  ".join(f"{f.title} {f.text(v)}" for f, v in section.values)
        title = f"{section.title}: {values}" if values else section.title
        console.print(title, style="bold" if section.columns else None, highlight=False)
        if section.columns:
            table = Table(*(c.title for c in section.columns))
            for row in section.rows:
                table.add_row(*(c.text(v) for c, v in zip(section.columns, row, strict=True)))
            console.print(table)
        if section.note:
            console.print(section.note, style="dim")


def _progress(total: int | None, label: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    progress = Progress(*columns, transient=True, disable=not sys.stderr.isatty())
    return progress, progress.add_task(label, total=total)


def evaluate(
    root: Annotated[Path, typer.Argument(help="Dataset root in its official layout.")],
    dataset: Annotated[str, typer.Option(help="coco_stuff, ade20k, cityscapes, mapillary, or a dataset added to the "
                                         "checkpoint's tree (taxonomy build --add).")],
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help="Checkpoint file written by `hierseg "
                                                    "train` (or give --predictions).")] = None,
    predictions: Annotated[Path | None, typer.Option(help="Score a folder of prediction PNGs instead of a "
                                                     "checkpoint: one per image of the split, named after the "
                                                     "image or its label, anywhere below the folder.")] = None,
    space: Annotated[str | None, typer.Option(help="Label space of --predictions: a dataset (coco_stuff, ade20k, "
                                              "cityscapes, mapillary) or tree (16-bit concept indices). Default: "
                                              "--dataset.")] = None,
    split: Annotated[str, typer.Option(help="Split of the layout; val and train also name ADE20K's validation, "
                                       "COCO-Stuff's val2017, ...")] = "val",
    format: Annotated[Format, typer.Option("--format", help="table (rich), csv or json (fractions, not %).")] = Format.table,
    out: Annotated[Path | None, typer.Option(help="Output file (default: stdout); a .csv or .json name picks the "
                                             "format when --format is not given.")] = None,
    per_class: Annotated[bool, typer.Option("--per-class", help="Add every class's IoU and accuracy, and each "
                                            "concept's IoU at each level of the tree.")] = False,
    mode: ModeOption = Mode.whole,
    crop: CropOption = 512,
    stride: StrideOption = None,
    flip: FlipOption = False,
    short: ShortOption = None,
    max_pixels: MaxPixelsOption = MAX_PIXELS,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass (same-size images only).")] = 1,
    workers: Annotated[int, typer.Option(min=0, help="Data loading processes (with --predictions: processes "
                                         "reading the files).")] = 0,
    limit: Annotated[int | None, typer.Option(min=1, help="Evaluate only the first N images.")] = None,
    device: DeviceOption = None,
    trust_checkpoint: TrustOption = False,
    taxonomy_path: TaxonomyOption = None,
    projection: ProjectionOption = None,
) -> None:
    """Score a checkpoint, or a folder of predictions made elsewhere, on a dataset split in the dataset's own ids:
    mIoU, pixel and class-average accuracy, mIoU at each level of the tree, how severe the mistakes are (levels up
    to where truth and prediction meet), Cityscapes' categories, and with --per-class every class."""
    from hierseg.data.layouts import dataset_root
    from hierseg.taxonomy.labelspace import TREE
    from hierseg.taxonomy.specs import DATASETS, load_spec

    if not _DATASET_NAME.match(dataset):
        raise HiersegError(f"--dataset {dataset!r}: not a dataset name")
    if (checkpoint is None) == (predictions is None):
        raise HiersegError("give --checkpoint (a model to run) or --predictions (a folder of label PNGs), not both")
    if space is not None and predictions is None:
        raise HiersegError("--space is the label space of --predictions; a checkpoint predicts in --dataset's ids")
    if space is not None and space not in (*DATASETS, TREE):
        raise HiersegError(f"--space {space}: not a label space of the tree; choose one of {', '.join((*DATASETS, TREE))}")
    if predictions is not None:
        if taxonomy_path is not None or projection is not None:
            raise HiersegError("--taxonomy and --projection apply to a checkpoint, not to --predictions")
        load_spec(dataset)  # predictions are scored through the shipped tree: a built-in dataset
    if checkpoint is not None:
        _check_checkpoint(checkpoint)
    extended = _extended(taxonomy_path)
    if extended is not None and dataset not in (*DATASETS, *extended.datasets):
        raise HiersegError(f"{taxonomy_path}: dataset {dataset!r} is in neither the checkpoint's tree nor this one "
                           f"(it covers {', '.join(extended.datasets)})")
    if not dataset_root(dataset, root).is_dir():
        raise HiersegError(f"{root}: no such dataset root")
    if format is Format.table and out is not None:
        if out.suffix.lower() not in (".csv", ".json"):
            raise HiersegError(f"{out}: --out writes csv or json; add --format csv or --format json")
        format = Format(out.suffix.lower()[1:])
    if predictions is not None:
        from hierseg.evaluation.score import score_predictions

        progress, task = _progress(None, "eval")
        with progress:
            report = score_predictions(predictions, dataset, root, split, space, workers=max(workers, 1),
                                       on_image=lambda n: progress.advance(task, n))
        _report(report, format, out, per_class)
        return

    from hierseg.engine.distributed import parse_device
    from hierseg.engine.evaluate import evaluate as run_evaluation
    from hierseg.engine.options import InferenceOptions

    options = InferenceOptions(mode.value, crop, stride, flip, short, max_pixels)
    device = parse_device(device)  # before the model is built: no device, no work
    model, payload = _load(checkpoint, dataset, trust=trust_checkpoint)
    if extended is not None:
        _zero_shot(model, extended, taxonomy_path, dataset, projection)
    progress, task = _progress(limit, "eval")
    with progress:
        report = run_evaluation(model, dataset, root, split, options=options, batch_size=batch_size, workers=workers,
                                device=device, taxonomy=extended, limit=limit,
                                on_batch=lambda n: progress.advance(task, n),
                                projection=projection.value if projection is not None else None)
    _report(report, format, out, per_class)
    from hierseg.engine.tensorboard import log_evaluation

    logged = log_evaluation(payload, report) if limit is None else None  # a partial evaluation is no run figure
    if logged is not None:
        typer.echo(f"added the scores to {logged}", err=True)


def _report(report, format: Format, out: Path | None, per_class: bool) -> None:
    if format is Format.table:
        _table(report, per_class)
        return
    from hierseg.cli.output import emit

    emit(report.to_json(per_class) if format is Format.json else report.to_csv(per_class), out)


def predict(
    images: Annotated[list[Path], typer.Argument(help="Image files and folders (searched recursively).")],
    checkpoint: CheckpointOption,
    out: Annotated[Path, typer.Option(help="Folder for labels/ (label PNGs) and overlays/.")],
    dataset: Annotated[str | None, typer.Option(help="Label space to predict in: a dataset the model knows, or "
                                                "tree (16-bit concept indices). Default: the model's only dataset, "
                                                "or the tree for a universal model.")] = None,
    overlays: Annotated[bool, typer.Option(help="Also write colour overlays with a legend.")] = True,
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Opacity of the label colours in overlays.")] = 0.5,
    mode: ModeOption = Mode.whole,
    crop: CropOption = 512,
    stride: StrideOption = None,
    flip: FlipOption = False,
    short: ShortOption = None,
    max_pixels: MaxPixelsOption = MAX_PIXELS,
    device: DeviceOption = None,
    trust_checkpoint: TrustOption = False,
    taxonomy_path: TaxonomyOption = None,
    projection: ProjectionOption = None,
) -> None:
    """Write a label PNG (the dataset's ids, or tree concept indices) and a colour overlay for each image."""
    _check_checkpoint(checkpoint)
    for path in images:
        if not path.exists():
            raise HiersegError(f"{path}: no such image or folder")
    from hierseg.engine.distributed import parse_device
    from hierseg.engine.options import InferenceOptions
    from hierseg.engine.predict import collect_images, predict_images

    files = collect_images(images)  # before loading the model: a missing image fails fast
    options = InferenceOptions(mode.value, crop, stride, flip, short, max_pixels)
    device = parse_device(device)
    extended = _extended(taxonomy_path)
    model, _ = _load(checkpoint, dataset, "prediction", trust=trust_checkpoint)
    if extended is not None:
        reach = _zero_shot(model, extended, taxonomy_path, dataset, projection)
        if reach is not None and reach.unreachable:
            typer.echo(f"note: this model never predicts {len(reach.unreachable)} of {dataset}'s labels: "
                       f"{', '.join(u.name for u in reach.unreachable)}", err=True)
    progress, task = _progress(len(files), "predict")
    with progress:
        written = predict_images(model, images, out, dataset, options=options, device=device, taxonomy=extended,
                                 overlays=overlays, alpha=alpha, on_image=lambda _: progress.advance(task),
                                 projection=projection.value if projection is not None else None)
    what = "label maps and overlays" if overlays else "label maps"
    typer.echo(f"wrote {len(written)} {what} under {out}")

"""Training curves with matplotlib: loss per dataset and the learning rates against the global step, and for a run
that validated (``eval.every``) one panel per dataset of its validation mIoU beside them.

Two stacked panels sharing the step axis. In joint training each step holds one dataset's batch, so each dataset's
curve is a running mean over its own steps, drawn over its faint raw points. Where a run has several stages (joint
training, then one fine-tuning per dataset), dashed lines mark where each starts and the stage names stand on an
axis of their own above the plot; the legends sit outside the panels on the right, so neither covers the other
nor the curves.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hierseg.core.errors import HiersegError
from hierseg.core.io import atomic_write_bytes
from hierseg.engine.logs import METRICS_JSONL, read_metrics

WIDTH, HEIGHT, DPI = 1000, 720, 100
PANEL_WIDTH = 420  # the column of validation panels, when there is one
COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (23, 190, 207)]


def running_mean(values: Sequence[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _rgb(colour: tuple[int, int, int], fade: float = 0.0) -> tuple[float, float, float]:
    return tuple((c + (255 - c) * fade) / 255 for c in colour)  # type: ignore[return-value]


def stage_starts(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Global step before each stage's first step, in order."""
    starts: dict[str, float] = {}
    for r in records:
        starts.setdefault(r["stage"], r["global_step"] - r["step"])
    return starts


def figure(records: Sequence[dict[str, Any]], title: str = ""):
    """The curves of ``records`` (``metrics.jsonl`` rows) as a matplotlib ``Figure`` (no pyplot state)."""
    from matplotlib.figure import Figure

    validation = eval_series(records)
    width = WIDTH + (PANEL_WIDTH if validation else 0)
    fig = Figure(figsize=(width / DPI, HEIGHT / DPI), dpi=DPI, layout="constrained")
    # the validation panels in a subfigure of their own: each column is laid out apart, so the loss panel's
    # legends, outside on its right, stay clear of them
    left, right = fig.subfigures(1, 2, width_ratios=(WIDTH, PANEL_WIDTH)) if validation else (fig, None)
    loss, lr = left.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    # one segment per (dataset, stage), so no line bridges the steps where another stage ran
    series: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    for r in records:
        for name, value in r["datasets"].items():
            xs, ys = series.setdefault(name, {}).setdefault(r["stage"], ([], []))
            xs.append(r["global_step"])
            ys.append(value)
    colours = {name: COLOURS[i % len(COLOURS)] for i, name in enumerate(sorted({*series, *validation}))}
    for name, stages in sorted(series.items()):
        colour = colours[name]
        for j, (xs, ys) in enumerate(stages.values()):
            loss.plot(xs, ys, color=_rgb(colour, 0.75), linewidth=0.8)
            loss.plot(xs, running_mean(ys, max(1, len(ys) // 25)), color=_rgb(colour), linewidth=2.2,
                      label=name if j == 0 else None)
    loss.set_ylabel("training loss (running mean)")
    loss.grid(True, color="0.92")
    loss.legend(title="dataset", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)

    _rates(lr, records)

    starts = stage_starts(records)
    panels = _validation_panels(right, validation, colours, loss.get_xlim()) if right is not None else []
    if len(starts) > 1:
        for ax in (loss, lr, *panels):
            for x in starts.values():
                ax.axvline(x, color="0.6", linestyle="--", linewidth=1)
    if title:
        fig.suptitle(title)
    finite = [v for stages in series.values() for _, ys in stages.values() for v in ys if math.isfinite(v)]
    if finite and min(finite) >= 0:
        loss.set_ylim(bottom=0)
    if len(starts) > 1:
        _stage_labels(fig, loss, starts)
    return fig


def _rates(ax: Any, records: Sequence[dict[str, Any]]) -> None:
    """Both learning rates per stage, on a log scale when they span more than a factor 20."""
    xs = [r["global_step"] for r in records]
    positive = [r[key] for r in records for key in ("lr_head", "lr_backbone") if r[key] > 0]
    log = bool(positive) and max(positive) / min(positive) > 20
    for (name, key), colour in zip((("head", "lr_head"), ("backbone", "lr_backbone")), COLOURS[:2], strict=True):
        by_stage: dict[str, list[tuple[float, float]]] = {}
        for r in records:
            if r[key] > 0 or not log:
                by_stage.setdefault(r["stage"], []).append((r["global_step"], r[key]))
        for j, points in enumerate(by_stage.values()):
            ax.plot([x for x, _ in points], [v for _, v in points], color=_rgb(colour), linewidth=2.2,
                    label=name if j == 0 else None)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel("learning rate")
    ax.set_xlabel("step")
    ax.grid(True, color="0.92")
    ax.legend(title="parameters", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)
    if len(xs) == 1:
        ax.set_xlim(xs[0] - 1, xs[0] + 1)


def eval_series(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, tuple[list[float], list[float]]]]:
    """Validation mIoU (points) by dataset and stage: ``{dataset: {stage: (global steps, mIoUs)}}``."""
    series: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    for r in records:
        for key, value in r.get("eval", {}).items():
            name, _, metric = key.partition("/")
            if metric == "mIoU" and name != "mean":
                xs, ys = series.setdefault(name, {}).setdefault(r["stage"], ([], []))
                xs.append(r["global_step"])
                ys.append(100 * value)
    return series


def _validation_panels(sub: Any, validation: dict[str, dict[str, tuple[list[float], list[float]]]],
                       colours: dict[str, tuple[int, int, int]], xlim: tuple[float, float]) -> list[Any]:
    """One panel per validated dataset, on the loss panel's step axis; the best value is marked and written."""
    axes = sub.subplots(len(validation), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (name, stages) in zip(axes, sorted(validation.items()), strict=True):
        colour = colours[name]
        for xs, ys in stages.values():
            ax.plot(xs, ys, color=_rgb(colour), linewidth=2.0, marker="o", markersize=3.5)
        x, y = max(((x, y) for xs, ys in stages.values() for x, y in zip(xs, ys, strict=True)), key=lambda p: p[1])
        ax.plot([x], [y], marker="*", markersize=11, color=_rgb(colour), markeredgecolor="0.2", linestyle="none")
        ax.set_title(f"{name}: best {y:.1f} at step {x:g}", fontsize=10)
        ax.set_ylabel("val mIoU (%)")
        ax.grid(True, color="0.92")
        ax.set_xlim(*xlim)
    axes[-1].set_xlabel("step")
    return list(axes)


def _stage_labels(fig: Any, ax: Any, starts: dict[str, float]) -> None:
    """Each stage's name above the panel at the line where it starts; a name that would run into the one before
    goes up a row, so short stages never print over each other."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    texts = [ax.annotate(name, (x, 1.0), xycoords=("data", "axes fraction"), xytext=(3, 3),
                         textcoords="offset points", fontsize=9, color="0.25", ha="left", va="bottom",
                         annotation_clip=False, gid="stage") for name, x in starts.items()]
    canvas = FigureCanvasAgg(fig)
    fig.draw_without_rendering()
    renderer = canvas.get_renderer()
    rows: list[float] = []  # right edge (pixels) of the last name in each row
    height = max(t.get_window_extent(renderer).height for t in texts) * 72 / fig.dpi + 2
    for text in texts:
        box = text.get_window_extent(renderer)
        row = next((i for i, right in enumerate(rows) if box.x0 > right + 6), len(rows))
        if row == len(rows):
            rows.append(box.x1)
        rows[row] = box.x1
        text.set_position((3, 3 + row * height))


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw ``RUN_DIR/metrics.jsonl`` to ``out`` (default ``RUN_DIR/curves.png``)."""
    run_dir = Path(run_dir)
    if not (run_dir / METRICS_JSONL).is_file():
        raise HiersegError(f"{run_dir}: no {METRICS_JSONL} (not a training run folder?)")
    records = read_metrics(run_dir)
    if not records:
        raise HiersegError(f"{run_dir / METRICS_JSONL}: no steps logged yet")
    out = Path(out) if out is not None else run_dir / "curves.png"
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise HiersegError(f"{out}: write a .png, .svg or .pdf")
    buffer = io.BytesIO()
    figure(records, run_dir.name).savefig(buffer, format=out.suffix.lower()[1:])
    return atomic_write_bytes(out, buffer.getvalue())

"""Training curves with matplotlib: loss per dataset and the learning rates against the global step.

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

    fig = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI, layout="constrained")
    loss, lr = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    # one segment per (dataset, stage), so no line bridges the steps where another stage ran
    series: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    for r in records:
        for name, value in r["datasets"].items():
            xs, ys = series.setdefault(name, {}).setdefault(r["stage"], ([], []))
            xs.append(r["global_step"])
            ys.append(value)
    for i, (name, stages) in enumerate(sorted(series.items())):
        colour = COLOURS[i % len(COLOURS)]
        for j, (xs, ys) in enumerate(stages.values()):
            loss.plot(xs, ys, color=_rgb(colour, 0.75), linewidth=0.8)
            loss.plot(xs, running_mean(ys, max(1, len(ys) // 25)), color=_rgb(colour), linewidth=2.2,
                      label=name if j == 0 else None)
    loss.set_ylabel("training loss (running mean)")
    loss.grid(True, color="0.92")
    loss.legend(title="dataset", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)

    xs = [r["global_step"] for r in records]
    positive = [r[key] for r in records for key in ("lr_head", "lr_backbone") if r[key] > 0]
    log = bool(positive) and max(positive) / min(positive) > 20
    for (name, key), colour in zip((("head", "lr_head"), ("backbone", "lr_backbone")), COLOURS[:2], strict=True):
        by_stage: dict[str, list[tuple[float, float]]] = {}
        for r in records:
            if r[key] > 0 or not log:
                by_stage.setdefault(r["stage"], []).append((r["global_step"], r[key]))
        for j, points in enumerate(by_stage.values()):
            lr.plot([x for x, _ in points], [v for _, v in points], color=_rgb(colour), linewidth=2.2,
                    label=name if j == 0 else None)
    if log:
        lr.set_yscale("log")
    lr.set_ylabel("learning rate")
    lr.set_xlabel("step")
    lr.grid(True, color="0.92")
    lr.legend(title="parameters", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)
    if len(xs) == 1:
        lr.set_xlim(xs[0] - 1, xs[0] + 1)

    starts = stage_starts(records)
    if len(starts) > 1:
        for ax in (loss, lr):
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

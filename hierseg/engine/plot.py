"""Training curves drawn with Pillow alone: loss per dataset and the learning rates against the global step.

Two stacked panels with axes, ticks, a legend, and dashed lines where a stage (joint training, each fine-tuning)
starts. In joint training each step holds one dataset's batch, so each dataset's curve is a running mean over
its own steps (the raw points are drawn faintly underneath).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from hierseg.engine.logs import METRICS_JSONL, read_metrics
from hierseg.taxonomy.errors import HiersegError
from hierseg.taxonomy.io import atomic_write_bytes

WIDTH, HEIGHT = 1000, 720
COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (23, 190, 207)]
GREY, BLACK, WHITE = (170, 170, 170), (30, 30, 30), (255, 255, 255)


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering ``[low, high]``."""
    if not high > low:
        return [low]
    raw = (high - low) / count
    base = 10 ** math.floor(math.log10(raw))
    step = next(m * base for m in (1, 2, 5, 10) if m * base >= raw)
    first = math.ceil(low / step - 1e-9) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-2:
        return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{value:g}"


def running_mean(values: Sequence[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


class Panel:
    """One plot area: data limits, pixel box, linear or log y."""

    def __init__(self, draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], xlim: tuple[float, float],
                 ylim: tuple[float, float], log: bool = False) -> None:
        self.draw, self.box, self.log = draw, box, log
        self.xlim = xlim if xlim[1] > xlim[0] else (xlim[0] - 1, xlim[0] + 1)
        lo, hi = (math.log10(ylim[0]), math.log10(ylim[1])) if log else ylim
        if hi <= lo:
            lo, hi = lo - (abs(lo) * 0.1 or 1), hi + (abs(hi) * 0.1 or 1)
        self.ylim = (lo, hi)
        self.font = ImageFont.load_default()

    def px(self, x: float, y: float) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        if self.log:
            y = math.log10(max(y, 1e-30))
        fx = (x - self.xlim[0]) / (self.xlim[1] - self.xlim[0])
        fy = (y - self.ylim[0]) / (self.ylim[1] - self.ylim[0])
        return x0 + fx * (x1 - x0), y1 - fy * (y1 - y0)

    def axes(self, title: str, xlabel: str | None) -> None:
        d, (x0, y0, x1, y1) = self.draw, self.box
        d.rectangle(self.box, outline=BLACK)
        d.text((x0, y0 - 16), title, fill=BLACK, font=self.font)
        for x in nice_ticks(*self.xlim):
            px, _ = self.px(x, 10 ** self.ylim[0] if self.log else self.ylim[0])
            d.line([(px, y1), (px, y1 + 5)], fill=BLACK)
            d.line([(px, y0), (px, y1)], fill=(235, 235, 235))
            d.text((px - 3 * len(fmt(x)), y1 + 7), fmt(x), fill=BLACK, font=self.font)
        if self.log:
            yticks = [10.0 ** e for e in range(math.ceil(self.ylim[0] - 1e-9), math.floor(self.ylim[1] + 1e-9) + 1)]
            if len(yticks) < 2:
                yticks = [10 ** v for v in nice_ticks(*self.ylim)]
        else:
            yticks = nice_ticks(*self.ylim)
        for y in yticks:
            _, py = self.px(self.xlim[0], y)
            d.line([(x0 - 5, py), (x0, py)], fill=BLACK)
            d.line([(x0, py), (x1, py)], fill=(235, 235, 235))
            label = fmt(y)
            d.text((x0 - 8 - 6 * len(label), py - 6), label, fill=BLACK, font=self.font)
        d.rectangle(self.box, outline=BLACK)
        if xlabel:
            d.text(((x0 + x1) / 2 - 3 * len(xlabel), y1 + 22), xlabel, fill=BLACK, font=self.font)

    def line(self, xs: Sequence[float], ys: Sequence[float], colour: tuple[int, int, int], width: int = 2) -> None:
        points = [self.px(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(y)]
        if len(points) == 1:
            x, y = points[0]
            self.draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        elif points:
            self.draw.line(points, fill=colour, width=width, joint="curve")

    def vline(self, x: float, label: str) -> None:
        px, _ = self.px(x, 10 ** self.ylim[0] if self.log else self.ylim[0])
        y0, y1 = self.box[1], self.box[3]
        for y in range(int(y0), int(y1), 8):
            self.draw.line([(px, y), (px, min(y + 4, y1))], fill=GREY)
        self.draw.text((px + 3, y1 - 14), label, fill=(110, 110, 110), font=self.font)

    def legend(self, entries: Sequence[tuple[str, tuple[int, int, int]]]) -> None:
        x, y = self.box[2] - 150, self.box[1] + 8
        self.draw.rectangle([x - 6, y - 4, self.box[2] - 6, y + 15 * len(entries) + 2], fill=WHITE, outline=GREY)
        for name, colour in entries:
            self.draw.line([(x, y + 6), (x + 20, y + 6)], fill=colour, width=3)
            self.draw.text((x + 26, y), name, fill=BLACK, font=self.font)
            y += 15


def render(records: Sequence[dict[str, Any]], title: str = "") -> Image.Image:
    image = Image.new("RGB", (WIDTH, HEIGHT), WHITE)
    draw = ImageDraw.Draw(image)
    xs = [r["global_step"] for r in records]
    xlim = (min(xs) - 1 if len(xs) == 1 else 0, max(xs))
    series: dict[str, tuple[list[float], list[float]]] = {}
    for r in records:
        for name, value in r["datasets"].items():
            series.setdefault(name, ([], []))
            series[name][0].append(r["global_step"])
            series[name][1].append(value)
    finite = [v for _, ys in series.values() for v in ys if math.isfinite(v)] or [0.0, 1.0]
    loss = Panel(draw, (90, 40, WIDTH - 30, 390), xlim, (min(0.0, min(finite)), max(finite) * 1.05))
    loss.axes(f"{title}  training loss per dataset (running mean)", None)
    entries = []
    for i, (name, (sx, sy)) in enumerate(sorted(series.items())):
        colour = COLOURS[i % len(COLOURS)]
        faint = tuple(int(c + (255 - c) * 0.75) for c in colour)
        loss.line(sx, sy, faint, 1)
        loss.line(sx, running_mean(sy, max(1, len(sy) // 25)), colour, 2)
        entries.append((name, colour))
    loss.legend(entries)

    lrs = {"head": [r["lr_head"] for r in records], "backbone": [r["lr_backbone"] for r in records]}
    positive = [v for vs in lrs.values() for v in vs if v > 0] or [1e-3]
    log = max(positive) / min(positive) > 20
    lr = Panel(draw, (90, 450, WIDTH - 30, HEIGHT - 50), xlim,
               (min(positive) / 1.5, max(positive) * 1.5) if log else (0.0, max(positive) * 1.05), log)
    lr.axes("learning rate" + (" (log scale)" if log else ""), "step")
    for values, colour in zip(lrs.values(), COLOURS[:2], strict=True):
        keep = [(x, v) for x, v in zip(xs, values, strict=True) if v > 0 or not log]
        lr.line([x for x, _ in keep], [v for _, v in keep], colour, 2)
    lr.legend([("head", COLOURS[0]), ("backbone", COLOURS[1])])

    starts: dict[str, float] = {}
    for r in records:
        starts.setdefault(r["stage"], r["global_step"] - r["step"])
    if len(starts) > 1:
        for name, x in starts.items():
            loss.vline(x, name)
            lr.vline(x, name)
    return image


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw ``RUN_DIR/metrics.jsonl`` to ``out`` (default ``RUN_DIR/curves.png``)."""
    run_dir = Path(run_dir)
    if not (run_dir / METRICS_JSONL).is_file():
        raise HiersegError(f"{run_dir}: no {METRICS_JSONL} (not a training run folder?)")
    records = read_metrics(run_dir)
    if not records:
        raise HiersegError(f"{run_dir / METRICS_JSONL}: no steps logged yet")
    buffer = io.BytesIO()
    render(records, run_dir.name).save(buffer, format="PNG")
    return atomic_write_bytes(Path(out) if out is not None else run_dir / "curves.png", buffer.getvalue())

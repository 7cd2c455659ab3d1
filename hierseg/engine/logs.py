"""Training logs: one JSON record per optimiser step in ``RUN_DIR/metrics.jsonl`` (and the same in CSV), and the
progress display (a rich bar on a terminal, a plain line every ``log_every`` steps otherwise).

A record: ``stage``, ``stage_index``, ``step`` (1-based within the stage), ``global_step``, ``epoch``, ``loss``
(mean over the step's batches on every rank), ``datasets`` (``{name: mean loss}`` of the step's batches),
``terms`` (the model's named loss terms), ``lr_head``, ``lr_backbone``, ``images``, ``images_per_s``, ``time``;
at a step that validated (``eval.every``), ``eval``: ``{"DATASET/mIoU": ..., "mean/mIoU": ...}`` (fractions), whose
mIoUs the CSV has as ``val_DATASET_miou`` and ``val_mean_miou`` columns (empty at other steps).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from hierseg.core.errors import HiersegError
from hierseg.core.io import make_folder, open_output, read_text, write_error

METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
logger = logging.getLogger(__name__)
BASE_COLUMNS = ("stage", "step", "global_step", "epoch", "loss", "lr_head", "lr_backbone", "images", "images_per_s",
                "time")


# The fields every record has, and the types the readers (resume, plot, TensorBoard) rely on.
_RECORD = {"stage": (str,), "stage_index": (int,), "step": (int,), "global_step": (int,), "lr_head": (int, float),
           "lr_backbone": (int, float), "datasets": (dict,)}


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every record of ``RUN_DIR/metrics.jsonl`` (a torn last line, from a killed run, is skipped); a line that is
    JSON but not a record (a field missing or of another type, nested too deep) is an error naming the line."""
    path = Path(run_dir) / METRICS_JSONL
    if not path.exists():
        return []
    records = []
    lines = read_text(path, "metrics log").splitlines()
    for lineno, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        except RecursionError:
            raise HiersegError(f"{path}:{lineno}: not a metrics record (nested too deeply)") from None
        problem = _record_problem(record)
        if problem is not None:
            raise HiersegError(f"{path}:{lineno}: not a metrics record ({problem}); the log is damaged: remove the "
                               "line, or start the run in a new output.dir")
        records.append(record)
    return records


def _record_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return f"a {type(record).__name__}, not an object"
    for key, types in _RECORD.items():
        value = record.get(key)
        if isinstance(value, bool) or not isinstance(value, types):
            return f"{key} is {'missing' if key not in record else repr(value)[:40]}"
    if not all(isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
               for k, v in record["datasets"].items()):
        return "datasets must map dataset names to losses"
    return None


class MetricsLog:
    """Appends records to ``metrics.jsonl`` and ``metrics.csv``; on resume, drops those after the resumed step so
    the files read as if the run had never stopped."""

    def __init__(self, run_dir: Path, datasets: Sequence[str], keep_until: tuple[int, int] | None = None,
                 validated: bool = False) -> None:
        self.columns = [*BASE_COLUMNS, *(f"loss_{name}" for name in datasets)]
        if validated:
            self.columns += [f"val_{name}_miou" for name in (*datasets, "mean")]
        self.jsonl_path, self.csv_path = run_dir / METRICS_JSONL, run_dir / METRICS_CSV
        kept = [r for r in read_metrics(run_dir)
                if keep_until is not None and (r["stage_index"], r["step"]) <= keep_until]
        make_folder(run_dir, "run folder")
        # written in place, line by line: opened without following a link (a linked log would be written elsewhere)
        self.jsonl: TextIO = _text_output(self.jsonl_path)
        self.csv_file: TextIO = _text_output(self.csv_path, newline="")
        self.csv = csv.DictWriter(self.csv_file, self.columns, extrasaction="ignore")
        self.csv.writeheader()
        for record in kept:
            self._write(record)
        self.flush()

    def _write(self, record: dict[str, Any]) -> None:
        self.jsonl.write(json.dumps(record) + "\n")
        row = dict(record)
        row.update({f"loss_{name}": value for name, value in record.get("datasets", {}).items()})
        row.update({f"val_{key.removesuffix('/mIoU')}_miou": value for key, value in record.get("eval", {}).items()
                    if key.endswith("/mIoU")})
        self.csv.writerow(row)

    def write(self, record: dict[str, Any]) -> None:
        try:
            self._write(record)
        except OSError as exc:  # buffered: a full disk may show here or at the flush
            raise write_error(self.jsonl_path, exc) from None
        self.flush()  # a step is much slower than a flush, and a killed run keeps every step it finished

    def flush(self) -> None:
        for handle, path in ((self.jsonl, self.jsonl_path), (self.csv_file, self.csv_path)):
            try:
                handle.flush()
            except OSError as exc:
                raise write_error(path, exc) from None

    def close(self) -> None:
        for handle in (self.jsonl, self.csv_file):
            try:
                handle.close()
            except OSError:
                pass  # every record was flushed when written; a failed flush has already been reported


def _text_output(path: Path, newline: str | None = None) -> TextIO:
    fd = open_output(path)
    try:
        return open(fd, "w", encoding="utf-8", newline=newline)
    except OSError as exc:
        os.close(fd)
        raise write_error(path, exc) from None


def format_record(record: dict[str, Any], total: int, images_per_s: float) -> str:
    per_dataset = " ".join(f"{name} {value:.3f}" for name, value in sorted(record["datasets"].items()))
    return (f"{record['stage']} step {record['step']}/{total} epoch {record['epoch']} loss {record['loss']:.4f} "
            f"({per_dataset}) lr {record['lr_head']:.2e} {images_per_s:.1f} img/s")


class Progress:
    """A rich progress bar on ``stream`` (stderr) when it is a terminal; otherwise one log line (INFO) every
    ``every`` steps."""

    def __init__(self, stage: str, total: int, done: int = 0, every: int = 10, enabled: bool = True,
                 stream: TextIO | None = None) -> None:
        self.total, self.every, self.enabled = total, every, enabled
        self.stream = stream or sys.stderr
        self.bar = None
        self.images, self.since = 0, time.perf_counter()  # throughput over the steps since the last line
        if enabled and self.stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    TimeRemainingColumn(), TextColumn("{task.fields[status]}"),
                                    console=Console(file=self.stream), transient=False)
            self.task = self.bar.add_task(stage, total=total, completed=done, status="")
            self.bar.start()

    def update(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.images += record["images"]
        if self.bar is not None:
            self.bar.update(self.task, completed=record["step"])
        if record["step"] % self.every and record["step"] != self.total:
            return
        now = time.perf_counter()
        rate, self.images, self.since = self.images / max(now - self.since, 1e-9), 0, now
        if self.bar is not None:
            status = f"loss {record['loss']:.4f} lr {record['lr_head']:.2e} {rate:.1f} img/s"
            self.bar.update(self.task, status=status)
        else:
            logger.info("%s", format_record(record, self.total, rate))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

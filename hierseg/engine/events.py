"""What a training step reports, kept for the hooks that read it: detectron2's ``EventStorage`` idea, one step deep.

The trainer opens each step's events with :meth:`EventStorage.begin_step` (the step's epoch, every rank's batch
entries, this process's skipped samples, the flags the ranks agreed on) and puts the step's record, the line of
``metrics.jsonl``, with :meth:`EventStorage.put_record`. Hooks read them through ``trainer.storage`` and report
into the record with :meth:`EventStorage.put_scalars` (validation's figures), so that the metrics log,
TensorBoard, the progress line and a step callback see what every earlier hook added, and no hook reads another's
attributes or the trainer's internals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict


class BatchEntry(TypedDict):
    """One batch of a step, as every rank reports it."""

    dataset: str
    loss: float
    terms: dict[str, float]
    images: int
    paths: list[str]


class EventStorage:
    """The current step's events; see the module docstring."""

    def __init__(self) -> None:
        self.iter = -1  # 0-based step of the stage the events are of
        self.epoch = 0
        self.entries: list[BatchEntry] = []
        self.problems: tuple[str, ...] = ()  # samples this process's readers skipped in the step (data.on_error)
        self.flags: dict[str, int] = {}  # what hooks raised (HookBase.step_flags), agreed across ranks
        self._record: dict[str, Any] = {}

    def begin_step(self, step: int, epoch: int, entries: Sequence[BatchEntry], problems: Sequence[str],
                   flags: Mapping[str, int]) -> None:
        """Open the events of step ``step``: what its forward and backward passes made, before the hooks'
        ``after_backward``."""
        self.iter, self.epoch = step, epoch
        self.entries, self.problems, self.flags = list(entries), tuple(problems), dict(flags)
        self._record = {}

    def put_record(self, record: dict[str, Any]) -> None:
        """The step's record (losses, rates, throughput), after the optimiser step and before ``after_step``."""
        self._record = record

    def put_scalars(self, group: str, values: Mapping[str, float]) -> None:
        """Add ``values`` to the step's record under ``group`` (``eval``: the validation's figures)."""
        self._record[group] = dict(values)

    def latest(self) -> dict[str, Any]:
        """The step's record, with what hooks added so far (the same dict each call: writers see it whole)."""
        return self._record

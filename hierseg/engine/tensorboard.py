"""An optional TensorBoard log of a run (``output.tensorboard: true``): ``RUN_DIR/tensorboard/``.

Training writes every step's loss (overall, per dataset, the model's loss terms), both learning rates and the
throughput at the global step, and with ``eval.every`` the validation's figures (``val/DATASET/mIoU``, ...);
``hierseg eval`` of a checkpoint from such a run adds its figures (mIoU, pixel and class-average accuracy, mIoU per
tree depth, category mIoU) at the step its stage ended. ``tensorboard --logdir RUN_DIR/tensorboard`` shows them.
TensorBoard is an optional dependency (``pip install 'hierseg[tensorboard]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hierseg.core.errors import HiersegError
from hierseg.core.io import make_folder
from hierseg.engine.logs import read_metrics

FOLDER = "tensorboard"


def _summary_writer() -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise HiersegError("output.tensorboard: true needs the tensorboard package: pip install 'hierseg[tensorboard]' "
                           "(or pip install tensorboard), or set output.tensorboard: false") from None
    return SummaryWriter


def check_available() -> None:
    """Raise the one-line error now (before a run starts) when TensorBoard is not installed."""
    _summary_writer()


class TensorBoardLog:
    """Scalars of each training record; on resume, events from the resumed step on are purged (as the metrics
    files are), so the curves read as if the run had never stopped."""

    def __init__(self, run_dir: Path, purge_step: int | None = None) -> None:
        make_folder(Path(run_dir) / FOLDER, "TensorBoard folder", root=run_dir)  # a real folder, not a link elsewhere
        self.writer = _summary_writer()(log_dir=str(Path(run_dir) / FOLDER), purge_step=purge_step)

    def write(self, record: dict[str, Any]) -> None:
        step, add = record["global_step"], self.writer.add_scalar
        add("loss/all", record["loss"], step)
        for name, value in record["datasets"].items():
            add(f"loss/{name}", value, step)
        for name, value in record.get("terms", {}).items():
            add(f"terms/{name}", value, step)
        add("lr/head", record["lr_head"], step)
        add("lr/backbone", record["lr_backbone"], step)
        add("throughput/images_per_s", record["images_per_s"], step)
        for name, value in record.get("eval", {}).items():  # eval.every: DATASET/NAME, mean/NAME
            add(f"val/{name}", value, step)

    def close(self) -> None:
        self.writer.close()


def eval_scalars(report: Any) -> dict[str, float]:
    """The figures of a :class:`~hierseg.evaluation.report.Report` by TensorBoard tag: ``eval/DATASET/SPLIT/NAME``
    for every name of ``report.scalars()`` (``mIoU``, ``mIoU_level/3``, ``severity/mean``, ...)."""
    prefix = f"eval/{report.dataset}/{report.split}"
    return {f"{prefix}/{name}": value for name, value in report.scalars().items()}


def log_evaluation(payload: dict[str, Any], report: Any) -> Path | None:
    """Add ``report`` to the TensorBoard log of the run that wrote the checkpoint ``payload``, when that run logs to
    TensorBoard and its folder is here; the step is the last global step of the checkpoint's stage."""
    training = payload.get("training") or {}
    config = training.get("config") or {}
    output = config.get("output") or {}
    if not output.get("tensorboard"):
        return None
    run_dir = Path(output["dir"])
    stage = training.get("stage_name", training.get("stage"))
    steps = [r["global_step"] for r in read_metrics(run_dir) if r.get("stage") == stage]
    if not steps:
        return None
    log = TensorBoardLog(run_dir)
    try:
        for tag, value in eval_scalars(report).items():
            log.writer.add_scalar(tag, value, max(steps))
    finally:
        log.close()
    return run_dir / FOLDER

"""``hierseg train`` (a YAML config, ``--set`` overrides, ``--resume``) and ``hierseg plot`` (a run's curves)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def train(
    config: Annotated[Path, typer.Option("--config", "-c", help="Training config (YAML); see configs/.")],
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE", help="Override one config value, KEY=VALUE with a dotted key and a YAML value "
                      "(e.g. --set optim.lr_head=0.01 --set data.datasets.0.root=data/cityscapes). Repeatable.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in output.dir from its last.pt "
                                                           "(same config; workers and intervals may change).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the run (or another run's outputs) in "
                                                                 "output.dir instead of refusing it.")] = False,
    trust_checkpoint: Annotated[bool, typer.Option("--trust-checkpoint", help="Also read a resume checkpoint or "
                                                   "init.backbone_from without a digest (written by hierseg 0.2 or "
                                                   "earlier); only for files from a source you trust. Loading never "
                                                   "runs code.")] = False,
) -> None:
    """Train a model from a YAML config; under torchrun every process runs this same command (DDP)."""
    from hierseg.engine.config import load_config

    cfg = load_config(config, overrides or [])  # before torch is imported: a bad value fails at once
    from hierseg.engine.distributed import main_process_by_env
    from hierseg.engine.train import Interrupted
    from hierseg.engine.train import train as run_training

    main_process = main_process_by_env()  # under torchrun, one process reports
    try:
        outputs = run_training(cfg, source=str(config), resume=resume, overwrite=overwrite,
                               trust_checkpoints=trust_checkpoint)
    except Interrupted as exc:
        if main_process:
            print(exc, file=sys.stderr, flush=True)
        raise typer.Exit(exc.exit_code) from None
    if main_process:
        for stage, path in outputs.items():
            typer.echo(f"{stage}: {path}")


def plot(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (output.dir of a training config).")],
    out: Annotated[Path | None, typer.Option(help="PNG to write (default: RUN_DIR/curves.png).")] = None,
) -> None:
    """Draw a run's training curves (loss per dataset, learning rates) from its metrics.jsonl to a PNG."""
    from hierseg.engine.plot import plot_run

    typer.echo(f"wrote {plot_run(run_dir, out)}")

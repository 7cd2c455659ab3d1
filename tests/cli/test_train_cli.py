"""``hierseg train`` and ``hierseg plot`` as a user runs them: config errors before anything runs (one line,
exit 2), real models end to end on synthetic data, SIGTERM, and the curves PNG."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from hierseg.data.synth import synthesize
from hierseg.engine.checkpoint import load_model, read_checkpoint
from hierseg.engine.logs import read_metrics
from hierseg.engine.plot import COLOURS
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for name in ("cityscapes", "mapillary"):
        synthesize(name, root / name, n=4, size=72, seed=1)
    return root


def write_config(path: Path, root: Path, out: Path, model: dict, datasets=("cityscapes",), **sections) -> Path:
    raw = {"model": model,
           "data": {"workers": 0, "datasets": [{"name": d, "root": str(root / d), "crop": 65, "batch_size": 2}
                                               for d in datasets]},
           "schedule": {"steps": 3}, "optim": {"lr_head": 0.01, "lr_backbone": 0.001}, "run": {"device": "cpu"},
           "output": {"dir": str(out), "log_every": 1, "checkpoint_every": 0}, **sections}
    path.write_text(yaml.safe_dump(raw))
    return path


DEEPLAB = {"name": "deeplab_resnet18", "kwargs": {"output_stride": 16}}


@pytest.mark.parametrize(("args", "expected"), [
    (["--set", "optim.lr_head=-1"], "optim.lr_head: Input should be greater than 0"),
    (["--set", "schedule.epochs=2"], "schedule.epochs: give exactly one of epochs or steps"),
    (["--set", "data.datasets.0.root=nowhere"], "data.datasets.0.root: nowhere: no such folder"),
])
def test_bad_configs_stop_before_anything_runs(synth, tmp_path, args, expected):
    config = write_config(tmp_path / "c.yaml", synth, tmp_path / "run", DEEPLAB)
    result = run_cli("train", "--config", str(config), *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {config}: {expected}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_deeplab_trains_end_to_end_and_plots(synth, tmp_path):
    config = write_config(tmp_path / "c.yaml", synth, tmp_path / "run", DEEPLAB)
    result = run_cli("train", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"main: {tmp_path / 'run' / 'model.pt'}"
    assert "main step 3/3 epoch" in result.stderr  # progress lines (no terminal here, so no bar)
    model, payload = load_model(tmp_path / "run" / "model.pt")
    assert payload["model"]["kwargs"]["datasets"] == ["cityscapes"]  # filled in from the data section
    assert len(read_metrics(tmp_path / "run")) == 3

    result = run_cli("plot", str(tmp_path / "run"), "--out", str(tmp_path / "curves.png"))
    assert result.returncode == 0, result.stderr
    image = np.asarray(Image.open(tmp_path / "curves.png").convert("RGB"))
    assert image.shape == (720, 1000, 3)
    top, bottom = image[:400], image[400:]
    assert (np.abs(top.astype(int) - COLOURS[0]).sum(-1) == 0).sum() > 50  # the cityscapes loss curve
    assert (np.abs(bottom.astype(int) - COLOURS[1]).sum(-1) == 0).sum() > 50  # the backbone learning rate
    result = run_cli("plot", str(tmp_path))
    assert result.returncode == 2 and "no metrics.jsonl" in result.stderr


def test_universal_dsspn_trains_jointly_then_finetunes_per_dataset(synth, tmp_path):
    model = {"name": "dsspn_resnet18", "kwargs": {"m": 8, "m0": 32, "output_stride": 16}}
    config = write_config(tmp_path / "c.yaml", synth, tmp_path / "run", model, ("cityscapes", "mapillary"),
                          schedule={"steps": 2}, finetune={"steps": 1, "datasets": ["mapillary"]})
    result = run_cli("train", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"main: {tmp_path / 'run' / 'model.pt'}",
                                          f"finetune-mapillary: {tmp_path / 'run' / 'finetune' / 'mapillary.pt'}"]
    model, payload = load_model(tmp_path / "run" / "finetune" / "mapillary.pt")
    assert payload["taxonomy"] is not None  # the checkpoint carries its tree
    records = read_metrics(tmp_path / "run")
    assert [r["stage"] for r in records] == ["main", "main", "finetune-mapillary"]
    assert {d for r in records[:2] for d in r["datasets"]} == {"cityscapes", "mapillary"}  # one batch of each


def test_sigterm_saves_a_loadable_checkpoint_and_exits_143(synth, tmp_path):
    config = write_config(tmp_path / "c.yaml", synth, tmp_path / "run", DEEPLAB, schedule={"steps": 500})
    process = subprocess.Popen([sys.executable, "-m", "hierseg.cli.main", "train", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not read_metrics(tmp_path / "run") and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 143, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted by SIGTERM at main step ")
    assert last.endswith(f"/500; checkpoint: {tmp_path / 'run' / 'last.pt'} (continue with --resume)")
    step = int(last.split(" step ")[1].split("/")[0])
    assert read_checkpoint(tmp_path / "run" / "last.pt")["training"]["step"] == step == len(read_metrics(tmp_path / "run"))
    load_model(tmp_path / "run" / "last.pt")

"""``hierseg train`` under faults, as real processes: a broken sample behind DataLoader workers (a hang fails the
test: every run has a deadline), one writer per run folder (two real processes), refusing another run's outputs,
stale temporaries of killed saves, and SIGTERM with workers (no process left behind)."""

from __future__ import annotations

import os
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
from hierseg.engine.logs import read_metrics

DEEPLAB = {"name": "deeplab_resnet18", "kwargs": {"output_stride": 16}}
DEADLINE = 240  # seconds; far above a healthy run on a loaded 2-core machine, far below "forever"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    synthesize("cityscapes", root / "cityscapes", n=4, size=72, seed=1)
    return root


@pytest.fixture(scope="module")
def broken(tmp_path_factory, data) -> tuple[Path, Path]:
    """A copy of the data with one label holding the undefined value 200; returns (root, that label)."""
    import shutil

    root = tmp_path_factory.mktemp("broken")
    shutil.copytree(data / "cityscapes", root / "cityscapes")
    label = sorted((root / "cityscapes" / "gtFine" / "train").rglob("*.png"))[2]
    array = np.asarray(Image.open(label)).copy()
    array[5, 5] = 200
    Image.fromarray(array).save(label)
    return root, label


def config(path: Path, root: Path, out: Path, workers: int = 0, steps: int = 3, **data: object) -> Path:
    raw = {"model": DEEPLAB,
           "data": {"workers": workers, **data,
                    "datasets": [{"name": "cityscapes", "root": str(root / "cityscapes"), "crop": 65, "batch_size": 2}]},
           "schedule": {"steps": steps}, "optim": {"lr_head": 0.01, "lr_backbone": 0.001}, "run": {"device": "cpu"},
           "output": {"dir": str(out), "log_every": 1, "checkpoint_every": 0}}
    path.write_text(yaml.safe_dump(raw))
    return path


def start(*args: str) -> subprocess.Popen[str]:
    """The real console entry point in a session of its own, so that whatever it leaves behind can be found."""
    return subprocess.Popen([sys.executable, "-m", "hierseg.cli.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def session(sid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def finish(proc: subprocess.Popen[str], timeout: float = DEADLINE) -> tuple[str, str]:
    """Wait with a deadline; a process still running then is a hang: kill its session and fail."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for pid in session(proc.pid):
            os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"hung for {timeout} s (killed); stderr:\n{err[-2000:]}")
    deadline = time.monotonic() + 15  # workers whose parent is gone notice within seconds
    while session(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = session(proc.pid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left behind: {left}"
    return out, err


def test_a_broken_sample_behind_workers_ends_the_run_with_one_line(broken, tmp_path):
    root, label = broken
    proc = start("train", "--config", str(config(tmp_path / "c.yaml", root, tmp_path / "run", workers=2, steps=4)))
    _, err = finish(proc)
    assert proc.returncode == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {label}: value 200 is not a cityscapes label id"]
    assert "Traceback" not in err


def test_skip_mode_warns_counts_and_finishes(broken, tmp_path):
    root, label = broken
    cfg = config(tmp_path / "c.yaml", root, tmp_path / "run", workers=2, steps=4, on_error="skip")
    proc = start("train", "--config", str(cfg))
    _, err = finish(proc)
    assert proc.returncode == 0, err
    assert f"warning: {label}: value 200 is not a cityscapes label id" in err.splitlines()
    assert "skipped 1 broken sample (data.on_error: skip)" in err
    assert len(read_metrics(tmp_path / "run")) == 4


def test_sigterm_with_loader_workers_stops_and_leaves_no_process(data, tmp_path):
    proc = start("train", "--config", str(config(tmp_path / "c.yaml", data, tmp_path / "run", workers=2, steps=500)))
    deadline = time.monotonic() + DEADLINE
    while not read_metrics(tmp_path / "run") and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)  # the whole process group, as a service manager or Ctrl-C would
    _, err = finish(proc)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("interrupted by SIGTERM at main step ")


def test_one_writer_per_run_folder(data, tmp_path):
    cfg = config(tmp_path / "c.yaml", data, tmp_path / "run")
    first, second = start("train", "--config", str(cfg)), start("train", "--config", str(cfg))
    results = [finish(first), finish(second)]
    codes = sorted(p.returncode for p in (first, second))
    assert codes == [0, 2], results
    loser, winner = (first, second) if first.returncode == 2 else (second, first)
    err = results[0 if loser is first else 1][1]
    assert f"output.dir: {tmp_path / 'run'}: in use by another hierseg training run (PID {winner.pid}," in err
    assert len(read_metrics(tmp_path / "run")) == 3  # one run's log, not two interleaved

    # deleting last.pt does not make the folder free for another run
    (tmp_path / "run" / "last.pt").unlink()
    model = (tmp_path / "run" / "model.pt").read_bytes()
    proc = start("train", "--config", str(cfg))
    _, err = finish(proc)
    assert proc.returncode == 2 and "holds another run's outputs (model.pt, metrics.jsonl, metrics.csv)" in err
    assert (tmp_path / "run" / "model.pt").read_bytes() == model and len(read_metrics(tmp_path / "run")) == 3

    # --overwrite replaces it; a temporary left by a killed save is removed on the way
    stale = tmp_path / "run" / ".last.pt.k1ll3d.tmp"
    stale.write_bytes(os.urandom(1 << 16))
    proc = start("train", "--config", str(cfg), "--overwrite", "--set", "schedule.steps=2")
    _, err = finish(proc)
    assert proc.returncode == 0, err
    assert f"removed {stale}, left by a killed checkpoint save" in err and not stale.exists()
    assert len(read_metrics(tmp_path / "run")) == 2
    proc = start("train", "--config", str(cfg), "--overwrite", "--resume")
    _, err = finish(proc)
    assert proc.returncode == 2 and err.startswith("error: --resume continues the run in output.dir")

"""``bench/gpu_check.py --device cpu --quick``: the GPU check's code paths on the CPU (gloo for DDP), so the command
is known to work before a GPU is lent to run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hierseg.models import list_models
from hierseg.models.registry import model_family

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    # sleeping OpenMP threads: spinning ones burn several times the CPU on a loaded machine, for the same figures
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=900, env=env)


def test_quick_cpu_run_passes_every_section_and_writes_json_and_markdown(tmp_path):
    result = run("--device", "cpu", "--quick", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    sections = report["sections"]
    assert list(sections) == ["families", "dynamic", "table6", "evaluate", "ddp"]
    assert all(s["ok"] for s in sections.values()), {k: s.get("error") for k, s in sections.items()}

    families = {model_family(name) for name in list_models()}
    assert {k for k, v in sections["families"].items() if isinstance(v, dict)} == families  # every family trained
    assert sections["dynamic"]["per-image / dynamic"] > 0 and sections["dynamic"]["fixed / dynamic"] > 0
    assert sections["table6"]["image"] == "96x48"
    assert {"dsspn_resnet18", "deeplab_resnet18"} <= set(sections["table6"])
    assert sections["table6"]["dsspn_resnet18"]["params_M"] > sections["table6"]["deeplab_resnet18"]["params_M"]
    ddp = sections["ddp"]
    assert (ddp["backend"], ddp["world_size"], ddp["params_in_sync"]) == ("gloo", 2, True)
    assert ddp["train_steps"] == 2 and "best.pt" in ddp["train_outputs"]

    table = (tmp_path / "gpu_check.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| check")]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == list(sections)
    assert all(" | yes | " in row for row in rows)
    assert table in result.stdout


def test_cuda_without_a_gpu_is_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the check itself runs")
    result = run("--device", "cuda", "--out", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("error: --device cuda: torch sees no CUDA device") and result.stderr.count("\n") == 1
    assert not (tmp_path / "gpu_check.json").exists()

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Set before torch is imported, and inherited by the CLI processes the tests start. Idle OpenMP threads sleep:
# spinning ones burn CPU that the other tests (and the other users of a small shared machine) need, for the same
# results.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # Parallel workers (`make test` runs pytest-xdist): each worker gets its share of the cores; two workers with two
    # OpenMP threads each on two cores contend and run slower than with one each.
    _share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))

import pytest

from hierseg.taxonomy.authoring.build import build_artifact
from hierseg.taxonomy.authoring.wordnet import load_wordnet

# The files whose tests run the CLI end to end (training, building trees, starting processes): 20-50 s a test on two
# shared cores. Parallel workers take files in collection order (`make test`: --no-loadscope-reorder), so these go
# first and the cheap files fill in behind them, instead of one of them starting last and running alone.
LONG_FILES = ("cli/test_byod_cli.py", "test_gpu_check.py", "cli/test_run_faults_cli.py", "cli/test_os_faults_cli.py",
              "taxonomy/test_extend.py", "cli/test_train_cli.py", "test_imports.py", "cli/test_models_cli.py",
              "evaluation/test_score.py", "engine/test_distributed.py", "test_wheel.py")


def pytest_collection_modifyitems(config, items):
    if not config.getoption("numprocesses", None):
        return
    tests = Path(__file__).resolve().parent

    def rank(item) -> int:
        path = Path(str(item.path)).resolve()
        rel = path.relative_to(tests).as_posix() if path.is_relative_to(tests) else ""
        return LONG_FILES.index(rel) if rel in LONG_FILES else len(LONG_FILES)

    items.sort(key=rank)  # stable: every file's tests keep their order


@pytest.fixture(scope="session")
def wordnet():
    """Real WordNet 3.0 (installed by `make test`); never skipped."""
    return load_wordnet()


@pytest.fixture(scope="session")
def artifact(wordnet):
    return build_artifact(wordnet=wordnet)


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point, as a user would."""
    return subprocess.run([sys.executable, "-m", "hierseg.cli.main", *args], capture_output=True, text=True, cwd=cwd)


# Real faulty file systems (tmpfs mounts, for root with mount rights; the fixtures skip elsewhere, and the same
# faults are also covered with monkeypatched OSErrors). As root, permission bits do not stop a write, so chmod
# cannot make a folder read-only: a read-only mount can.


def _mount(target: Path, options: str) -> bool:
    import os

    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
                          capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def read_only_dir(tmp_path_factory):
    """A folder ``sub`` on a read-only file system."""
    target = tmp_path_factory.mktemp("fs") / "ro"
    if not _mount(target, "size=1m"):
        pytest.skip("cannot mount a read-only tmpfs here (needs root with mount rights)")
    try:
        (target / "sub").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(target)], check=True, capture_output=True)
        yield target / "sub"
    finally:
        subprocess.run(["umount", str(target)], capture_output=True)


@pytest.fixture(scope="session")
def full_dir(tmp_path_factory):
    """A folder ``sub`` on a 256 KiB file system filled to the last byte: every write fails with ENOSPC."""
    target = tmp_path_factory.mktemp("fs") / "full"
    if not _mount(target, "size=256k"):
        pytest.skip("cannot mount a tmpfs here (needs root with mount rights)")
    try:
        (target / "sub").mkdir()
        try:
            with open(target / "filler", "wb", buffering=0) as handle:
                while True:
                    handle.write(b"\0" * 4096)
        except OSError:
            pass
        yield target / "sub"
    finally:
        subprocess.run(["umount", str(target)], capture_output=True)

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hierseg.taxonomy.build import build_artifact
from hierseg.taxonomy.wordnet import load_wordnet


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

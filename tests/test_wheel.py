"""A real install: build the wheel, install it into a fresh virtualenv, load the shipped tree from site-packages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

import hierseg

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "hierseg", "taxonomy", "cli", "data")


def _site_dirs() -> list[str]:
    """Where this test environment's packages live (its own site-packages and any it reaches through .pth files)."""
    return [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    # Build from a copy: an in-tree build would leave build/ and *.egg-info/ in the checkout.
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        item = REPO / name
        if item.is_dir():
            shutil.copytree(item, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(item, src / name)
    dist = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir",
                    str(dist), str(src)], check=True, capture_output=True, text=True)
    wheel = next(dist.glob("hierseg-*.whl"))
    env = tmp / "env"
    venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(env)
    python = env / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # torch, numpy, ... come from the test environment; hierseg itself only from the wheel.
    (site / "test-env.pth").write_text("\n".join(_site_dirs()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, text=True)
    return tmp


def test_wheel_holds_the_artifacts_under_hierseg_only(installed):
    wheel = next((installed / "dist").glob("hierseg-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert all(n.startswith(("hierseg/", f"hierseg-{hierseg.__version__}.dist-info/")) for n in names), \
        [n for n in names if not n.startswith("hierseg")]
    assert "hierseg/artifacts/taxonomy/dsspn359.json" in names
    maps = {f"hierseg/artifacts/label_maps/{d}.csv" for d in ("coco_stuff", "ade20k", "cityscapes", "mapillary")}
    assert maps <= set(names)
    assert "hierseg/taxonomy/specs/merge.yaml" in names and "hierseg/cli/main.py" in names
    shipped = zipfile.ZipFile(wheel).read("hierseg/artifacts/taxonomy/dsspn359.json")
    assert shipped == (REPO / "data" / "taxonomy" / "dsspn359.json").read_bytes()


def test_installed_package_loads_its_tree_and_label_maps(installed):
    env = installed / "env"
    code = ("import hierseg, hierseg.taxonomy.tree as t, importlib.util as u; from hierseg.taxonomy import Taxonomy; "
            "tax = Taxonomy.load(); print(len(tax), tax.max_depth); print(hierseg.__file__); print(t.DEFAULT_ARTIFACT); "
            "print(t.REPO_ROOT); print(u.find_spec('taxonomy'), u.find_spec('cli')); "
            "print(t.shipped_label_map('cityscapes').splitlines()[0])")
    out = subprocess.run([str(env / "bin" / "python"), "-c", code], check=True, capture_output=True, text=True,
                         cwd=installed).stdout.splitlines()
    assert out[0] == "359 5"
    site = str(env / "lib")
    assert out[1].startswith(site) and out[2].startswith(site)
    assert out[2].endswith("hierseg/artifacts/taxonomy/dsspn359.json")
    assert out[3] == "None"  # not a checkout
    assert out[4] == "None None"  # no top-level taxonomy or cli module
    assert out[5] == "dataset_id,name,concept,concept_path,ignore,evaluated"


def test_installed_console_script_runs(installed):
    env = installed / "env"
    result = subprocess.run([str(env / "bin" / "hierseg"), "taxonomy", "stats", "--format", "json"],
                            capture_output=True, text=True, cwd=installed)
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["concepts"] == 359 and stats["datasets"]["cityscapes"]["labels"] == 28  # polegroup is a pole
    # building needs a place to write: never site-packages by default
    result = subprocess.run([str(env / "bin" / "hierseg"), "taxonomy", "build"], capture_output=True, text=True,
                            cwd=installed)
    assert result.returncode == 2 and result.stderr.startswith("error: hierseg is installed, not run from a checkout")
    assert "Traceback" not in result.stderr

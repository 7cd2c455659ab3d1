"""Every module of the package imports on its own, in an interpreter that has imported no other hierseg module:
no import cycle, no module that works only because another one happened to be imported first. And every package
folder is one the wheel ships."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = (ROOT / "pyproject.toml").read_text()  # [tool.setuptools] (tomllib is Python 3.11+; we support 3.10)
PACKAGE_DIRS = dict(re.findall(r'"([\w.]+)" = "([\w./]+)"', re.search(r"^package-dir = \{(.*)\}$", PYPROJECT, re.M)[1]))
PACKAGES = set(re.findall(r'"([\w.]+)"', re.search(r"^packages = \[(.*?)\]", PYPROJECT, re.M | re.S)[1]))

# Import the third-party libraries once, then fork a child per hierseg module: each child imports that module (and
# whatever it imports) from scratch, at the cost of a fork rather than of importing torch again.
SCRIPT = r"""
import importlib, json, os, sys, traceback
for lib in ("numpy", "torch", "torchvision", "timm", "PIL.Image", "networkx", "yaml", "pydantic", "typer", "rich"):
    try:
        importlib.import_module(lib)
    except ImportError:
        pass
assert not any(m == "hierseg" or m.startswith("hierseg.") for m in sys.modules)
failed = {}
for name in json.loads(sys.argv[1]):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(name)
            code = 0
        except BaseException:
            os.write(write, traceback.format_exc().encode()[-2000:])
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    if status:
        failed[name] = message or f"exit status {status}"
print(json.dumps(failed))
"""


def module_names() -> list[str]:
    names = []
    for package, folder in PACKAGE_DIRS.items():
        if package != "hierseg" and (ROOT / folder).is_relative_to(ROOT / PACKAGE_DIRS["hierseg"]):
            continue  # hierseg/<name>, found through hierseg itself
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join((package, *parts)))
    return names


def test_the_module_list_is_complete():
    names = module_names()
    assert {"hierseg.engine.train", "hierseg.models.outputs.leaves", "hierseg.taxonomy.tree", "hierseg.cli.main",
            "hierseg.core.io", "hierseg.artifacts"} <= set(names)
    assert len(names) == len(set(names))


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_every_module_imports_alone():
    result = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(module_names())], capture_output=True, text=True,
                            cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {}


def test_every_package_folder_ships_in_the_wheel():
    found = {".".join((package, *init.parent.relative_to(ROOT / folder).parts))
             for package, folder in PACKAGE_DIRS.items() for init in (ROOT / folder).rglob("__init__.py")}
    assert found == PACKAGES

"""A config goes through the one YAML loader: a second ``optim:`` block (which silently trained at lr 5.0) and an
alias are refused naming the line, ``!!python/`` tags never construct anything, and ``steps: true`` or
``lr_head: true`` is not taken as the number 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from hierseg.core.errors import HiersegError
from hierseg.engine.config import load_config

BASE = """model: {name: deeplab_resnet18}
data:
  datasets: [{name: cityscapes, root: data/cityscapes}]
schedule: {steps: 10}
optim: {lr_head: 0.01}
output: {dir: run}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_the_base_config_loads(tmp_path):
    assert load_config(write(tmp_path, BASE)).optim.lr_head == 0.01


@pytest.mark.parametrize(("extra", "expected"), [
    ("optim: {lr_head: 5.0}\n", "line 7: not valid YAML (key 'optim' given twice (first on line 5))"),
    ("run: &r {seed: 1}\ninit: *r\n", "line 8: not valid YAML (alias *r is not accepted"),
    ("run: !!python/object/apply:os.system ['true']\n", "line 7: not valid YAML (tag !!python/object/apply:os.system"),
])
def test_repeats_aliases_and_tags_are_refused_with_the_line(tmp_path, extra, expected):
    path = write(tmp_path, BASE + extra)
    with pytest.raises(HiersegError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: {expected}")


@pytest.mark.parametrize(("override", "expected"), [
    ("schedule.steps=true", "schedule.steps: expected a whole number, not true"),
    ("optim.lr_head=true", "optim.lr_head: expected a number, not true"),
    ("data.datasets.0.batch_size=false", "data.datasets.0.batch_size: expected a whole number, not false"),
    ("run.seed=!!python/name:os.getpid", "--set run.seed: value '!!python/name:os.getpid' is not valid YAML"),
])
def test_booleans_are_not_numbers(tmp_path, override, expected):
    with pytest.raises(HiersegError, match="^.*" + expected.replace(".", "\\.").replace("(", "\\(").replace("!", "!")):
        load_config(write(tmp_path, BASE), [override])
    assert load_config(write(tmp_path, BASE), ["run.compile=true"]).run.compile is True  # a boolean field is fine

"""The official layouts, laid out by hand with the files each release keeps beside its labels: the readers and the
label tools (``hierseg labels stats | remap``) read exactly the layout's label files, through one declaration."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hierseg.data.layouts import locate, split_labels
from hierseg.data.readers import official
from hierseg.taxonomy import HiersegError, Taxonomy, translation
from hierseg.taxonomy.annotations import read_label
from tests.conftest import run_cli
from tests.data import official_layouts as lay

BOOKKEEPING = {"remap_manifest.json", ".hierseg.lock"}  # what made each output; one remap at a time


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def expected_counts(labels: dict[str, np.ndarray], ids: list[int]) -> dict[int, int]:
    total = np.bincount(np.concatenate([a.ravel() for a in labels.values()]), minlength=256)
    return {i: int(total[i]) for i in ids}


@pytest.fixture()
def city(tmp_path):
    root = tmp_path / "cityscapes"
    val = lay.cityscapes(root, "val", train_ids_only=("lindau_000002_000019",))
    lay.cityscapes(root, "train", samples=("aachen_000000_000019",), seed=5)
    return root, val


def test_split_labels_read_only_the_layouts_label_files(city, tmp_path):
    root, val = city
    assert {str(p.relative_to(root)) for p in split_labels("cityscapes", root, "val")} == set(val)
    assert locate("cityscapes", root / "gtFine" / "val") == (root, "val")
    assert locate("cityscapes", root, "train") == (root, "train")
    m = tmp_path / "vistas"
    read = lay.mapillary(m, "validation")
    assert locate("mapillary", m / "validation") == (m, "validation")
    assert locate("mapillary", m / "validation" / "v1.2" / "labels") == (m, "validation")
    assert {str(p.relative_to(m)) for p in split_labels("mapillary", m, "validation")} == set(read)
    with pytest.raises(HiersegError, match="a cityscapes root; choose a split with --split"):
        locate("cityscapes", root)
    with pytest.raises(HiersegError, match="neither a mapillary root nor the label folder of a split"):
        locate("mapillary", m / "validation" / "v2.0")


def test_readers_pair_train_ids_where_label_ids_are_missing(city):
    root, val = city
    data = official("cityscapes", root, "val")
    assert not data.problems and len(data) == 3
    by_name = {pair.label.name: data.load(pair)[1] for pair in data.pairs}
    for rel, expected in val.items():
        np.testing.assert_array_equal(by_name[Path(rel).name], expected)
    assert any(name.endswith("_labelTrainIds.png") for name in by_name)


def test_bad_train_id_names_the_file(city):
    root, _ = city
    path = root / "gtFine/val/lindau/lindau_000002_000019_gtFine_labelTrainIds.png"
    Image.fromarray(np.full((16, 24), 50, np.uint8)).save(path)
    data = official("cityscapes", root, "val")
    with pytest.raises(HiersegError, match=r"lindau_000002_000019_gtFine_labelTrainIds.png: value 50 is not a "
                                           r"cityscapes trainId"):
        data.load(next(p for p in data.pairs if p.label == path))


def test_labels_stats_on_cityscapes_root_and_split_folder(city):
    root, val = city
    by_root = run_cli("labels", "stats", "--dataset", "cityscapes", str(root), "--split", "val", "--format", "json")
    assert by_root.returncode == 0, by_root.stderr
    by_folder = run_cli("labels", "stats", "--dataset", "cityscapes", str(root / "gtFine" / "val"), "--format", "json")
    assert by_folder.returncode == 0, by_folder.stderr
    a, b = json.loads(by_root.stdout), json.loads(by_folder.stdout)
    assert a["labels"] == b["labels"] and a["images"] == 3
    counts = expected_counts(val, [row["id"] for row in a["labels"]])
    assert {row["id"]: row["pixels"] for row in a["labels"]} == counts
    result = run_cli("labels", "stats", "--dataset", "cityscapes", str(root))
    assert result.returncode == 2 and result.stderr.strip().endswith("choose a split with --split (train, val)")
    assert len(result.stderr.strip().splitlines()) == 1
    result = run_cli("labels", "stats", "--dataset", "cityscapes", str(root), "--split", "test")
    assert result.returncode == 2 and "gtFine/test: no such annotation folder" in result.stderr


def test_labels_remap_mirrors_the_label_files_only(city, tmp_path):
    root, val = city
    out = tmp_path / "out"
    result = run_cli("labels", "remap", "--from", "cityscapes", "--to", "mapillary", str(root), str(out),
                     "--split", "val")
    assert result.returncode == 0, result.stderr
    assert files_under(out) == set(val) | BOOKKEEPING
    table = translation(Taxonomy.load(), "cityscapes", "mapillary")
    for rel, label in val.items():
        np.testing.assert_array_equal(read_label(out / rel), table.apply(label)[0])
    # a split folder: paths relative to it
    out2 = tmp_path / "out2"
    result = run_cli("labels", "remap", "--from", "cityscapes", "--to", "tree", str(root / "gtFine" / "val"), str(out2))
    assert result.returncode == 0, result.stderr
    assert files_under(out2) == {str(Path(rel).relative_to("gtFine/val")) for rel in val} | BOOKKEEPING


def test_mapillary_ade20k_coco_stuff_with_their_extras(tmp_path):
    m, a, c = tmp_path / "vistas", tmp_path / "ade", tmp_path / "coco"
    cases = [("mapillary", m, lay.mapillary(m, "validation"), ["validation"]),
             ("ade20k", a, lay.ade20k(a, "validation"), ["--split", "validation"]),
             ("coco_stuff", c, lay.coco_stuff(c, "val2017"), ["--split", "val2017"])]
    lay.mapillary(m, "training", keys=("zz",), seed=9)
    lay.ade20k(a, "training", n=1)
    lay.coco_stuff(c, "train2017", names=(9,))
    for dataset, root, read, where in cases:
        args = [str(root / where[0])] if len(where) == 1 else [str(root), *where]
        result = run_cli("labels", "stats", "--dataset", dataset, *args, "--format", "json")
        assert result.returncode == 0, (dataset, result.stderr)
        stats = json.loads(result.stdout)
        assert stats["images"] == len(read)
        assert {r["id"]: r["pixels"] for r in stats["labels"]} == expected_counts(read, [r["id"] for r in stats["labels"]])
        out = tmp_path / f"out_{dataset}"
        result = run_cli("labels", "remap", "--from", dataset, "--to", "tree", *args, str(out))
        assert result.returncode == 0, (dataset, result.stderr)
        assert files_under(out) == {os.path.relpath(root / rel, args[0]) for rel in read} | BOOKKEEPING
        split = where[-1]
        data = official(dataset, root, split)
        assert not data.problems and len(data) == len(read)


def test_glob_reads_a_plain_folder(tmp_path):
    src = tmp_path / "plain"
    src.mkdir()
    Image.fromarray(np.array([[24, 65]], np.uint8)).save(src / "a.png")
    (src / "notes.txt").write_text("not a label")
    result = run_cli("labels", "stats", "--dataset", "mapillary", str(src), "--glob", "*.png", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["images"] == 1
    result = run_cli("labels", "stats", "--dataset", "mapillary", str(src))
    assert result.returncode == 2 and "--glob PATTERN" in result.stderr
    result = run_cli("labels", "stats", "--dataset", "mapillary", str(src), "--glob", "*.jpg")
    assert result.returncode == 2 and "no files match --glob '*.jpg'" in result.stderr
    result = run_cli("labels", "remap", "--from", "tree", "--to", "mapillary", str(src), str(tmp_path / "o"))
    assert result.returncode == 2 and "'tree' has no official layout" in result.stderr

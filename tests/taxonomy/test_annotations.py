"""Folder remap and folder statistics on real PNG files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hierseg.taxonomy import HiersegError, Taxonomy, load_spec
from hierseg.taxonomy.annotations import read_label
from hierseg.taxonomy.authoring.export import export_lut
from hierseg.taxonomy.authoring.labelstats import folder_stats, stats_frames
from hierseg.taxonomy.authoring.remap import remap_folder
from hierseg.taxonomy.neurons import NeuronGraph
from hierseg.taxonomy.translate import translation
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def graph() -> NeuronGraph:
    return NeuronGraph(Taxonomy.load())


def blobs(rng: np.random.Generator, values: list[int], shape: tuple[int, int]) -> np.ndarray:
    """A label map of rectangles of the given values over a background of the first one."""
    label = np.full(shape, values[0], dtype=np.uint8)
    for value in values[1:]:
        y, x = rng.integers(0, shape[0] - 8), rng.integers(0, shape[1] - 8)
        label[y:y + rng.integers(4, shape[0] // 2), x:x + rng.integers(4, shape[1] // 2)] = value
    return label


def write_folder(root: Path, n: int, shape=(48, 64), seed=0, palette_every=3) -> dict[Path, np.ndarray]:
    """Mapillary-id label PNGs in nested folders; some are palette PNGs, as Mapillary ships them."""
    rng = np.random.default_rng(seed)
    ids = list(load_spec("mapillary").ids) + [65]
    labels = {}
    for i in range(n):
        rel = Path(f"city{i % 3}") / f"img{i:04d}.png"
        label = blobs(rng, [int(v) for v in rng.choice(ids, size=5)], shape)
        image = Image.fromarray(label, mode="L")
        if i % palette_every == 0:
            image = image.convert("P")
            image.putpalette([c for v in range(256) for c in (v, 255 - v, (7 * v) % 256)])
            image.frombytes(label.tobytes())
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        image.save(root / rel)
        labels[rel] = label
    return labels


@pytest.mark.parametrize("workers", [1, 2])
def test_remap_equals_np_take_per_file(tmp_path, graph, workers):
    labels = write_folder(tmp_path / "src", 9)
    table = translation(graph.taxonomy, "mapillary", "cityscapes")
    report = remap_folder(table, tmp_path / "src", tmp_path / "dst", workers=workers)
    assert (report.files, report.written, report.skipped) == (9, 9, 0)
    lut = export_lut(table)
    for rel, label in labels.items():
        assert np.array_equal(read_label(tmp_path / "src" / rel), label)  # palette PNGs read as indices
        out = read_label(tmp_path / "dst" / rel)
        assert out.dtype == np.uint8 and np.array_equal(out, np.take(lut, label)), rel


def test_remap_to_tree_writes_16_bit_concept_indices(tmp_path, graph):
    labels = write_folder(tmp_path / "src", 2)
    remap_folder(translation(graph.taxonomy, "mapillary", "tree"), tmp_path / "src", tmp_path / "dst")
    for rel, label in labels.items():
        out = read_label(tmp_path / "dst" / rel)
        assert out.dtype == np.uint16
        road = label == load_spec("mapillary").ids[[lb.name for lb in load_spec("mapillary").labels].index(
            "construction--flat--road")]
        assert (out[road] == graph.concept_index["road_surface"]).all()
        assert (out[label == 65] == 65535).all()


def test_remap_skips_finished_files_and_clears_stale_temporaries(tmp_path, graph):
    write_folder(tmp_path / "src", 4)
    table = translation(graph.taxonomy, "mapillary", "cityscapes")
    remap_folder(table, tmp_path / "src", tmp_path / "dst")
    done = tmp_path / "dst" / "city0" / "img0000.png"
    stamp = done.stat().st_mtime_ns
    (tmp_path / "dst" / "city1" / "img0001.png").unlink()
    stale = tmp_path / "dst" / "city1" / ".img0001.png.abc123.tmp"
    stale.write_bytes(b"half")
    report = remap_folder(table, tmp_path / "src", tmp_path / "dst")
    assert (report.written, report.skipped) == (1, 3)
    assert done.stat().st_mtime_ns == stamp and not stale.exists()


def test_remap_rejects_an_undefined_value_with_the_file_name(tmp_path, graph):
    write_folder(tmp_path / "src", 3)
    bad = np.zeros((8, 8), np.uint8)
    bad[2, 3] = 200
    Image.fromarray(bad).save(tmp_path / "src" / "city1" / "bad.png")
    table = translation(graph.taxonomy, "mapillary", "cityscapes")
    with pytest.raises(HiersegError, match=r"city1/bad\.png: value 200 is not a mapillary label id"):
        remap_folder(table, tmp_path / "src", tmp_path / "dst")
    assert not (tmp_path / "dst" / "city1" / "bad.png").exists()
    report = remap_folder(table, tmp_path / "src", tmp_path / "dst2", unknown="ignore")
    assert report.unknown_pixels == {"city1/bad.png": 1}
    assert read_label(tmp_path / "dst2" / "city1" / "bad.png")[2, 3] == 0  # Cityscapes' ignore


def test_remap_rejects_rgb_labels_and_same_folder(tmp_path, graph):
    (tmp_path / "src").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "src" / "rgb.png")
    table = translation(graph.taxonomy, "mapillary", "cityscapes")
    with pytest.raises(HiersegError, match="rgb.png: label PNG has mode RGB"):
        remap_folder(table, tmp_path / "src", tmp_path / "dst")
    with pytest.raises(HiersegError, match="destination is the source folder"):
        remap_folder(table, tmp_path / "src", tmp_path / "src")


def test_remap_survives_being_killed_and_rerun(tmp_path, graph):
    labels = write_folder(tmp_path / "src", 600, shape=(96, 128), palette_every=10**9)
    dst = tmp_path / "dst"
    cmd = [sys.executable, "-m", "hierseg.cli.main", "labels", "remap", "--from", "mapillary", "--to", "cityscapes",
           str(tmp_path / "src"), str(dst), "--glob", "*.png"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (dst.is_dir() and len(list(dst.rglob("*.png"))) >= 20) and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = list(dst.rglob("img*.png"))
    assert 20 <= len(written) < len(labels), "the run must be killed part-way"
    lut = export_lut(translation(graph.taxonomy, "mapillary", "cityscapes"))
    for path in written:  # every file that exists is whole
        assert np.array_equal(read_label(path), np.take(lut, labels[path.relative_to(dst)]))
    result = run_cli(*cmd[3:])
    assert result.returncode == 0, result.stderr
    assert f"{len(written)} already done" in result.stdout
    for rel, label in labels.items():
        assert np.array_equal(read_label(dst / rel), np.take(lut, label))
    assert not list(dst.rglob("*.tmp"))


def test_folder_stats_counts_pixels_images_and_activated_neurons(tmp_path, graph):
    c = {label.name: label.id for label in load_spec("cityscapes").labels}
    maps = {
        "a.png": np.full((4, 5), c["road"], np.uint8),
        "b.png": np.array([[c["road"]] * 5] * 2 + [[c["car"]] * 5] * 2, np.uint8),
        "c.png": np.array([[0] * 5] * 3 + [[c["sky"]] * 5], np.uint8),
    }
    for name, label in maps.items():
        Image.fromarray(label).save(tmp_path / name)
    stats = folder_stats(graph, "cityscapes", tmp_path, batch_size=3)
    labels = {row["name"]: row for row in stats["labels"]}
    assert stats["images"] == 3 and stats["pixels"] == 60
    assert (labels["road"]["pixels"], labels["road"]["images"]) == (30, 2)
    assert (labels["car"]["pixels"], labels["unlabeled"]["pixels"], labels["sky"]["pixels"]) == (10, 15, 5)
    concepts = {row["concept"]: row for row in stats["concepts"]}
    assert concepts["entity"]["pixels"] == 45 and concepts["entity"]["images"] == 3

    tax = graph.taxonomy

    def on(*concepts: str) -> set[str]:  # neurons strictly above the concepts, read off the tree
        return {a for cid in concepts for a in tax.ancestors(cid) if len(tax.children(a)) >= 2}

    per_image = [len(on("road")), len(on("road", "car")), len(on("sky_stuff"))]
    assert stats["activated_neurons_per_image"]["max"] == max(per_image)
    assert stats["activated_neurons_per_image"]["mean"] == round(sum(per_image) / 3, 3)
    assert stats["activated_neurons_per_batch"]["max"] == len(on("road", "car", "sky_stuff"))

    frames = stats_frames(stats)  # the same tables for a notebook, indexed by label id and by concept
    assert frames["labels"].loc[c["road"], ["name", "pixels", "images"]].tolist() == ["road", 30, 2]
    assert frames["labels"].pixels.sum() == stats["pixels"] and frames["labels"].pixel_freq.sum() == pytest.approx(1)
    assert frames["concepts"].loc["entity", "pixels"] == 45
    assert stats_frames({**stats, "concepts": []})["concepts"].empty  # a folder of ignore pixels only

    Image.fromarray(np.array([[40]], np.uint8)).save(tmp_path / "d.png")
    with pytest.raises(HiersegError, match=r"d\.png: value 40 is not a cityscapes label id"):
        folder_stats(graph, "cityscapes", tmp_path)

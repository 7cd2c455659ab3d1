"""Remap records what made each output: another translation, a changed source or an ignore-mapped output is
refused (or redone with overwrite), DST inside SRC is refused, one remap writes a folder at a time (two real
processes), and SIGTERM to a two-worker remap ends with one line and no process left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hierseg.core.io import LOCK_NAME
from hierseg.taxonomy import HiersegError, Taxonomy, load_spec
from hierseg.taxonomy.annotations import read_label
from hierseg.taxonomy.authoring.export import export_lut
from hierseg.taxonomy.authoring.remap import remap_folder
from hierseg.taxonomy.authoring.remap_manifest import MANIFEST
from hierseg.taxonomy.translate import translation
from tests.taxonomy.test_annotations import write_folder


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return Taxonomy.load()


def city(*names: str) -> list[int]:
    ids = {label.name: label.id for label in load_spec("cityscapes").labels}
    return [ids[n] for n in names]


def write_labels(src: Path, values: list[int]) -> None:
    src.mkdir(parents=True, exist_ok=True)
    for i, value in enumerate(values):
        Image.fromarray(np.full((8, 8), value, np.uint8)).save(src / f"{i}.png")


def test_manifest_records_the_translation_and_every_source(tmp_path, taxonomy):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_labels(src, city("road", "car", "sky"))
    report = remap_folder(translation(taxonomy, "cityscapes", "mapillary"), src, dst)
    assert report.written == 3
    manifest = json.loads((dst / MANIFEST).read_text())
    assert (manifest["format"], manifest["source"], manifest["target"]) == ("hierseg-remap-manifest/1", "cityscapes",
                                                                            "mapillary")
    assert manifest["tool"].startswith("hierseg ") and len(manifest["table"]) == 64
    for i in range(3):
        info, out = os.stat(src / f"{i}.png"), os.stat(dst / f"{i}.png")
        assert manifest["files"][f"{i}.png"] == {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "undefined": 0,
                                                 "output": {"size": out.st_size, "mtime_ns": out.st_mtime_ns}}
    assert sorted(p.name for p in dst.iterdir()) == sorted([LOCK_NAME, MANIFEST, "0.png", "1.png", "2.png"])
    assert remap_folder(translation(taxonomy, "cityscapes", "mapillary"), src, dst).skipped == 3


def test_another_translation_is_refused_or_redone(tmp_path, taxonomy):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_labels(src, city("road", "car"))
    remap_folder(translation(taxonomy, "cityscapes", "mapillary"), src, dst)
    to_ade = translation(taxonomy, "cityscapes", "ade20k")
    before = (dst / "1.png").read_bytes()
    with pytest.raises(HiersegError, match=r"dst: was remapped by another translation \(cityscapes -> mapillary, now "
                                           r"cityscapes -> ade20k;"):
        remap_folder(to_ade, src, dst)
    assert (dst / "1.png").read_bytes() == before  # nothing touched
    report = remap_folder(to_ade, src, dst, overwrite=True)
    assert report.written == 2 and report.skipped == 0
    lut = export_lut(to_ade)
    assert np.array_equal(read_label(dst / "1.png"), np.take(lut, read_label(src / "1.png")))
    assert json.loads((dst / MANIFEST).read_text())["target"] == "ade20k"


def test_a_changed_source_is_refused_or_redone_alone(tmp_path, taxonomy):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_labels(src, city("road", "car", "sky"))
    table = translation(taxonomy, "cityscapes", "mapillary")
    remap_folder(table, src, dst)
    Image.fromarray(np.full((8, 8), city("person")[0], np.uint8)).save(src / "1.png")
    with pytest.raises(HiersegError, match=r"src/1\.png: changed since its output was written; pass --overwrite"):
        remap_folder(table, src, dst)
    report = remap_folder(table, src, dst, overwrite=True)
    assert (report.written, report.skipped) == (1, 2)
    assert np.array_equal(read_label(dst / "1.png"), np.take(export_lut(table), read_label(src / "1.png")))


def test_outputs_with_ignored_undefined_values_do_not_pass_a_strict_rerun(tmp_path, taxonomy):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_labels(src, [*city("road"), 200])
    table = translation(taxonomy, "cityscapes", "mapillary")
    assert remap_folder(table, src, dst, unknown="ignore").unknown_pixels == {"1.png": 64}
    with pytest.raises(HiersegError, match=r"1\.png: its output maps 64 undefined pixels to ignore"):
        remap_folder(table, src, dst)
    assert remap_folder(table, src, dst, unknown="ignore").skipped == 2


def test_unrecorded_outputs_need_overwrite_and_dst_inside_src_is_refused(tmp_path, taxonomy):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_labels(src, city("road", "car"))
    table = translation(taxonomy, "cityscapes", "mapillary")
    write_labels(dst, [1, 1])  # files no manifest describes (someone else's, or an old version's)
    with pytest.raises(HiersegError, match=r"dst: holds 2 label PNG\(s\) that no remap manifest describes"):
        remap_folder(table, src, dst)
    assert remap_folder(table, src, dst, overwrite=True).written == 2
    with pytest.raises(HiersegError, match="destination lies inside the source folder"):
        remap_folder(table, src, src / "remapped")
    assert not (src / "remapped").exists()


def test_an_output_changed_after_it_was_written_is_not_vouched_for(tmp_path, taxonomy):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_labels(src, city("road", "car"))
    table = translation(taxonomy, "cityscapes", "mapillary")
    remap_folder(table, src, dst)
    expected = read_label(dst / "1.png")
    with open(dst / "1.png", "r+b") as handle:  # truncated after the manifest recorded it
        handle.truncate(20)
    with pytest.raises(HiersegError, match=r"1.png: its output .*1.png was changed or truncated after remap wrote it"):
        remap_folder(table, src, dst)
    report = remap_folder(table, src, dst, overwrite=True)
    assert (report.written, report.skipped) == (1, 1) and np.array_equal(read_label(dst / "1.png"), expected)


def test_a_damaged_manifest_entry_is_one_line_and_overwrite_redoes_it(tmp_path, taxonomy):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_labels(src, city("road", "car"))
    table = translation(taxonomy, "cityscapes", "mapillary")
    remap_folder(table, src, dst)
    manifest = json.loads((dst / MANIFEST).read_text())
    manifest["files"]["0.png"] = "fine"
    (dst / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(HiersegError, match=r"remap_manifest.json: entry '0.png' is not a remap record") as info:
        remap_folder(table, src, dst)
    assert "\n" not in str(info.value)
    assert remap_folder(table, src, dst, overwrite=True).written == 2


def test_src_inside_dst_and_linked_sub_folders_are_refused(tmp_path, taxonomy):
    table = translation(taxonomy, "cityscapes", "mapillary")
    dst = tmp_path / "dst"
    write_labels(dst / "src", city("road"))
    before = (dst / "src" / "0.png").read_bytes()
    for overwrite in (False, True):
        with pytest.raises(HiersegError, match="the source lies inside the destination folder"):
            remap_folder(table, dst / "src", dst, overwrite=overwrite)
    assert (dst / "src" / "0.png").read_bytes() == before
    # a sub-folder of DST that links elsewhere: nothing is written (or deleted) through it
    src, outside = tmp_path / "src", tmp_path / "outside"
    write_labels(src / "sub", city("road", "car"))
    outside.mkdir()
    (tmp_path / "dst2").mkdir()
    (tmp_path / "dst2" / "sub").symlink_to(outside)
    with pytest.raises(HiersegError, match="sub: is a symbolic link inside the output folder"):
        remap_folder(table, src, tmp_path / "dst2")
    assert not any(outside.iterdir())


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "hierseg.cli.main", "labels", "remap", "--glob", "*.png", *args]


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"hung for {timeout} s")


def test_concurrent_remaps_into_one_folder(tmp_path):
    labels = write_folder(tmp_path / "src", 300, shape=(96, 128), palette_every=10**9)
    args = cli("--from", "mapillary", "--to", "cityscapes", str(tmp_path / "src"), str(tmp_path / "dst"))
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True) for _ in range(3)]
    results = [finish(p) for p in procs]
    assert all("Traceback" not in err for _, err in results), results
    codes = [p.returncode for p in procs]
    assert 0 in codes and set(codes) <= {0, 2}, results
    pids = {p.pid for p in procs}
    for proc, (_, err) in zip(procs, results, strict=True):
        if proc.returncode == 2:
            assert "in use by another hierseg labels remap (PID " in err
            assert int(err.split("(PID ")[1].split(",")[0]) in pids - {proc.pid}
    assert len(list((tmp_path / "dst").rglob("*.png"))) == len(labels)
    assert not list((tmp_path / "dst").rglob("*.tmp"))


def test_sigterm_to_a_two_worker_remap_is_one_line(tmp_path):
    write_folder(tmp_path / "src", 400, shape=(192, 256), palette_every=10**9)
    dst = tmp_path / "dst"
    proc = subprocess.Popen(cli("--from", "mapillary", "--to", "cityscapes", "--workers", "2", str(tmp_path / "src"),
                                str(dst)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while not (dst.is_dir() and len(list(dst.rglob("*.png"))) >= 10) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGTERM)  # main process and workers alike, as a service manager does
    _, err = finish(proc)
    assert proc.returncode == 143, err
    assert err.strip().splitlines() == ["interrupted by SIGTERM"]
    time.sleep(1)
    assert subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True).stdout == b""  # no worker left
    finished = list(dst.rglob("*.png"))  # whole files only: a worker terminated mid-write leaves a temporary
    assert 10 <= len(finished) < 400
    # a re-run completes it: outputs written after the last manifest save are adopted (newer than their source),
    # temporaries of terminated workers removed
    rerun = subprocess.run(cli("--from", "mapillary", "--to", "cityscapes", str(tmp_path / "src"), str(dst)),
                           capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr
    assert f"400 files, {400 - len(finished)} written, {len(finished)} already done" in rerun.stdout
    assert len(json.loads((dst / MANIFEST).read_text())["files"]) == 400 and not list(dst.rglob("*.tmp"))

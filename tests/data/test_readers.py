"""Readers on tiny folders built by hand in each official layout, with known ids; bad input."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hierseg.data.readers import folder, official
from hierseg.taxonomy import HiersegError, load_spec


def put_image(path: Path, h: int = 12, w: int = 16, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def put_label(path: Path, values: list[int], h: int = 12, w: int = 16, palette: bool = False) -> np.ndarray:
    """Vertical bands of the given values."""
    path.parent.mkdir(parents=True, exist_ok=True)
    label = np.repeat(np.array(values, np.uint8), -(-w // len(values)))[:w][None].repeat(h, 0)
    image = Image.fromarray(label)
    if palette:
        image = Image.frombytes("P", (w, h), label.tobytes())
        image.putpalette([c for i in range(256) for c in (i, i, i)])
    image.save(path)
    return label


def ids(dataset: str, *names: str) -> list[int]:
    by_name = {label.name: label.id for label in load_spec(dataset).labels}
    return [by_name[name] for name in names]


def test_ade20k_layout(tmp_path):
    base = tmp_path / "ADEChallengeData2016"
    put_image(base / "images/training/ADE_train_00000001.jpg")
    label = put_label(base / "annotations/training/ADE_train_00000001.png", [0, *ids("ade20k", "wall", "animal")])
    put_image(base / "images/validation/ADE_val_00000001.jpg")
    put_label(base / "annotations/validation/ADE_val_00000001.png", [1])
    data = official("ade20k", tmp_path, "training")  # the folder holding ADEChallengeData2016 works too
    assert len(data) == 1
    sample = data[0]
    assert sample["dataset"] == "ade20k" and sample["image"].shape == (12, 16, 3)
    assert np.array_equal(sample["label"], label) and set(np.unique(sample["label"])) == {0, 1, 127}
    assert len(official("ade20k", base, "validation")) == 1


def test_coco_stuff_layout(tmp_path):
    put_image(tmp_path / "images/val2017/000000000139.jpg")
    label = put_label(tmp_path / "annotations/val2017/000000000139.png", [*ids("coco_stuff", "dog", "grass"), 255])
    sample = official("coco_stuff", tmp_path, "val2017")[0]
    assert np.array_equal(sample["label"], label) and sample["path"].endswith("000000000139.jpg")


def test_cityscapes_layout_reads_all_34_label_ids(tmp_path):
    stem = "aachen_000000_000019"
    values = list(range(0, 34))
    label = put_label(tmp_path / f"gtFine/train/aachen/{stem}_gtFine_labelIds.png", values, w=34)
    put_image(tmp_path / f"leftImg8bit/train/aachen/{stem}_leftImg8bit.png", w=34)
    # instance and colour images beside the labelIds are not labels of ours
    put_label(tmp_path / f"gtFine/train/aachen/{stem}_gtFine_color.png", [1], w=34)
    data = official("cityscapes", tmp_path, "train")
    assert len(data) == 1 and data.problems == []
    assert np.array_equal(data[0]["label"], label)


def test_mapillary_layout_palette_labels(tmp_path):
    put_image(tmp_path / "training/images/abcDEF123.jpg")
    label = put_label(tmp_path / "training/v1.2/labels/abcDEF123.png",
                      [*ids("mapillary", "marking--general", "construction--flat--road"), 65], palette=True)
    put_label(tmp_path / "training/v2.0/labels/abcDEF123.png", [120])  # v2.0 ids beside it are not read
    sample = official("mapillary", tmp_path, "training")[0]
    assert np.array_equal(sample["label"], label) and 65 in sample["label"]


def test_generic_folder(tmp_path):
    (tmp_path / "labels.csv").write_text("id,name,synonyms,color,evaluated\n0,background,,,1\n1,crack,,,1\n")
    put_image(tmp_path / "images/a/x.jpg")
    label = put_label(tmp_path / "masks/a/x.png", [0, 1, 255])
    data = folder(tmp_path, tmp_path / "labels.csv", "cracks")
    assert data[0]["dataset"] == "cracks" and np.array_equal(data[0]["label"], label)


def test_bad_input_is_one_clear_line(tmp_path):
    with pytest.raises(HiersegError, match="no such dataset root"):
        official("ade20k", tmp_path / "nope", "training")
    with pytest.raises(HiersegError, match="no split 'train'"):
        official("ade20k", tmp_path, "train")
    with pytest.raises(HiersegError, match=r"images/training: missing"):
        official("ade20k", tmp_path, "training")
    put_image(tmp_path / "images/training/a.jpg")
    put_label(tmp_path / "annotations/training/b.png", [1])
    with pytest.raises(HiersegError, match=r"a\.jpg: no label \(expected .*annotations/training/a\.png\)"):
        official("ade20k", tmp_path, "training")
    put_label(tmp_path / "annotations/training/a.png", [1])
    with pytest.raises(HiersegError, match=r"b\.png: label without an image"):
        official("ade20k", tmp_path, "training")


def test_load_checks_size_values_and_decoding(tmp_path):
    put_image(tmp_path / "images/training/a.jpg")
    put_label(tmp_path / "annotations/training/a.png", [1], h=10)
    with pytest.raises(HiersegError, match=r"a\.png: label is 16x10 but its image a\.jpg is 16x12"):
        official("ade20k", tmp_path, "training")[0]
    put_label(tmp_path / "annotations/training/a.png", [1, 151])
    with pytest.raises(HiersegError, match=r"a\.png: value 151 is not a ade20k label id"):
        official("ade20k", tmp_path, "training", verify=True)
    (tmp_path / "images/training/a.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(HiersegError, match=r"a\.jpg: cannot read image"):
        official("ade20k", tmp_path, "training")[0]


def test_skip_mode_warns_counts_and_replaces_broken_samples(tmp_path):
    for stem, values in (("a", [1]), ("b", [2]), ("c", [200])):
        put_image(tmp_path / f"images/training/{stem}.jpg")
        put_label(tmp_path / f"annotations/training/{stem}.png", values)
    put_image(tmp_path / "images/training/d.jpg")  # no label
    with pytest.warns(UserWarning, match="d.jpg: no label"):
        data = official("ade20k", tmp_path, "training", on_error="skip")
    assert len(data) == 3 and len(data.problems) == 1
    with pytest.warns(UserWarning, match="value 200"):
        sample = data[2]
    assert sample["index"] == 0 and len(data.problems) == 2
    assert sample["problems"] == (data.problems[1],)  # whoever reads through workers learns of it too
    with pytest.warns(UserWarning):
        verified = official("ade20k", tmp_path, "training", on_error="skip", verify=True)
    assert len(verified) == 2 and len(verified.problems) == 2


def test_indexing_past_the_end_raises_so_iteration_ends(tmp_path):
    for stem in ("a", "b"):
        put_image(tmp_path / f"images/training/{stem}.jpg")
        put_label(tmp_path / f"annotations/training/{stem}.png", [1])
    data = official("ade20k", tmp_path, "training")
    with pytest.raises(IndexError):
        data[len(data)]
    assert data[-1]["index"] == 1
    assert [s["index"] for s in data] == [0, 1] and len(list(data)) == 2  # the old behaviour never ended


def test_a_fifo_in_a_split_is_an_error_not_a_blocked_reader(tmp_path):
    put_image(tmp_path / "images/training/a.jpg")
    put_label(tmp_path / "annotations/training/a.png", [1])
    os.mkfifo(tmp_path / "images/training/b.jpg")
    put_label(tmp_path / "annotations/training/b.png", [1])
    start = time.monotonic()
    with pytest.raises(HiersegError, match=r"b\.jpg: is a FIFO, not a regular file \(image\)"):
        official("ade20k", tmp_path, "training", verify=True)
    assert time.monotonic() - start < 10


def test_a_worker_s_broken_sample_is_the_same_one_line_error(tmp_path):
    """Through DataLoader workers the message is the one a run without workers gives (PyTorch re-creates the
    worker's exception from its formatted traceback)."""
    from torch.utils.data import DataLoader

    for stem, values in (("a", [1]), ("b", [200])):
        put_image(tmp_path / f"images/training/{stem}.jpg")
        put_label(tmp_path / f"annotations/training/{stem}.png", values)
    data = official("ade20k", tmp_path, "training")
    with pytest.raises(HiersegError) as direct:
        data[1]
    loader = DataLoader(data, batch_size=1, num_workers=2, collate_fn=lambda s: s, timeout=60)
    with pytest.raises(HiersegError) as through_workers:
        list(loader)
    assert str(through_workers.value) == str(direct.value) == \
        f"{tmp_path / 'annotations/training/b.png'}: value 200 is not a ade20k label id"

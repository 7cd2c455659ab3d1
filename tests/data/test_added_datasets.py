"""Datasets added to the tree: the PASCAL VOC 2012 layout (split lists, palette PNGs, 255 = void) read from a copy
built by hand with the files a real devkit holds beside the segmentation data, the folder reader with labels from an
extended tree, and the synthesiser writing both."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hierseg.data.layouts import layout
from hierseg.data.readers import folder, official, open_split
from hierseg.data.synth import samples, scene, synthesize
from hierseg.taxonomy import HiersegError, NeuronGraph, Taxonomy, translation
from hierseg.taxonomy.authoring.extend import extend_artifact, load_addition
from hierseg.taxonomy.specs import SPEC_DIR, dataset_spec
from tests.data.test_readers import put_image


@pytest.fixture(scope="module")
def trees(tmp_path_factory, artifact, wordnet) -> dict[str, Path]:
    """The tree extended with VOC, and with VOC plus a folder dataset that brings a new concept."""
    root = tmp_path_factory.mktemp("trees")
    (root / "mine.csv").write_text("id,name,color\n0,sea,0;0;255\n1,dolphin,200;200;200\n2,boat,255;0;0\n")
    (root / "mine.yaml").write_text(textwrap.dedent("""\
        dataset: mine
        table: mine.csv
        ignore: 255
        layout: folder
        added:
          - {id: dolphin, parent: animal_things, synset: dolphin.n.02}
        labels:
          mine: {0: sea, 1: dolphin, 2: boat}
        """))
    voc = extend_artifact(artifact, [load_addition(SPEC_DIR / "pascal_voc.yaml")], wordnet)
    both = extend_artifact(artifact, [load_addition(SPEC_DIR / "pascal_voc.yaml"), load_addition(root / "mine.yaml")],
                           wordnet, any_size=True)
    paths = {"voc": root / "voc.json", "both": root / "both.json"}
    paths["voc"].write_text(json.dumps(voc))
    paths["both"].write_text(json.dumps(both))
    return paths


def put_voc_label(path: Path, label: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.frombytes("P", (label.shape[1], label.shape[0]), label.astype(np.uint8).tobytes())
    image.putpalette([c for i in range(256) for c in ((i * 7) % 256, i, 255 - i)])
    image.save(path)


@pytest.fixture
def devkit(tmp_path) -> Path:
    """A VOC 2012 copy: two segmentation samples, and what else the devkit holds (detection-only images, instance
    masks, the Main image sets, annotations)."""
    base = tmp_path / "VOCdevkit" / "VOC2012"
    label = np.zeros((12, 16), np.uint8)
    label[3:9, 4:10], label[2, 3:11], label[:, 12:] = 15, 255, 12  # a person with a void outline, a dog
    for stem in ("2007_000032", "2007_000039"):
        put_image(base / "JPEGImages" / f"{stem}.jpg")
        put_voc_label(base / "SegmentationClass" / f"{stem}.png", label)
        put_voc_label(base / "SegmentationObject" / f"{stem}.png", (label > 0).astype(np.uint8))
    put_image(base / "JPEGImages" / "2008_000001.jpg")  # detection only: in no segmentation list
    (base / "Annotations").mkdir()
    (base / "Annotations" / "2007_000032.xml").write_text("<annotation/>")
    sets = base / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("2007_000032\n")
    (sets / "val.txt").write_text("2007_000039\n")
    (sets / "trainval.txt").write_text("2007_000032\n2007_000039\n")
    (base / "ImageSets" / "Main").mkdir()
    (base / "ImageSets" / "Main" / "train.txt").write_text("2008_000001  1\n")
    return tmp_path


def test_voc_layout_reads_the_listed_split(devkit, trees):
    tax = Taxonomy.load(trees["voc"])
    base = devkit / "VOCdevkit" / "VOC2012"
    for root in (devkit, devkit / "VOCdevkit", base):  # any folder on the way down works
        data = official("pascal_voc", root, "train", taxonomy=tax)
        assert len(data) == 1 and data.problems == [] and data.pairs[0].image.name == "2007_000032.jpg"
    sample = official("pascal_voc", devkit, "train", taxonomy=tax)[0]
    assert sample["dataset"] == "pascal_voc" and set(np.unique(sample["label"])) == {0, 12, 15, 255}
    assert len(official("pascal_voc", devkit, "trainval", taxonomy=tax)) == 2
    assert len(open_split("pascal_voc", devkit, None, taxonomy=tax)) == 1  # the layout's first split: train
    graph = NeuronGraph(tax)
    targets = graph.targets("pascal_voc", sample["label"])
    assert targets.shape == (len(graph), 12, 16) and (targets[:, 2, 3:11] == 255).all()  # the void outline trains nothing


def test_voc_layout_problems(devkit, trees):
    tax = Taxonomy.load(trees["voc"])
    base = devkit / "VOCdevkit" / "VOC2012"
    sets = base / "ImageSets" / "Segmentation"
    (sets / "val.txt").write_text("2007_000039\n\n2007_000040\n2007_000039\n")
    with pytest.raises(HiersegError, match=rf"{sets / 'val.txt'}:3: 2007_000040: no image"):
        official("pascal_voc", devkit, "val", taxonomy=tax)
    with pytest.warns(UserWarning):
        data = official("pascal_voc", devkit, "val", taxonomy=tax, on_error="skip")
    assert len(data) == 1 and len(data.problems) == 2 and "listed twice (first on line 1)" in data.problems[1]
    (base / "SegmentationClass" / "2007_000032.png").unlink()
    with pytest.raises(HiersegError, match=r"train.txt:1: 2007_000032: no label"):
        official("pascal_voc", devkit, "train", taxonomy=tax)
    with pytest.raises(HiersegError, match="no split 'test'"):
        official("pascal_voc", devkit, "test", taxonomy=tax)
    with pytest.raises(HiersegError, match="an added dataset needs its extended tree"):
        official("pascal_voc", devkit, "train")
    bad = np.full((12, 16), 21, np.uint8)  # VOC has ids 0..20 and 255
    put_voc_label(base / "SegmentationClass" / "2007_000039.png", bad)
    (sets / "val.txt").write_text("2007_000039\n")
    with pytest.raises(HiersegError, match="value 21 is not a pascal_voc label id"):
        official("pascal_voc", devkit, "val", taxonomy=tax)[0]


def test_folder_reader_takes_its_labels_from_the_extended_tree(tmp_path, trees):
    tax = Taxonomy.load(trees["both"])
    put_image(tmp_path / "images" / "train" / "a.jpg")
    (tmp_path / "masks" / "train").mkdir(parents=True)
    Image.fromarray(np.array([[0] * 8 + [1] * 8] * 12, np.uint8)).save(tmp_path / "masks" / "train" / "a.png")
    data = folder(tmp_path, name="mine", taxonomy=tax, split="train")
    assert data.spec == dataset_spec("mine", tax.artifact) and len(data) == 1
    graph = NeuronGraph(tax)
    targets = graph.targets("mine", data[0]["label"])  # universal targets: the tree knows the dataset
    animal = graph.index["animal_things"]
    assert targets[animal, 0, 12] == graph.neurons[animal].children.index("dolphin")
    assert len(open_split("mine", tmp_path, "train", taxonomy=tax)) == 1
    with pytest.raises(HiersegError, match="the tree has no dataset 'yours'"):
        folder(tmp_path, name="yours", taxonomy=tax, split="train")
    with pytest.raises(HiersegError, match="needs its labels"):
        folder(tmp_path, name="mine", split="train")


def test_synthetic_voc_in_the_devkit_layout(tmp_path, trees):
    tax = Taxonomy.load(trees["voc"])
    n = synthesize("pascal_voc", tmp_path / "voc", n=3, size=80, seed=2, taxonomy=trees["voc"])
    assert n == 6
    base = tmp_path / "voc" / "VOCdevkit" / "VOC2012"
    sets = base / "ImageSets" / "Segmentation"
    train, val = (sets / "train.txt").read_text().split(), (sets / "val.txt").read_text().split()
    assert len(train) == len(val) == 3 and sorted(train + val) == (sets / "trainval.txt").read_text().split()
    assert all(len(stem) == 11 and stem[4] == "_" and 2007 <= int(stem[:4]) <= 2012 for stem in train + val)
    spec = dataset_spec("pascal_voc", tax.artifact)
    lay = layout("pascal_voc")
    plan = samples("pascal_voc", 3, seed=2, taxonomy=trees["voc"])
    lut = translation(tax, "tree", "pascal_voc").lut
    objects = 0
    for sample in plan:
        written = Image.open(lay.label_path(base, sample.split, sample.stem))
        assert written.mode == "P" and written.getpalette()[15 * 3:16 * 3] == list(spec.label(15).color)
        assert written.getpalette()[255 * 3:256 * 3] == [224, 224, 192]  # the devkit's void colour
        label = np.asarray(written)
        assert set(np.unique(label)) <= {*spec.ids, 255} and 0 in label
        _, concepts = scene("pascal_voc", sample.index, 80, 2, taxonomy=trees["voc"])
        drawn = np.asarray(lut)[concepts]  # the tree -> VOC translation of what was drawn
        keep = label != 255
        drawn[drawn == 255] = 0  # scenery VOC does not label is background
        assert np.array_equal(label[keep], drawn[keep].astype(np.uint8))
        objects += int((label[keep] > 0).any())
        void = label == 255
        if void.any():  # the void band lies on edges between an object and something else
            ys, xs = np.nonzero(void)
            near = [drawn[max(y - 2, 0):y + 3, max(x - 2, 0):x + 3] for y, x in zip(ys, xs, strict=True)]
            assert all(len(np.unique(w)) > 1 for w in near)
    assert objects >= 5  # the things on stage are VOC's classes
    data = official("pascal_voc", tmp_path / "voc", "val", taxonomy=tax, verify=True)
    assert len(data) == 3 and data.problems == []


def test_synthetic_folder_dataset_with_a_new_concept(tmp_path, trees):
    synthesize("mine", tmp_path / "mine", n=2, size=64, taxonomy=trees["both"])
    assert sorted(p.relative_to(tmp_path / "mine").as_posix() for p in (tmp_path / "mine").rglob("*.*")
                  if not p.name.startswith(".")) == [  # .hierseg-synth.json: what synth wrote, for data check
        "images/train/mine_000001.jpg", "images/train/mine_000002.jpg", "images/val/mine_000003.jpg",
        "images/val/mine_000004.jpg", "masks/train/mine_000001.png", "masks/train/mine_000002.png",
        "masks/val/mine_000003.png", "masks/val/mine_000004.png"]
    data = open_split("mine", tmp_path / "mine", "val", taxonomy=Taxonomy.load(trees["both"]), verify=True)
    assert len(data) == 2
    with pytest.raises(HiersegError, match="cannot synthesise 'mine'"):
        synthesize("mine", tmp_path / "x", n=1, size=64)

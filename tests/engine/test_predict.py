"""predict_images(): label PNGs in the right ids and bit depth, overlays with the spec colours, image collection."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from hierseg.core.errors import HiersegError
from hierseg.data.transforms import EvalTransform
from hierseg.engine.palette import dataset_palette, overlay, palette, stable_color
from hierseg.engine.predict import collect_images, predict_images
from hierseg.models.base import FlatSegmenter, Segmenter
from hierseg.models.outputs import make_outputs
from hierseg.taxonomy import NeuronGraph, Taxonomy, load_spec
from hierseg.taxonomy.annotations import read_label


class Pointwise(FlatSegmenter):
    def __init__(self) -> None:
        super().__init__(make_outputs(datasets=("cityscapes",)))
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, self.outputs.num_outputs, 1)

    def scores(self, image):
        return [("main", self.conv(image) * 10, 1.0)]


class Universal(Segmenter):
    """Labels only, like DSSPN: tree concept indices without a dataset, the dataset's ids with one."""

    label_spaces = ("cityscapes", "mapillary")

    def __init__(self, concepts: tuple[int, int]) -> None:
        super().__init__()
        self.concepts, self.asked = concepts, []

    def forward(self, image, label, dataset=None):
        raise NotImplementedError("prediction only")

    def predict(self, image, dataset=None):
        self.asked.append(dataset)
        b, _, h, w = image.shape
        out = torch.full((b, h, w), self.concepts[0] if dataset is None else 3, dtype=torch.int64)
        out[..., w // 2:] = self.concepts[1] if dataset is None else 7
        return out


def write_image(path, seed, size=(40, 56)):
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.random.default_rng(seed).integers(0, 256, size=(*size, 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return np.asarray(Image.open(path).convert("RGB"))


def test_collect_images(tmp_path):
    write_image(tmp_path / "in" / "a.png", 0)
    write_image(tmp_path / "in" / "sub" / "b.jpg", 1)
    write_image(tmp_path / "in" / ".hidden" / "c.png", 2)
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    write_image(tmp_path / "single.PNG", 3)
    found = collect_images([tmp_path / "in", tmp_path / "single.PNG"])
    assert [str(rel) for _, rel in found] == ["a.png", "sub/b.jpg", "single.PNG"]
    with pytest.raises(HiersegError, match="both be written"):
        collect_images([tmp_path / "in", tmp_path / "in" / "a.png"])
    with pytest.raises(HiersegError, match="no such image or folder"):
        collect_images([tmp_path / "missing.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(HiersegError, match="no images"):
        collect_images([tmp_path / "empty"])


def test_dataset_labels_and_overlays(tmp_path):
    images = {name: write_image(tmp_path / "in" / name, i) for i, name in enumerate(["a.png", "deep/b.png"])}
    model = Pointwise()
    written = predict_images(model, [tmp_path / "in"], tmp_path / "out", device="cpu", alpha=0.4)
    assert [p.label for p in written] == [tmp_path / "out" / "labels" / name for name in images]
    pal = dataset_palette("cityscapes")
    for prediction, (name, image) in zip(written, images.items(), strict=True):
        label = np.asarray(Image.open(prediction.label))
        assert Image.open(prediction.label).mode == "L" and label.shape == image.shape[:2]
        tensor = EvalTransform()(image, np.zeros(image.shape[:2], np.uint8))["image"][None]
        assert np.array_equal(label, model.predict(tensor, "cityscapes")[0].numpy())
        assert set(prediction.values) == set(np.unique(label).tolist())

        shown = np.asarray(Image.open(tmp_path / "out" / "overlays" / name).convert("RGB")).astype(float)
        h, w = label.shape
        assert shown.shape[1] > w and shown.shape[0] >= h  # legend to the right
        blended = 0.6 * image + 0.4 * pal.colors[label]
        assert np.abs(shown[:h, :w] - blended).max() <= 1.0
        legend = shown[:, w:]
        for value in prediction.values:  # each class present has its colour swatch in the legend
            assert (np.abs(legend - pal.colors[value]).sum(-1) == 0).any()


def test_tree_labels_are_16_bit_and_datasets_are_8_bit(tmp_path):
    write_image(tmp_path / "x.jpg", 0)
    graph = NeuronGraph(Taxonomy.load())
    model = Universal((graph.concept_index["car"], 300))
    written = predict_images(model, [tmp_path / "x.jpg"], tmp_path / "tree", device="cpu")
    assert model.asked == [None]
    label = read_label(written[0].label)
    assert label.dtype == np.uint16 and Image.open(written[0].label).mode.startswith("I")
    assert set(np.unique(label).tolist()) == {graph.concept_index["car"], 300}

    written = predict_images(model, [tmp_path / "x.jpg"], tmp_path / "map", "mapillary", device="cpu", overlays=False)
    assert model.asked[-1] == "mapillary" and written[0].overlay is None
    assert read_label(written[0].label).dtype == np.uint8
    assert not (tmp_path / "map" / "overlays").exists()

    with pytest.raises(HiersegError, match="not tree"):
        predict_images(Pointwise(), [tmp_path / "x.jpg"], tmp_path / "bad", "tree", device="cpu")
    with pytest.raises(HiersegError, match="not 'ade20k'"):
        predict_images(model, [tmp_path / "x.jpg"], tmp_path / "bad", "ade20k", device="cpu")


def test_palettes():
    assert stable_color("coco_stuff:hair brush") == stable_color("coco_stuff:hair brush")
    assert len({stable_color(f"tree:{i}") for i in range(50)}) == 50
    coco = dataset_palette("coco_stuff")
    for label in load_spec("coco_stuff").labels:
        want = label.color if label.color is not None else stable_color(f"coco_stuff:{label.name}")
        assert tuple(coco.colors[label.id]) == want
    assert any(label.color is None for label in load_spec("coco_stuff").labels)
    tree = palette("tree")
    assert len(tree.colors) == len(Taxonomy.load()) and tree.ignore is None

    image = np.full((4, 4, 3), 200, np.uint8)
    label = np.zeros((4, 4), np.int64)  # cityscapes' ignore value: left as the image
    label[0, 0] = 7
    shown = np.asarray(overlay(image, label, dataset_palette("cityscapes"), alpha=1.0))
    assert tuple(shown[0, 0]) == (128, 64, 128) and tuple(shown[3, 3]) == (200, 200, 200)

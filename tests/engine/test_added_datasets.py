"""Evaluation and prediction on a dataset added to the tree (PASCAL VOC): its classes, palette, and the background
its benchmark scores, predicted through the tree."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hierseg.core.errors import HiersegError
from hierseg.data.layouts import resolve_split
from hierseg.data.synth import synthesize
from hierseg.engine.evaluate import Predictor, evaluate, resolve_space
from hierseg.engine.palette import palette
from hierseg.evaluation.metrics import EvalClasses
from hierseg.models.base import Segmenter
from hierseg.taxonomy import NeuronGraph, Taxonomy
from hierseg.taxonomy.authoring.extend import extend_artifact, load_addition
from hierseg.taxonomy.specs import SPEC_DIR


@pytest.fixture(scope="module")
def voc(artifact, wordnet) -> Taxonomy:
    return Taxonomy(extend_artifact(artifact, [load_addition(SPEC_DIR / "pascal_voc.yaml")], wordnet))


class TreeStub(Segmenter):
    """Predicts fixed tree concepts: the left half one concept, the right half another; records what it was asked."""

    def __init__(self, taxonomy: Taxonomy, left: str, right: str) -> None:
        super().__init__()
        graph = NeuronGraph(taxonomy)
        self.left, self.right = graph.concept_index[left], graph.concept_index[right]
        self.spaces, self.asked = tuple(taxonomy.datasets), []

    @property
    def label_spaces(self) -> tuple[str, ...]:
        return self.spaces

    def forward(self, image, label, dataset=None):
        raise NotImplementedError("evaluation only")

    def predict(self, image: torch.Tensor, dataset: str | None = None) -> torch.Tensor:
        self.asked.append(dataset)
        out = torch.full((image.shape[0], *image.shape[-2:]), self.left, dtype=torch.int64)
        out[..., image.shape[-1] // 2:] = self.right
        return out


def test_eval_classes_and_palette_come_from_the_extended_tree(voc):
    classes = EvalClasses.of("pascal_voc", voc)
    assert classes.ids == tuple(range(21)) and classes.classes[0].concept is None
    assert classes.classes[15].concept == "person" and classes.classes[15].leaf is False
    pal = palette("pascal_voc", voc)
    assert pal.ignore == 255 and pal.name_of(20) == "tvmonitor" and tuple(pal.colors[20]) == (0, 64, 128)
    with pytest.raises(HiersegError, match="unknown dataset 'pascal_voc'"):
        EvalClasses.of("pascal_voc")  # the shipped tree does not know VOC


def test_background_is_what_the_tree_sees_outside_the_datasets_classes(voc):
    model = TreeStub(voc, "road", "dog")
    ids = Predictor(model, "pascal_voc", taxonomy=voc)(torch.zeros(1, 3, 4, 6))
    assert model.asked == [None]  # the tree, not VOC's concepts only
    assert ids[0, :, :3].eq(0).all() and ids[0, :, 3:].eq(12).all()  # road -> background, dog -> dog
    rider = Predictor(TreeStub(voc, "bicyclist", "ship"), "pascal_voc", taxonomy=voc)(torch.zeros(1, 3, 2, 2))
    assert rider[0, :, 0].eq(15).all() and rider[0, :, 1].eq(4).all()  # person (riders too), boat (ships too)
    # a built-in dataset without a background value is predicted in its own ids, as before
    city = TreeStub(voc, "road", "dog")
    Predictor(city, "cityscapes", taxonomy=voc)(torch.zeros(1, 3, 2, 2))
    assert city.asked == ["cityscapes"]


def test_evaluate_an_added_dataset(tmp_path, voc):
    tree = tmp_path / "tree.json"
    tree.write_text(json.dumps(voc.artifact))
    synthesize("pascal_voc", tmp_path / "voc", n=2, size=48, taxonomy=tree)
    assert resolve_space(TreeStub(voc, "road", "dog"), "pascal_voc") == "pascal_voc"
    assert resolve_split("pascal_voc", "val", voc) == "val"
    with pytest.raises(HiersegError, match="no split 'validation'"):
        resolve_split("pascal_voc", "validation", voc)
    report = evaluate(TreeStub(voc, "road", "road"), "pascal_voc", tmp_path / "voc", "val", taxonomy=voc)
    assert report.images == 2 and len(report.metrics.classes) == 21
    background = report.metrics.classes[0]
    assert background.pixels > 0 and background.acc == 1.0  # all background predicted, all background right
    assert np.isnan(report.metrics.classes[12].acc) or report.metrics.classes[12].acc == 0.0

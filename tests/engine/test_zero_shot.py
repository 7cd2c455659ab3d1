"""Zero-shot projection through the tree, on the toy tree of tests/taxonomy/toy.py extended by hand (answers worked
out on paper): the superset check, the sum rule's 0/1 matrix, sum against argmax where they differ, the labels a
model cannot reach, DSSPN's extent plan."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from hierseg.core.errors import HiersegError
from hierseg.engine.zero_shot import Projection
from hierseg.evaluation.metrics import EvalClasses, compute_metrics
from hierseg.evaluation.reach import reach_score
from hierseg.models.base import Segmenter
from hierseg.models.outputs import LeafClasses
from hierseg.taxonomy import NeuronGraph, Taxonomy
from hierseg.taxonomy.projection import BELOW, NEW, check_superset, output_values, projection_matrix
from tests.models.test_dsspn import fixed_decisions, toy_model
from tests.taxonomy.toy import toy_taxonomy

# The toy tree plus "minibus" below bus (a concept --add would create) and "held", a dataset the model never saw:
#   held (ignore 255): 0 things, 1 animal, 2 vehicle, 3 car, 4 minibus, 5 road      (sky: none of its labels)
# Extents: things = {things} (animal and vehicle are labelled apart), vehicle = {vehicle, bus} (car apart),
# animal = {animal, dog, cat}, road = {road, lane, crosswalk}, minibus = {minibus}.
HELD = {"things": 0, "animal": 1, "vehicle": 2, "car": 3, "minibus": 4, "road": 5}
# The universal model's outputs on the toy tree (coarse, fine, nested), in artifact order, and the held label of
# each, worked out from the extents above (-1: sky, in no label's extent).
OUTPUTS = ["animal", "dog", "cat", "vehicle", "car", "bus", "road", "lane", "crosswalk", "sky"]
BY_HAND = [1, 1, 1, 2, 3, 2, 5, 5, 5, -1]


def extended_artifact() -> dict:
    artifact = copy.deepcopy(toy_taxonomy().artifact)
    artifact["concepts"].append({"id": "minibus", "name": "minibus", "parent": "bus", "depth": 4, "labels": {}})
    for concept in artifact["concepts"]:
        if concept["id"] in HELD:
            concept.setdefault("labels", {})["held"] = [HELD[concept["id"]]]
    artifact["datasets"]["held"] = {"ignore": 255, "void": {},
                                    "labels": [{"id": v, "name": c} for c, v in sorted(HELD.items(), key=lambda x: x[1])]}
    return artifact


@pytest.fixture(scope="module")
def extended() -> Taxonomy:
    return Taxonomy(extended_artifact())


class FlatStub(Segmenter):
    """A universal flat model on the toy tree whose class scores are given."""

    def __init__(self, scores: torch.Tensor | None = None) -> None:
        super().__init__()
        self.leaves = LeafClasses(NeuronGraph(toy_taxonomy()), ("coarse", "fine", "nested"))
        self.scores = scores

    @property
    def label_spaces(self):
        return self.leaves.datasets

    @property
    def taxonomy(self):
        return self.leaves.graph.taxonomy

    @property
    def output_concepts(self):
        return self.leaves.concepts

    @property
    def has_class_scores(self) -> bool:
        return True

    def class_scores(self, image):
        return self.scores

    def forward(self, image, label, dataset=None):
        raise NotImplementedError("evaluation only")

    def predict(self, image, dataset=None):
        raise NotImplementedError("decoded through the projection")


def test_a_tree_that_drops_or_moves_a_concept_is_refused(extended):
    check_superset(toy_taxonomy(), extended)  # adds minibus and a dataset: fine
    dropped = extended_artifact()
    dropped["concepts"] = [c for c in dropped["concepts"] if c["id"] not in ("crosswalk", "minibus")]
    with pytest.raises(HiersegError, match="concept 'crosswalk' of the checkpoint's tree is missing"):
        check_superset(toy_taxonomy(), Taxonomy(dropped))
    moved = extended_artifact()
    next(c for c in moved["concepts"] if c["id"] == "bus")["parent"] = "animal"  # same depth, another parent
    with pytest.raises(HiersegError, match="concept 'bus' moved: under 'vehicle' in the checkpoint's tree, under "
                                           "'animal' here"):
        check_superset(toy_taxonomy(), Taxonomy(moved))


def test_the_sum_matrix_is_the_extents_worked_out_by_hand(extended):
    model = FlatStub()
    assert [c for c in model.output_concepts] == OUTPUTS
    space = Projection(model, "held", extended).space
    values = output_values(extended, space, OUTPUTS)
    assert values.tolist() == BY_HAND
    matrix = projection_matrix(values, [0, 1, 2, 3, 4, 5])
    assert matrix.tolist() == [[0] * 10,                                  # things: no output of its own
                               [1, 1, 1, 0, 0, 0, 0, 0, 0, 0],            # animal: animal/other, dog, cat
                               [0, 0, 0, 1, 0, 1, 0, 0, 0, 0],            # vehicle: vehicle/other, bus
                               [0, 0, 0, 0, 1, 0, 0, 0, 0, 0],            # car
                               [0] * 10,                                  # minibus: new, below bus
                               [0, 0, 0, 0, 0, 0, 1, 1, 1, 0]]            # road: road/other, lane, crosswalk
    # with a background value (VOC's 0), sky, in no label's extent, is background
    assert output_values(extended, space, OUTPUTS, background=9).tolist() == BY_HAND[:-1] + [9]


def probabilities(*pixels: dict[str, float]) -> torch.Tensor:
    """``(1, outputs, 1, N)`` log-probabilities: the named outputs' probabilities, the rest of 1 spread evenly."""
    out = torch.zeros(1, len(OUTPUTS), 1, len(pixels))
    for i, named in enumerate(pixels):
        rest = (1 - sum(named.values())) / (len(OUTPUTS) - len(named))
        out[0, :, 0, i] = torch.tensor([named.get(o, rest) for o in OUTPUTS])
    return out.log()


def test_sum_and_argmax_differ_where_a_label_holds_several_outputs(extended):
    # pixel 0: car is the single most probable output (0.3), but vehicle/other and bus together hold 0.4;
    # pixel 1: sky (0.4) leads, which held does not label; dog and cat together (0.5) are an animal.
    scores = probabilities({"car": 0.3, "vehicle": 0.2, "bus": 0.2}, {"sky": 0.4, "dog": 0.25, "cat": 0.25})
    model = FlatStub(scores)
    image = torch.zeros(1, 3, 1, 2)
    assert Projection(model, "held", extended, "sum").predict(image).tolist() == [[[2, 1]]]  # vehicle, animal
    assert Projection(model, "held", extended, "argmax").predict(image).tolist() == [[[3, 255]]]  # car, none
    # on any scores, the sum rule is the argmax of the hand-made 0/1 matrix times the probabilities
    torch.manual_seed(0)
    logits = 3 * torch.randn(2, len(OUTPUTS), 5, 7)
    labels = [1, 2, 3, 5]  # the reachable ones
    matrix = torch.tensor([[float(v == label) for v in BY_HAND] for label in labels])
    expected = torch.tensor(labels)[torch.einsum("lo,bohw->blhw", matrix, logits.softmax(1)).argmax(1)]
    assert torch.equal(Projection(model, "held", extended, "sum").decode(logits), expected)


def test_labels_outside_the_models_outputs_are_unreachable(extended):
    for rule in ("sum", "argmax"):
        reach = Projection(FlatStub(), "held", extended, rule).reach
        assert [(u.name, u.reason) for u in reach.unreachable] == [("things", BELOW), ("minibus", NEW)]
        assert reach.reachable == (1, 2, 3, 5)
    # scored: the unreachable labels count in mIoU over all labels, not in mIoU over the reachable ones
    classes = EvalClasses.of("held", extended)
    counts = np.zeros((6, 7), dtype=np.int64)  # classes 0..5 are ids 0..5; the last column: any other value
    counts[0, 1] = counts[4, 2] = 10  # things and minibus pixels, predicted animal and vehicle: IoU 0
    counts[1, 1], counts[2, 2], counts[3, 3], counts[5, 5] = 10, 30, 10, 10
    metrics = compute_metrics(counts, classes)
    score = reach_score(metrics, reach, "sum")
    assert [u.name for u in score.unreachable] == ["things", "minibus"]
    assert score.miou_reachable == pytest.approx((0.5 + 0.75 + 1 + 1) / 4)  # animal 10/20, vehicle 30/40
    assert score.miou_all == pytest.approx(metrics.miou) and math.isclose(metrics.miou, 3.25 / 6)
    section = score.sections()[0]
    assert section.value("unreachable") == 2 and section.scalars == {"mIoU_reachable": score.miou_reachable}


def test_a_target_with_no_reachable_label_is_refused(extended):
    artifact = extended_artifact()
    for concept in artifact["concepts"]:
        concept.get("labels", {}).pop("held", None)
        if concept["id"] == "minibus":
            concept["labels"]["held"] = [0]
    artifact["datasets"]["held"]["labels"] = [{"id": 0, "name": "minibus"}]  # held's only label: a new concept
    with pytest.raises(HiersegError, match="none of its labels is reachable by this model \\(first: 'minibus'"):
        Projection(FlatStub(), "held", Taxonomy(artifact))


def test_dsspn_follows_the_extent_plan_or_the_tree_then_translates(extended):
    model = toy_model()
    # root sends everything to stuff, stuff to sky: the tree's answer is sky, which held does not label
    fixed_decisions(model, {"root": ("stuff", 3.0), "stuff": ("sky", 2.0)})
    image = torch.rand(1, 3, 32, 32)
    extent = Projection(model, "held", extended, "sum")
    assert extent.predict(image).unique().tolist() == [5]  # stuff may only lead to road, held's; road decides no more
    assert Projection(model, "held", extended, "argmax").predict(image).unique().tolist() == [255]
    # vehicle's bus output stays open (bus lies in held's vehicle) though held labels car apart
    fixed_decisions(model, {"root": ("things", 3.0), "things": ("vehicle", 2.0), "vehicle": ("bus", 2.0)})
    assert extent.predict(image).unique().tolist() == [2]
    # things has no self output (no training dataset labels it): its extent is out of reach, as is minibus
    assert [(u.name, u.reason) for u in extent.reach.unreachable] == [("things", BELOW), ("minibus", NEW)]

"""Universal leaf outputs: the taxonomy-aware loss on a hand-made tree (answers worked out on paper), then the real
359-concept tree."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hierseg.models.outputs import LeafClasses, make_outputs
from hierseg.taxonomy import HiersegError, NeuronGraph, Taxonomy
from tests.taxonomy.toy import DATASETS, EDGES, LABELS

# The toy tree of tests/taxonomy/toy.py plus "leaves", a dataset labelling exactly its seven leaves:
#   coarse: 0 animal, 1 car, 2 bus, 3 road, 4 sky, 5 void     fine: 1 dog, 2 cat, 3 car, 4 lane, 5 crosswalk, 6 sky
#   nested: 0 vehicle, 1 car                                   leaves: 0 dog, 1 cat, 2 car, 3 bus, 4 lane, 5 crosswalk,
#                                                                      6 sky
LEAVES = ["dog", "cat", "car", "bus", "lane", "crosswalk", "sky"]
ALL_LABELS = {**LABELS, "leaves": {c: i for i, c in enumerate(LEAVES)}}
ALL_DATASETS = {**DATASETS, "leaves": {"ignore": 255, "void": {}}}
PEAK = 30.0


def toy_graph() -> NeuronGraph:
    depth: dict[str, int] = {}
    concepts = []
    for cid, parent in EDGES:
        depth[cid] = 0 if parent is None else depth[parent] + 1
        labels = {d: [ids[cid]] for d, ids in ALL_LABELS.items() if cid in ids}
        concepts.append({"id": cid, "name": cid, "parent": parent, "depth": depth[cid], "labels": labels})
    return NeuronGraph(Taxonomy({"root": "root", "concepts": concepts, "datasets": ALL_DATASETS}))


@pytest.fixture(scope="module")
def graph() -> NeuronGraph:
    return toy_graph()


@pytest.fixture(scope="module")
def toy(graph) -> LeafClasses:
    return LeafClasses(graph, ("coarse", "fine", "nested"))


def peaked(outputs: LeafClasses, *names: str, shape: tuple[int, int] = (1, 1)) -> torch.Tensor:
    """``(1, K, *shape)`` logits: ``PEAK`` at the named outputs (one per pixel, row-major), 0 elsewhere."""
    logits = torch.zeros(1, outputs.num_outputs, *shape)
    for pixel, name in enumerate(names):
        logits[0, outputs.names.index(name)].view(-1)[pixel] = PEAK
    return logits


def one_pixel_loss(outputs: LeafClasses, logits: torch.Tensor, value: int, dataset: str) -> torch.Tensor:
    loss, valid = outputs.pixel_loss(logits, torch.tensor([[[value]]]), dataset)
    assert bool(valid.all())
    return loss.view(())


def set_names(outputs: LeafClasses, dataset: str) -> dict[int, set[str]]:
    return {v: {outputs.names[o] for o in outs} for v, outs in outputs.label_outputs(dataset).items()}


def test_outputs_are_the_leaves_and_an_other_per_labelled_inner_concept(toy):
    # animal and road (coarse) and vehicle (nested) are labelled inner concepts; root, things, stuff are not
    assert toy.names == ("animal/other", "dog", "cat", "vehicle/other", "car", "bus", "road/other", "lane",
                         "crosswalk", "sky")
    assert toy.concepts[0] == "animal" and toy.concepts[1] == "dog"
    assert toy.num_outputs == 10
    assert set_names(toy, "coarse") == {0: {"animal/other", "dog", "cat"}, 1: {"car"}, 2: {"bus"},
                                        3: {"road/other", "lane", "crosswalk"}, 4: {"sky"}}


def test_equals_cross_entropy_when_every_label_is_a_leaf_and_the_mask_is_full(graph):
    outputs = LeafClasses(graph, ("leaves", "fine"))
    assert outputs.names == tuple(LEAVES)  # nobody labels an inner concept: no "other" output
    assert outputs.expressible("leaves").all()
    torch.manual_seed(0)
    logits = torch.randn(2, 7, 5, 6, requires_grad=True)
    label = torch.randint(0, 7, (2, 5, 6))
    label[0, 0, :3] = 255
    loss, valid = outputs.pixel_loss(logits, label, "leaves")
    want = F.cross_entropy(logits, label, ignore_index=255, reduction="none")
    assert torch.equal(valid, label != 255)
    torch.testing.assert_close(loss, want)
    mean = outputs.loss(logits, label, "leaves")
    torch.testing.assert_close(mean, F.cross_entropy(logits, label, ignore_index=255))
    (grad,) = torch.autograd.grad(mean, logits)
    (want_grad,) = torch.autograd.grad(F.cross_entropy(logits, label, ignore_index=255), logits)
    torch.testing.assert_close(grad, want_grad)


def test_outputs_outside_the_dataset_mask_get_exactly_zero_gradient(toy):
    # fine cannot say bus, nor "animal but no dog or cat", "road but no marking", "vehicle but not car or bus"
    outside = {"bus", "animal/other", "road/other", "vehicle/other"}
    assert {toy.names[o] for o in range(toy.num_outputs) if not toy.expressible("fine")[o]} == outside
    torch.manual_seed(1)
    logits = torch.randn(2, toy.num_outputs, 8, 8, requires_grad=True)
    label = torch.randint(1, 7, (2, 8, 8))  # every fine label (0 is its ignore value)
    toy.loss(logits, label, "fine").backward()
    per_output = logits.grad.abs().sum((0, 2, 3))
    for o, name in enumerate(toy.names):
        if name in outside:
            assert per_output[o] == 0, name
        else:
            assert per_output[o] > 0, name


def test_a_coarse_label_is_satisfied_by_any_leaf_under_it(toy):
    animal = 0  # coarse
    for name in ("dog", "cat", "animal/other"):
        assert one_pixel_loss(toy, peaked(toy, name), animal, "coarse") < 1e-6, name
    # a car scored far above the rest: the three animal outputs share what is left, -log(3 e^0 / e^PEAK)
    assert one_pixel_loss(toy, peaked(toy, "car"), animal, "coarse").item() == pytest.approx(PEAK - math.log(3))
    # by hand: -log((p_dog + p_cat + p_other) / sum of p over the coarse mask), vehicle/other not in the mask
    logits = torch.randn(1, toy.num_outputs, 1, 1)
    p = logits.view(-1).softmax(0)
    under = sum(p[toy.names.index(n)] for n in ("dog", "cat", "animal/other"))
    mask = p.sum() - p[toy.names.index("vehicle/other")]
    torch.testing.assert_close(one_pixel_loss(toy, logits, animal, "coarse"), -torch.log(under / mask))
    # a coarse road is any road surface; the same pixel labelled by fine as lane must be a lane
    for name in ("lane", "crosswalk", "road/other"):
        assert one_pixel_loss(toy, peaked(toy, name), 3, "coarse") < 1e-6, name
    assert one_pixel_loss(toy, peaked(toy, "crosswalk"), 4, "fine").item() == pytest.approx(PEAK)


def test_nested_labels_use_exclusive_extents(toy):
    # nested labels vehicle (0) and car (1): a "vehicle" pixel is a vehicle that is not a car
    assert set_names(toy, "nested") == {0: {"bus", "vehicle/other"}, 1: {"car"}}
    assert one_pixel_loss(toy, peaked(toy, "bus"), 0, "nested") < 1e-6
    assert one_pixel_loss(toy, peaked(toy, "vehicle/other"), 0, "nested") < 1e-6
    assert one_pixel_loss(toy, peaked(toy, "car"), 0, "nested").item() == pytest.approx(PEAK - math.log(2))
    # a dog is outside nested's mask: its score neither helps nor hurts a nested pixel
    with_dog = peaked(toy, "bus")
    with_dog[0, toy.names.index("dog")] = 100.0
    assert one_pixel_loss(toy, with_dog, 0, "nested") < 1e-6


def test_void_and_ignore_pixels_are_left_out_with_a_finite_zero_gradient(toy):
    logits = torch.randn(1, toy.num_outputs, 1, 3, requires_grad=True)
    label = torch.tensor([[[5, 255, 4]]])  # coarse: void, ignore, sky
    loss, valid = toy.pixel_loss(logits, label, "coarse")
    assert valid.tolist() == [[[False, False, True]]]
    assert loss[0, 0, :2].tolist() == [0.0, 0.0]
    toy.loss(logits, label, "coarse").backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0, :, 0, :2].abs().sum() == 0


def test_decode_round_trip_for_every_output_a_dataset_can_express(graph, toy):
    for dataset in toy.datasets:
        for value, outs in toy.label_outputs(dataset).items():
            for o in outs:
                logits = peaked(toy, toy.names[o])
                assert toy.decode(logits, dataset).item() == value, (dataset, toy.names[o])
                assert graph.concepts[toy.decode(logits, None).item()] == toy.concepts[o]
    # the best output overall is a bus, which fine has no label for: fine decodes to its best expressible output
    logits = peaked(toy, "bus", "sky", shape=(1, 2))
    logits[0, toy.names.index("car"), 0, 0] = PEAK / 2
    assert toy.decode(logits, "fine").tolist() == [[[3, 6]]]  # car, sky
    assert [graph.concepts[i] for i in toy.decode(logits, None).view(-1).tolist()] == ["bus", "sky"]


def test_tables_first_made_in_an_evaluation_serve_training_later(graph):
    """Validation during training decodes a dataset before any batch of it has been trained on: the tables it caches
    then must not be inference tensors, which autograd refuses to save."""
    outputs = LeafClasses(graph, ("coarse", "fine", "nested"))
    with torch.inference_mode():
        outputs.decode(torch.zeros(1, outputs.num_outputs, 2, 2), "fine")
    logits = torch.zeros(1, outputs.num_outputs, 2, 2, requires_grad=True)
    outputs.loss(logits, torch.tensor([[[1, 2], [3, 6]]]), "fine").backward()
    assert logits.grad is not None and bool(logits.grad.abs().sum() > 0)


def test_loss_resizes_scores_to_the_label(toy):
    logits = torch.zeros(2, toy.num_outputs, 4, 4)
    loss, valid = toy.pixel_loss(logits, torch.full((2, 16, 16), 4), "coarse")  # sky
    assert loss.shape == valid.shape == (2, 16, 16)
    torch.testing.assert_close(loss, torch.full_like(loss, math.log(9)))  # uniform over the 9 coarse outputs


def test_user_errors(graph, toy):
    with pytest.raises(HiersegError, match="outside the ids"):
        toy.pixel_loss(torch.zeros(1, toy.num_outputs, 1, 1), torch.tensor([[[256]]]), "coarse")
    with pytest.raises(HiersegError, match="needs the dataset"):
        toy.pixel_loss(torch.zeros(1, toy.num_outputs, 1, 1), torch.tensor([[[1]]]), None)
    with pytest.raises(HiersegError, match="built for coarse, fine, nested"):
        toy.decode(torch.zeros(1, toy.num_outputs, 1, 1), "leaves")
    with pytest.raises(HiersegError, match="twice"):
        LeafClasses(graph, ("fine", "fine"))
    with pytest.raises(HiersegError, match="unknown dataset"):
        LeafClasses(graph, ("fine", "kitti"))


@pytest.fixture(scope="module")
def real() -> NeuronGraph:
    return NeuronGraph(Taxonomy.load())


def test_real_tree_every_label_of_the_four_datasets_is_expressible(real):
    datasets = ("coco_stuff", "ade20k", "cityscapes", "mapillary")
    outputs = make_outputs(datasets=datasets, taxonomy=real.taxonomy)
    assert isinstance(outputs, LeafClasses)
    tax = real.taxonomy
    leaves = [c for c in real.concepts if tax.is_leaf(c)]
    inner_labelled = {c for d in datasets for c in real.space(d).concepts.values() if c is not None and not tax.is_leaf(c)}
    assert outputs.num_outputs == len(leaves) + len(inner_labelled)
    assert sorted(n for n in outputs.names if n.endswith("/other")) == sorted(f"{c}/other" for c in inner_labelled)
    for dataset in datasets:
        space = real.space(dataset)
        sets = outputs.label_outputs(dataset)
        assert set(sets) == {v for v, c in space.concepts.items() if c is not None}
        assert all(sets.values()), dataset
        claimed = [o for outs in sets.values() for o in outs]
        assert len(claimed) == len(set(claimed)), dataset  # the sets of one dataset never overlap
    # nested labels of one dataset (Mapillary's building and its phone booth, ...): the outer label's set holds its
    # "other" output and nothing under the inner label
    nested = 0
    for dataset in datasets:
        by_concept = {c: v for v, c in real.space(dataset).concepts.items() if c is not None}
        sets = outputs.label_outputs(dataset)
        for concept, value in by_concept.items():
            assert tax.is_leaf(concept) or outputs.names.index(f"{concept}/other") in sets[value]
            for ancestor in tax.ancestors(concept):
                if ancestor in by_concept:
                    nested += 1
                    under = {o for o, c in enumerate(outputs.concepts) if concept in tax.path(c)}
                    assert not under & set(sets[by_concept[ancestor]]), (dataset, ancestor, concept)
    assert nested > 0
    # Cityscapes' road is any road surface or marking, Mapillary's lane marking only itself
    city_road = {outputs.names[o] for o in outputs.label_outputs("cityscapes")[7]}
    assert {"road/other", "road_surface", "lane_marking", "crosswalk_zebra"} <= city_road


@pytest.mark.parametrize("kwargs", [{"datasets": ["cityscapes"]}, {"num_classes": 3}])
def test_a_tree_file_path_is_refused_where_a_taxonomy_belongs(kwargs, tmp_path):
    with pytest.raises(HiersegError, match="taxonomy must be a Taxonomy, not a str"):
        make_outputs(**kwargs, taxonomy=str(tmp_path / "tree.json"))

"""Neuron graph, concept masks, targets and activated sub-graphs: toy answers worked out by hand, then the real tree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hierseg.taxonomy import HiersegError, Taxonomy, load_spec
from hierseg.taxonomy.neurons import IGNORE_INDEX, NeuronGraph, self_concepts
from hierseg.taxonomy.subgraph import activated_batch, activated_neurons
from tests.taxonomy.toy import NEURONS, I, toy_taxonomy


@pytest.fixture(scope="module")
def toy() -> NeuronGraph:
    return NeuronGraph(toy_taxonomy())


@pytest.fixture(scope="module")
def real() -> NeuronGraph:
    return NeuronGraph(Taxonomy.load())


def test_toy_neurons_in_depth_order_with_children_and_ancestors(toy):
    assert [n.concept for n in toy.neurons] == NEURONS
    assert toy["vehicle"].children == ("car", "bus")
    assert toy["vehicle"].ancestors == (0, 1)  # root, things
    assert toy["road"].parent == 2
    assert toy.route("crosswalk") == ((0, 1), (2, 0), (5, 1))
    with pytest.raises(HiersegError, match="not a neuron"):
        toy["dog"]


def test_self_outputs_where_a_dataset_labels_an_inner_concept(toy):
    # coarse labels animal and road, nested labels vehicle: a pixel may stop at each of them
    assert self_concepts(toy.taxonomy) == ("animal", "vehicle", "road")
    assert self_concepts(toy.taxonomy, ["fine"]) == ()
    assert [n.concept for n in toy.neurons if n.has_self] == ["animal", "vehicle", "road"]
    assert toy["vehicle"].outputs == ("car", "bus", "vehicle") and toy["vehicle"].self_index == 2
    assert toy["root"].outputs == ("things", "stuff") and toy["root"].self_index is None
    assert toy.max_outputs == 3
    assert toy.route("vehicle") == ((0, 0), (1, 1))
    assert toy.route("vehicle", stop=True) == ((0, 0), (1, 1), (4, 2))
    assert toy.route("things", stop=True) == ((0, 0),)  # no self output: no pixel can stop at things


def test_single_child_under_a_labelled_concept_gets_a_neuron():
    # ADE20K-like: tree labelled, and its only child palm labelled too. Without a self output nothing could tell
    # them apart.
    tax = Taxonomy({"root": "root", "datasets": {"d": {"ignore": 0, "void": {}}}, "concepts": [
        {"id": "root", "name": "root", "parent": None, "depth": 0},
        {"id": "tree", "name": "tree", "parent": "root", "depth": 1, "labels": {"d": [1]}},
        {"id": "palm", "name": "palm", "parent": "tree", "depth": 2, "labels": {"d": [2]}},
        {"id": "sky", "name": "sky", "parent": "root", "depth": 1, "labels": {"d": [3]}},
        {"id": "x", "name": "x", "parent": "sky", "depth": 2}]})  # sky: labelled, one unlabelled child
    graph = NeuronGraph(tax)
    assert [n.concept for n in graph.neurons] == ["root", "tree", "sky"]
    assert graph["tree"].outputs == ("palm", "tree")
    assert graph.inseparable == ()
    targets = graph.targets("d", np.array([1, 2, 3], dtype=np.uint8))
    assert targets[graph.index["tree"]].tolist() == [1, 0, I]  # tree itself, palm, (sky: not below tree)
    assert targets[graph.index["sky"]].tolist() == [I, I, I]  # d labels nothing below sky: sky is coarse


def test_toy_concept_masks(toy):
    coarse = toy.mask("coarse")
    # coarse labels animal (not dog/cat), car, bus, road (not lane/crosswalk), sky: animal and road are coarse,
    # so their neurons (self outputs included) are off; vehicle's self output is defined because car and bus are
    assert [d.tolist() for d in coarse.defined] == [
        [True, True], [True, True], [True, True], [False, False, False], [True, True, True], [False, False, False]]
    assert coarse.active.tolist() == [True, True, True, False, True, False]
    fine = toy.mask("fine")  # no bus, no road itself, but road is on the path to lane
    assert [d.tolist() for d in fine.defined] == [
        [True, True], [True, True], [True, True], [True, True, True], [True, False, True], [True, True, True]]
    assert fine.matrix().shape == (6, 3)
    nested = toy.mask("nested")  # vehicle and car: vehicle's outputs car and self, not bus
    assert nested.defined[toy.index["vehicle"]].tolist() == [True, False, True]


def test_toy_targets_nested_dataset_trains_the_self_output(toy):
    label = np.array([0, 1, 255], dtype=np.uint8)  # vehicle (not car), car, ignore
    targets = toy.targets("nested", label)
    assert targets[toy.index["vehicle"]].tolist() == [2, 0, I]  # self, car
    assert targets[toy.index["things"]].tolist() == [1, 1, I]  # vehicle both times
    # fine labels lane under road: negative for road's self output (a non-I target that is not the self index)
    fine = toy.targets("fine", np.array([4], dtype=np.uint8))
    assert fine[toy.index["road"]].tolist() == [0]


def test_toy_targets_route_coarse_labels_and_ignore_below_them(toy):
    label = np.array([[0, 1], [3, 255]], dtype=np.uint8)  # animal, car / road, ignore
    targets = toy.targets("coarse", label)
    assert targets.shape == (6, 2, 2) and targets.dtype == np.uint8
    expected = {
        "root": [[0, 0], [1, I]],      # things, things / stuff
        "things": [[0, 1], [I, I]],    # animal, vehicle
        "stuff": [[I, I], [0, I]],     # road
        "animal": [[I, I], [I, I]],    # animal is coarse here: no child and no self decision to learn
        "vehicle": [[I, 0], [I, I]],   # car
        "road": [[I, I], [I, I]],      # road is coarse in this dataset
    }
    for name, want in expected.items():
        assert targets[toy.index[name]].tolist() == want, name
    void = toy.targets("coarse", np.array([5], dtype=np.uint8))
    assert (void == IGNORE_INDEX).all()
    only = toy.targets("coarse", label, neurons=[4, 0])
    assert only.tolist() == [expected["vehicle"], expected["root"]]


def test_toy_targets_fine_dataset(toy):
    label = np.array([2, 5, 0], dtype=np.uint8)  # cat, crosswalk, ignore
    targets = toy.targets("fine", label)
    assert targets[:, 0].tolist() == [0, 0, I, 1, I, I]   # root->things, things->animal, animal->cat
    assert targets[:, 1].tolist() == [1, I, 0, I, I, 1]   # root->stuff, stuff->road, road->crosswalk
    assert targets[:, 2].tolist() == [I] * 6


def test_targets_accept_torch_tensors_and_batches(toy):
    label = np.array([[[0, 1], [3, 255]], [[4, 2], [2, 0]]], dtype=np.uint8)
    want = toy.targets("coarse", label)
    got = toy.targets("coarse", torch.from_numpy(label))
    assert isinstance(got, torch.Tensor) and got.shape == (6, 2, 2, 2)
    assert np.array_equal(got.numpy(), want)
    assert np.array_equal(want[:, 1], toy.targets("coarse", label[1]))


def test_targets_reject_values_outside_the_table(toy):
    with pytest.raises(HiersegError, match="coarse: label value 300"):
        toy.targets("coarse", np.array([1, 300], dtype=np.int64))
    with pytest.raises(HiersegError, match="label value -1"):
        toy.targets("coarse", np.array([-1]))


def test_toy_activated_subgraph_single_image(toy):
    label = np.array([[0, 1], [3, 255]], dtype=np.uint8)  # animal, car, road
    # strict ancestors: animal -> root, things; car -> root, things, vehicle; road -> root, stuff.
    # animal and road neurons stay off: their own concepts are the labels.
    assert activated_neurons(toy, "coarse", label) == (0, 1, 2, 4)
    assert activated_neurons(toy, "fine", np.array([[1, 4]], dtype=np.uint8)) == (0, 1, 2, 3, 5)
    assert activated_neurons(toy, "coarse", np.full((3, 3), 255, np.uint8)) == ()


def test_toy_activated_subgraph_batch(toy):
    batch = np.array([[[0, 0]], [[4, 4]], [[1, 2]]], dtype=np.uint8)  # animal | sky | car, bus
    sub = activated_batch(toy, "coarse", batch)
    assert sub.neurons == (0, 1, 2, 4)
    assert sub.images == {0: (0, 1, 2), 1: (0, 2), 2: (1,), 4: (2,)}
    assert sub.shared == (0,)
    assert sub.per_image(2) == (0, 1, 4)
    tensors = activated_batch(toy, "coarse", torch.from_numpy(batch))
    assert tensors.images == sub.images


def test_real_graph_neurons_parents_first_and_no_concept_inseparable(real):
    tax = real.taxonomy
    labelled = {c for d in tax.datasets for c in tax.dataset_concepts(d).values()}
    branching = {c.id for c in tax if len(tax.children(c.id)) >= 2}
    selfish = {c.id for c in tax if c.id in labelled and tax.children(c.id)}
    assert {n.concept for n in real.neurons} == branching | selfish
    assert len(real) > len(branching)  # single-child concepts under a labelled parent (ADE20K tree/palm...)
    for n in real.neurons:
        assert all(real.neurons[a].depth < n.depth for a in n.ancestors)
        assert len(n.outputs) >= 2 and n.has_self == (n.concept in selfish)
    # every concept a dataset labels can be told apart from its parent by some neuron's decision
    assert not set(real.inseparable) & labelled


def test_real_masks_ade_animal_and_cityscapes_road(real):
    tax = real.taxonomy
    ade = real.mask("ade20k")
    assert not ade.active[real.index["animal_things"]]  # ADE20K only has "animal"
    parent = real[tax["animal_things"].parent]
    assert ade.defined[parent.index][parent.children.index("animal_things")]
    assert real.mask("coco_stuff").defined[real.index["animal_things"]].all()
    assert not real.mask("cityscapes").active[real.index["road"]]
    mapillary_road = real.mask("mapillary").defined[real.index["road"]]
    road = real["road"]
    # Mapillary's road surface, lane marking, crosswalks (plain and zebra), bike and service lane, catch basin,
    # pothole; Cityscapes labels road itself
    assert mapillary_road.all() and len(road.children) == 7 and road.has_self


def test_real_targets_mapillary_road_children(real):
    spec = load_spec("mapillary")
    ids = {label.name: label.id for label in spec.labels}
    label = np.array([[ids["marking--general"], ids["marking--crosswalk-zebra"], ids["object--vehicle--car"]]],
                     dtype=np.uint8)
    road, crosswalk = real["road"], real["crosswalk"]
    targets = real.targets("mapillary", label)
    assert targets[road.index].tolist() == [[road.children.index("lane_marking"), road.children.index("crosswalk"), I]]
    assert targets[crosswalk.index].tolist() == [[I, crosswalk.children.index("crosswalk_zebra"), I]]
    city = load_spec("cityscapes")
    road_id = next(label.id for label in city.labels if label.name == "road")
    city_targets = real.targets("cityscapes", np.array([road_id], dtype=np.uint8))
    assert city_targets[road.index].tolist() == [I]  # Cityscapes' road is coarse: the road neuron never sees it
    expected_on = [a for a in real.taxonomy.ancestors("road") if a in real.index]
    assert sorted(activated_neurons(real, "cityscapes", np.array([road_id], np.uint8))) == \
        sorted(real.index[a] for a in expected_on)

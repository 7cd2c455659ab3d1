"""Neuron graph, concept masks, targets and activated sub-graphs: toy answers worked out by hand, then the real tree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hierseg.taxonomy import HiersegError, Taxonomy, load_spec
from hierseg.taxonomy.neurons import IGNORE_INDEX, NeuronGraph
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


def test_toy_concept_masks(toy):
    coarse = toy.mask("coarse")
    # coarse labels animal (not dog/cat), car, bus, road (not lane/crosswalk), sky
    assert [d.tolist() for d in coarse.defined] == [
        [True, True], [True, True], [True, True], [False, False], [True, True], [False, False]]
    assert coarse.active.tolist() == [True, True, True, False, True, False]
    fine = toy.mask("fine")  # no bus, no road itself, but road is on the path to lane
    assert [d.tolist() for d in fine.defined] == [
        [True, True], [True, True], [True, True], [True, True], [True, False], [True, True]]
    assert fine.matrix().shape == (6, 2)


def test_toy_targets_route_coarse_labels_and_ignore_below_them(toy):
    label = np.array([[0, 1], [3, 255]], dtype=np.uint8)  # animal, car / road, ignore
    targets = toy.targets("coarse", label)
    assert targets.shape == (6, 2, 2) and targets.dtype == np.uint8
    expected = {
        "root": [[0, 0], [1, I]],      # things, things / stuff
        "things": [[0, 1], [I, I]],    # animal, vehicle
        "stuff": [[I, I], [0, I]],     # road
        "animal": [[I, I], [I, I]],    # animal sits on the neuron itself: no child to learn
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


def test_real_graph_has_89_neurons_parents_first(real):
    assert len(real) == 89
    for n in real.neurons:
        assert all(real.neurons[a].depth < n.depth for a in n.ancestors)
        assert len(n.children) >= 2
    assert set(real.inseparable) >= {"palm", "van"}  # only children: the paper's neurons cannot tell them apart


def test_real_masks_ade_animal_and_cityscapes_road(real):
    tax = real.taxonomy
    ade = real.mask("ade20k")
    assert not ade.active[real.index["animal_things"]]  # ADE20K only has "animal"
    parent = real[tax["animal_things"].parent]
    assert ade.defined[parent.index][parent.children.index("animal_things")]
    assert real.mask("coco_stuff").defined[real.index["animal_things"]].all()
    assert not real.mask("cityscapes").active[real.index["road"]]
    mapillary_road = real.mask("mapillary").defined[real.index["road"]]
    assert mapillary_road.all() and len(mapillary_road) == 9


def test_real_targets_mapillary_road_children(real):
    spec = load_spec("mapillary")
    ids = {label.name: label.id for label in spec.labels}
    label = np.array([[ids["marking--general"], ids["marking--crosswalk-zebra"], ids["object--vehicle--car"]]],
                     dtype=np.uint8)
    road = real["road"]
    targets = real.targets("mapillary", label)[road.index]
    assert targets.tolist() == [[road.children.index("lane_marking"), road.children.index("crosswalk_zebra"), I]]
    city = load_spec("cityscapes")
    road_id = next(label.id for label in city.labels if label.name == "road")
    city_targets = real.targets("cityscapes", np.array([road_id], dtype=np.uint8))
    assert city_targets[road.index].tolist() == [I]  # Cityscapes' road is coarse: the road neuron never sees it
    expected_on = [a for a in real.taxonomy.ancestors("road") if a in real.index]
    assert sorted(activated_neurons(real, "cityscapes", np.array([road_id], np.uint8))) == \
        sorted(real.index[a] for a in expected_on)

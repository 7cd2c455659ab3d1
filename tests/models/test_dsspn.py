"""DSSPN: dynamic batching equals running each image alone, gradients stay inside each image's sub-graph and the
dataset's concept mask, self outputs learn where a dataset stops, inference follows the argmax path (greedy) or the
most probable path, every label of the real datasets can be output, every ablation variant trains, the head's size
follows from the tree, and the memory-efficient block keeps saved activations linear in depth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.activation_memory import saved_activations
from hierseg.core.errors import HiersegError
from hierseg.models import create_model
from hierseg.models.dsspn import DSSPN, NeuronHead, head_parameter_count, subsample
from hierseg.models.registry import model_info
from hierseg.taxonomy import NeuronGraph, Taxonomy, load_spec
from tests.taxonomy.toy import toy_taxonomy

M0, M = 8, 4


@pytest.fixture(scope="module")
def graph() -> NeuronGraph:
    return NeuronGraph(toy_taxonomy())


def head(graph: NeuronGraph, seed: int = 0, **kwargs) -> NeuronHead:
    torch.manual_seed(seed)
    return NeuronHead(graph, m0=M0, m=M, **kwargs).double()


def fine_labels() -> torch.Tensor:
    """Four 'fine' images with different sub-graphs (ids: 1 dog, 2 cat, 3 car, 4 lane, 5 crosswalk, 6 sky, 0 ignore)."""
    y = torch.zeros(4, 12, 12, dtype=torch.long)
    y[0, :6], y[0, 6:] = 1, 2          # animals only
    y[1, :, :6], y[1, :, 6:] = 3, 6    # car and sky
    y[2, :4], y[2, 4:8], y[2, 8:] = 4, 5, 1  # lane, crosswalk, dog
    y[3] = 6                           # sky only
    y[3, :2] = 0                       # with some ignore
    return y


def nested_labels() -> torch.Tensor:
    """Four 'nested' images (0 vehicle, 1 car, 255 ignore): the vehicle neuron's self output has pixels to learn."""
    y = torch.full((4, 12, 12), 255, dtype=torch.long)
    y[0, :6], y[0, 6:] = 0, 1   # vehicle itself and car
    y[1, :, :4] = 1             # car only
    y[2, 3:9, 3:9] = 0          # vehicle only
    return y


def reference_loss(h: NeuronHead, h0: torch.Tensor, label: torch.Tensor, dataset: str,
                   weighting: str) -> torch.Tensor:
    """The batch loss recomputed by running the head on each image alone and pooling the per-neuron sums."""
    sums: dict[int, torch.Tensor] = {}
    counts: dict[int, torch.Tensor] = {}
    small = subsample(label, h0.shape[-2:])
    table = h.graph.activation_table(dataset).any(1)
    pixels = int(table[small.numpy()].sum())  # pixels some neuron learns from
    for b in range(len(h0)):
        prop = h.propagate(h0[b : b + 1], h.activation(dataset, small[b : b + 1]))
        neurons = sorted(prop.rows)
        targets = h.graph.targets(dataset, small[b : b + 1], neurons)
        s, c = h.neuron_losses(prop, targets, neurons, dataset)
        for n, si, ci in zip(neurons, s, c, strict=True):
            sums[n] = sums.get(n, 0) + si
            counts[n] = counts.get(n, 0) + ci
    if weighting == "pixel":
        return sum(sums.values()) / pixels
    return sum(sums[n] / counts[n].clamp(min=1) for n in sums)


@pytest.mark.parametrize("kwargs", [{}, {"memory_efficient": False}, {"dense": False}, {"combine": "sum"},
                                    {"classifier": "sigmoid"}])
@pytest.mark.parametrize(("dataset", "weighting"), [("fine", "pixel"), ("nested", "pixel"), ("fine", "neuron")])
def test_dynamic_batching_equals_one_image_at_a_time(graph: NeuronGraph, kwargs: dict, dataset: str,
                                                     weighting: str) -> None:
    h = head(graph, **kwargs)
    label = fine_labels() if dataset == "fine" else nested_labels()
    h0 = torch.rand(4, M0, 12, 12, dtype=torch.double, requires_grad=True)
    loss, prop = h.loss(h0, label, dataset, weighting=weighting)
    assert {n for n in prop.rows if len(prop.rows[n]) < 4}, "the batch must exercise partial sub-graphs"
    grads = torch.autograd.grad(loss, [h0, *h.parameters()], allow_unused=True)

    for b in range(4):  # forward: every neuron's logits for every image
        alone = h.propagate(h0[b : b + 1], h.activation(dataset, label[b : b + 1]))
        assert set(alone.rows) == {n for n in prop.rows if b in prop.rows[n]}
        for n, logits in alone.logits.items():
            row = int(np.flatnonzero(prop.rows[n] == b)[0])
            torch.testing.assert_close(prop.logits[n][row], logits[0], atol=1e-5, rtol=0)

    ref = reference_loss(h, h0, label, dataset, weighting)
    ref_grads = torch.autograd.grad(ref, [h0, *h.parameters()], allow_unused=True)
    torch.testing.assert_close(loss, ref, atol=1e-5, rtol=0)
    for got, want in zip(grads, ref_grads, strict=True):
        assert (got is None) == (want is None)
        if got is not None:
            torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("classifier", ["softmax", "sigmoid"])
def test_neurons_outside_the_sub_graph_and_masked_children_get_zero_gradient(graph: NeuronGraph,
                                                                            classifier: str) -> None:
    h = head(graph, classifier=classifier)
    # 'coarse' labels animal (0) and road (3): root, things and stuff run; animal and road are labelled as a whole,
    # so their neurons stay off, and vehicle is absent.
    label = torch.zeros(2, 8, 8, dtype=torch.long)
    label[:, 4:] = 3
    h0 = torch.rand(2, M0, 8, 8, dtype=torch.double)
    loss, prop = h.loss(h0, label, "coarse")
    assert sorted(prop.rows) == [graph.index[c] for c in ("root", "things", "stuff")]
    loss.backward()
    for n in ("animal", "vehicle", "road"):
        for p in h.neurons[graph.index[n]].parameters():
            assert p.grad is None or not p.grad.any()
    assert all(p.grad.abs().sum() > 0 for n in ("root", "things") for p in h.neurons[graph.index[n]].parameters())

    # 'nested' labels vehicle and car only: the root's 'stuff' output and the things neuron's 'animal' output are
    # undefined there and must learn nothing, while the defined outputs do learn; under softmax a neuron with one
    # defined output has nothing to choose between (its cross-entropy is 0), so that output learns nothing either.
    h.zero_grad()
    label = torch.ones(2, 8, 8, dtype=torch.long)
    label[:, :3] = 0
    loss, _ = h.loss(h0, label, "nested")
    loss.backward()
    alone = classifier == "softmax"
    for neuron, child, defined in (("root", "stuff", False), ("root", "things", not alone),
                                   ("things", "animal", False), ("things", "vehicle", not alone),
                                   ("vehicle", "car", True), ("vehicle", "bus", False), ("vehicle", "vehicle", True)):
        k = graph[neuron].outputs.index(child)
        layer = h.neurons[graph.index[neuron]].predict
        assert bool(layer.weight.grad[k].any()) is defined and bool(layer.bias.grad[k] != 0) is defined


def test_self_output_learns_to_stop_where_the_dataset_stops(graph: NeuronGraph) -> None:
    """'nested' pixels labelled vehicle (not car) push vehicle's self output up and its car output down."""
    h = head(graph)
    vehicle = graph["vehicle"]
    h0 = torch.rand(2, M0, 8, 8, dtype=torch.double)
    loss, _ = h.loss(h0, torch.zeros(2, 8, 8, dtype=torch.long), "nested")  # all vehicle itself
    loss.backward()
    bias = h.neurons[vehicle.index].predict.bias.grad
    assert bias[vehicle.self_index] < 0 < bias[vehicle.outputs.index("car")]  # descent raises self, lowers car
    assert bias[vehicle.outputs.index("bus")] == 0  # undefined in 'nested'


def fixed_decisions(model: DSSPN, choices: dict[str, tuple[str, float]], low: float = -5.0) -> None:
    """Make every neuron's prediction constant: the named output (a child, or the neuron's own concept for its self
    output) gets the logit, the others ``low``."""
    for neuron in model.graph.neurons:
        layer = model.head.neurons[neuron.index].predict
        torch.nn.init.zeros_(layer.weight)
        layer.bias.data.fill_(low)
        if neuron.concept in choices:
            output, logit = choices[neuron.concept]
            layer.bias.data[neuron.outputs.index(output)] = logit


def toy_model(**kwargs: object) -> DSSPN:
    torch.manual_seed(0)
    model = DSSPN(toy_taxonomy(), backbone="resnet18", m0=M0, m=M, **kwargs)
    return model.eval()


def test_greedy_inference_follows_the_argmax_path_and_runs_only_reached_neurons() -> None:
    model = toy_model(inference="greedy")
    g = model.graph
    fixed_decisions(model, {"root": ("stuff", 3.0), "stuff": ("road", 2.0), "road": ("crosswalk", 1.0),
                            "things": ("vehicle", 4.0), "vehicle": ("bus", 1.0)})
    ran: list[str] = []
    for neuron in g.neurons:
        model.head.neurons[neuron.index].register_forward_hook(lambda *_, c=neuron.concept: ran.append(c))
    h0 = torch.rand(2, M0, 6, 6)
    concepts = model.infer(h0, (6, 6))
    assert (concepts == g.concept_index["crosswalk"]).all()
    assert ran == ["root", "stuff", "road"]  # things, animal and vehicle are never reached

    ran.clear()  # 'coarse' labels road as a whole: inference stops there and returns its id (3)
    assert (model.infer(h0, (6, 6), "coarse") == g.concept_index["road"]).all() and ran == ["root", "stuff"]
    ran.clear()  # the path rule runs every neuron the dataset can reach, and agrees here
    assert (model.infer(h0, (6, 6), "coarse", rule="path") == g.concept_index["road"]).all()
    assert ran == ["root", "things", "stuff", "vehicle"]


@pytest.mark.parametrize("rule", ["greedy", "path"])
def test_self_outputs_decide_between_a_concept_and_its_children(rule: str) -> None:
    model = toy_model(inference=rule)
    g = model.graph
    image = torch.rand(1, 3, 32, 32)
    # 'nested' defines neither stuff nor animal: the mask forces things -> vehicle, then vehicle's self output
    # against its defined child car decides between ids 0 (vehicle) and 1 (car)
    fixed_decisions(model, {"vehicle": ("vehicle", 2.0)})
    assert (model.predict(image, "nested") == 0).all()
    fixed_decisions(model, {"vehicle": ("car", 2.0)})
    assert (model.predict(image, "nested") == 1).all()
    # the tree space stops where the last decision put a pixel: road itself, or the animal, never a guess below
    fixed_decisions(model, {"root": ("stuff", 2.0), "stuff": ("road", 2.0), "road": ("road", 2.0)})
    assert (model.predict(image) == g.concept_index["road"]).all()
    fixed_decisions(model, {"root": ("things", 2.0), "things": ("animal", 2.0), "animal": ("animal", 2.0)})
    assert (model.predict(image) == g.concept_index["animal"]).all()


def test_path_rule_weighs_a_confident_deeper_decision_against_an_unsure_early_one() -> None:
    model = toy_model()
    g = model.graph
    # root: things 0.55 against stuff 0.45; below things every decision is a coin toss, below stuff sky is sure
    fixed_decisions(model, {"stuff": ("sky", 6.0)})
    root = model.head.neurons[g.index["root"]].predict
    root.bias.data[g["root"].outputs.index("things")] = 0.2
    root.bias.data[g["root"].outputs.index("stuff")] = 0.0
    for name in ("things", "animal", "vehicle"):
        model.head.neurons[g.index[name]].predict.bias.data.fill_(0.0)
    h0 = torch.rand(1, M0, 4, 4)
    greedy = model.infer(h0, (4, 4), rule="greedy")
    assert set(greedy.unique().tolist()) <= {g.concept_index[c] for c in ("dog", "cat", "car", "bus", "animal",
                                                                           "vehicle")}
    assert (model.infer(h0, (4, 4), rule="path") == g.concept_index["sky"]).all()


@pytest.mark.parametrize("rule", ["greedy", "path"])
def test_inference_decides_per_pixel(rule: str) -> None:
    model = toy_model(inference=rule)
    g = model.graph
    # sure decisions below the root (the path rule multiplies them in), so the root alone decides each pixel
    fixed_decisions(model, {"stuff": ("sky", 1.0), "things": ("animal", 1.0), "animal": ("cat", 1.0)}, low=-40.0)
    # The root neuron passes channel 0 of h0 through, and says 'things' where it exceeds 0.5, 'stuff' elsewhere.
    root = model.head.neurons[g.index["root"]]
    for layer in (root.reduce, root.conv, root.predict):
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    root.reduce.weight.data[0, 0] = 1.0
    root.conv.weight.data[0, 0, 1, 1] = 1.0
    things, stuff = g["root"].children.index("things"), g["root"].children.index("stuff")
    root.predict.weight.data[things, 0] = 1.0
    root.predict.bias.data[stuff] = 0.5
    h0 = torch.rand(1, M0, 5, 5)
    concepts = model.infer(h0, (5, 5))[0]
    expected = torch.where(h0[0, 0] > 0.5, g.concept_index["cat"], g.concept_index["sky"])
    assert torch.equal(concepts, expected) and len(concepts.unique()) == 2


VARIANTS = [{"m": 32}, {"m": 64}, {"dense": False}, {"combine": "sum"}, {"classifier": "sigmoid"},
            {"structure": "fixed"}, {"memory_efficient": False}, {"weighting": "neuron"}, {"supervision": "full"},
            {"inference": "greedy"}]


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_every_ablation_variant_builds_and_trains_one_step(kwargs: dict) -> None:
    torch.manual_seed(0)
    model = create_model("dsspn_resnet18", taxonomy=toy_taxonomy(), **kwargs)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    image = torch.rand(2, 3, 33, 33)
    label = fine_labels()[:2].repeat_interleave(3, 1).repeat_interleave(3, 2)[:, :33, :33]
    loss = model(image, label, "fine")["loss"]
    loss.backward()
    before = [p.detach().clone() for p in model.head.parameters()]
    opt.step()
    assert torch.isfinite(loss) and loss > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.head.parameters(), strict=True))
    assert model.eval().predict(image, "fine").shape == (2, 33, 33)


@pytest.mark.parametrize("kwargs", [{}, {"m": 32, "m0": 128}, {"dense": False}, {"combine": "sum"}])
def test_head_parameter_count_follows_from_the_tree(graph: NeuronGraph, kwargs: dict) -> None:
    h = NeuronHead(graph, **kwargs)
    assert sum(p.numel() for p in h.parameters()) == head_parameter_count(graph, **kwargs)


def test_head_parameter_count_by_hand(graph: NeuronGraph) -> None:
    # toy: root (0 ancestors, 2 outputs), things/stuff (1 ancestor, 2 outputs), animal/vehicle/road (2 ancestors,
    # 2 children and a self output each)
    def per(depth: int, outputs: int) -> int:
        return (M0 + M * depth) * 4 * M + 4 * M + 4 * M * M * 9 + M + M * outputs + outputs

    assert head_parameter_count(graph, M0, M) == per(0, 2) + 2 * per(1, 2) + 3 * per(2, 3)


def chain_taxonomy(depth: int) -> Taxonomy:
    """root -> n1 -> ... -> n{depth-1}, each inner node with a leaf beside the next; one dataset labels the leaves."""
    concepts = [{"id": "n0", "name": "n0", "parent": None, "depth": 0, "labels": {}}]
    for d in range(1, depth + 1):
        concepts.append({"id": f"leaf{d}", "name": f"leaf{d}", "parent": f"n{d - 1}", "depth": d,
                         "labels": {"chain": [d]}})
        if d < depth:
            concepts.append({"id": f"n{d}", "name": f"n{d}", "parent": f"n{d - 1}", "depth": d, "labels": {}})
    concepts.append({"id": "last", "name": "last", "parent": f"n{depth - 1}", "depth": depth,
                     "labels": {"chain": [depth + 1]}})
    return Taxonomy({"root": "n0", "concepts": concepts, "datasets": {"chain": {"ignore": 0, "void": {}}}})


def saved_bytes(depth: int, memory_efficient: bool) -> int:
    g = NeuronGraph(chain_taxonomy(depth))
    torch.manual_seed(0)
    h = NeuronHead(g, m0=64, m=16, memory_efficient=memory_efficient)
    label = torch.full((2, 16, 16), depth + 1, dtype=torch.long)  # the deepest leaf: every neuron runs
    h0 = torch.rand(2, 64, 16, 16)
    with saved_activations() as saved:
        loss, prop = h.loss(h0, label, "chain")
    assert len(prop.rows) == depth
    return saved.total


def test_memory_efficient_blocks_keep_saved_activations_linear_in_depth() -> None:
    depths = [2, 3, 4, 5, 6]
    efficient = np.diff([saved_bytes(d, True) for d in depths])
    naive = np.diff([saved_bytes(d, False) for d in depths])
    assert (efficient == efficient[0]).all()  # each level adds the same bytes: linear
    assert (np.diff(naive) > 0).all()  # each level adds more than the last: quadratic
    assert efficient[-1] < naive[-1]


def test_bad_arguments_are_one_line_errors() -> None:
    with pytest.raises(HiersegError, match="structure"):
        create_model("dsspn_resnet18", taxonomy=toy_taxonomy(), structure="static")
    with pytest.raises(HiersegError, match="inference must be one of 'greedy', 'path', not 'beam'"):
        create_model("dsspn_resnet18", taxonomy=toy_taxonomy(), inference="beam")
    with pytest.raises(HiersegError, match="has no argument 'mm'"):
        create_model("dsspn_resnet18", taxonomy=toy_taxonomy(), mm=3)
    model = toy_model().train()
    with pytest.raises(HiersegError, match="not in the model's taxonomy"):
        model(torch.rand(1, 3, 17, 17), torch.zeros(1, 17, 17, dtype=torch.long), "cityscapes")


def test_real_tree_head_and_universal_step() -> None:
    torch.manual_seed(0)
    model = create_model("dsspn_resnet18", m=16, m0=32)
    assert len(model.head.neurons) == len(model.graph)
    assert sum(p.numel() for p in model.head.parameters()) == head_parameter_count(model.graph, 32, 16)
    image = torch.rand(1, 3, 41, 41)
    for dataset, value in (("cityscapes", 7), ("mapillary", 13), ("ade20k", 7), ("coco_stuff", 0)):
        out = model(image, torch.full((1, 41, 41), value, dtype=torch.long), dataset)
        assert torch.isfinite(out["loss"]) and out["neurons"] >= 1
    model.eval()
    for dataset in model.label_spaces:
        ids = model.predict(image, dataset)
        assert set(ids.unique().tolist()) <= set(model.graph.space(dataset).concepts)


REAL_TARGETS = [("ade20k", name) for name in ("palm", "van", "pillow", "screen door", "cradle", "tree", "truck",
                                               "cushion", "door", "bed")] + \
               [("cityscapes", name) for name in ("bridge", "tunnel", "pole", "polegroup")] + \
               [("mapillary", name) for name in ("construction--structure--building", "object--phone-booth")]


@pytest.fixture(scope="module")
def real_model() -> DSSPN:
    torch.manual_seed(0)
    return create_model("dsspn_resnet18", m=4, m0=8).eval()


@pytest.mark.parametrize("rule", ["greedy", "path"])
@pytest.mark.parametrize(("dataset", "name"), REAL_TARGETS)
def test_hand_wired_head_outputs_single_child_and_nested_labels(real_model: DSSPN, dataset: str, name: str,
                                                                 rule: str) -> None:
    """The labels the paper's neurons could never output (ADE20K's only children, Cityscapes' pole with its polegroup
    below it, Mapillary's building above its phone booth): wire each neuron on the label's route to choose it, and
    the label comes out."""
    g = real_model.graph
    value = next(label.id for label in load_spec(dataset).labels if label.name.split(";")[0] == name)
    concept = g.taxonomy.concept_of(dataset, value)
    for neuron in g.neurons:
        layer = real_model.head.neurons[neuron.index].predict
        torch.nn.init.zeros_(layer.weight)
        layer.bias.data.fill_(-5.0)
    for n, output in g.route(concept, stop=g.stops(dataset, concept)):
        real_model.head.neurons[n].predict.bias.data[output] = 5.0
    real_model.inference = rule
    image = torch.rand(1, 3, 24, 24)
    assert (real_model.predict(image, dataset) == value).all()
    # in the tree's space the same decisions end at the concept itself
    assert (real_model.predict(image) == g.concept_index[concept]).all()


def test_models_info_reports_no_unpredictable_labels() -> None:
    for dataset in ("coco_stuff", "ade20k", "cityscapes", "mapillary"):
        info = model_info("dsspn_resnet18", {"m": 8}, dataset)
        assert info["unpredictable_labels"] == []
        assert info["self_outputs"] > 0

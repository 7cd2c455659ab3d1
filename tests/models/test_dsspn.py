"""DSSPN: dynamic batching equals running each image alone, gradients stay inside each image's sub-graph and the
dataset's concept mask, inference follows the argmax path, every ablation variant trains, the head's size follows
from the tree, and the memory-efficient block keeps saved activations linear in depth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hierseg.models import create_model
from hierseg.models.dsspn import DSSPN, NeuronHead, head_parameter_count, subsample
from hierseg.models.memory import saved_activations
from hierseg.taxonomy import NeuronGraph, Taxonomy
from hierseg.taxonomy.errors import HiersegError
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


def reference_loss(h: NeuronHead, h0: torch.Tensor, label: torch.Tensor, dataset: str) -> torch.Tensor:
    """The batch loss recomputed by running the head on each image alone and pooling the per-neuron sums."""
    sums: dict[int, torch.Tensor] = {}
    counts: dict[int, torch.Tensor] = {}
    small = subsample(label, h0.shape[-2:])
    for b in range(len(h0)):
        prop = h.propagate(h0[b : b + 1], h.activation(dataset, small[b : b + 1]))
        neurons = sorted(prop.rows)
        targets = h.graph.targets(dataset, small[b : b + 1], neurons)
        s, c = h.neuron_losses(prop, targets, neurons, dataset)
        for n, si, ci in zip(neurons, s, c, strict=True):
            sums[n] = sums.get(n, 0) + si
            counts[n] = counts.get(n, 0) + ci
    return sum(sums[n] / counts[n].clamp(min=1) for n in sums)


@pytest.mark.parametrize("kwargs", [{}, {"memory_efficient": False}, {"dense": False}, {"combine": "sum"},
                                    {"classifier": "softmax"}])
def test_dynamic_batching_equals_one_image_at_a_time(graph: NeuronGraph, kwargs: dict) -> None:
    h = head(graph, **kwargs)
    label = fine_labels()
    h0 = torch.rand(4, M0, 12, 12, dtype=torch.double, requires_grad=True)
    loss, prop = h.loss(h0, label, "fine")
    assert {n for n in prop.rows if len(prop.rows[n]) < 4}, "the batch must exercise partial sub-graphs"
    grads = torch.autograd.grad(loss, [h0, *h.parameters()], allow_unused=True)

    for b in range(4):  # forward: every neuron's logits for every image
        alone = h.propagate(h0[b : b + 1], h.activation("fine", label[b : b + 1]))
        assert set(alone.rows) == {n for n in prop.rows if b in prop.rows[n]}
        for n, logits in alone.logits.items():
            row = int(np.flatnonzero(prop.rows[n] == b)[0])
            torch.testing.assert_close(prop.logits[n][row], logits[0], atol=1e-5, rtol=0)

    ref = reference_loss(h, h0, label, "fine")
    ref_grads = torch.autograd.grad(ref, [h0, *h.parameters()], allow_unused=True)
    torch.testing.assert_close(loss, ref, atol=1e-5, rtol=0)
    for got, want in zip(grads, ref_grads, strict=True):
        assert (got is None) == (want is None)
        if got is not None:
            torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_neurons_outside_the_sub_graph_and_masked_children_get_zero_gradient(graph: NeuronGraph) -> None:
    h = head(graph)
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
    # undefined there and must learn nothing, while the defined outputs do learn.
    h.zero_grad()
    label = torch.ones(2, 8, 8, dtype=torch.long)
    label[:, :3] = 0
    loss, _ = h.loss(h0, label, "nested")
    loss.backward()
    for neuron, child, defined in (("root", "stuff", False), ("root", "things", True), ("things", "animal", False),
                                   ("things", "vehicle", True)):
        k = graph[neuron].children.index(child)
        layer = h.neurons[graph.index[neuron]].predict
        assert bool(layer.weight.grad[k].any()) is defined and bool(layer.bias.grad[k] != 0) is defined


def fixed_decisions(model: DSSPN, choices: dict[str, tuple[str, float]]) -> None:
    """Make every neuron's prediction constant: the named child gets the logit, the others -5."""
    for neuron in model.graph.neurons:
        layer = model.head.neurons[neuron.index].predict
        torch.nn.init.zeros_(layer.weight)
        layer.bias.data.fill_(-5.0)
        if neuron.concept in choices:
            child, logit = choices[neuron.concept]
            layer.bias.data[neuron.children.index(child)] = logit


def toy_model(**kwargs) -> DSSPN:
    torch.manual_seed(0)
    model = DSSPN(toy_taxonomy(), backbone="resnet18", m0=M0, m=M, **kwargs)
    return model.eval()


def test_inference_follows_the_argmax_path_and_runs_only_reached_neurons() -> None:
    model = toy_model()
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
    # 'nested' defines neither stuff nor animal: the mask forces things -> vehicle, then vehicle stays vehicle
    # (id 0) unless its defined child car is more likely than not
    image = torch.rand(1, 3, 32, 32)
    assert (model.predict(image, "nested") == 0).all()
    model.head.neurons[g.index["vehicle"]].predict.bias.data[g["vehicle"].children.index("car")] = 2.0
    assert (model.predict(image, "nested") == 1).all()


def test_inference_decides_per_pixel() -> None:
    model = toy_model()
    g = model.graph
    fixed_decisions(model, {"stuff": ("sky", 1.0), "things": ("animal", 1.0), "animal": ("cat", 1.0)})
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


VARIANTS = [{"m": 32}, {"m": 64}, {"dense": False}, {"combine": "sum"}, {"classifier": "softmax"},
            {"structure": "fixed"}, {"memory_efficient": False}]


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
    # toy: root (0 ancestors, 2 children), things/stuff (1 ancestor, 2 children), animal/vehicle/road (2, 2 each)
    per = {d: (M0 + M * d) * 4 * M + 4 * M + 4 * M * M * 9 + M + M * 2 + 2 for d in range(3)}
    assert head_parameter_count(graph, M0, M) == per[0] + 2 * per[1] + 3 * per[2]


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
    with pytest.raises(HiersegError, match="has no argument 'mm'"):
        create_model("dsspn_resnet18", taxonomy=toy_taxonomy(), mm=3)
    model = toy_model().train()
    with pytest.raises(HiersegError, match="not in the model's taxonomy"):
        model(torch.rand(1, 3, 17, 17), torch.zeros(1, 17, 17, dtype=torch.long), "cityscapes")


def test_real_tree_head_and_universal_step() -> None:
    torch.manual_seed(0)
    model = create_model("dsspn_resnet18", m=16, m0=32)
    assert len(model.head.neurons) == 89
    assert sum(p.numel() for p in model.head.parameters()) == head_parameter_count(model.graph, 32, 16)
    image = torch.rand(1, 3, 41, 41)
    for dataset, value in (("cityscapes", 7), ("mapillary", 13), ("ade20k", 7), ("coco_stuff", 0)):
        out = model(image, torch.full((1, 41, 41), value, dtype=torch.long), dataset)
        assert torch.isfinite(out["loss"]) and out["neurons"] >= 1
    model.eval()
    for dataset in model.label_spaces:
        ids = model.predict(image, dataset)
        assert set(ids.unique().tolist()) <= set(model.graph.space(dataset).concepts)

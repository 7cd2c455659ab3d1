"""PDN: Table 1 parameter counts, the special atrous filters' reach, placement in the ResNet, training step."""

from __future__ import annotations

import pytest
import torch

from hierseg.core.errors import HiersegError
from hierseg.models import create_model
from hierseg.models.pdn import PDN, DiffusionBlock, DiffusionLayer, DiffusionModule, site_groups, table1_weight_count

# Table 1, "total parameter of the module" (4 layers): Diffused LSTM-8NB 288d, Diffused LSTM-24NB 1200d.
TABLE1 = {1: 288, 2: 1200}


@pytest.mark.parametrize("spatial", [1, 2])
@pytest.mark.parametrize("d", [1, 3, 64, 256])
def test_weight_count_is_table1_formula(spatial, d):
    module = DiffusionModule(channels=d, spatial=spatial, layers=4)
    assert module.weight_count() == TABLE1[spatial] * d
    # the count is the real parameters, not a formula: every non-bias parameter of the module
    assert module.weight_count() == sum(p.numel() for n, p in module.named_parameters() if not n.endswith("bias"))


def test_weight_count_paper_numbers():
    assert DiffusionModule(256, spatial=1).weight_count() == 73_728
    assert DiffusionModule(256, spatial=2).weight_count() == 307_200  # "about 307K" (Sec. 4.3)


@pytest.mark.parametrize("spatial,layers", [(1, 1), (2, 3), (3, 2)])
def test_weight_count_general_form(spatial, layers):
    module = DiffusionModule(channels=5, spatial=spatial, layers=layers)
    assert module.weight_count() == table1_weight_count(5, spatial, layers)
    assert module.weight_count() == layers * (spatial + 1) * 4 * (2 * spatial + 1) ** 2 * 5


@pytest.mark.parametrize("spatial,ring_sizes", [(1, [1, 8]), (2, [1, 8, 16])])
def test_site_groups_partition_the_window(spatial, ring_sizes):
    groups = site_groups(spatial)
    size = 2 * spatial + 1
    assert groups.shape == (spatial + 1, size, size)
    assert groups.sum((1, 2)).tolist() == ring_sizes
    assert torch.equal(groups.sum(0), torch.ones(size, size))
    assert groups[0, spatial, spatial] == 1  # depth filter: the centre only


@pytest.mark.parametrize("spatial", [1, 2])
def test_layer_shapes(spatial):
    d, lstms, size = 4, spatial + 1, 2 * spatial + 1
    layer = DiffusionLayer(d, spatial)
    assert layer.kernel().shape == (d * lstms * 4, lstms, size, size)
    hidden = [torch.randn(2, d, 6, 7) for _ in range(lstms)]
    new_hidden, new_memory = layer(hidden, [torch.zeros(2, d, 6, 7)] * lstms)
    assert len(new_hidden) == len(new_memory) == lstms
    assert all(h.shape == (2, d, 6, 7) for h in new_hidden + new_memory)
    assert all(h.abs().max() < 1 for h in new_hidden)  # o * tanh(m)


def _changed(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs() > 1e-12


@pytest.mark.parametrize("spatial", [1, 2])
def test_each_input_map_is_read_through_its_own_ring(spatial):
    """Perturbing input map e at one site changes gates only at distance exactly e (the centre for the depth map)."""
    torch.manual_seed(0)
    layer = DiffusionLayer(3, spatial).double()
    hidden = [torch.randn(1, 3, 11, 11, dtype=torch.float64) for _ in range(spatial + 1)]
    memory = [torch.randn(1, 3, 11, 11, dtype=torch.float64) for _ in range(spatial + 1)]
    base, _ = layer(hidden, memory)
    r = torch.arange(11) - 5
    distance = torch.maximum(r.abs()[:, None], r.abs()[None, :])
    for e in range(spatial + 1):
        bumped = [h.clone() for h in hidden]
        bumped[e][0, 1, 5, 5] += 1.0
        out, _ = layer(bumped, memory)
        for n in range(spatial + 1):  # every LSTM of the layer reads every map
            changed = _changed(out[n], base[n])[0]
            assert not changed[[0, 2]].any()  # channel-wise filters: other channels untouched
            assert torch.equal(changed[1], distance == e)


@pytest.mark.parametrize("spatial", [1, 2])
def test_diffusion_spreads_e_sites_per_layer(spatial):
    torch.manual_seed(0)
    module = DiffusionModule(channels=2, spatial=spatial, layers=2).double()
    x = torch.randn(1, 2, 15, 15, dtype=torch.float64)
    bumped = x.clone()
    bumped[0, 0, 7, 7] += 1.0
    r = torch.arange(15) - 7
    distance = torch.maximum(r.abs()[:, None], r.abs()[None, :])
    for t, (a, b) in enumerate(zip(module(x), module(bumped), strict=True), 1):
        changed = _changed(a, b)[0]
        assert not changed[1].any()
        assert torch.equal(changed[0], distance <= t * spatial)


def test_block_starts_as_identity():
    block = DiffusionBlock(in_channels=8, channels=4, spatial=1, layers=2)
    x = torch.relu(torch.randn(2, 8, 9, 9))
    y, depth = block(x)
    assert torch.equal(y, x)
    assert len(depth) == 2 and depth[0].shape == (2, 4, 9, 9)


def test_train_step_resnet18():
    torch.manual_seed(0)
    model = create_model("pdn_resnet18", num_classes=5, channels=16, neighbours=8)
    image = torch.randn(2, 3, 129, 129)
    label = torch.randint(0, 5, (2, 129, 129))
    label[:, :10] = 255
    out = model(image, label)
    assert set(out) == {"loss", "loss_main", *(f"loss_pdn1_layer{t}" for t in range(1, 5))}
    assert torch.allclose(out["loss"], sum(v for k, v in out.items() if k != "loss"))
    out["loss"].backward()
    for layer in model.blocks[0].module.layers:
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert model.backbone.body.conv1.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    assert [name for name, _, _ in model.scores(image)] == ["main"]
    assert model.class_scores(image).shape == (2, 5, 129, 129)
    pred = model.predict(image)
    assert pred.shape == (2, 129, 129) and 0 <= int(pred.min()) and int(pred.max()) < 5


def test_two_modules_placement():
    model = create_model("pdn_resnet18", num_classes=3, channels=8, layers=2, modules=2)
    body = model.backbone.body
    assert [b.reduce[0].in_channels for b in model.blocks] == [512, 256]  # 5b/5c, then stage 4 -> 5
    order: list[str] = []
    named = {"layer3": body.layer3, "5b": body.layer4[0], "5c": body.layer4[1],
             "pdn1": model.blocks[0], "pdn2": model.blocks[1]}
    for name, mod in named.items():
        mod.register_forward_hook(lambda *_, name=name: order.append(name))
    scores = model.scores(torch.randn(1, 3, 65, 65))
    assert order == ["layer3", "pdn2", "5b", "pdn1", "5c"]
    assert [n for n, _, _ in scores] == ["main", "pdn1_layer1", "pdn1_layer2", "pdn2_layer1", "pdn2_layer2"]
    assert all(s.shape == (1, 3, 9, 9) for _, s, _ in scores)  # output stride 8


def test_create_model_defaults():
    model = create_model("pdn_resnet18", num_classes=5)
    assert isinstance(model, PDN) and model.backbone.name == "resnet18"
    assert len(model.blocks) == 1 and model.diffusion_weight_count() == 307_200  # 24NB, 4 layers, d = 256


def test_default_dataset_is_ade20k():
    model = create_model("pdn_resnet18", channels=4, layers=1)
    assert model.label_spaces == ("ade20k",)
    assert model.outputs.num_outputs == 150


@pytest.mark.parametrize("kwargs", [{"depth": 3}, {"neighbours": 16}, {"modules": 3}, {"layers": 0}])
def test_bad_arguments(kwargs):
    with pytest.raises(HiersegError):
        create_model("pdn_resnet18", num_classes=5, **kwargs)

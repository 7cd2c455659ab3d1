"""SPGNet: the paper's parameter counts, forward/backward on odd sizes, the SPG ablations, OHEM, AP pooling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import timm
import torch

from hierseg.core.errors import HiersegError
from hierseg.data.loader import collate
from hierseg.data.readers import official
from hierseg.data.synth import synthesize
from hierseg.data.transforms import TrainTransform
from hierseg.models import create_model
from hierseg.models.spgnet import SPG, ImageContext, SPGNet, ohem_loss, window_mean

SMALL = (2, 3, 33, 33)  # odd: 33 -> 17 -> 9 (1/4) -> 5 -> 3 -> 2 along the encoder



def n_params(model: torch.nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


def batch(shape: tuple[int, ...], classes: int = 19, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(shape, generator=g)
    label = torch.randint(0, classes, (shape[0], *shape[2:]), generator=g)
    label[:, :3] = 255  # some ignored pixels
    return image, label


@pytest.mark.parametrize(("name", "stages", "width", "paper"), [
    ("spgnet_resnet18", 1, 128, 11.7),  # Table 3
    ("spgnet_resnet18", 2, 128, 23.9),  # Table 3
    ("spgnet_resnet18", 3, 128, 36.2),  # Table 5
    ("spgnet_resnet50", 2, 128, 55.6),  # Table 6
    ("spgnet_resnet50", 2, 256, 59.8),  # Tables 1, 9
    ("spgnet_resnet101", 2, 128, 93.5),  # Table 7
])
def test_parameter_counts_match_the_paper(name: str, stages: int, width: int, paper: float) -> None:
    with torch.device("meta"):
        model = create_model(name, num_classes=19, stages=stages, width=width)
    assert n_params(model) == pytest.approx(paper, rel=0.03)


@pytest.mark.parametrize("variant", [dict(excitation="sum"), dict(excitation="softmax"), dict(identity=False),
                                     dict(spg_supervision=False), dict(excitation="none")])
def test_spg_ablations_keep_the_parameter_count(variant: dict) -> None:
    with torch.device("meta"):
        model = create_model("spgnet_resnet18", num_classes=19, **variant)
    assert n_params(model) == pytest.approx(23.9, rel=0.03)  # Table 3: every row is 23.9M


def test_later_stages_reuse_no_stem_and_every_encoder_is_backbone() -> None:
    with torch.device("meta"):
        model = create_model("spgnet_resnet18", num_classes=19, stages=3)
    stems = [[n for n, _ in encoder.named_modules() if n.endswith("conv1") and "layer" not in n]
             for encoder in model.backbone]
    assert stems == [["net.body.conv1"], [], []]
    groups = model.param_groups()
    encoders = {id(p) for p in model.backbone.parameters()}
    assert {id(p) for p in groups["backbone"]} == encoders
    assert groups["head"] and not encoders & {id(p) for p in groups["head"]}
    assert len(groups["backbone"]) + len(groups["head"]) == len(list(model.parameters()))


def test_every_stage_loads_the_backbone_file(tmp_path) -> None:
    reference = timm.create_model("resnet18", pretrained=False)
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    model = create_model("spgnet_resnet18", num_classes=19, backbone_weights=str(tmp_path / "r18.pth"), frozen_bn=True)
    for encoder in model.backbone:
        assert torch.equal(encoder.net.body.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)
        assert encoder.net.weights.source == "file"
    assert torch.equal(model.backbone[0].net.body.conv1.weight, reference.conv1.weight)


@pytest.fixture(scope="module")
def r18() -> SPGNet:
    torch.manual_seed(0)
    return create_model("spgnet_resnet18", num_classes=19)


def test_forward_backward_on_an_odd_size(r18: SPGNet) -> None:
    image, label = batch((2, 3, 129, 129))
    r18.train()
    r18.zero_grad()
    out = r18(image, label)
    assert set(out) == {"loss", "loss_main", "loss_stage1"}
    total, main, stage1 = (out[k].detach() for k in ("loss", "loss_main", "loss_stage1"))
    assert torch.isfinite(total) and float(total) == pytest.approx(float(main + stage1))
    out["loss"].backward()
    missing = [n for n, p in r18.named_parameters() if p.grad is None]
    assert not missing  # nothing unused: DDP needs no find_unused_parameters
    assert r18.backbone[0].net.body.conv1.weight.grad.abs().sum() > 0  # the first encoder learns from the last stage too

    r18.eval()
    main, stage1 = r18.scores(image)
    assert main[0] == "main" and main[1].shape == stage1[1].shape == (2, 19, 33, 33)  # 1/4 resolution
    assert r18.class_scores(image).shape == (2, 19, 129, 129)
    pred = r18.predict(image)
    assert pred.shape == (2, 129, 129) and pred.dtype == torch.int64 and 0 <= pred.min() and pred.max() < 19


@pytest.mark.parametrize(("variant", "terms"), [
    (dict(excitation="sigmoid"), {"loss_main", "loss_stage1"}),
    (dict(excitation="softmax"), {"loss_main", "loss_stage1"}),
    (dict(excitation="sum"), {"loss_main", "loss_stage1"}),
    (dict(excitation="none"), {"loss_main"}),  # Table 3 baseline: no prediction between stages
    (dict(identity=False), {"loss_main", "loss_stage1"}),
    (dict(spg_supervision=False), {"loss_main"}),
    (dict(cross_stage=False), {"loss_main", "loss_stage1"}),
    (dict(stages=1), {"loss_main"}),
    (dict(stages=3), {"loss_main", "loss_stage1", "loss_stage2"}),
])
def test_each_variant_builds_and_trains(variant: dict, terms: set[str]) -> None:
    torch.manual_seed(0)
    model = create_model("spgnet_resnet18", num_classes=19, **variant)
    out = model(*batch(SMALL))
    assert set(out) - {"loss"} == terms and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None]
    if variant.get("spg_supervision") is False:  # the logits are unsupervised but still guide stage 2
        assert model.classifier[0].weight.grad.abs().sum() > 0
    if variant.get("excitation") == "none":
        assert len(model.classifier) == 1


def spg_in_eval(excitation: str, identity: bool = True) -> SPG:
    torch.manual_seed(0)
    return SPG(width=8, num_classes=5, out_channels=6, excitation=excitation, identity=identity).eval()


def test_guided_attention_activations() -> None:
    logits = torch.randn(2, 5, 7, 9)
    sigmoid = spg_in_eval("sigmoid").attention(logits)
    assert sigmoid.shape == (2, 8, 7, 9) and 0 < sigmoid.min() and sigmoid.max() < 1
    softmax = spg_in_eval("softmax").attention(logits)  # over the H x W positions of each channel
    assert torch.allclose(softmax.sum((2, 3)), torch.ones(2, 8))


@torch.no_grad()
def test_identity_path_and_excitation() -> None:
    features, logits = torch.randn(2, 8, 7, 9), torch.randn(2, 5, 7, 9)
    with_id, without = spg_in_eval("sigmoid", True), spg_in_eval("sigmoid", False)
    for spg in (with_id, without):
        spg.transform[0].weight.zero_()  # the excited branch is then exactly 0
    assert torch.allclose(with_id(features, logits), with_id.project(features))
    assert torch.allclose(without(features, logits), without(torch.randn(2, 8, 7, 9), logits))  # ignores features
    excited = spg_in_eval("sigmoid")
    assert not torch.allclose(excited(features, logits), excited(features, logits + 1))  # guided by the prediction
    summed = spg_in_eval("sum")
    assert not torch.allclose(summed(features, logits), summed(features, logits + 1))
    plain = spg_in_eval("none")
    assert torch.allclose(plain(features, None), plain.project(features))


def manual_ohem(loss: torch.Tensor, valid: torch.Tensor, keep: float, threshold: float | None) -> float:
    chosen = []
    for values, ok in zip(loss.tolist(), valid.tolist(), strict=True):
        kept = sorted((v for v, o in zip(sum(values, []), sum(ok, []), strict=True) if o), reverse=True)
        k = math.ceil(keep * len(kept))
        chosen += kept[:k] + [v for v in kept[k:] if threshold is not None and v > threshold]
    return sum(chosen) / len(chosen)


@pytest.mark.parametrize(("keep", "threshold"), [(0.25, None), (0.1, 0.6), (1.0, None)])
def test_ohem_selects_the_hardest_valid_pixels(keep: float, threshold: float | None) -> None:
    g = torch.Generator().manual_seed(1)
    loss = torch.rand(2, 4, 5, generator=g).requires_grad_()
    valid = torch.rand(2, 4, 5, generator=g) > 0.3
    with torch.no_grad():
        loss[~valid] += 10  # invalid pixels are the "hardest" but must never be chosen
    result = ohem_loss(loss, valid, keep, threshold)
    assert result.item() == pytest.approx(manual_ohem(loss, valid, keep, threshold))
    result.backward()
    chosen = loss.grad > 0
    assert not (chosen & ~valid).any()
    for b in range(len(loss)):  # per image, every chosen pixel is harder than every valid one left out
        hard, rest = loss[b][chosen[b]], loss[b][valid[b] & ~chosen[b]]
        assert rest.numel() == 0 or hard.min() > rest.max()


@torch.no_grad()
def test_ohem_loss_of_the_model(r18: SPGNet) -> None:
    image, label = batch(SMALL)
    r18.eval()  # same batch-norm statistics for every call
    plain = r18(image, label)
    r18.ohem, r18.ohem_keep, r18.ohem_threshold = True, 1.0, None
    try:
        everything = r18(image, label)
        r18.ohem_keep = 0.1
        hardest = r18(image, label)
    finally:
        r18.ohem, r18.ohem_keep = False, 0.15
    for term in ("loss_main", "loss_stage1"):  # OHEM on every stage
        assert float(everything[term]) == pytest.approx(float(plain[term]), rel=1e-5)
        assert hardest[term] > plain[term]


def test_window_mean_and_ap_pooling() -> None:
    x = torch.randn(1, 2, 5, 7)
    pooled = window_mean(x, 3)
    assert pooled.shape == x.shape
    assert torch.allclose(pooled[..., 2, 3], x[..., 1:4, 2:5].mean((2, 3)))
    assert torch.allclose(pooled[..., 0, 0], x[..., 0:2, 0:2].mean((2, 3)))  # clipped at the border
    assert torch.allclose(window_mean(x, 4)[..., 2, 3], x[..., 0:4, 1:5].mean((2, 3)))  # even window
    assert window_mean(x, 7).shape == (1, 2, 1, 1)

    context = ImageContext(2, 4, reduction=32, eval_pool_crop=96)  # 96 / 32 = 3-position windows
    assert context(x).shape == (1, 4, 1, 1)  # training: global pooling
    context.eval()
    assert context(x).shape == (1, 4, 5, 7)
    assert ImageContext(2, 4, reduction=32).eval()(x).shape == (1, 4, 1, 1)


def test_trains_on_synthetic_cityscapes(tmp_path) -> None:
    synthesize("cityscapes", tmp_path, n=2, size=64, seed=0)
    data = official("cityscapes", tmp_path, "train", transform=TrainTransform(crop=33))
    item = collate([data[0], data[1]])
    torch.manual_seed(0)
    model = create_model("spgnet_resnet18")  # default label space: Cityscapes' own ids
    assert model.label_spaces == ("cityscapes",)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        loss = model(item["image"], item["label"], item["dataset"])["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    pred = model.eval().predict(item["image"], "cityscapes")
    assert set(np.unique(pred.numpy())) <= set(model.outputs.ids.tolist())


@pytest.mark.parametrize(("kwargs", "field"), [
    (dict(excitation="tanh"), "excitation"), (dict(width=130), "width"), (dict(stages=0), "stages"),
    (dict(ohem_keep=0.0), "ohem_keep"), (dict(ohem_threshold=-1.0), "ohem_threshold"),
    (dict(eval_pool_crop=0), "eval_pool_crop"), (dict(stage=2), "no argument 'stage'"),
    (dict(backbone="mobilenetv3_small_100"), "timm ResNet"),
])
def test_bad_options_name_the_field(kwargs: dict, field: str) -> None:
    with torch.device("meta"), pytest.raises(HiersegError, match=field):
        create_model("spgnet_resnet18", num_classes=19, **kwargs)

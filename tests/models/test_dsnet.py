"""DSNet: the dynamic sampling convolution is Eq. (2) exactly (a plain conv at zero offsets, bilinear reads at moved
points otherwise), the CGDS module has the paper's shapes, and the model trains end to end on odd-sized inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hierseg.core.errors import HiersegError
from hierseg.models import accepted_arguments, create_model, list_models, model_family
from hierseg.models.dsnet import DSNet, DynamicSamplingConv

NUM_CLASSES = 5


def unit_tap_conv(kernel: int, tap: tuple[int, int]) -> DynamicSamplingConv:
    """A single-channel sampling conv whose only non-zero weight (1) is at ``tap`` (row, column of the k x k grid)."""
    conv = DynamicSamplingConv(1, 1, kernel).double()
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, tap[0], tap[1]] = 1.0
    return conv


def tap_offsets(shape: tuple[int, int], kernel: int, tap: tuple[int, int], dy: float, dx: float) -> torch.Tensor:
    offsets = torch.zeros(1, 2 * kernel * kernel, *shape, dtype=torch.float64)
    t = tap[0] * kernel + tap[1]
    offsets[0, 2 * t], offsets[0, 2 * t + 1] = dy, dx
    return offsets


@pytest.fixture
def image() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(2, 3, 129, 129)


@pytest.fixture
def small() -> DSNet:
    torch.manual_seed(0)
    return DSNet(num_classes=NUM_CLASSES, backbone="resnet18")


@pytest.mark.parametrize("kernel", [1, 3, 5])
@pytest.mark.parametrize("bias", [False, True])
def test_zero_offsets_give_the_plain_convolution(kernel: int, bias: bool) -> None:
    torch.manual_seed(kernel)
    conv = DynamicSamplingConv(4, 6, kernel, bias=bias).double()
    if bias:
        nn.init.normal_(conv.bias)
    x = torch.randn(2, 4, 7, 9, dtype=torch.float64)
    offsets = torch.zeros(2, 2 * kernel * kernel, 7, 9, dtype=torch.float64)
    expected = F.conv2d(x, conv.weight, conv.bias, padding=kernel // 2)
    torch.testing.assert_close(conv(x, offsets), expected, rtol=0, atol=1e-12)


def test_integer_offset_moves_the_sampling_point() -> None:
    x = torch.arange(20, dtype=torch.float64).reshape(1, 1, 4, 5) + 1
    centre = unit_tap_conv(3, (1, 1))
    # Centre tap moved one pixel right: each position reads its right neighbour, zero beyond the border.
    out = centre(x, tap_offsets((4, 5), 3, (1, 1), dy=0.0, dx=1.0))
    torch.testing.assert_close(out[..., :-1], x[..., 1:], rtol=0, atol=0)
    assert (out[..., -1] == 0).all()
    # One pixel down.
    out = centre(x, tap_offsets((4, 5), 3, (1, 1), dy=1.0, dx=0.0))
    torch.testing.assert_close(out[..., :-1, :], x[..., 1:, :], rtol=0, atol=0)
    assert (out[..., -1, :] == 0).all()


def test_offsets_are_per_tap_in_row_major_order_as_dy_dx() -> None:
    x = torch.randn(1, 1, 6, 7, dtype=torch.float64)
    top_left = unit_tap_conv(3, (0, 0))  # reads (i - 1, j - 1) on the regular grid
    regular = top_left(x, tap_offsets((6, 7), 3, (0, 0), 0.0, 0.0))
    torch.testing.assert_close(regular[..., 1:, 1:], x[..., :-1, :-1], rtol=0, atol=0)
    # Moved by (+1, +1) it reads the position itself: the identity.
    torch.testing.assert_close(top_left(x, tap_offsets((6, 7), 3, (0, 0), 1.0, 1.0)), x, rtol=0, atol=1e-12)
    # Moved down only, it reads (i, j - 1): the first offset of a tap is dy.
    out = top_left(x, tap_offsets((6, 7), 3, (0, 0), 1.0, 0.0))
    torch.testing.assert_close(out[..., 1:], x[..., :-1], rtol=0, atol=0)
    # Another tap's offsets leave this one alone.
    torch.testing.assert_close(top_left(x, tap_offsets((6, 7), 3, (2, 2), 1.0, 1.0)), regular, rtol=0, atol=0)


def test_fractional_offset_interpolates_bilinearly() -> None:
    x = torch.randn(1, 1, 5, 6, dtype=torch.float64)
    centre = unit_tap_conv(3, (1, 1))
    out = centre(x, tap_offsets((5, 6), 3, (1, 1), dy=0.25, dx=0.5))
    h = 0.5 * (x[..., :, :-1] + x[..., :, 1:])  # half way to the right neighbour
    expected = 0.75 * h[..., :-1, :] + 0.25 * h[..., 1:, :]  # a quarter of the way down
    torch.testing.assert_close(out[..., :-1, :-1], expected, rtol=0, atol=1e-12)
    # Offsets may differ per position: only the moved position changes.
    offsets = torch.zeros(1, 18, 5, 6, dtype=torch.float64)
    offsets[0, 9, 2, 3] = -2.0  # centre tap's dx at (2, 3)
    out = centre(x, offsets)
    assert out[0, 0, 2, 3] == x[0, 0, 2, 1]
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[0, 0, 2, 3] = False
    assert torch.equal(out[mask], x[mask])


def test_sampling_conv_runs_in_fp32_under_bf16_autocast() -> None:
    """The trainer's bf16 autocast: torchvision has no bf16 deformable convolution on the CPU; the layer runs it in
    fp32 and hands back the input's dtype, as torchvision's CUDA autocast rule does."""
    torch.manual_seed(0)
    conv = DynamicSamplingConv(4, 6, 3, bias=True)
    x, offsets = torch.randn(1, 4, 8, 8), 0.5 * torch.randn(1, 18, 8, 8)
    with torch.autocast("cpu", torch.bfloat16):
        low = x.to(torch.bfloat16)
        out = conv(low, offsets.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), conv(low.float(), offsets.to(torch.bfloat16).float()), atol=0.02, rtol=0.02)


def test_sampling_conv_rejects_offsets_of_the_wrong_shape() -> None:
    conv = DynamicSamplingConv(2, 2, 3)
    with pytest.raises(ValueError, match="offsets"):
        conv(torch.randn(1, 2, 5, 5), torch.zeros(1, 8, 5, 5))


@pytest.mark.parametrize("kernel", [3, 5])
def test_cgds_shapes_follow_the_paper(kernel: int, image: torch.Tensor) -> None:
    model = DSNet(num_classes=NUM_CLASSES, backbone="resnet18", kernel=kernel).eval()
    seen: dict[str, torch.Size] = {}
    model.cgds.sample.register_forward_hook(
        lambda m, args, out: seen.update(low=args[0].shape, offsets=args[1].shape, sampled=out.shape))
    model.aspp.register_forward_hook(lambda m, args, out: seen.update(aspp=out.shape))
    with torch.no_grad():
        scores = model.scores(image)
    # 129 -> stage 3 at OS 8 is 17x17, ASPP at OS 16 is 9x9; 2 k k sampling coordinates for every stage-3 position.
    assert model.backbone.reductions == [8, 16, 16]
    assert seen["aspp"] == (2, 256, 9, 9)
    assert seen["offsets"] == (2, 2 * kernel * kernel, 17, 17)
    assert seen["low"] == seen["sampled"] == (2, 256, 17, 17)
    # X(F) = [X(M), X(S), X(ASPP)] feeds the classifier at OS 8.
    assert model.cgds.out_channels == 3 * 256 == model.classifier[0][0].in_channels
    assert [name for name, _, _ in scores] == ["main"]
    assert scores[0][1].shape == (2, NUM_CLASSES, 17, 17)


def test_sampling_starts_from_the_regular_grid(small: DSNet) -> None:
    assert not small.cgds.sampling_points.weight.any() and not small.cgds.sampling_points.bias.any()
    # The stage-3 input of the sampling conv is X(M) of layer2 (128 channels for resnet18).
    assert small.cgds.modify[0].in_channels == small.backbone.channels[0] == 128


def test_train_step_reaches_the_offset_predictor(small: DSNet, image: torch.Tensor) -> None:
    label = torch.randint(0, NUM_CLASSES, (2, 129, 129))
    label[:, :10] = 255
    out = small.train()(image, label)
    assert set(out) == {"loss", "loss_main", "loss_aux"}
    torch.testing.assert_close(out["loss"], out["loss_main"] + out["loss_aux"])
    out["loss"].backward()
    for name in ("cgds.sampling_points.weight", "cgds.sampling_points.bias", "cgds.sample.weight",
                 "aux.2.weight", "backbone.body.layer2.0.downsample.0.weight",
                 "backbone.body.layer3.0.downsample.0.weight"):
        grad = dict(small.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    # After one step the predicted sampling points leave the regular grid.
    torch.optim.SGD(small.parameters(), lr=0.1).step()
    with torch.no_grad():
        offsets = small.cgds.sampling_points(torch.randn(1, 256, 9, 9))
    assert offsets.abs().sum() > 0


def test_aux_loss_is_weighted_and_optional(image: torch.Tensor) -> None:
    label = torch.randint(0, NUM_CLASSES, (2, 129, 129))
    torch.manual_seed(1)
    weighted = DSNet(num_classes=NUM_CLASSES, backbone="resnet18", aux_weight=0.4).train()
    unit = DSNet(num_classes=NUM_CLASSES, backbone="resnet18", aux_weight=1.0).train()
    unit.load_state_dict(weighted.state_dict())
    torch.manual_seed(2)
    a = weighted(image, label)
    torch.manual_seed(2)
    b = unit(image, label)
    torch.testing.assert_close(a["loss_main"], b["loss_main"])
    torch.testing.assert_close(a["loss_aux"], 0.4 * b["loss_aux"])
    none = DSNet(num_classes=NUM_CLASSES, backbone="resnet18", aux_weight=0).train()
    assert none.aux is None and set(none(image, label)) == {"loss", "loss_main"}


def test_eval_predicts_on_odd_sizes(small: DSNet) -> None:
    small.eval()
    image = torch.randn(1, 3, 65, 99)
    assert small.class_scores(image).shape == (1, NUM_CLASSES, 65, 99)
    pred = small.predict(image)
    assert pred.shape == (1, 65, 99) and pred.dtype == torch.int64
    assert 0 <= int(pred.min()) and int(pred.max()) < NUM_CLASSES


def test_default_label_space_is_ade20k(image: torch.Tensor) -> None:
    model = create_model("dsnet_resnet18")
    assert model.label_spaces == ("ade20k",)
    assert model.classifier[-1].out_channels == model.outputs.num_outputs == 150
    label = torch.randint(0, 151, (2, 129, 129))  # ADE20K ids, 0 = unlabelled
    loss = model.train()(image[:, :, :65, :65], label[:, :65, :65], dataset="ade20k")["loss"]
    assert torch.isfinite(loss)
    pred = model.eval().predict(image[:1, :, :65, :65], dataset="ade20k")
    assert 1 <= int(pred.min()) and int(pred.max()) <= 150


@pytest.mark.parametrize("name, channels", [("dsnet_resnet18", [128, 256, 512]),
                                            ("dsnet_resnet50", [512, 1024, 2048]),
                                            ("dsnet_resnet101", [512, 1024, 2048])])
def test_entry_points_build(name: str, channels: list[int]) -> None:
    model = create_model(name, num_classes=3, frozen_bn=True)
    assert isinstance(model, DSNet) and model_family(name) == "dsnet"
    assert model.backbone.channels == channels and model.backbone.output_stride == 16
    assert model.aux[0][0].in_channels == channels[1]  # deep supervision on stage 4 (layer3)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.backbone.modules())
    groups = model.param_groups()
    head = {id(p) for p in groups["head"]}
    assert id(model.cgds.sampling_points.weight) in head
    assert len(groups["backbone"]) + len(groups["head"]) == len(list(model.parameters()))


def test_registry_and_arguments() -> None:
    assert {"dsnet_resnet18", "dsnet_resnet50", "dsnet_resnet101"} <= set(list_models("dsnet_*"))
    assert {"num_classes", "datasets", "taxonomy", "backbone", "backbone_weights", "frozen_bn", "kernel",
            "aux_weight"} <= set(accepted_arguments("dsnet_resnet50"))
    model = create_model("dsnet_resnet18", num_classes=2, kernel=5, aux_weight=0.2)
    assert model.kernel == 5 and model.aux_weight == 0.2
    assert model.cgds.sampling_points.out_channels == 50
    with pytest.raises(HiersegError, match="kernel_size"):
        create_model("dsnet_resnet18", num_classes=2, kernel_size=3)


@pytest.mark.parametrize("kwargs, match", [(dict(kernel=4), "odd positive"), (dict(kernel=0), "odd positive"),
                                           (dict(aux_weight=-0.1), "aux_weight"),
                                           (dict(backbone_weights="/nonexistent/r18.pth"), "no such file")])
def test_bad_options_are_user_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(HiersegError, match=match):
        DSNet(num_classes=2, backbone="resnet18", **kwargs)

"""Flat DeepLab: ASPP head like DSSPN's transition, output stride, label spaces, options and weights from a file."""

from __future__ import annotations

import pytest
import timm
import torch

from hierseg.models import accepted_arguments, create_model, list_models
from hierseg.models.deeplab import DeepLab
from hierseg.models.outputs import DatasetClasses, LeafClasses, RawClasses
from hierseg.taxonomy import HiersegError

IMAGE = (2, 3, 129, 129)



@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.randn(*IMAGE, generator=torch.Generator().manual_seed(0))


def test_entry_points_are_registered_with_their_backbones():
    assert {"deeplab_resnet18", "deeplab_resnet50", "deeplab_resnet101"} <= set(list_models("deeplab_*"))
    for option in ("num_classes", "datasets", "taxonomy", "backbone_weights", "frozen_bn", "output_stride",
                   "aspp_pointwise", "aspp_image_pool"):
        assert option in accepted_arguments("deeplab_resnet101"), option
    with torch.device("meta"):
        model = create_model("deeplab_resnet101", num_classes=5)
    assert model.backbone.name == "resnet101" and model.backbone.channels == [2048]


def test_head_is_dsspn_transition_then_a_1x1_classifier(image):
    model = create_model("deeplab_resnet18", num_classes=5)
    assert isinstance(model.outputs, RawClasses)
    assert len(model.aspp.branches) == 3 and model.aspp.pool is None
    assert [b[0].dilation for b in model.aspp.branches] == [(6, 6), (12, 12), (18, 18)]
    assert model.aspp.out_channels == 256
    assert model.classifier.kernel_size == (1, 1) and model.classifier.out_channels == 5
    model.eval()
    (name, logits, weight), = model.scores(image)
    assert name == "main" and weight == 1.0
    assert logits.shape == (2, 5, 17, 17)  # 1/8 of 129, rounded up by the stride-2 convolutions
    assert model.class_scores(image).shape == (2, 5, 129, 129)
    predicted = model.predict(image)
    assert predicted.shape == (2, 129, 129) and 0 <= int(predicted.min()) and int(predicted.max()) < 5


def test_options_change_the_network(image):
    model = create_model("deeplab_resnet18", num_classes=3, output_stride=16, aspp_pointwise=True,
                         aspp_image_pool=True)
    assert len(model.aspp.branches) == 4 and model.aspp.pool is not None
    model.eval()
    assert model.scores(image)[0][1].shape == (2, 3, 9, 9)
    with pytest.raises(HiersegError, match="output_stride"):
        create_model("deeplab_resnet18", num_classes=3, output_stride=4)
    with pytest.raises(HiersegError, match="has no argument 'rates'"):
        create_model("deeplab_resnet18", num_classes=3, rates=(1, 2))
    with pytest.raises(HiersegError, match="not both"):
        create_model("deeplab_resnet18", num_classes=3, datasets=("ade20k",))


def test_label_spaces_default_single_and_universal(image):
    default = create_model("deeplab_resnet18")
    assert isinstance(default.outputs, DatasetClasses) and default.label_spaces == ("ade20k",)
    assert default.outputs.num_outputs == 150  # ADE20K's 150 classes, "other" (0) is its ignore value

    city = create_model("deeplab_resnet18", datasets=("cityscapes",))
    label = torch.full(IMAGE[:1] + IMAGE[2:], 7)  # road
    label[:, :10] = 0  # unlabelled
    out = city(image, label, "cityscapes")
    assert set(out) == {"loss", "loss_main"} and torch.isfinite(out["loss"])
    city.eval()
    # Cityscapes' ids 1..33 less its five void ones (rectification border, out of roi, static, dynamic, ground)
    assert city.outputs.num_outputs == 33 - 5
    assert set(city.predict(image, "cityscapes").unique().tolist()) <= set(city.outputs.ids.tolist())

    universal = create_model("deeplab_resnet18", datasets=("cityscapes", "mapillary"))
    assert isinstance(universal.outputs, LeafClasses) and universal.label_spaces == ("cityscapes", "mapillary")
    assert universal.classifier.out_channels == universal.outputs.num_outputs
    out = universal(image, label, "cityscapes")
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    universal.eval()
    mapillary = universal.predict(image, "mapillary")
    assert int(mapillary.max()) < 65  # Mapillary's 65 labels; 65 is its ignore value, never predicted
    assert int(universal.predict(image).max()) < len(universal.outputs.graph.concepts)


def test_param_groups_split_pretrained_backbone_from_new_head():
    model = create_model("deeplab_resnet18", num_classes=4)
    groups = model.param_groups()
    assert {id(p) for p in groups["backbone"]} == {id(p) for p in model.backbone.parameters()}
    assert {id(p) for p in groups["head"]} == {id(p) for m in (model.aspp, model.classifier) for p in m.parameters()}


def test_backbone_weights_come_from_a_local_file(tmp_path):
    reference = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = create_model("deeplab_resnet18", num_classes=2, backbone_weights=str(path), frozen_bn=True)
    assert torch.equal(model.backbone.body.conv1.weight, reference.conv1.weight)
    assert model.backbone.weights.source == "file"
    with pytest.raises(HiersegError, match="no such file"):
        create_model("deeplab_resnet18", num_classes=2, backbone_weights=str(tmp_path / "missing.pth"))


def test_entry_point_backbone_can_be_overridden():
    model = create_model("deeplab_resnet18", num_classes=2, backbone="resnet34")
    assert isinstance(model, DeepLab) and model.backbone.name == "resnet34"

"""ResNetStages: a plain timm ResNet (no classifier, no pooling) as its stem and stages, for PDN and SPGNet.

It must compute exactly what the ``features_only`` network PDN and SPGNet were built on before (same modules under
the same state-dict keys, same outputs for the same weights), so their checkpoints and parameter counts stay.
"""

from __future__ import annotations

import pytest
import timm
import torch

from hierseg.core.errors import HiersegError
from hierseg.models.backbone import RESNET_STEM, Backbone, ResNetStages


@pytest.mark.parametrize(("name", "output_stride", "frozen_bn"), [("resnet18", 8, False), ("resnet50", 32, True)])
def test_stages_compute_what_the_features_only_network_computes(name, output_stride, frozen_bn):
    torch.manual_seed(0)
    wrapper = Backbone(name, output_stride, out_indices=(1, 2, 3, 4), frozen_bn=frozen_bn).eval()
    stages = ResNetStages(name, output_stride, frozen_bn=frozen_bn).eval()
    old = wrapper.body.state_dict()
    assert list(stages.body.state_dict()) == list(old)  # timm's names, in timm's order
    stages.body.load_state_dict(old)  # strict: every tensor of the wrapper, nothing more
    assert (stages.channels, stages.reductions) == (wrapper.channels, wrapper.reductions)
    image = torch.randn(2, 3, 67, 67)
    with torch.no_grad():
        expected, got = wrapper(image), stages(image)
        assert len(got) == 4 and all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))

        headless = ResNetStages(name, output_stride, frozen_bn=frozen_bn, stem=False).eval()
        assert set(old) - set(headless.body.state_dict()) == {k for k in old if k.split(".")[0] in RESNET_STEM}
        headless.body.load_state_dict({k: v for k, v in old.items() if k.split(".")[0] not in RESNET_STEM})
        assert torch.equal(headless(stages.stem(image))[-1], expected[-1])
    with pytest.raises(HiersegError, match="built without its stem"):
        headless.stem(image)


def test_weights_from_a_file_and_dilation(tmp_path):
    reference = timm.create_model("resnet18")
    torch.save(reference.state_dict(), tmp_path / "r18.pth")  # classifier included: it is dropped on load
    stages = ResNetStages("resnet18", output_stride=8, weights=tmp_path / "r18.pth")
    assert stages.weights.source == "file" and stages.reductions == [4, 8, 8, 8]
    own = stages.body.state_dict()
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in own.items())
    assert len(own) == len(reference.state_dict()) - 2  # all but fc.weight and fc.bias
    assert stages.body.layer4[0].conv2.dilation == (4, 4)


@pytest.mark.parametrize("name", ["mobilenetv3_small_100", "vit_tiny_patch16_224", "not_a_model"])
def test_a_backbone_that_is_no_resnet_is_one_line(name):
    with torch.device("meta"), pytest.raises(HiersegError) as info:
        ResNetStages(name)
    assert str(info.value).startswith(f"backbone {name!r}") and "\n" not in str(info.value)

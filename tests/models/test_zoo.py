"""Every registered flat model (whatever families exist, found through ``list_models()``) honours the model contract:
it builds, runs forward and backward, predicts, and learns on synthetic data in single-dataset and universal mode.

DSSPN has its own tests. Only the ResNet-18 variants run for real (CPU time); the deeper ones are built and run on
the meta device, which checks their wiring (channel counts of a 2048-channel backbone) without any arithmetic.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hierseg.data.layouts import layout
from hierseg.data.loader import collate
from hierseg.data.readers import official
from hierseg.data.synth import synthesize
from hierseg.data.transforms import TrainTransform
from hierseg.models import create_model, list_models
from hierseg.taxonomy import load_spec

MODELS = [name for name in list_models() if not name.startswith("dsspn_")]
SMALL = [name for name in MODELS if name.endswith("_resnet18")]
DEEP = [name for name in MODELS if not name.endswith("_resnet18")]
CLASSES = 5
IMAGE = (2, 3, 129, 129)
STEPS, CROP, LR = 10, 65, 0.01
MODES = {"single": ("cityscapes",), "universal": ("cityscapes", "mapillary")}



def test_the_zoo_has_flat_models_at_three_depths():
    assert SMALL, "no flat model is registered"
    for name in SMALL:
        family = name.removesuffix("_resnet18")
        assert {f"{family}_resnet50", f"{family}_resnet101"} <= set(MODELS), family


def check_param_groups(model: torch.nn.Module) -> None:
    groups = model.param_groups()
    backbone, head = {id(p) for p in groups["backbone"]}, {id(p) for p in groups["head"]}
    assert backbone and head and not backbone & head
    assert backbone | head == {id(p) for p in model.parameters()}
    assert all(n.startswith("backbone.") for n, p in model.named_parameters() if id(p) in backbone)


def backbone_size(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.param_groups()["backbone"])


@pytest.mark.parametrize("name", DEEP)
def test_deep_variants_build_and_run_on_the_meta_device(name):
    with torch.device("meta"):
        model = create_model(name, num_classes=CLASSES)
        check_param_groups(model)
        shallow = create_model(name.rsplit("_", 1)[0] + "_resnet18", num_classes=CLASSES)
        assert backbone_size(model) > 2 * backbone_size(shallow)  # ResNet-50/101 against ResNet-18's 11M weights
        model.train()
        image, label = torch.empty(*IMAGE), torch.zeros(IMAGE[:1] + IMAGE[2:], dtype=torch.long)
        assert model(image, label)["loss"].shape == ()
        model.eval()
        assert model.class_scores(image).shape == (2, CLASSES, *IMAGE[2:])


@pytest.mark.parametrize("name", SMALL)
def test_forward_backward_and_predict(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=CLASSES)
    assert model.label_spaces == ()
    check_param_groups(model)
    image = torch.randn(*IMAGE)
    label = torch.randint(0, CLASSES, IMAGE[:1] + IMAGE[2:])
    label[:, :20] = 255
    model.train()
    out = model(image, label)
    terms = {k: v for k, v in out.items() if k.startswith("loss_")}
    assert terms and torch.isfinite(out["loss"])
    torch.testing.assert_close(out["loss"], torch.stack(list(terms.values())).sum())
    out["loss"].backward()
    # Every parameter takes part in the loss: DDP (without find_unused_parameters) needs it.
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not unused, f"parameters without a gradient: {unused[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad():
        logits = model.class_scores(image)
    assert logits.shape == (2, CLASSES, *IMAGE[2:])
    predicted = model.predict(image)
    assert predicted.shape == label.shape and predicted.dtype == torch.int64
    assert 0 <= int(predicted.min()) and int(predicted.max()) < CLASSES
    assert torch.equal(predicted, logits.argmax(1))


@pytest.fixture(scope="module")
def batches(tmp_path_factory) -> dict[str, dict]:
    """One fixed training batch of two augmented samples per dataset, from tiny synthetic official layouts."""
    out = {}
    for dataset in ("cityscapes", "mapillary"):
        root = Path(tmp_path_factory.mktemp(dataset))
        synthesize(dataset, root, n=4, size=64)
        transform = TrainTransform(crop=CROP, ignore=load_spec(dataset).ignore)
        reader = official(dataset, root, layout(dataset).splits[0], transform=transform)  # the training split
        out[dataset] = collate([reader[0], reader[1]])
    return out


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", SMALL)
def test_training_on_synthetic_data_lowers_the_loss(name, mode, batches):
    torch.manual_seed(0)
    datasets = MODES[mode]
    model = create_model(name, datasets=datasets)
    assert model.label_spaces == datasets
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    losses = []
    for step in range(STEPS):  # the datasets take turns, one fixed batch each, as the multi-dataset sampler does
        batch = batches[datasets[step % len(datasets)]]
        loss = model(batch["image"], batch["label"], batch["dataset"])["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(map(torch.isfinite, torch.tensor(losses)))
    # Mean of the first two steps against the last two: one batch of each dataset in universal mode.
    first, last = sum(losses[:2]) / 2, sum(losses[-2:]) / 2
    assert last < 0.95 * first, f"{name} ({mode}): losses {[round(x, 3) for x in losses]}"


@pytest.mark.parametrize("name", MODELS)
def test_an_empty_dataset_list_is_the_same_error_for_every_family(name):
    from hierseg.core.errors import HiersegError

    with torch.device("meta"), pytest.raises(HiersegError) as info:
        create_model(name, datasets=[])
    assert str(info.value) == ("datasets is empty: name at least one dataset (datasets=['cityscapes']) or give "
                               "num_classes=N")


def backbone_names(model: torch.nn.Module) -> set[str]:
    from hierseg.models import Backbone, ResNetStages

    return {m.name for m in model.modules() if isinstance(m, Backbone | ResNetStages)}


@pytest.mark.parametrize("name", [*MODELS, "dsspn_resnet18", "dsspn_resnet101"])
def test_every_entry_point_builds_the_backbone_it_is_named_after_unless_told(name):
    kwargs = {} if name.startswith("dsspn_") else {"num_classes": CLASSES}
    with torch.device("meta"):
        assert backbone_names(create_model(name, **kwargs)) == {name.split("_", 1)[1]}
        assert backbone_names(create_model(name, backbone="resnet34", **kwargs)) == {"resnet34"}

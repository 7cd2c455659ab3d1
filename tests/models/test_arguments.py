"""Model keyword arguments are checked against the model's signature and each numeric argument's range before
anything is built: one line naming the argument, what it must be and the value."""

from __future__ import annotations

import pytest

from hierseg.core.errors import HiersegError
from hierseg.models import create_model
from hierseg.models.registry import ArgumentError, UnknownArgument, check_model_arguments


@pytest.mark.parametrize(("name", "kwargs", "message"), [
    ("dsspn_resnet18", {"m": -8}, "m must be an integer in [1, 4096], not -8"),
    ("dsspn_resnet18", {"m": 0}, "m must be an integer in [1, 4096], not 0"),
    ("dsspn_resnet18", {"m": "abc"}, "m must be an integer, not 'abc'"),
    ("dsspn_resnet18", {"m": 1.5}, "m must be an integer, not 1.5"),
    ("dsspn_resnet18", {"m0": 10**9}, "m0 must be an integer in [1, 4096], not 1000000000"),
    ("dsspn_resnet18", {"dense": "yes"}, "dense must be true or false, not 'yes'"),
    ("dsspn_resnet18", {"combine": "max"}, "combine must be one of 'concat', 'sum', not 'max'"),
    ("deeplab_resnet18", {"num_classes": -1}, "num_classes must be an integer in [1, 65535], not -1"),
    ("deeplab_resnet18", {"datasets": "cityscapes"}, "datasets must be a list of strings or null, not 'cityscapes'"),
    ("deeplab_resnet18", {"aspp_rates": [6, 0]}, "aspp_rates must be an integer in [1, 256], not 0"),
    ("spgnet_resnet18", {"ohem_keep": 0.0}, "ohem_keep must be a number in (0, 1], not 0.0"),
    ("spgnet_resnet18", {"ohem_keep": float("nan")}, "ohem_keep must be a number, not nan"),
    ("pdn_resnet18", {"aux_weight": -1}, "aux_weight must be an integer in [0, 1000], not -1"),
])
def test_bad_keywords_are_refused_before_building(name, kwargs, message):
    with pytest.raises(ArgumentError) as info:
        check_model_arguments(name, kwargs)
    assert str(info.value) == message
    with pytest.raises(HiersegError) as info:
        create_model(name, **kwargs)
    assert str(info.value) == f"model {name!r}: {message}"


def test_good_keywords_pass_and_build():
    check_model_arguments("dsspn_resnet18", {"m": 48, "m0": 256, "dense": False, "combine": "sum", "output_stride": 16})
    check_model_arguments("spgnet_resnet18", {"ohem_keep": 1, "ohem_threshold": None, "datasets": ["cityscapes"]})
    model = create_model("deeplab_resnet18", num_classes=3, aspp_channels=8, aspp_rates=(1, 2))
    assert model.outputs.num_outputs == 3


def test_an_unknown_keyword_is_refused_by_the_same_check():
    """The registry and a training config's ``model.kwargs`` ask one function; each words the line its own way."""
    with pytest.raises(UnknownArgument) as info:
        check_model_arguments("deeplab_resnet18", {"num_classes": 3, "rates": [6]})
    assert info.value.key == "rates" and info.value.reason.startswith("deeplab_resnet18 has no such argument; it accepts")
    assert {"num_classes", "aspp_rates"} <= set(info.value.accepted) and "rates" not in info.value.accepted
    with pytest.raises(HiersegError, match="model 'deeplab_resnet18' has no argument 'rates'; it accepts: num_classes"):
        create_model("deeplab_resnet18", num_classes=3, rates=[6])

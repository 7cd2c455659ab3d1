"""Backbone weights from the Hugging Face hub: a cache folder in the hub's layout, read offline (HF_HUB_OFFLINE=1)
through timm and huggingface_hub, exactly as a machine that downloaded them once would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from hierseg.core.errors import HiersegError
from hierseg.models.backbone import weights_source

REVISION = "0123456789abcdef0123456789abcdef01234567"
REPO = "timm/resnet18.a1_in1k"

PROBE = r"""
import json, sys, torch
from safetensors.torch import load_file
from hierseg.models.backbone import create_backbone
from hierseg.core.errors import HiersegError

out = {}
saved = load_file(sys.argv[1])
for spec in ("timm/resnet18.a1_in1k", "hf-hub:timm/resnet18.a1_in1k", "hf-hub:timm/resnet18.a1_in1k@main"):
    backbone = create_backbone("resnet18", output_stride=8, weights=spec)
    own = backbone.body.state_dict()
    shared = [k for k in own if k in saved]
    out[spec] = {"tensors": len(shared), "of": len(own), "equal": all(torch.equal(own[k], saved[k]) for k in shared),
                 "source": backbone.weights.source, "hub_id": backbone.weights.hub_id}
for name, spec in (("resnet50", "timm/resnet50.a1_in1k"), ("resnet34", "timm/resnet18.a1_in1k")):
    try:
        create_backbone(name, weights=spec)
        out[name] = None
    except HiersegError as exc:
        out[name] = str(exc)
print(json.dumps(out))
"""


def hub_cache(folder: Path) -> Path:
    """``models--timm--resnet18.a1_in1k/{refs/main, snapshots/<rev>/{model.safetensors, config.json}}`` holding a
    randomly initialised resnet18 (no network: the test makes the weights it then loads)."""
    torch.manual_seed(1234)
    model = timm.create_model("resnet18", pretrained=False)
    repo = folder / "models--timm--resnet18.a1_in1k"
    snapshot = repo / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, snapshot / "model.safetensors")
    (snapshot / "config.json").write_text(json.dumps({"architecture": "resnet18", "num_classes": 1000,
                                                      "pretrained_cfg": {"tag": "a1_in1k"}}))
    return snapshot / "model.safetensors"


def test_hub_weights_load_offline_from_the_cache(tmp_path):
    weights = hub_cache(tmp_path / "hub")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", PROBE, str(weights)], capture_output=True, text=True, env=env,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    for spec in ("timm/resnet18.a1_in1k", "hf-hub:timm/resnet18.a1_in1k", "hf-hub:timm/resnet18.a1_in1k@main"):
        loaded = out[spec]
        assert loaded["equal"] and loaded["source"] == "hub"
        assert loaded["tensors"] == loaded["of"] > 100  # every tensor of the feature network (fc is not one)
    assert out["hf-hub:timm/resnet18.a1_in1k@main"]["hub_id"] == "timm/resnet18.a1_in1k@main"
    missing = out["resnet50"]
    assert missing.startswith("backbone weights timm/resnet50.a1_in1k: not in the Hugging Face cache")
    assert "HF_HUB_OFFLINE is set" in missing and "hf download timm/resnet50.a1_in1k" in missing
    assert "local file" in missing and "\n" not in missing
    assert out["resnet34"] == ("backbone weights timm/resnet18.a1_in1k are for resnet18, but the backbone is "
                               "resnet34; use weights of a resnet34 or set the model's backbone to resnet18")


def test_weights_sources(tmp_path):
    assert weights_source(None).source == "random"
    path = tmp_path / "r18.pth"
    path.write_bytes(b"")
    assert weights_source(path).source == "file" and weights_source(str(path)).file == str(path)
    assert weights_source("timm/resnet101.a1h_in1k").hub_id == "timm/resnet101.a1h_in1k"
    assert weights_source("hf-hub:org/repo@v2").hub_id == "org/repo@v2"
    for bad in ("weights/resnet101.pth", "hf-hub:", "timm/"):
        with pytest.raises(HiersegError, match="no such file .*timm/<name> or hf-hub"):
            weights_source(bad)


STAGES_PROBE = r"""
import json, sys, torch
from safetensors.torch import load_file
from hierseg.models.backbone import ResNetStages

saved = load_file(sys.argv[1])
out = {}
for stem in (True, False):
    stages = ResNetStages("resnet18", output_stride=8, weights="timm/resnet18.a1_in1k", stem=stem)
    own = stages.body.state_dict()
    out[str(stem)] = {"of": len(own), "equal": all(k in saved and torch.equal(v, saved[k]) for k, v in own.items()),
                      "source": stages.weights.source}
print(json.dumps(out))
"""


def test_resnet_stages_take_hub_weights_offline_from_the_cache(tmp_path):
    weights = hub_cache(tmp_path / "hub")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", STAGES_PROBE, str(weights)], capture_output=True, text=True,
                            env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["True"]["equal"] and out["True"]["source"] == "hub" and out["True"]["of"] > 100
    assert out["False"]["equal"] and out["False"]["of"] == out["True"]["of"] - 6  # conv1.weight and bn1's five tensors

"""evaluate() on a tiny synthetic Cityscapes with stub models, and the Predictor's whole/slide/flip/short paths."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from hierseg.core.errors import HiersegError
from hierseg.data.layouts import resolve_split
from hierseg.data.readers import official
from hierseg.data.synth import synthesize
from hierseg.data.transforms import sliding_windows
from hierseg.engine.evaluate import InferenceOptions, Predictor, evaluate, resolve_space
from hierseg.evaluation.metrics import EvalClasses
from hierseg.models.base import FlatSegmenter, Segmenter
from hierseg.models.outputs import make_outputs
from hierseg.taxonomy.annotations import read_label

EVALUATED = EvalClasses.of("cityscapes").ids


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("cityscapes")
    synthesize("cityscapes", out, n=2, size=64)
    return out


@pytest.fixture(scope="module")
def labels(root) -> list[np.ndarray]:
    return [read_label(pair.label).astype(np.int64) for pair in official("cityscapes", root, "val").pairs]


class LabelsOnly(Segmenter):
    """A Cityscapes model that predicts labels only (no class scores), for evaluation."""

    label_spaces = ("cityscapes",)

    def forward(self, image, label, dataset=None):
        raise NotImplementedError("evaluation only")


class Oracle(LabelsOnly):
    """Predicts each sample's ground truth, in reading order (batch size 1)."""

    def __init__(self, labels: list[np.ndarray]) -> None:
        super().__init__()
        self.labels, self.calls = labels, 0

    def predict(self, image: torch.Tensor, dataset: str | None = None) -> torch.Tensor:
        assert dataset == "cityscapes" and not self.training
        label = torch.from_numpy(self.labels[self.calls])[None]
        self.calls += 1
        return label


class Constant(LabelsOnly):
    def __init__(self, value: int) -> None:
        super().__init__()
        self.value = value

    def predict(self, image: torch.Tensor, dataset: str | None = None) -> torch.Tensor:
        return torch.full((image.shape[0], *image.shape[-2:]), self.value, dtype=torch.int64)


class WindowIndex(LabelsOnly):
    """Labels only (no scores): every call predicts its own call number, to see which window each pixel came from."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def predict(self, image: torch.Tensor, dataset: str | None = None) -> torch.Tensor:
        self.calls += 1
        return torch.full((image.shape[0], *image.shape[-2:]), self.calls - 1, dtype=torch.int64)


class Pointwise(FlatSegmenter):
    """A 1x1 convolution: windows and flips cannot change its per-pixel scores."""

    def __init__(self, num_classes: int | None = None, datasets: tuple[str, ...] | None = ("cityscapes",)) -> None:
        super().__init__(make_outputs(num_classes, None if num_classes else datasets))
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, self.outputs.num_outputs, 1)

    def scores(self, image):
        return [("main", self.conv(image), 1.0)]


def test_oracle_scores_one_on_the_classes_present(root, labels):
    model = Oracle(labels)
    model.train()
    report = evaluate(model, "cityscapes", root, "val", device="cpu")
    assert model.training  # mode restored
    assert report.images == 2 and report.split == "val"
    assert report.miou == 1.0 and report.pixel_acc == 1.0 and report.mean_acc == 1.0
    present = {c.id for c in report.metrics.classes if not math.isnan(c.iou)}
    assert present == {int(v) for lb in labels for v in np.unique(lb) if int(v) in EVALUATED}
    assert report.metrics.pixels == sum(int(np.isin(lb, EVALUATED).sum()) for lb in labels)
    assert all(g.miou == 1.0 for g in report.metrics.groups if g.present)


@pytest.mark.parametrize("value", [7, 4])
def test_constant_prediction(root, labels, value):
    report = evaluate(Constant(value), "cityscapes", root, device="cpu")
    truth = np.concatenate([lb.ravel() for lb in labels])
    truth = truth[np.isin(truth, EVALUATED)]
    present = set(np.unique(truth).tolist())
    hits = int((truth == value).sum())
    assert report.pixel_acc == pytest.approx(hits / truth.size)
    ious = {c.id: c.iou for c in report.metrics.classes}
    scored = present | ({value} if value in EVALUATED else set())
    assert {i for i, v in ious.items() if not math.isnan(v)} == scored
    # the constant class: TP = its pixels, union = every pixel; every other class present: no true positive
    expected = {i: (hits / truth.size if i == value else 0.0) for i in scored}
    assert {i: v for i, v in ious.items() if not math.isnan(v)} == pytest.approx(expected)
    assert report.miou == pytest.approx(sum(expected.values()) / len(scored))
    assert report.mean_acc == pytest.approx((1.0 if value in present else 0.0) / len(present))
    if value == 4:  # a void id is never right
        assert report.pixel_acc == 0.0 and report.miou == 0.0


def test_flat_model_windows_flips_and_resizing_agree_on_a_pointwise_model(root):
    model = Pointwise().eval()
    image = torch.randn(2, 3, 50, 64)
    whole = model.predict(image, "cityscapes")
    assert set(whole.unique().tolist()) <= set(model.outputs.ids.tolist())
    for options in (InferenceOptions("slide", crop=24, stride=16), InferenceOptions("whole", flip=True),
                    InferenceOptions("slide", crop=30, flip=True)):
        assert torch.equal(Predictor(model, "cityscapes", options)(image), whole), options
    upsampled = Predictor(model, "cityscapes")(image[..., ::2, ::2], (50, 64))
    assert upsampled.shape == (2, 50, 64) and set(upsampled.unique().tolist()) <= set(model.outputs.ids.tolist())

    report = evaluate(model, "cityscapes", root, options=InferenceOptions("slide", crop=40, flip=True, short=32),
                      device="cpu")
    plain = evaluate(model, "cityscapes", root, device="cpu")
    assert report.metrics.pixels == plain.metrics.pixels  # scored at full size
    assert report.settings == {"mode": "slide", "flip": True, "short": 32, "batch_size": 1, "crop": 40, "stride": 26}


def test_label_only_models_stitch_windows_by_nearest_centre():
    model = WindowIndex()
    options = InferenceOptions("slide", crop=20, stride=12)
    ids = Predictor(model, "cityscapes", options)(torch.zeros(1, 3, 33, 45))[0]
    windows = sliding_windows(33, 45, 20, 12)
    assert model.calls == len(windows) > 4
    for y in range(33):
        for x in range(45):
            distance = [max(abs(y - (top + bottom - 1) / 2), abs(x - (left + right - 1) / 2))
                        if top <= y < bottom and left <= x < right else math.inf
                        for top, left, bottom, right in windows]
            assert ids[y, x] == int(np.argmin(distance)), (y, x)
    with pytest.raises(HiersegError, match="flip"):
        Predictor(model, "cityscapes", InferenceOptions(flip=True))


def test_raw_class_models_are_scored_through_the_evaluated_ids():
    model = Pointwise(num_classes=19).eval()
    with torch.no_grad():
        model.conv.weight.zero_()
        model.conv.bias.zero_()
        model.conv.bias[2] = 1.0  # class 2 = the third evaluated label: building (trainId 2)
    ids = Predictor(model, "cityscapes")(torch.zeros(1, 3, 8, 8))
    assert set(ids.unique().tolist()) == {11}
    with pytest.raises(HiersegError, match="18 raw classes"):
        Predictor(Pointwise(num_classes=18), "cityscapes")


def test_bad_requests(root, labels):
    with pytest.raises(HiersegError, match="not 'ade20k'"):
        evaluate(Oracle(labels), "ade20k", root)
    with pytest.raises(HiersegError, match="no such dataset root"):
        evaluate(Oracle(labels), "cityscapes", root / "missing")
    with pytest.raises(HiersegError, match="mode must be"):
        InferenceOptions("tiles")
    with pytest.raises(HiersegError, match="not tree"):
        resolve_space(Pointwise(), "tree")
    assert resolve_space(Pointwise(), None) == "cityscapes"
    assert resolve_space(Pointwise(num_classes=3), None) == "classes"
    assert resolve_split("ade20k", "val") == "validation" and resolve_split("coco_stuff", "train") == "train2017"
    assert resolve_split("cityscapes", "test") == "test"
    with pytest.raises(HiersegError, match="no split 'dev'"):
        resolve_split("mapillary", "dev")


def test_report_serialisations(root, labels):
    report = evaluate(Constant(7), "cityscapes", root, limit=1, device="cpu")
    assert report.images == 1
    doc = json.loads(report.to_json())
    assert doc["overall"]["miou"] == pytest.approx(report.miou) and len(doc["classes"]["rows"]) == 19
    absent = [c for c in doc["classes"]["rows"] if c["pixels"] == 0 and c["predicted"] == 0]
    assert absent and all(c["iou"] is None for c in absent)  # NaN is written as null
    assert "classes" not in json.loads(report.to_json(per_class=False))
    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    values = {(r["section"], r["key"]): r["value"] for r in rows if r["value"]}
    assert values["report", "dataset"] == "cityscapes" and values["report", "images"] == "1"
    assert float(values["overall", "miou"]) == pytest.approx(report.miou)
    assert float(values["overall", "pixel_acc"]) == pytest.approx(report.pixel_acc)
    assert [r["key"] for r in rows if r["section"] == "depth_groups"] == [g.group for g in report.metrics.groups]
    assert [r["key"] for r in rows if r["section"] == "levels"] == ["1", "2", "3", "4", "5"]
    assert sum(r["section"] == "classes" for r in rows) == 19
    assert not any(r["section"] == "classes" for r in csv.DictReader(io.StringIO(report.to_csv(per_class=False))))
    scalars = report.scalars()
    assert scalars["mIoU"] == report.miou and scalars["mIoU_level/5"] == report.miou


def test_evaluation_inside_a_process_group(root, labels, tmp_path, monkeypatch):
    reduced = []
    all_reduce = torch.distributed.all_reduce

    def spy(tensor, *args, **kwargs):
        reduced.append(tuple(tensor.shape))
        return all_reduce(tensor, *args, **kwargs)

    monkeypatch.setattr(torch.distributed, "all_reduce", spy)
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        report = evaluate(Oracle(labels), "cityscapes", root, device="cpu")
    finally:
        torch.distributed.destroy_process_group()
    assert reduced == [(19, 35)]  # the counts (19 classes by 34 ids and one other), summed over the rank
    assert report.images == 2 and report.miou == 1.0


def test_images_above_max_pixels_slide_whatever_the_mode(root, monkeypatch):
    """Above max_pixels every model runs in windows stitched on ids: the whole image never goes through the model,
    and flat models never build the (classes x height x width) score accumulator."""
    seen = []

    class Recording(Pointwise):
        def scores(self, image):
            seen.append(tuple(image.shape[-2:]))
            return super().scores(image)

    model = Recording().eval()
    image = torch.randn(1, 3, 50, 64)
    whole = model.predict(image, "cityscapes")
    seen.clear()
    monkeypatch.setattr(Predictor, "_from_scores", lambda *a: pytest.fail("score accumulator above max_pixels"))
    options = InferenceOptions("whole", crop=24, stride=16, max_pixels=24 * 24)
    predictor = Predictor(model, "cityscapes", options)
    with pytest.warns(UserWarning, match=r"images of 64x50 \(0.0 MP\) are above max_pixels"):
        ids = predictor(image)
    assert torch.equal(ids, whole)  # a pointwise model: windows cannot change it
    assert seen == [(b - t, r - lft) for t, lft, b, r in sliding_windows(50, 64, 24, 16)] and predictor.slid == 1
    assert max(h * w for h, w in seen) <= options.max_pixels

    label_only = WindowIndex()
    with pytest.warns(UserWarning, match="above max_pixels"):
        ids = Predictor(label_only, "cityscapes", InferenceOptions(crop=20, stride=12, max_pixels=400))(
            torch.zeros(1, 3, 33, 45))[0]
    reference = Predictor(WindowIndex(), "cityscapes", InferenceOptions("slide", crop=20, stride=12))(
        torch.zeros(1, 3, 33, 45))[0]
    assert torch.equal(ids, reference) and label_only.calls == len(sliding_windows(33, 45, 20, 12))

    monkeypatch.undo()
    with pytest.warns(UserWarning):
        report = evaluate(Pointwise().eval(), "cityscapes", root, options=InferenceOptions(crop=32, max_pixels=1024),
                          device="cpu")
    plain = evaluate(Pointwise().eval(), "cityscapes", root, device="cpu")
    assert report.settings == {"mode": "whole", "flip": False, "short": None, "batch_size": 1, "crop": 32,
                               "stride": 21, "max_pixels": 1024, "slid": 2}
    assert report.metrics.pixels == plain.metrics.pixels and report.miou == pytest.approx(plain.miou)

"""Where people look at a run: ``hierseg plot`` (matplotlib; legends and stage labels clear of each other) and the
optional TensorBoard log (losses, learning rates, and the scores ``hierseg eval`` adds)."""

from __future__ import annotations

import math
import sys
from itertools import combinations

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from hierseg.core.errors import HiersegError
from hierseg.engine.checkpoint import read_checkpoint
from hierseg.engine.evaluate import evaluate
from hierseg.engine.logs import read_metrics
from hierseg.engine.plot import figure, plot_run
from hierseg.engine.preflight import prepare
from hierseg.engine.tensorboard import FOLDER, log_evaluation
from hierseg.engine.train import train
from tests.engine.test_train import Tiny, TwoHeads, make_config, synth_root  # noqa: F401  (fixture)


def records(stages: tuple[tuple[str, int, tuple[str, ...]], ...]) -> list[dict]:
    out, g = [], 0
    for name, steps, datasets in stages:
        for step in range(1, steps + 1):
            g += 1
            dataset = datasets[step % len(datasets)]
            out.append({"stage": name, "step": step, "global_step": g, "datasets": {dataset: 2 * math.exp(-g / 50)},
                        "lr_head": 0.01 * (1 - step / (steps + 1)) ** 0.9, "lr_backbone": 1e-4 * (1 - step / (steps + 1))})
    return out


@pytest.mark.parametrize("stages", [
    (("main", 120, ("coco_stuff", "ade20k", "cityscapes", "mapillary")), ("finetune-cityscapes", 40, ("cityscapes",)),
     ("finetune-mapillary", 40, ("mapillary",)), ("finetune-ade20k", 40, ("ade20k",)),
     ("finetune-coco_stuff", 40, ("coco_stuff",))),
    (("main", 200, ("cityscapes", "ade20k")), ("finetune-cityscapes", 3, ("cityscapes",)),
     ("finetune-ade20k", 3, ("ade20k",))),  # short stages: their names would collide on one row
    (("main", 5, ("cityscapes",)),),
])
def test_legends_and_stage_labels_do_not_overlap(stages):
    fig = figure(records(stages), "run")
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    loss, lr = fig.axes[:2]
    legends = [ax.get_legend().get_window_extent(renderer) for ax in (loss, lr)]
    labels = [t.get_window_extent(renderer) for t in loss.texts if t.get_gid() == "stage"]
    assert len(labels) == (len(stages) if len(stages) > 1 else 0)
    boxes = legends + labels + [fig._suptitle.get_window_extent(renderer)]
    for a, b in combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    for box in legends + labels:  # inside the picture
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height
    for box in legends:  # clear of the panels
        assert not box.overlaps(loss.get_window_extent(renderer)) and not box.overlaps(lr.get_window_extent(renderer))


def with_validation(records: list[dict], every: int) -> list[dict]:
    """``records`` with validation figures every ``every`` steps of a stage, for the datasets it trains on."""
    seen: dict[str, set[str]] = {}
    for r in records:
        seen.setdefault(r["stage"], set()).update(r["datasets"])
    for r in records:
        if r["step"] % every == 0:
            r["eval"] = {f"{d}/mIoU": 0.1 + r["global_step"] / 1000 for d in sorted(seen[r["stage"]])}
    return records


def test_a_validated_run_gets_an_miou_panel_per_dataset_beside_the_loss():
    stages = (("main", 120, ("cityscapes", "ade20k")), ("finetune-cityscapes", 20, ("cityscapes",)),
              ("finetune-ade20k", 20, ("ade20k",)))
    fig = figure(with_validation(records(stages), 10), "run")
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    loss, lr, *panels = fig.axes
    assert [ax.get_title().split(":")[0] for ax in panels] == ["ade20k", "cityscapes"]
    for ax, name in zip(panels, ("ade20k", "cityscapes"), strict=True):
        points = [(x, y) for line in ax.get_lines() for x, y in line.get_xydata() if line.get_linestyle() == "-"]
        # the main stage's 12 validations and the dataset's own fine-tuning's 2, in points
        assert len({x for x, _ in points}) == 14, name
        assert max(y for _, y in points) == pytest.approx(100 * (0.1 + 160 / 1000) if name == "ade20k"
                                                          else 100 * (0.1 + 140 / 1000))
        assert ax.get_xlim() == loss.get_xlim()  # the same step axis as the loss
    boxes = [ax.get_legend().get_window_extent(renderer) for ax in (loss, lr)]
    boxes += [t.get_window_extent(renderer) for t in loss.texts if t.get_gid() == "stage"]
    for box in boxes:  # legends and stage names clear of every panel, inside the picture
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(renderer))
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height
    for a, b in combinations([ax.get_window_extent(renderer) for ax in fig.axes], 2):
        assert not a.overlaps(b)


def test_plot_run_writes_png_svg_and_rejects_other_names(synth_root, tmp_path):  # noqa: F811
    train(make_config(synth_root, tmp_path / "run", schedule={"steps": 3}), model_fn=lambda **kw: Tiny())
    assert plot_run(tmp_path / "run").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in plot_run(tmp_path / "run", tmp_path / "c.svg").read_bytes()[:400]
    with pytest.raises(HiersegError, match=r"c\.gif: write a \.png, \.svg or \.pdf"):
        plot_run(tmp_path / "run", tmp_path / "c.gif")


def scalars(folder, tag):
    events = EventAccumulator(str(folder))
    events.Reload()
    return {e.step: e.value for e in events.Scalars(tag)} if tag in events.Tags()["scalars"] else {}


def test_tensorboard_log_of_losses_rates_and_eval_scores(synth_root, tmp_path):  # noqa: F811
    config = make_config(synth_root, tmp_path / "run", ("cityscapes", "ade20k"), schedule={"steps": 4},
                         output={"tensorboard": True})
    outputs = train(config, model_fn=lambda **kw: TwoHeads())
    logged = read_metrics(tmp_path / "run")
    folder = tmp_path / "run" / FOLDER
    lr = scalars(folder, "lr/head")
    assert sorted(lr) == [r["global_step"] for r in logged]
    assert all(math.isclose(lr[r["global_step"]], r["lr_head"], rel_tol=1e-6) for r in logged)
    for name in ("cityscapes", "ade20k"):
        mine = {r["global_step"]: r["datasets"][name] for r in logged if name in r["datasets"]}
        theirs = scalars(folder, f"loss/{name}")
        assert theirs.keys() == mine.keys() and all(math.isclose(theirs[s], v, rel_tol=1e-6) for s, v in mine.items())

    model = Tiny()
    report = evaluate(model, "cityscapes", synth_root / "cityscapes", "val", device="cpu")
    assert log_evaluation(read_checkpoint(outputs["main"]), report) == folder
    events = EventAccumulator(str(folder))
    events.Reload()
    logged = {tag.removeprefix("eval/cityscapes/val/"): [(e.step, e.value) for e in events.Scalars(tag)]
              for tag in events.Tags()["scalars"] if tag.startswith("eval/")}
    # every scalar of the report, once, at the stage's last step: the flat, per-level and category figures
    assert logged == {name: [(4, pytest.approx(value))] for name, value in report.scalars().items()}
    assert logged["mIoU"] == [(4, pytest.approx(report.miou))]
    assert logged["category_mIoU"] == [(4, pytest.approx(report.metrics.category_miou))]
    assert {f"mIoU_level/{d}" for d in range(1, 6)} <= logged.keys()


def test_tensorboard_missing_is_one_line_before_the_run(synth_root, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    config = make_config(synth_root, tmp_path / "run", output={"tensorboard": True})
    with pytest.raises(HiersegError, match=r"output.tensorboard: true needs the tensorboard package: pip install"):
        prepare(config, model_fn=lambda **kw: Tiny())
    assert not (tmp_path / "run").exists()

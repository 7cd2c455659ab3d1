"""Evaluation of a model on one split of a dataset in its official layout, in the dataset's own label space.

:class:`Predictor` turns a normalised image into label ids of one label space, whole or by sliding windows,
optionally averaged with the horizontally flipped image. Flat models (those with an :class:`Outputs`) are averaged
on class probabilities and decoded once; any other model (DSSPN, whose ``predict`` runs hierarchical inference)
is run through ``predict`` and its windows are stitched on ids, each pixel taken from the window whose centre is
nearest. :func:`evaluate` reads the split, runs the predictor and scores it with :mod:`hierseg.evaluation`.
Under DDP each rank evaluates every ``world_size``-th image and the confusion matrices are summed.

Memory: an image above ``max_pixels`` (what the model sees, after ``short``) is never run whole: it is cut into
``crop`` windows, and every model's windows are stitched on ids (flat models' too, instead of averaging class
scores over the whole image, which would need one float per class and pixel). The working set is then one
window's, plus about 12 bytes per pixel for the ids and the nearest-centre distances, so memory grows with the
image's pixels by a small constant and never with the number of classes.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hierseg.core.errors import HiersegError
from hierseg.data.layouts import resolve_split
from hierseg.engine.distributed import default_device, evaluating, rank_and_world_size, unwrap
from hierseg.engine.options import InferenceOptions
from hierseg.evaluation.metrics import ConfusionMatrix, EvalClasses
from hierseg.evaluation.report import EvalReport
from hierseg.evaluation.scoring import report_of
from hierseg.evaluation.tally import Tally
from hierseg.models.base import CLASSES, Segmenter
from hierseg.taxonomy.labelspace import TREE
from hierseg.taxonomy.specs import DATASETS
from hierseg.taxonomy.tree import Taxonomy

_BAND_FLOATS = 1 << 24  # class scores resized to the labels' size are decoded in bands of about this many floats


def resolve_space(model: Segmenter, dataset: str | None, taxonomy: Taxonomy | None = None,
                  projection: str | None = None) -> str:
    """The label space predictions will be in: ``dataset``, the tree, or raw class indices.

    No dataset means the model's only dataset for a single-dataset flat model, raw class indices for a raw-class
    model, and the tree for a universal model (several datasets, or a model that is not flat, like DSSPN). A
    dataset the model never trained on but ``taxonomy`` covers (a superset of the model's tree) is predicted through
    the tree (:mod:`hierseg.engine.zero_shot`): by a universal model always, by a single-dataset one when a
    ``projection`` rule is asked for. ``taxonomy`` None: the model's own tree.
    """
    from hierseg.engine.zero_shot import evaluation_tree

    spaces = tuple(model.label_spaces)
    model = unwrap(model)
    taxonomy = evaluation_tree(model, taxonomy)
    if (dataset not in (None, TREE) and dataset not in spaces and taxonomy is not None
            and dataset in taxonomy.datasets and model.raw_classes is None
            and (model.default_space == TREE or projection is not None)):
        return dataset
    if dataset is None:
        return model.default_space
    if dataset == TREE:
        if model.default_space != TREE:
            raise HiersegError(f"this checkpoint predicts {', '.join(spaces) or 'raw class indices'}, not tree "
                               "concepts; pass --dataset with one of its datasets")
        return TREE
    if dataset not in DATASETS and dataset not in spaces:  # an unknown name is a one-line error listing the datasets
        raise HiersegError(f"unknown dataset {dataset!r}; choose one of {', '.join(dict.fromkeys([*DATASETS, *spaces]))} "
                           "(or give the tree a dataset was added to: --taxonomy EXTENDED.json)")
    if spaces and dataset not in spaces:
        raise HiersegError(f"this checkpoint predicts {', '.join(spaces)}, not {dataset!r}; "
                           f"pass --dataset {spaces[0] if len(spaces) == 1 else 'with one of them'}")
    return dataset


class Predictor:
    """Label ids of one label space (a dataset, ``tree`` or ``classes``) for a batch of normalised images."""

    def __init__(self, model: Segmenter | nn.Module, space: str, options: InferenceOptions | None = None,
                 taxonomy: Taxonomy | None = None, projection: str | None = None) -> None:
        from hierseg.engine.zero_shot import Projection, evaluation_tree

        self.model = unwrap(model)
        taxonomy = evaluation_tree(self.model, taxonomy)  # the model's own, or a checked superset of it
        self.space = space
        self.options = options or InferenceOptions()
        self.scored = self.model.has_class_scores  # class scores: averaged over windows and flips before deciding
        self.dataset = None if space in (TREE, CLASSES) else space
        self.slid = 0  # images above max_pixels, run in windows whatever the mode
        self._class_ids: torch.Tensor | None = None
        self._background: torch.Tensor | None = None
        # A dataset the model never trained on goes through the tree (the "sum" rule by default); a trained one
        # only when a rule is asked for, else the model's own decoding, as always.
        self.projection: Projection | None = None
        held_out = self.dataset not in self.model.label_spaces and self.model.raw_classes is None
        if self.dataset is not None and (projection is not None or held_out):
            self.projection = Projection(self.model, self.dataset, taxonomy if taxonomy is not None else
                                         Taxonomy.load(), projection or "sum")
        if self.options.flip and not self.scored:
            raise HiersegError("flip averaging needs class scores; this model only predicts labels (drop --flip)")
        if self.projection is not None:
            return
        raw = self.model.raw_classes
        if raw is not None and self.dataset is not None:
            # A raw-class model's class c is the dataset's c-th evaluated label: Cityscapes' trainIds, ADE20K's
            # ids minus one, COCO-Stuff's 171 and Mapillary's 65 in id order, the papers' conventions.
            ids = EvalClasses.of(self.dataset, taxonomy).ids
            if raw != len(ids):
                raise HiersegError(f"this checkpoint has {raw} raw classes but {self.dataset} "
                                   f"evaluates {len(ids)}; it cannot be scored in {self.dataset}'s ids")
            self._class_ids = torch.tensor(ids, dtype=torch.int64)
        self._background = self._background_lut(taxonomy)
        if self._background is not None:
            self.dataset = None  # predict tree concepts, then map them (below)

    def _background_lut(self, taxonomy: Taxonomy | None) -> torch.Tensor | None:
        """For a dataset whose spec names a background value (VOC's 0: none of its classes): tree concept index ->
        dataset id, with every concept the dataset does not label on the background. A model that predicts the tree
        (DSSPN, universal outputs) then says "background" where it sees road or sky, as the dataset's benchmark asks;
        restricted to the dataset's own labels it never could."""
        if self.dataset is None or taxonomy is None or self.model.default_space != TREE:
            return None
        from hierseg.engine.zero_shot import model_taxonomy

        taxonomy = model_taxonomy(self.model) or taxonomy  # its concept indices are those of the model's own tree
        background = taxonomy.artifact.get("datasets", {}).get(self.dataset, {}).get("background")
        if background is None:
            return None
        from hierseg.taxonomy.translate import translation

        lut = torch.full((len(taxonomy),), int(background), dtype=torch.int64)
        for entry in translation(taxonomy, TREE, self.dataset).entries:
            if entry.relation in ("equal", "coarser") and entry.source_id < len(lut):
                lut[entry.source_id] = entry.target_id
        return lut

    @torch.no_grad()
    def __call__(self, image: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """``(B, H, W)`` int64 ids for ``image`` ``(B, 3, h, w)``; ``size`` = ``(H, W)`` of the labels (default h, w)."""
        size = tuple(size or image.shape[-2:])
        height, width = image.shape[-2:]
        limit = self.options.max_pixels
        large = limit is not None and height * width > limit
        mode = "slide" if large else self.options.mode
        if large:
            if not self.slid and self.options.mode == "whole":
                warnings.warn(f"images of {width}x{height} ({height * width / 1e6:.1f} MP) are above max_pixels "
                              f"({limit / 1e6:.1f} MP): they run in {self.options.crop}-pixel windows, so memory stays "
                              "bounded (--max-pixels, --short or --mode slide choose otherwise)", stacklevel=2)
            self.slid += image.shape[0]
        whole = mode == "whole" and not self.options.flip
        if self.scored and not large and not (whole and size == (height, width)):
            ids = self._from_scores(image, size, mode)
        else:
            ids = self._from_ids(image, size, mode)
        if self._class_ids is not None:
            ids = self._class_ids.to(ids.device)[ids]
        if self._background is not None:
            ids = self._background.to(ids.device)[ids]
        return ids

    def _windows(self, height: int, width: int, mode: str) -> list[tuple[int, int, int, int]]:
        from hierseg.data.transforms import sliding_windows

        if mode == "whole":
            return [(0, 0, height, width)]
        return sliding_windows(height, width, self.options.crop, self.options.window_stride)

    def _probabilities(self, image: torch.Tensor) -> torch.Tensor:
        logits = self.model.class_scores(image)
        probs = logits.float().softmax(1)
        if self.options.flip:
            probs = probs + self.model.class_scores(image.flip(-1)).float().softmax(1).flip(-1)
        return probs

    def _from_scores(self, image: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
        height, width = image.shape[-2:]
        total: torch.Tensor | None = None
        count = torch.zeros(1, 1, height, width, device=image.device)
        for top, left, bottom, right in self._windows(height, width, mode):
            probs = self._probabilities(image[..., top:bottom, left:right])
            if total is None:
                total = torch.zeros(image.shape[0], probs.shape[1], height, width, device=image.device)
            total[..., top:bottom, left:right] += probs
            count[..., top:bottom, left:right] += 1
        probs = total / count
        if tuple(probs.shape[-2:]) != size:
            return self._decode_resized(probs, size)
        # log of the averaged probabilities is a valid logit vector (its softmax gives them back), so any decode,
        # plain argmax or a sum of leaf probabilities per dataset label, sees the average it expects.
        return self._decode(probs.clamp_min(1e-12).log())

    def _decode_resized(self, probs: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``decode`` of ``probs`` resized bilinearly to ``size`` (the labels' size, after ``short``), in bands of
        output rows: the scores of the whole resized image (classes x pixels) are never held at once.

        Each band is PyTorch's own bilinear resize (``align_corners=False``): along the width over the source rows the
        band needs (their height kept, which copies them exactly), then between the two source rows each output row
        lies on, with the weights ``F.interpolate`` uses."""
        (height, width), rows_in = size, probs.shape[-2]
        per_row = probs.shape[0] * probs.shape[1] * width  # floats in one resized output row
        scale = rows_in / height
        band = max(1, _BAND_FLOATS // (per_row * (2 + math.ceil(scale))))
        if band >= height:
            probs = F.interpolate(probs, size=size, mode="bilinear", align_corners=False)
            return self._decode(probs.clamp_min(1e-12).log())
        ids = torch.empty(probs.shape[0], height, width, dtype=torch.int64, device=probs.device)
        for top in range(0, height, band):
            ys = ((torch.arange(top, min(height, top + band), device=probs.device) + 0.5) * scale - 0.5).clamp_min(0)
            y0 = ys.long().clamp_max(rows_in - 1)
            y1 = (y0 + 1).clamp_max(rows_in - 1)
            weight = (ys - y0).view(-1, 1)
            first, last = int(y0[0]), int(y1[-1]) + 1
            wide = F.interpolate(probs[..., first:last, :], size=(last - first, width), mode="bilinear",
                                 align_corners=False)
            rows = wide[..., y0 - first, :] * (1 - weight) + wide[..., y1 - first, :] * weight
            del wide
            ids[:, top:top + len(ys)] = self._decode(rows.clamp_min(1e-12).log())
        return ids

    def _decode(self, scores: torch.Tensor) -> torch.Tensor:
        if self.projection is not None:
            return self.projection.decode(scores)
        return self.model.decode(scores, self.dataset)

    def _window_ids(self, window: torch.Tensor) -> torch.Tensor:
        if self.scored and self.options.flip:
            return self._decode(self._probabilities(window).clamp_min(1e-12).log())
        if self.projection is not None:
            return self.projection.predict(window)
        return self.model.predict(window, self.dataset)

    def _from_ids(self, image: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
        height, width = image.shape[-2:]
        windows = self._windows(height, width, mode)
        if len(windows) == 1:
            ids = self._window_ids(image)
        else:
            ids = torch.zeros(image.shape[0], height, width, dtype=torch.int64, device=image.device)
            best = torch.full((height, width), math.inf, device=image.device)
            ys = torch.arange(height, device=image.device).view(-1, 1).float()
            xs = torch.arange(width, device=image.device).view(1, -1).float()
            for top, left, bottom, right in windows:
                # Pixels near a window's border see the least context: keep each from the window centred nearest.
                # Only the window's own box is touched, so a window costs its area, not the image's.
                distance = torch.maximum((ys[top:bottom] - (top + bottom - 1) / 2).abs(),
                                         (xs[:, left:right] - (left + right - 1) / 2).abs())
                region = best[top:bottom, left:right]
                take = distance < region
                window = self._window_ids(image[..., top:bottom, left:right])
                ids[..., top:bottom, left:right] = torch.where(take, window, ids[..., top:bottom, left:right])
                best[top:bottom, left:right] = torch.where(take, distance, region)
        if tuple(ids.shape[-2:]) != size:
            ids = F.interpolate(ids[:, None].double(), size=size, mode="nearest")[:, 0].long()
        return ids.long()


def _collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    if len({tuple(s["label"].shape) for s in samples}) > 1:
        raise HiersegError(f"{samples[0]['path']}: images of one batch differ in size; evaluate with batch size 1")
    return {"image": torch.stack([s["image"] for s in samples]), "label": torch.stack([s["label"] for s in samples]),
            "path": [s["path"] for s in samples]}


def evaluate(model: nn.Module, dataset_name: str, root: str | Path, split: str = "val", *,
             options: InferenceOptions | None = None, batch_size: int = 1, workers: int = 0,
             device: str | torch.device | None = None, taxonomy: Taxonomy | None = None, limit: int | None = None,
             on_batch: Callable[[int], None] | None = None, projection: str | None = None) -> EvalReport:
    """Score ``model`` on ``split`` of ``dataset_name`` under ``root`` (official layout), in the dataset's ids.

    The model's own tree (``model.taxonomy``; the shipped tree for a model built on none) gives each class its
    concept, for the per-level mIoU and the mistakes' severity (:mod:`hierseg.evaluation.scoring` lists every score;
    ``report.scalars()`` gives them flat);
    ``limit`` evaluates only the first images; ``on_batch(n)`` is called after each batch of ``n`` images.
    A dataset the model never trained on (``taxonomy`` then a superset of its tree that covers it) is predicted
    through the tree by ``projection`` (``sum``, the default there, or ``argmax``: :mod:`hierseg.engine.zero_shot`),
    and the report gains a ``reach`` section: the labels the model cannot output, and mIoU over the others.
    The model is left in the train/eval mode it came in.
    """
    from torch.utils.data import DataLoader, Subset

    from hierseg.data.loader import shutdown_workers
    from hierseg.data.readers import open_split
    from hierseg.data.transforms import EvalTransform
    from hierseg.engine.zero_shot import evaluation_tree

    options = options or InferenceOptions()
    if batch_size < 1 or workers < 0 or (limit is not None and limit < 1):
        raise HiersegError("batch size and limit must be at least 1, workers at least 0")
    taxonomy = evaluation_tree(model, taxonomy)
    space = resolve_space(model, dataset_name, taxonomy, projection)
    split = resolve_split(dataset_name, split, taxonomy)
    data = open_split(dataset_name, root, split, taxonomy=taxonomy, transform=EvalTransform(options.short))
    rank, world = rank_and_world_size()
    indices = range(min(len(data), limit or len(data)))
    shard = Subset(data, indices[rank::world])
    loader = DataLoader(shard, batch_size=batch_size, num_workers=workers, collate_fn=_collate)

    device = torch.device(device) if device is not None else default_device()
    tree = taxonomy if taxonomy is not None else Taxonomy.load()  # a model built on no tree: the shipped one
    classes = EvalClasses.of(dataset_name, tree)
    matrix = ConfusionMatrix(classes, device)
    images = torch.zeros((), dtype=torch.int64, device=device)
    start = time.perf_counter()
    with evaluating(model, device) as module:
        predictor = Predictor(module, space, options, taxonomy, projection)
        batches = iter(loader)
        try:
            with torch.inference_mode():
                for batch in batches:
                    image, label = batch["image"].to(device, non_blocking=True), batch["label"].to(device, non_blocking=True)
                    prediction = predictor(image, tuple(label.shape[-2:]))
                    rows = max(1, (1 << 20) // max(1, label.shape[0] * label.shape[-1]))  # ~1 MP per update
                    for top in range(0, label.shape[-2], rows):  # the update's temporaries scale with its pixels
                        matrix.update(prediction[..., top:top + rows, :], label[..., top:top + rows, :])
                    images += image.shape[0]
                    if on_batch is not None:
                        on_batch(image.shape[0])
        finally:
            shutdown_workers(batches)
    if world > 1:
        torch.distributed.all_reduce(images)
    tally = Tally.of_ids(classes, matrix.reduced().cpu().numpy(), tree)
    return _report(tally, predictor, options, split, int(images), time.perf_counter() - start, batch_size)


def _report(tally: Tally, predictor: Predictor, options: InferenceOptions, split: str, images: int, seconds: float,
            batch_size: int) -> EvalReport:
    """The report, with the settings that produced it and, through a projection, the labels it cannot reach."""
    settings = {"mode": options.mode, "flip": options.flip, "short": options.short, "batch_size": batch_size}
    if options.mode == "slide" or predictor.slid:
        settings.update(crop=options.crop, stride=options.window_stride)
    if predictor.slid:
        settings.update(max_pixels=options.max_pixels, slid=predictor.slid)
    extra = ()
    if predictor.projection is not None:
        from hierseg.evaluation.reach import reach_score
        from hierseg.evaluation.scoring import flat_metrics

        settings["projection"] = predictor.projection.rule
        extra = (reach_score(flat_metrics(tally), predictor.projection.reach, predictor.projection.rule),)
    return report_of(tally, split, images, seconds, settings, extra)

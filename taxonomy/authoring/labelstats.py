"""Statistics of a real annotation folder: label and concept frequencies, activated neurons per image and batch.

The DSSPN paper (4.1) reports about 6 (COCO-Stuff), 5 (ADE20K), 10 (Cityscapes) and 8 (Mapillary) activated
neurons per batch; :func:`folder_stats` is how a user checks such a figure on their own data.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hierseg.core.errors import HiersegError
from hierseg.taxonomy.annotations import Recode, list_label_files, map_files, read_dataset_label
from hierseg.taxonomy.neurons import NeuronGraph

if TYPE_CHECKING:
    import pandas as pd

LABEL_COLUMNS = ("id", "name", "concept", "pixels", "pixel_freq", "images", "image_freq")
CONCEPT_COLUMNS = ("concept", "depth", "pixels", "pixel_freq", "images", "image_freq")

_state: dict[str, Any] = {}


def _init_count(root: Path, size: int, defined: np.ndarray, dataset: str, recodes: tuple[Recode, ...] = ()) -> None:
    _state.update(root=root, size=size, defined=defined, dataset=dataset, recodes=recodes)


def _count_one(rel: Path) -> tuple[str, np.ndarray]:
    path = _state["root"] / rel
    label = read_dataset_label(path, _state["recodes"])
    counts = np.bincount(label.reshape(-1), minlength=_state["size"])
    bad = np.flatnonzero(counts[: _state["size"]] * ~_state["defined"])
    if len(counts) > _state["size"] or len(bad):
        value = int(bad[0]) if len(bad) else len(counts) - 1
        raise HiersegError(f"{path}: value {value} is not a {_state['dataset']} label id")
    return str(rel), counts


def _summary(values: np.ndarray) -> dict[str, float]:
    if not len(values):
        return {"mean": 0.0, "median": 0.0, "max": 0}
    return {"mean": round(float(values.mean()), 3), "median": float(np.median(values)), "max": int(values.max())}


def folder_stats(graph: NeuronGraph, dataset: str, root: str | Path, batch_size: int = 8, seed: int = 0,
                 workers: int = 1, files: list[Path] | None = None, recodes: tuple[Recode, ...] = ()) -> dict[str, Any]:
    """Count the label PNGs under ``root`` (in ``dataset``'s ids): ``files`` (relative to ``root``, by default
    every ``*.png``), read through ``recodes`` where one matches (a layout's other encoding).

    Batches are drawn as a training epoch draws them: the images shuffled with ``seed``, cut into consecutive
    batches of ``batch_size`` (the last one may be short).
    """
    if batch_size < 1:
        raise HiersegError(f"batch size must be at least 1, got {batch_size}")
    space = graph.space(dataset)
    files = list_label_files(root) if files is None else files
    if not files:
        raise HiersegError(f"{root}: no label PNGs found")
    results = dict(map_files(_count_one, files, workers, _init_count,
                             (Path(root), space.size, space.defined, dataset, recodes)))
    counts = np.stack([results[str(rel)] for rel in files])  # (images, values), in sorted file order
    present = counts > 0
    activated = (present.astype(np.int32) @ graph.activation_table(dataset).astype(np.int32)) > 0

    order = np.random.default_rng(seed).permutation(len(files))
    per_batch = np.array([activated[order[i:i + batch_size]].any(axis=0).sum()
                          for i in range(0, len(files), batch_size)])
    total = int(counts.sum())
    labels = []
    for value in [*space.ids, space.ignore]:
        pixels, images = int(counts[:, value].sum()), int(present[:, value].sum())
        labels.append({"id": value, "name": space.name_of(value), "concept": space.concepts.get(value),
                       "pixels": pixels, "pixel_freq": pixels / total if total else 0.0,
                       "images": images, "image_freq": images / len(files)})

    # A concept's frequency counts its own pixels and those of every concept below it.
    concept_pixels: dict[str, int] = {}
    concept_images: dict[str, np.ndarray] = {}
    for value, concept in space.concepts.items():
        if concept is None or not present[:, value].any():
            continue
        for node in graph.taxonomy.path(concept):
            concept_pixels[node] = concept_pixels.get(node, 0) + int(counts[:, value].sum())
            concept_images[node] = concept_images.get(node, np.zeros(len(files), bool)) | present[:, value]
    concepts = [{"concept": cid, "depth": graph.taxonomy[cid].depth, "pixels": concept_pixels[cid],
                 "pixel_freq": concept_pixels[cid] / total, "images": int(concept_images[cid].sum()),
                 "image_freq": float(concept_images[cid].mean())}
                for cid in graph.concepts if cid in concept_pixels]
    return {
        "dataset": dataset, "root": str(root), "images": len(files), "pixels": total,
        "batch_size": batch_size, "seed": seed,
        "activated_neurons_per_image": _summary(activated.sum(axis=1)),
        "activated_neurons_per_batch": _summary(per_batch),
        "labels": labels, "concepts": concepts,
    }


def stats_frames(stats: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """:func:`folder_stats`' two tables as pandas DataFrames, for a notebook: ``labels`` indexed by label id (the
    ignore value included) and ``concepts`` by concept id (a concept's pixels and images count those below it)."""
    import pandas as pd  # only this function needs it: the statistics themselves stay plain Python

    return {"labels": pd.DataFrame(stats["labels"], columns=list(LABEL_COLUMNS)).set_index("id"),
            "concepts": pd.DataFrame(stats["concepts"], columns=list(CONCEPT_COLUMNS)).set_index("concept")}

"""The synthesiser writes each dataset's official layout, labels fine concepts at the dataset's granularity, and is
deterministic in its seed."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hierseg.core.errors import HiersegError
from hierseg.data.layouts import layout
from hierseg.data.synth import JPEG_QUALITY, appearance, pool, samples, scene, swatch, synthesize
from hierseg.taxonomy import NeuronGraph, Taxonomy, load_spec, translation

DATASETS = ("ade20k", "coco_stuff", "cityscapes", "mapillary")
SIZE = 64
SEED = 5
CITYSCAPES_CITIES = {  # the official train and val cities
    "train": {"aachen", "bochum", "bremen", "cologne", "darmstadt", "dusseldorf", "erfurt", "hamburg", "hanover",
              "jena", "krefeld", "monchengladbach", "strasbourg", "stuttgart", "tubingen", "ulm", "weimar", "zurich"},
    "val": {"frankfurt", "lindau", "munster"},
}


@pytest.fixture(scope="module")
def tax() -> Taxonomy:
    return Taxonomy.load()


@pytest.fixture(scope="module")
def graph(tax: Taxonomy) -> NeuronGraph:
    return NeuronGraph(tax)


def expected_lut(tax: Taxonomy, dataset: str) -> np.ndarray:
    """Tree label value -> dataset label, from the translation itself; -1 where the concept must not be drawn."""
    tr = translation(tax, "tree", dataset)
    lut = np.full(len(tax), -1, dtype=np.int64)
    for e in tr.entries:
        if e.relation in ("equal", "coarser") and e.source_concept is not None:
            lut[e.source_id] = e.target_id
    return lut


def label_id(dataset: str, name: str) -> int:
    return next(label.id for label in load_spec(dataset).labels if label.name == name)


def first_scene_with(graph: NeuronGraph, dataset: str, concept: str, seed: int = 0, limit: int = 80) -> int:
    value = graph.concepts.index(concept)
    for index in range(limit):
        if (scene(dataset, index, SIZE, seed)[1] == value).sum() >= 3:
            return index
    raise AssertionError(f"no {dataset} scene among the first {limit} draws {concept}")


def written_label(root: Path, dataset: str, index: int, n: int, seed: int) -> np.ndarray:
    sample = next(s for s in samples(dataset, n, seed) if s.index == index)
    return np.array(Image.open(layout(dataset).label_path(root, sample.split, sample.stem)))


@pytest.fixture(scope="module", params=DATASETS)
def written(request, tmp_path_factory) -> tuple[str, Path, int]:
    dataset = request.param
    root = tmp_path_factory.mktemp(dataset)
    return dataset, root, synthesize(dataset, root, n=3, size=SIZE, seed=SEED)


def test_writes_every_sample_at_the_layout_paths(written: tuple[str, Path, int]) -> None:
    dataset, root, count = written
    lay = layout(dataset)
    plan = samples(dataset, 3, SEED)
    assert count == len(plan) == 3 * len([s for s in lay.splits if s != "test"])
    assert len({(s.split, s.stem) for s in plan}) == count
    assert [s.index for s in plan] == list(range(count))  # one scene per sample, none drawn twice
    for split in lay.splits:
        images = sorted(lay.image_dir(root, split).rglob(lay.image_glob)) if lay.image_dir(root, split).exists() else []
        expected = sorted(lay.image_of(root, s.split, s.stem) for s in plan if s.split == split)
        assert images == expected  # exactly what a reader listing the split finds
    for s in plan:
        image = Image.open(lay.image_of(root, s.split, s.stem))
        label = Image.open(lay.label_path(root, s.split, s.stem))
        assert image.mode == "RGB" and image.size == label.size == (SIZE, SIZE)
        assert image.format == ("PNG" if dataset == "cityscapes" else "JPEG")
        assert label.format == "PNG" and label.mode == ("P" if dataset == "mapillary" else "L")


def test_official_names(written: tuple[str, Path, int]) -> None:
    dataset, root, _ = written
    plan = samples(dataset, 3, SEED)
    lay = layout(dataset)
    if dataset == "ade20k":
        for s in plan:
            prefix = {"training": "ADE_train", "validation": "ADE_val"}[s.split]
            assert re.fullmatch(rf"{prefix}_\d{{8}}", s.stem)
            assert (root / "images" / s.split / f"{s.stem}.jpg").is_file()
            assert (root / "annotations" / s.split / f"{s.stem}.png").is_file()
    elif dataset == "coco_stuff":
        assert all(re.fullmatch(r"\d{12}", s.stem) for s in plan)
        assert {s.split for s in plan} == {"train2017", "val2017"}
    elif dataset == "cityscapes":
        assert not (root / "leftImg8bit" / "test").exists()
        for s in plan:
            city, seq, frame = s.stem.split("_")
            assert city in CITYSCAPES_CITIES[s.split] and re.fullmatch(r"\d{6}", seq) and re.fullmatch(r"\d{6}", frame)
            assert (root / "leftImg8bit" / s.split / city / f"{s.stem}_leftImg8bit.png").is_file()
            assert (root / "gtFine" / s.split / city / f"{s.stem}_gtFine_labelIds.png").is_file()
    else:
        assert all(re.fullmatch(r"[A-Za-z0-9]{22}", s.stem) for s in plan)
        label = Image.open(lay.label_path(root, plan[0].split, plan[0].stem))
        palette = label.getpalette()
        for entry in load_spec("mapillary").labels:
            if entry.color is not None:
                assert tuple(palette[3 * entry.id:3 * entry.id + 3]) == entry.color


def test_labels_are_the_dataset_labels_of_the_drawn_concepts(written, tax: Taxonomy, graph: NeuronGraph) -> None:
    dataset, root, _ = written
    spec = load_spec(dataset)
    lut = expected_lut(tax, dataset)
    drawable = set(pool(dataset))
    for s in samples(dataset, 3, SEED):
        image, concepts = scene(dataset, s.index, SIZE, SEED)
        assert image.shape == (SIZE, SIZE, 3) and concepts.shape == (SIZE, SIZE)
        drawn = np.unique(concepts).tolist()
        assert all(lut[c] >= 0 for c in drawn), "a concept the dataset does not label exactly was drawn"
        assert {graph.concepts[c] for c in drawn} <= drawable
        label = written_label(root, dataset, s.index, 3, SEED)
        assert set(np.unique(label).tolist()) <= {*spec.ids, spec.ignore}
        rng = np.random.default_rng(s.index)
        ys, xs = rng.integers(0, SIZE, 50), rng.integers(0, SIZE, 50)
        assert (label[ys, xs] == lut[concepts[ys, xs]]).all()
        assert (label == lut[concepts]).all()
        written_image = np.array(Image.open(layout(dataset).image_of(root, s.split, s.stem)), dtype=np.int16)
        if dataset == "cityscapes":  # lossless PNG
            assert (written_image == image).all()
        else:  # the drawn scene itself, JPEG-compressed once (how far JPEG strays depends on the scene's textures)
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
            assert (written_image == np.array(Image.open(buffer), dtype=np.int16)).all()
            assert np.abs(written_image - image).mean() < 20


def test_pool_is_every_drawable_leaf(tax: Taxonomy) -> None:
    for dataset in DATASETS:
        tr = translation(tax, "tree", dataset)
        leaves = {e.source_concept for e in tr.entries
                  if e.relation in ("equal", "coarser") and e.source_concept and tax.is_leaf(e.source_concept)}
        assert set(pool(dataset)) == leaves
        assert {"road_surface", "lane_marking"} <= leaves


def written_scene_with(tmp_path: Path, graph: NeuronGraph, dataset: str, concept: str) -> tuple[np.ndarray, np.ndarray]:
    """Synthesise up to the first scene showing ``concept``; its drawn concepts and its written label."""
    index = first_scene_with(graph, dataset, concept)
    synthesize(dataset, tmp_path, n=index + 1, size=SIZE, seed=0)
    _, concepts = scene(dataset, index, SIZE, 0)
    return concepts, written_label(tmp_path, dataset, index, index + 1, 0)


@pytest.mark.parametrize(("dataset", "name"), [("mapillary", "marking--general"), ("cityscapes", "road")])
def test_lane_marking_is_labelled_at_each_datasets_granularity(tmp_path: Path, graph: NeuronGraph, dataset: str,
                                                              name: str) -> None:
    concepts, label = written_scene_with(tmp_path, graph, dataset, "lane_marking")
    marking = concepts == graph.concepts.index("lane_marking")
    assert (label[marking] == label_id(dataset, name)).all()
    road = concepts == graph.concepts.index("road_surface")
    if road.any():  # Cityscapes cannot tell the marking from the road; Mapillary can
        assert (label[road] == label_id(dataset, name)).all() == (dataset == "cityscapes")


@pytest.mark.parametrize(("dataset", "name"), [("coco_stuff", "dog"), ("ade20k", "animal")])
def test_dog_is_labelled_at_each_datasets_granularity(tmp_path: Path, graph: NeuronGraph, dataset: str,
                                                      name: str) -> None:
    concepts, label = written_scene_with(tmp_path, graph, dataset, "dog")
    assert (label[concepts == graph.concepts.index("dog")] == label_id(dataset, name)).all()


def test_same_seed_same_bytes_other_seed_other_labels(tmp_path: Path) -> None:
    def files(root: Path) -> dict[Path, bytes]:
        return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    for seed, folder in ((1, "a"), (1, "b"), (2, "c")):
        synthesize("ade20k", tmp_path / folder, n=2, size=SIZE, seed=seed)
    a, b, c = files(tmp_path / "a"), files(tmp_path / "b"), files(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys()
    labels = [p for p in a if p.suffix == ".png"]
    assert labels and all(a[p] != c[p] for p in labels)
    assert [s.stem for s in samples("mapillary", 2, 1)] == [s.stem for s in samples("mapillary", 2, 1)]
    assert [s.stem for s in samples("mapillary", 2, 1)] != [s.stem for s in samples("mapillary", 2, 2)]


def test_colour_alone_does_not_give_the_label(tax: Taxonomy) -> None:
    """Siblings with different labels share a base colour and differ in texture; per-image jitter then makes the
    mean colour of one concept vary more than the gap between such siblings."""
    lut = expected_lut(tax, "coco_stuff")
    index = {c.id: i for i, c in enumerate(tax)}
    drawn = pool("coco_stuff")
    pairs = [(a, b) for a in drawn for b in drawn
             if a < b and tax[a].parent == tax[b].parent and lut[index[a]] != lut[index[b]]]
    close = [(a, b) for a, b in pairs
             if np.linalg.norm(np.subtract(appearance(a).color, appearance(b).color)) < 20]
    assert len(close) >= 10
    rank = {c: tax.children(tax[c].parent).index(c) for pair in close for c in pair}
    assert all(appearance(a).pattern != appearance(b).pattern for a, b in close if abs(rank[a] - rank[b]) < 4)
    a, b = close[0]
    means = {c: np.array([swatch(c, 32, seed).reshape(-1, 3).mean(0) for seed in range(12)]) for c in (a, b)}
    gap = np.linalg.norm(means[a].mean(0) - means[b].mean(0))
    spread = np.mean([np.linalg.norm(m - m.mean(0), axis=1).mean() for m in means.values()])
    assert gap < 2.5 * spread


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"dataset": "pascal"}, "pascal"), ({"n": 0}, "n=0"), ({"size": 31}, "31"), ({"size": 100000}, "too large"),
])
def test_bad_input_is_a_one_line_error(tmp_path: Path, kwargs: dict, match: str) -> None:
    args = {"dataset": "ade20k", "out": tmp_path, "n": 1, "size": SIZE, **kwargs}
    with pytest.raises(HiersegError, match=match) as info:
        synthesize(**args)
    assert "\n" not in str(info.value)
    assert not any(tmp_path.iterdir())


def test_the_official_reader_lists_and_loads_what_was_written(written: tuple[str, Path, int]) -> None:
    from hierseg.data.readers import official
    from hierseg.data.synth import label_map

    dataset, root, _ = written
    for split in {s.split for s in samples(dataset, 3, SEED)}:
        data = official(dataset, root, split, verify=True)
        assert len(data) == 3 and data.problems == []
        by_stem = {s.stem: s for s in samples(dataset, 3, SEED) if s.split == split}
        for i in range(len(data)):
            item = data[i]
            stem = next(stem for stem in by_stem if stem in Path(item["path"]).name)
            image, concepts = scene(dataset, by_stem[stem].index, SIZE, SEED)
            assert item["image"].shape == image.shape and item["dataset"] == dataset
            assert np.array_equal(item["label"], label_map(dataset, concepts))


def test_another_size_into_an_existing_dataset_is_refused(tmp_path: Path) -> None:
    synthesize("ade20k", tmp_path, n=1, size=SIZE)
    before = sorted(p.read_bytes() for p in tmp_path.rglob("*.*"))
    with pytest.raises(HiersegError, match=f"already holds ade20k images of {SIZE}x{SIZE} .*--size {SIZE}"):
        synthesize("ade20k", tmp_path, n=2, size=SIZE + 32)
    assert sorted(p.read_bytes() for p in tmp_path.rglob("*.*")) == before  # nothing added, nothing replaced


def test_a_dataset_is_written_into_a_new_folder_or_replaced_whole(tmp_path: Path) -> None:
    from hierseg.data.synth_record import RECORD, check_record

    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    synthesize("ade20k", tmp_path / "a", n=3, size=SIZE, seed=1)
    three = files(tmp_path / "a")
    assert synthesize("ade20k", tmp_path / "a", n=3, size=SIZE, seed=1) == 6 and files(tmp_path / "a") == three
    with pytest.raises(HiersegError, match="already holds a synthetic dataset \\(n 3, seed 1\\).*--overwrite"):
        synthesize("ade20k", tmp_path / "a", n=2, size=SIZE, seed=5)
    assert files(tmp_path / "a") == three  # nothing replaced, nothing added
    synthesize("ade20k", tmp_path / "a", n=2, size=SIZE, seed=5, overwrite=True)
    synthesize("ade20k", tmp_path / "b", n=2, size=SIZE, seed=5)
    assert files(tmp_path / "a") == files(tmp_path / "b")  # replaced whole: no sample of the first one left
    assert check_record(tmp_path / "a") == []

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    for overwrite in (False, True):
        with pytest.raises(HiersegError, match="not empty .* and not a folder data synth wrote"):
            synthesize("ade20k", tmp_path / "mine", n=1, size=SIZE, overwrite=overwrite)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"

    # a mix made by hand (another synth's files copied in) does not pass as the dataset the record describes
    extra = next(p for p in (tmp_path / "b").rglob("*.jpg"))
    (tmp_path / "a" / extra.relative_to(tmp_path / "b").with_name("ADE_train_99999999.jpg")).write_bytes(b"x")
    assert len(check_record(tmp_path / "a")) == 1 and "synth did not write" in check_record(tmp_path / "a")[0]
    assert (tmp_path / "a" / RECORD).is_file()

"""Synthetic datasets in each dataset's official on-disk layout and id convention, for tests and smoke runs.

A scene is drawn from *fine* leaf concepts of the tree and only then labelled at the dataset's granularity, so the
label discrepancy between datasets is the real one: the same lane-marking pixels are ``marking--general`` in
Mapillary and ``road`` in Cityscapes, a dog is ``dog`` in COCO-Stuff and ``animal`` in ADE20K. A concept is drawable
for a dataset when its tree -> dataset relation is ``equal`` or ``coarser``, i.e. when the dataset labels it exactly.

Appearance is a function of the concept id alone (hashed with :mod:`hashlib`, so it is stable across processes):
siblings share a family base colour and differ in texture and shape, and every image gets its own illumination and
colour jitter, so colour alone does not give the label. Layout gives context: stuff fills bands (sky or ceiling on
top, ground or floor below, with roads, lane markings and crossings in perspective), things are shapes on top.
Everything is deterministic in ``seed``; :func:`scene` regenerates what :func:`synthesize` wrote.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from hierseg.core.errors import HiersegError
from hierseg.core.io import atomic_write_bytes
from hierseg.data import synth_record
from hierseg.data.layouts import FOLDER, FOLDER_LAYOUT, LAYOUTS, Layout, layout, layout_name
from hierseg.taxonomy import NeuronGraph, Taxonomy, translation
from hierseg.taxonomy.specs import DATASETS, dataset_spec

TreePath = str | Path | None  # an (extended) tree artifact; None: the shipped tree
# Layouts whose labels mark object outlines void, and the band's half-width as a fraction of the image side (VOC's
# band is about 5 pixels wide on 500-pixel images).
VOID_BORDER = {"pascal_voc": 0.005}
MIN_SIZE = 32
MAX_SIZE = 8192
JPEG_QUALITY = 90
CITIES = {  # official Cityscapes cities; the layout reads the folder from the stem's first field
    "train": ("aachen", "bochum", "bremen", "cologne", "darmstadt", "dusseldorf", "erfurt", "hamburg", "hanover",
              "jena", "krefeld", "monchengladbach", "strasbourg", "stuttgart", "tubingen", "ulm", "weimar", "zurich"),
    "val": ("frankfurt", "lindau", "munster"),
}
_KEY_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"))

# Where a drawable leaf may appear, by its nearest listed ancestor (or itself). Concepts under neither list fall
# back to their top branch, so a rebuilt tree still draws every drawable leaf somewhere.
_ROLES = {
    "sky_stuff": "sky", "building_stuff": "backdrop", "plant_stuff": "backdrop", "solid_stuff": "backdrop",
    "wall_stuff": "wall", "structural_stuff": "barrier", "ground_stuff": "ground", "water_stuff": "ground",
    "terrain": "ground", "light": "indoor_thing", "container": "indoor_thing",
    "road": "road", "walkway": "pavement", "recording_vehicle": "ego",
    "ceiling_stuff": "ceiling", "floor_stuff": "floor", "window_stuff": "window", "carpeting": "rug",
    # COCO-Stuff's indoor super-categories (things fall back to outdoor_thing, stuff to backdrop)
    "kitchen_things": "indoor_thing", "food_things": "indoor_thing", "furniture_things": "indoor_thing",
    "electronic_things": "indoor_thing", "appliance_things": "indoor_thing", "indoor_things": "indoor_thing",
    "rawmaterial_stuff": "indoor_thing", "furniture_stuff": "indoor_thing", "textile_stuff": "indoor_thing",
    "lane_marking": "marking", "crosswalk_zebra": "zebra", "crosswalk_plain": "crossing",
    "manhole": "spot", "catch_basin": "spot", "pothole": "spot",
}
_PATTERNS = ("stripes", "checker", "dots", "blobs")
_SHAPES = ("ellipse", "rect", "polygon")


@dataclass(frozen=True)
class Appearance:
    """How one concept looks, fixed by its id: a base colour and texture statistics."""

    color: tuple[float, float, float]  # mean RGB; shared (up to a small offset) by siblings
    tint: tuple[float, float, float]  # RGB direction the texture modulates the colour along
    pattern: str  # one of _PATTERNS
    period: float  # texture period, as a fraction of the image side
    angle: float  # texture orientation, radians
    contrast: float  # texture amplitude, 0..255 scale
    grain: float  # per-pixel noise standard deviation
    shape: str  # preferred outline when drawn as a thing
    aspect: float  # preferred height / width when drawn as a thing


@dataclass(frozen=True)
class Sample:
    """One written sample: its split, its official-looking stem, and the scene index it was drawn from."""

    split: str
    stem: str
    index: int


@dataclass(frozen=True)
class _Context:
    dataset: str
    concepts: tuple[str, ...]  # tree label value -> concept id
    lut: np.ndarray  # tree label value -> dataset label id (ignore for undrawable concepts)
    roles: dict[str, tuple[int, ...]]  # role -> drawable leaf concept indices, artifact order
    indoor: bool  # the dataset labels enough of ceiling, wall and floor to draw rooms
    tree: str | None  # the tree artifact the scene is drawn from
    layout: Layout
    background: int | None  # the value of pixels the dataset labels as none of its classes (VOC's 0)


def _digest(*keys: object) -> int:
    text = "\x1f".join(str(k) for k in keys)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def _rng(*keys: object) -> np.random.Generator:
    return np.random.default_rng(_digest(*keys))


def _key(taxonomy: TreePath) -> str | None:
    return None if taxonomy is None else str(Path(taxonomy).resolve())


@cache
def _taxonomy(tree: str | None = None) -> tuple[Taxonomy, NeuronGraph]:
    tax = Taxonomy.load(tree)
    return tax, NeuronGraph(tax)


def _check_dataset(dataset: str, tree: str | None = None) -> Layout:
    """The layout ``dataset`` is written in: its official one, or for a dataset added to the tree the layout its spec
    names (an official one such as pascal_voc, or folder)."""
    if dataset in DATASETS:
        return layout(dataset)
    tax, _ = _taxonomy(tree)
    if dataset not in tax.datasets:
        added = [d for d in tax.datasets if d not in DATASETS]
        raise HiersegError(f"cannot synthesise {dataset!r}; choose one of {', '.join([*DATASETS, *added])}"
                           + ("" if added else " (or pass the extended tree a dataset was added to)"))
    name = layout_name(dataset, tax)
    if name != FOLDER and name not in LAYOUTS:
        raise HiersegError(f"cannot synthesise {dataset!r}: its spec names layout {name!r}, which hierseg does not "
                           f"know ({', '.join([*LAYOUTS, FOLDER])})")
    return FOLDER_LAYOUT if name == FOLDER else layout(name)


def _role(tax: Taxonomy, concept: str) -> str:
    path = tax.path(concept)
    for node in reversed(path):
        if node in _ROLES:
            return _ROLES[node]
    return "outdoor_thing" if "things" in path else "backdrop"


@cache
def _context(dataset: str, tree: str | None = None, classes: int | None = None) -> _Context:
    """The dataset's drawable leaves by role; ``classes`` keeps at most that many per role (the same concepts for
    every dataset that labels them, so a small joint demo still shares classes between datasets)."""
    lay = _check_dataset(dataset, tree)
    tax, graph = _taxonomy(tree)
    tr = translation(tax, "tree", dataset)
    spec = dataset_spec(dataset, tax.artifact)
    if spec.num_ids > 256:
        raise HiersegError(f"cannot synthesise {dataset!r}: its ids go up to {spec.num_ids - 1}, beyond 8-bit PNGs")
    background = tax.artifact["datasets"][dataset].get("background")
    lut = np.full(len(graph.concepts), spec.ignore, dtype=np.uint8)
    roles: dict[str, list[int]] = {}
    for entry in tr.entries:
        if entry.source_concept is None:
            continue
        if entry.relation in ("equal", "coarser"):
            lut[entry.source_id] = entry.target_id
        elif background is not None and entry.relation == "none":
            lut[entry.source_id] = background  # the scenery is drawn too, and labelled as the dataset does: background
        else:
            continue
        if tax.is_leaf(entry.source_concept):
            role = _role(tax, entry.source_concept)
            if entry.relation == "none" and role in ("outdoor_thing", "indoor_thing"):
                continue  # the things on stage are the dataset's own classes (VOC: each image shows some)
            roles.setdefault(role, []).append(entry.source_id)
    indoor = all(roles.get(r) for r in ("ceiling", "wall", "floor"))
    if not indoor:  # street datasets: their indoor-looking labels (streetlight, banner) still have to appear
        roles.setdefault("outdoor_thing", []).extend(roles.pop("indoor_thing", []))
    if classes is not None:
        for role, ids in roles.items():
            kept = set(sorted(ids, key=lambda i: _digest("class", graph.concepts[i]))[:classes])
            roles[role] = [i for i in ids if i in kept]
    lut.setflags(write=False)
    return _Context(dataset, graph.concepts, lut, {k: tuple(sorted(v)) for k, v in roles.items()}, indoor, tree, lay,
                    background)


def pool(dataset: str, taxonomy: TreePath = None) -> tuple[str, ...]:
    """The leaf concepts drawn for ``dataset``: every leaf the dataset labels exactly (``equal`` or ``coarser``), and
    for a dataset with a background value every other leaf too."""
    ctx = _context(dataset, _key(taxonomy))
    return tuple(ctx.concepts[i] for i in sorted({i for ids in ctx.roles.values() for i in ids}))


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def appearance(concept: str, taxonomy: TreePath = None) -> Appearance:
    """The appearance of a tree concept; siblings share a base colour and get different patterns. A tree extended
    with ``build --add`` appends its new concepts, so every existing concept looks the same in it."""
    return _appearance(concept, _key(taxonomy))


@cache
def _appearance(concept: str, tree: str | None) -> Appearance:
    tax, _ = _taxonomy(tree)
    node = tax[concept]
    family = node.parent or concept
    frng = _rng("family", family)
    base = 255.0 * _hsv_to_rgb(frng.uniform(), frng.uniform(0.2, 0.75), frng.uniform(0.3, 0.85))
    siblings = tax.children(family) if node.parent else (concept,)
    # Consecutive siblings get consecutive patterns, so up to four siblings never share one.
    pattern = _PATTERNS[(int(frng.integers(len(_PATTERNS))) + siblings.index(concept)) % len(_PATTERNS)]
    rng = _rng("concept", concept)
    color = np.clip(base + rng.normal(0.0, 4.0, 3), 0.0, 255.0)
    if _ROLES.get(concept) in ("marking", "zebra"):  # painted on the road: a few pixels wide, so no room for texture
        color = 0.35 * color + 0.65 * 235.0
    tint = 0.6 * np.ones(3) / np.sqrt(3.0) + 0.4 * rng.normal(0.0, 1.0, 3) / np.sqrt(3.0)
    tint /= np.linalg.norm(tint)
    return Appearance(
        color=tuple(float(c) for c in color), tint=tuple(float(t) for t in tint), pattern=pattern,
        period=float(rng.uniform(0.03, 0.12)), angle=float(rng.uniform(0.0, np.pi)),
        contrast=float(rng.uniform(30.0, 70.0)), grain=float(rng.uniform(2.0, 16.0)),
        shape=_SHAPES[int(rng.integers(len(_SHAPES)))], aspect=float(np.exp(rng.uniform(-0.9, 1.2))),
    )


def _texture(app: Appearance, ys: np.ndarray, xs: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Texture values in about [-0.5, 0.5] at pixel coordinates, with a per-instance phase and orientation jitter."""
    period = max(app.period * size, 2.5)
    angle = app.angle + rng.normal(0.0, 0.1)
    ys = ys + rng.uniform(0.0, size)
    xs = xs + rng.uniform(0.0, size)
    u = (xs * np.cos(angle) + ys * np.sin(angle)) / period
    if app.pattern == "stripes":
        return 0.5 * np.sin(2.0 * np.pi * u)
    v = (ys * np.cos(angle) - xs * np.sin(angle)) / period
    if app.pattern == "checker":
        return (np.floor(u) + np.floor(v)) % 2.0 - 0.5
    if app.pattern == "dots":
        return np.sin(2.0 * np.pi * u) * np.sin(2.0 * np.pi * v) - 0.25
    # blobs: bilinear value noise on a lattice one period apart
    cells = int(np.ceil(3.0 * size / period)) + 3
    lattice = rng.uniform(-0.5, 0.5, (cells, cells))
    u, v = u / 1.5 + cells / 2.0, v / 1.5 + cells / 2.0  # rotated coordinates stay inside the lattice
    u0, v0 = np.floor(u).astype(np.intp) % (cells - 1), np.floor(v).astype(np.intp) % (cells - 1)
    fu, fv = u - np.floor(u), v - np.floor(v)
    top = lattice[v0, u0] * (1 - fu) + lattice[v0, u0 + 1] * fu
    bottom = lattice[v0 + 1, u0] * (1 - fu) + lattice[v0 + 1, u0 + 1] * fu
    return top * (1 - fv) + bottom * fv


def _paint_pixels(app: Appearance, ys: np.ndarray, xs: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    t = _texture(app, ys.astype(np.float32), xs.astype(np.float32), size, rng)
    jitter = rng.normal(0.0, 7.0, 3)  # the same concept never looks exactly the same twice
    rgb = np.asarray(app.color) + jitter + app.contrast * t[:, None] * np.asarray(app.tint)
    return rgb + rng.normal(0.0, app.grain, (len(ys), 1))


def swatch(concept: str, size: int = 64, seed: int = 0, taxonomy: TreePath = None) -> np.ndarray:
    """A ``size`` x ``size`` RGB patch of one concept's appearance (no scene illumination)."""
    ys, xs = np.divmod(np.arange(size * size), size)
    rgb = _paint_pixels(appearance(concept, taxonomy), ys, xs, size, _rng("swatch", concept, seed))
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8).reshape(size, size, 3)


class _Canvas:
    """Instances painted in order (later ones cover earlier ones); rendered once at the end."""

    def __init__(self, size: int, rng: np.random.Generator, tree: str | None = None) -> None:
        self.size, self.rng, self.tree = size, rng, tree
        self.graph = _taxonomy(tree)[1]
        self.inst = np.zeros((size, size), dtype=np.int32)
        self.concepts: list[int] = [-1]
        self.yy, self.xx = np.mgrid[0:size, 0:size].astype(np.float32)

    def paint(self, concept: int, mask: np.ndarray, box: tuple[int, int, int, int] | None = None) -> None:
        iid = len(self.concepts)
        self.concepts.append(concept)
        if box is None:
            self.inst[mask] = iid
        else:
            y0, y1, x0, x1 = box
            self.inst[y0:y1, x0:x1][mask] = iid

    def pick(self, ids: tuple[int, ...]) -> int:
        return int(ids[int(self.rng.integers(len(ids)))])

    def shape(self, concept: int, shape: str, cy: float, cx: float, h: float, w: float) -> None:
        """An ellipse, rectangle or star-shaped polygon of height ``h`` and width ``w`` centred at (cy, cx)."""
        s = self.size
        y0, y1 = max(int(cy - h / 2), 0), min(int(np.ceil(cy + h / 2)) + 1, s)
        x0, x1 = max(int(cx - w / 2), 0), min(int(np.ceil(cx + w / 2)) + 1, s)
        if y0 >= y1 or x0 >= x1:
            return
        dy = (self.yy[y0:y1, x0:x1] - cy) / max(h / 2, 0.5)
        dx = (self.xx[y0:y1, x0:x1] - cx) / max(w / 2, 0.5)
        if shape == "rect":
            mask = (np.abs(dy) <= 1) & (np.abs(dx) <= 1)
        elif shape == "ellipse":
            mask = dy * dy + dx * dx <= 1
        else:
            k = int(self.rng.integers(5, 10))
            radii = self.rng.uniform(0.55, 1.0, k)
            theta = (np.arctan2(dy, dx) + np.pi) / (2 * np.pi) * k
            i = np.floor(theta).astype(np.intp) % k
            f = theta - np.floor(theta)
            mask = np.hypot(dy, dx) <= radii[i] * (1 - f) + radii[(i + 1) % k] * f
        self.paint(concept, mask, (y0, y1, x0, x1))

    def render(self, illumination: bool = True) -> np.ndarray:
        s, rng = self.size, self.rng
        flat = self.inst.ravel()
        order = np.argsort(flat, kind="stable")
        bounds = np.cumsum(np.bincount(flat, minlength=len(self.concepts)))
        rgb = np.empty((s * s, 3), dtype=np.float32)
        start = 0
        for iid, stop in enumerate(bounds):
            if stop > start and iid > 0:
                pixels = order[start:stop]
                ys, xs = np.divmod(pixels, s)
                app = _appearance(self.graph.concepts[self.concepts[iid]], self.tree)
                rgb[pixels] = _paint_pixels(app, ys, xs, s, rng)
            start = stop
        rgb = rgb.reshape(s, s, 3)
        if illumination:  # global exposure, colour cast and a vertical light gradient per image
            gain = rng.uniform(0.75, 1.15) * (1 + rng.normal(0.0, 0.05, 3))
            slope = rng.uniform(-0.25, 0.25)
            rgb *= (gain[None, None, :] * (1 + slope * (self.yy[:, :, None] / s - 0.5))).astype(np.float32)
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _things(cv: _Canvas, ids: tuple[int, ...], floor_y: float, count: int) -> None:
    """Things standing on the ground: lower ones are nearer, hence bigger, and drawn later."""
    s, rng = cv.size, cv.rng
    feet = np.sort(rng.uniform(floor_y, 1.05 * s, count))
    for y in feet:
        concept = cv.pick(ids)
        app = _appearance(cv.graph.concepts[concept], cv.tree)
        near = 0.4 + 1.2 * (y - floor_y) / max(s - floor_y, 1.0)
        area = s * s * rng.uniform(0.004, 0.04) * near * near
        aspect = app.aspect * np.exp(rng.normal(0.0, 0.25))
        w = np.sqrt(area / aspect)
        h = w * aspect
        shape = app.shape if rng.uniform() < 0.8 else _SHAPES[int(rng.integers(len(_SHAPES)))]
        cv.shape(concept, shape, y - h / 2, rng.uniform(0.0, s), h, w)


def _road(cv: _Canvas, roles: dict[str, tuple[int, ...]], horizon: float) -> None:
    s, rng, yy, xx = cv.size, cv.rng, cv.yy, cv.xx
    vx, top = s * rng.uniform(0.35, 0.65), s * rng.uniform(0.01, 0.06)
    left_bottom, right_bottom = s * rng.uniform(-0.35, 0.2), s * rng.uniform(0.8, 1.35)
    t = np.clip((yy - horizon) / max(s - horizon, 1.0), 0.0, 1.0)  # 0 at the horizon, 1 at the bottom row
    left = vx - top + t * (left_bottom - vx + top)
    right = vx + top + t * (right_bottom - vx - top)
    width = right - left
    below = yy >= horizon
    road = below & (xx >= left) & (xx < right)
    if roles.get("pavement"):
        kerb = t * s * rng.uniform(0.08, 0.25)
        cv.paint(cv.pick(roles["pavement"]), below & (xx >= left - kerb) & (xx < left))
        cv.paint(cv.pick(roles["pavement"]), below & (xx >= right) & (xx < right + kerb))
    cv.paint(cv.pick(roles["road"]), road)
    u = (xx - left) / np.maximum(width, 1e-3)
    if roles.get("marking"):
        lanes = int(rng.integers(2, 5))
        half = np.maximum(rng.uniform(0.008, 0.02) * width, 0.6)  # a marking is at least about a pixel wide
        off = np.abs(u * lanes - np.rint(u * lanes)) / lanes * width
        depth = s / np.maximum(yy - horizon, 1.0)  # dashes shorten with distance
        dashed = (np.sin(depth * rng.uniform(0.8, 1.6) + rng.uniform(0, 2 * np.pi)) > -0.3) | (rng.uniform() < 0.3)
        lines = road & (off <= half) & (u > 0.5 / lanes) & (u < 1 - 0.5 / lanes) & dashed & (yy > horizon + 1)
        cv.paint(cv.pick(roles["marking"]), lines)
    crossing = [r for r in ("zebra", "crossing") if roles.get(r)]
    if crossing and rng.uniform() < 0.4:
        kind = crossing[int(rng.integers(len(crossing)))]
        y0 = horizon + (s - horizon) * rng.uniform(0.3, 0.75)
        band = road & (yy >= y0) & (yy < y0 + (s - horizon) * rng.uniform(0.08, 0.18))
        if kind == "zebra":
            band &= (u * rng.integers(6, 12)) % 1.0 < 0.5
        cv.paint(cv.pick(roles[kind]), band)
    if roles.get("spot") and rng.uniform() < 0.4:
        cy = horizon + (s - horizon) * rng.uniform(0.3, 0.9)
        row = int(min(cy, s - 1))
        cx = float(left[row, 0] + width[row, 0] * rng.uniform(0.2, 0.8))
        r = width[row, 0] * rng.uniform(0.03, 0.08)
        cv.shape(cv.pick(roles["spot"]), "ellipse", cy, cx, 0.5 * r, r)


def _outdoor(cv: _Canvas, roles: dict[str, tuple[int, ...]]) -> None:
    s, rng, yy, xx = cv.size, cv.rng, cv.yy, cv.xx
    stuff = tuple(sorted({i for r in ("sky", "backdrop", "wall", "ground", "barrier") for i in roles.get(r, ())}))
    sky = roles.get("sky") or stuff
    ground = roles.get("ground") or roles.get("pavement") or stuff
    backdrop = tuple(sorted({*roles.get("backdrop", ()), *roles.get("wall", ())})) or stuff
    horizon = s * rng.uniform(0.4, 0.62)
    cv.paint(cv.pick(sky), np.ones((s, s), dtype=bool))
    if len(sky) > 1 and rng.uniform() < 0.5:  # clouds: blobs of another sky concept
        for _ in range(int(rng.integers(1, 4))):
            cv.shape(cv.pick(sky), "polygon", rng.uniform(0, 0.3 * s), rng.uniform(0, s),
                     s * rng.uniform(0.05, 0.15), s * rng.uniform(0.15, 0.4))
    # Skyline: vertical segments of backdrop concepts with flat (buildings) or wavy (trees, hills) tops.
    cuts = np.sort(rng.uniform(0, s, int(rng.integers(1, 5))))
    for x0, x1 in zip(np.r_[0.0, cuts], np.r_[cuts, float(s)], strict=True):
        top = horizon - s * rng.uniform(0.08, 0.4)
        wave = rng.choice([0.0, s * rng.uniform(0.01, 0.06)])
        edge = top + wave * np.sin(2 * np.pi * rng.uniform(1.0, 6.0) * xx / s + rng.uniform(0, 2 * np.pi))
        cv.paint(cv.pick(backdrop), (yy >= edge) & (yy < horizon + 1) & (xx >= x0) & (xx < x1))
    if roles.get("barrier") and rng.uniform() < 0.4:
        x0, x1 = np.sort(rng.uniform(0, s, 2))
        cv.paint(cv.pick(roles["barrier"]), (yy >= horizon - s * rng.uniform(0.03, 0.1)) & (yy < horizon + 1)
                 & (xx >= x0) & (xx < x1))
    cv.paint(cv.pick(ground), yy >= horizon)
    if len(ground) > 1 and rng.uniform() < 0.5:  # a second ground cover with a wavy border
        border = s * rng.uniform(0.2, 0.8) + s * 0.05 * np.sin(2 * np.pi * rng.uniform(1.0, 4.0) * yy / s)
        side = (xx < border) if rng.uniform() < 0.5 else (xx >= border)
        cv.paint(cv.pick(ground), (yy >= horizon) & side)
    if roles.get("road") and rng.uniform() < 0.75:
        _road(cv, roles, horizon)
    if roles.get("outdoor_thing"):
        _things(cv, roles["outdoor_thing"], horizon - 0.05 * s, int(rng.integers(2, 8)))
    if roles.get("ego") and rng.uniform() < 0.5:  # the recording car's bonnet along the bottom edge
        hood = s * rng.uniform(0.06, 0.14)
        cv.paint(cv.pick(roles["ego"]), ((xx - s / 2) / (0.8 * s)) ** 2 + ((yy - s) / hood) ** 2 <= 1)


def _indoor(cv: _Canvas, roles: dict[str, tuple[int, ...]]) -> None:
    s, rng, yy, xx = cv.size, cv.rng, cv.yy, cv.xx
    corner = s * rng.uniform(0.2, 0.8)
    cv.paint(cv.pick(roles["wall"]), np.ones((s, s), dtype=bool))
    if rng.uniform() < 0.5:  # a second wall meeting the first in a corner
        cv.paint(cv.pick(roles["wall"]), xx >= corner)
    slant = rng.uniform(0.0, 0.3)
    ceiling = s * rng.uniform(0.08, 0.25) - slant * np.abs(xx - corner)
    floor = s * rng.uniform(0.6, 0.8) + slant * np.abs(xx - corner)
    cv.paint(cv.pick(roles["ceiling"]), yy < ceiling)
    cv.paint(cv.pick(roles["floor"]), yy >= floor)
    mid = s * 0.7
    if roles.get("window") and rng.uniform() < 0.5:
        cv.shape(cv.pick(roles["window"]), "rect", s * rng.uniform(0.3, 0.45), s * rng.uniform(0.15, 0.85),
                 s * rng.uniform(0.15, 0.3), s * rng.uniform(0.1, 0.3))
    if roles.get("rug") and rng.uniform() < 0.4:
        cv.shape(cv.pick(roles["rug"]), "ellipse", s * rng.uniform(0.8, 0.95), s * rng.uniform(0.2, 0.8),
                 s * rng.uniform(0.08, 0.2), s * rng.uniform(0.3, 0.6))
    if roles.get("indoor_thing"):
        _things(cv, roles["indoor_thing"], mid - 0.2 * s, int(rng.integers(2, 8)))


def _validate(dataset: str, size: int, tree: str | None = None) -> None:
    _check_dataset(dataset, tree)
    if size < MIN_SIZE:
        raise HiersegError(f"image size {size} is too small; use at least {MIN_SIZE} pixels")
    if size > MAX_SIZE:  # a scene holds a few arrays of size x size; 100000 would need hundreds of GB
        raise HiersegError(f"image size {size} is too large; use at most {MAX_SIZE} pixels")


def scene(dataset: str, index: int, size: int = 256, seed: int = 0,
          taxonomy: TreePath = None, classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Scene ``index`` of ``dataset`` for ``seed``: the RGB image (size x size x 3, uint8) and the tree concept map
    (size x size, int32 tree label values, i.e. indices into :attr:`NeuronGraph.concepts`); ``classes`` limits the
    leaves drawn per role (see :func:`synthesize`)."""
    tree = _key(taxonomy)
    _validate(dataset, size, tree)
    ctx = _context(dataset, tree, classes)
    rng = _rng("scene", dataset, seed, index)
    cv = _Canvas(size, rng, tree)
    if ctx.indoor and rng.uniform() < 0.4:
        _indoor(cv, ctx.roles)
    else:
        _outdoor(cv, ctx.roles)
    concepts = np.asarray(cv.concepts, dtype=np.int32)[cv.inst]
    return cv.render(), concepts


def label_map(dataset: str, concepts: np.ndarray, taxonomy: TreePath = None) -> np.ndarray:
    """The dataset's label map (uint8) for a tree concept map; undrawable concepts get the ignore value. A layout
    with void outlines (VOC) gets them: a band of the ignore value where an object meets anything else."""
    ctx = _context(dataset, _key(taxonomy))
    ids = ctx.lut[concepts]
    if ctx.layout.dataset in VOID_BORDER:
        width = max(1, round(VOID_BORDER[ctx.layout.dataset] * max(ids.shape)))
        ids = _void_outlines(ids, ctx.background, dataset_spec(dataset, _taxonomy(ctx.tree)[0].artifact).ignore, width)
    return ids


def _void_outlines(ids: np.ndarray, background: int | None, ignore: int, width: int) -> np.ndarray:
    """``ids`` with every pixel within ``width`` of an edge between two values, one of them an object (not the
    background), set to ``ignore``: VOC's void boundary around each object."""
    edge = np.zeros(ids.shape, dtype=bool)
    for axis in (0, 1):
        a, b = np.moveaxis(ids, axis, 0)[:-1], np.moveaxis(ids, axis, 0)[1:]
        hit = (a != b) & ((a != background) | (b != background))
        view = np.moveaxis(edge, axis, 0)
        view[:-1] |= hit
        view[1:] |= hit
    for _ in range(width - 1):  # grow the band by one pixel each way per step
        grown = edge.copy()
        grown[1:] |= edge[:-1]
        grown[:-1] |= edge[1:]
        grown[:, 1:] |= edge[:, :-1]
        grown[:, :-1] |= edge[:, 1:]
        edge = grown
    out = ids.copy()
    out[edge] = ignore
    return out


WILDDASH_COUNTRIES = ("au", "cn", "de", "gb", "in", "jp", "ru", "us")  # WildDash v1 names frames {country}{seq}_{frame}
SCANNET_FRAMES_PER_SCENE = 3


def _stems(dataset: str, split: str, n: int, offset: int, seed: int, lay: Layout | None = None) -> list[str]:
    if lay is not None and lay.dataset in ("pascal_voc", "pascal_context"):  # {year}_{number}: 2007_000032
        years = 6 if lay.dataset == "pascal_voc" else 4  # VOC2012 holds images of 2007..2012, VOC2010 of 2007..2010
        return [f"{2007 + (offset + k) % years}_{offset + k + 1:06d}" for k in range(n)]  # unique across the splits
    if lay is not None and lay.dataset == "camvid":  # {sequence}_{frame}: 0016E5_07959
        return [f"0016E5_{offset + k + 1:05d}" for k in range(n)]
    if lay is not None and lay.dataset == "kitti":  # {image}_10: the frame the 2015 benchmarks label
        return [f"{offset + k:06d}_10" for k in range(n)]
    if lay is not None and lay.dataset == "wilddash":
        return [f"{WILDDASH_COUNTRIES[k % len(WILDDASH_COUNTRIES)]}{k:04d}_100000" for k in range(n)]
    if lay is not None and lay.dataset == "scannet":  # scene{space}_{scan}/{frame}: frames 100 apart, scenes per split
        first = -(-offset // SCANNET_FRAMES_PER_SCENE)  # the scene after the previous split's last: none in two
        return [f"scene{first + k // SCANNET_FRAMES_PER_SCENE:04d}_00/{100 * (k % SCANNET_FRAMES_PER_SCENE):06d}"
                for k in range(n)]
    if lay is not None and lay.dataset == FOLDER:
        return [f"{dataset}_{offset + k + 1:06d}" for k in range(n)]
    if dataset == "ade20k":
        prefix = "ADE_train" if split == "training" else "ADE_val"
        return [f"{prefix}_{k + 1:08d}" for k in range(n)]
    if dataset == "coco_stuff":  # image ids are unique across the splits
        return [f"{offset + k + 1:012d}" for k in range(n)]
    if dataset == "cityscapes":
        cities = CITIES[split]
        return [f"{cities[k % len(cities)]}_{k // len(cities):06d}_000019" for k in range(n)]
    rng = _rng("mapillary-keys", seed, split)
    return ["".join(rng.choice(_KEY_ALPHABET, 22)) for _ in range(n)]


def samples(dataset: str, n: int, seed: int = 0, taxonomy: TreePath = None) -> tuple[Sample, ...]:
    """What :func:`synthesize` writes: ``n`` samples per split (not ``test`` unless the release labels it, as
    CamVid's does, nor VOC's ``trainval``, the union of two others), scene indices running across splits."""
    lay = _check_dataset(dataset, _key(taxonomy))
    if n < 1:
        raise HiersegError(f"need at least one sample per split, got n={n}")
    out: list[Sample] = []
    for split in lay.splits:
        if (split == "test" and not lay.test_labels) or split == "trainval":  # trainval is train + val
            continue
        offset = len(out)
        stems = _stems(dataset, split, n, offset, seed, None if dataset in DATASETS else lay)
        out.extend(Sample(split, stem, offset + k) for k, stem in enumerate(stems))
    return tuple(out)


@cache
def _palette(dataset: str, tree: str | None = None) -> list[int]:
    artifact = _taxonomy(tree)[0].artifact
    spec = dataset_spec(dataset, artifact)
    colors = [(0, 0, 0)] * 256
    for label in spec.labels:
        colors[label.id] = label.color or (0, 0, 0)
    ignore_color = artifact["datasets"][dataset].get("ignore_color")  # an added table's ignore row (VOC's void)
    if ignore_color and spec.ignore < 256:
        colors[spec.ignore] = tuple(ignore_color)
    return [c for rgb in colors for c in rgb]


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def _check_existing(dataset: str, lay: Layout, root: Path, size: int) -> None:
    """Refuse to add images of another size to a dataset already there: a split must not mix sizes unnoticed."""
    for split in lay.splits:
        folder = lay.image_dir(root, split)
        found = next((p for p in sorted(folder.rglob(f"*{lay.image_suffix}")) if p.is_file()), None) \
            if folder.is_dir() else None
        if found is None:
            continue
        try:
            with Image.open(found) as image:
                width, height = image.size
        except OSError:
            continue  # not ours to judge; the writes below replace or add files, as they always did
        if (width, height) != (size, size):
            raise HiersegError(f"{root}: already holds {dataset} images of {width}x{height} ({found}); "
                               f"synthesising {size}x{size} into it would mix sizes; choose another --out or "
                               f"--size {width}")


def synthesize(dataset: str, out: str | Path, n: int = 8, size: int = 256, seed: int = 0,
               taxonomy: TreePath = None, classes: int | None = None, overwrite: bool = False) -> int:
    """Write ``n`` samples per split (all splits of the layout except ``test``) of ``dataset`` under ``out``, in its
    official layout and id convention; return the number of samples written. A dataset added to the tree
    (``taxonomy``: the extended tree) is written in the layout its spec names: PASCAL VOC's (with its split lists),
    another official one (MSeg's test datasets: CamVid, KITTI, WildDash, ScanNet, PASCAL-Context) or a folder of
    ``images/<split>`` and ``masks/<split>``.

    ``classes``: draw at most this many leaf concepts per scene role (sky, backdrop, ground, road, things...), the
    same ones for every dataset that labels them: fewer classes, each seen more often, for short demo runs.

    ``out`` must be new or empty (or hold the dataset of the very same settings); ``overwrite`` replaces a
    synthetic dataset there whole (:mod:`hierseg.data.synth_record`).
    """
    tree = _key(taxonomy)
    _validate(dataset, size, tree)
    if classes is not None and classes < 1:
        raise HiersegError(f"classes must be at least 1, not {classes}")
    plan = samples(dataset, n, seed, taxonomy)
    lay, root = _check_dataset(dataset, tree), Path(out)
    year = {"pascal_voc": "VOC2012", "pascal_context": "VOC2010"}.get(lay.dataset)
    if year is not None and not (root.name == year or (root / "VOCdevkit").exists()):
        root = root / "VOCdevkit" / year
    _check_existing(dataset, lay, root, size)
    settings = {"dataset": dataset, "n": n, "size": size, "seed": seed, "classes": classes, "taxonomy": tree}
    synth_record.claim(out, settings, overwrite)
    written: list[Path] = []
    image_format = "PNG" if lay.image_suffix == ".png" else "JPEG"
    for sample in plan:
        image, concepts = scene(dataset, sample.index, size, seed, taxonomy, classes)
        ids = np.ascontiguousarray(label_map(dataset, concepts, taxonomy))
        if lay.dataset in ("mapillary", "pascal_voc"):  # palette PNGs whose indices are the label ids
            label = Image.frombytes("P", (size, size), ids.tobytes())
            label.putpalette(_palette(dataset, tree))
        else:
            label = Image.fromarray(ids)
        written.append(atomic_write_bytes(lay.image_of(root, sample.split, sample.stem),
                                          _encode(Image.fromarray(image), image_format), root=out))
        written.append(atomic_write_bytes(lay.label_path(root, sample.split, sample.stem), _encode(label, "PNG"),
                                          root=out))
    if lay.list_file is not None:  # the split lists, and trainval as their union
        by_split: dict[str, list[str]] = {}
        for sample in plan:  # a list names samples, or for ScanNet the scenes that hold them
            entry = sample.stem if lay.list_members is None else sample.stem.rpartition("/")[0]
            if entry not in by_split.setdefault(sample.split, []):
                by_split[sample.split].append(entry)
        if "trainval" in lay.splits:
            by_split["trainval"] = sorted(by_split.get("train", []) + by_split.get("val", []))
        for split, stems in by_split.items():
            written.append(atomic_write_bytes(lay.list_file(root, split), "".join(f"{stem}\n" for stem in stems).encode(),
                                              root=out))
    synth_record.write_record(out, settings, written)
    return len(plan)

"""A hand-made tree and two hand-made datasets whose answers the tests work out on paper.

    root ─┬─ things ─┬─ animal ─┬─ dog          neurons, depth order:
          │          │          └─ cat            0 root, 1 things, 2 stuff, 3 animal, 4 vehicle, 5 road
          │          └─ vehicle ┬─ car
          │                     └─ bus
          └─ stuff ──┬─ road ───┬─ lane
                     │          └─ crosswalk
                     └─ sky

coarse (ignore 255): 0 animal, 1 car, 2 bus, 3 road, 4 sky, 5 void
fine   (ignore 0):   1 dog, 2 cat, 3 car, 4 lane, 5 crosswalk, 6 sky
nested (ignore 255): 0 vehicle, 1 car        (vehicle's extent is vehicle and bus, not car)
"""

from __future__ import annotations

from hierseg.taxonomy.tree import Taxonomy

EDGES = [("root", None), ("things", "root"), ("animal", "things"), ("dog", "animal"), ("cat", "animal"),
         ("vehicle", "things"), ("car", "vehicle"), ("bus", "vehicle"), ("stuff", "root"), ("road", "stuff"),
         ("lane", "road"), ("crosswalk", "road"), ("sky", "stuff")]
LABELS = {
    "coarse": {"animal": 0, "car": 1, "bus": 2, "road": 3, "sky": 4},
    "fine": {"dog": 1, "cat": 2, "car": 3, "lane": 4, "crosswalk": 5, "sky": 6},
    "nested": {"vehicle": 0, "car": 1},
}
DATASETS = {"coarse": {"ignore": 255, "void": {"5": "void"}}, "fine": {"ignore": 0, "void": {}},
            "nested": {"ignore": 255, "void": {}}}
NEURONS = ["root", "things", "stuff", "animal", "vehicle", "road"]
I = 255  # noqa: E741  the targets' ignore index


def toy_taxonomy() -> Taxonomy:
    depth: dict[str, int] = {}
    concepts = []
    for cid, parent in EDGES:
        depth[cid] = 0 if parent is None else depth[parent] + 1
        labels = {d: [ids[cid]] for d, ids in LABELS.items() if cid in ids}
        concepts.append({"id": cid, "name": cid, "parent": parent, "depth": depth[cid], "labels": labels})
    return Taxonomy({"root": "root", "concepts": concepts, "datasets": DATASETS})

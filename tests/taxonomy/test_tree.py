from __future__ import annotations

import csv
import subprocess
import sys

import networkx as nx

from hierseg.taxonomy import Taxonomy
from hierseg.taxonomy.authoring.stats import neurons, tree_stats
from hierseg.taxonomy.tree import shipped_label_map


def test_loading_needs_neither_wordnet_nor_torch():
    code = ("import sys; from hierseg.taxonomy import Taxonomy; t = Taxonomy.load(); "
            "assert len(t) == 359; assert 'nltk' not in sys.modules and 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_paths_and_graph(artifact):
    tax = Taxonomy(artifact)
    assert nx.is_arborescence(tax.graph)
    assert tax.path("lane_marking") == ("entity", "stuff", "ground_stuff", "road", "lane_marking")
    assert tax.path("crosswalk_zebra") == ("entity", "stuff", "ground_stuff", "road", "crosswalk", "crosswalk_zebra")
    assert set(tax.children("rider")) == {"bicyclist", "motorcyclist", "rider_other"}
    assert all(tax[c].depth == len(tax.ancestors(c)) for c in tax.graph)


def artifact_anchor(artifact, cid):
    placement = next(c["placement"] for c in artifact["concepts"] if c["id"] == cid)
    return placement.split(":", 1)[1]


def test_stats_agree_with_the_tree(artifact):
    tax = Taxonomy(artifact)
    stats = tree_stats(tax)
    assert stats["concepts"] == 359 and stats["max_depth"] == 5
    assert sum(stats["concepts_per_depth"].values()) == 359
    labelled = {c for d in tax.datasets for c in tax.dataset_concepts(d).values()}
    selfish = {c.id for c in tax if c.id in labelled and not tax.is_leaf(c.id)}
    assert stats["self_outputs"] == len(selfish)
    assert stats["neurons"] == len(neurons(tax)) == sum(1 for c in tax if len(tax.children(c.id)) >= 2
                                                        or c.id in selfish)
    # COCO-Stuff's 216 hierarchy nodes, less the 17 the merge removes (the 4 of its indoor/outdoor level
    # included), plus vessel (its boat label's concept)
    assert stats["by_source"]["coco_stuff"] == 216 - 17 + 1
    placements = stats["placements"]
    # every concept but the root is checked against WordNet, COCO-Stuff's own included
    assert placements["root"] == 1 and "coco" not in placements
    assert sum(placements[k] for k in ("root", "checked", "exception", "no_synset", "unchecked")) == 359
    for cid in placements["weak_concepts"]:
        anchor = artifact_anchor(artifact, cid)
        assert tax[anchor].synset in ("object.n.01", "entity.n.01"), cid
    assert placements["weak"] == len(placements["weak_concepts"])
    assert stats["datasets"]["cityscapes"]["labels"] == 28  # polegroup is a pole now
    # one pair per label a spec entry's `with` lists
    pairs = {tuple(o["labels"]) for o in artifact["overlaps"]}
    assert stats["overlaps"] == len(pairs) and {("cityscapes:22", "mapillary:2"), ("coco_stuff:46", "ade20k:148")} <= pairs
    # mean depth of the evaluated labels, from the shipped label maps' paths
    for dataset, info in stats["datasets"].items():
        rows = [r for r in csv.DictReader(shipped_label_map(dataset).splitlines()) if r["evaluated"] == "1"]
        depths = [r["concept_path"].count("/") for r in rows if r["concept"]]
        assert info["mean_depth"] == round(sum(depths) / len(depths), 3), dataset
        assert info["mean_decisions"] <= info["mean_depth"]
    depth_order = [tax[n].depth for n in neurons(tax)]
    assert depth_order == sorted(depth_order)


def test_taxonomy_and_cli_never_import_torch():
    import subprocess
    import sys

    code = ("import sys, hierseg.core.errors, hierseg.core.io, hierseg.core.yamltext, hierseg.taxonomy, "
            "hierseg.taxonomy.annotations, hierseg.taxonomy.authoring.labelstats, hierseg.taxonomy.authoring.export, "
            "hierseg.taxonomy.authoring.draw, "
            "hierseg.cli.main; print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"

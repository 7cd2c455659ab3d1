"""``hierseg labels`` and ``hierseg taxonomy export | draw`` as a user runs them."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET

import networkx as nx
import numpy as np
from PIL import Image

from hierseg.taxonomy import NeuronGraph, Taxonomy, load_spec
from tests.conftest import run_cli


def test_labels_export_translation_csv_json_and_npy(tmp_path):
    result = run_cli("labels", "export", "--dataset", "cityscapes", "--to", "mapillary")
    assert result.returncode == 0, result.stderr
    rows = {int(r["source_id"]): r for r in csv.DictReader(io.StringIO(result.stdout))}
    # Cityscapes' road: Mapillary splits it (road surface, markings, lanes) and labels the manholes that lie in it and
    # in the sidewalk apart; the listed overlap names them
    assert rows[7]["source_name"] == "road" and rows[7]["relation"] == "overlap"
    assert rows[7]["target_id"] == "65" and rows[7]["overlaps"] == "41 object--manhole"
    assert rows[17]["relation"] == "finer-ambiguous" and rows[17]["overlaps"] == ""  # pole: three Mapillary poles
    assert set(rows) == set(load_spec("cityscapes").ids) | {0}

    result = run_cli("labels", "export", "--dataset", "mapillary", "--to", "cityscapes", "--format", "json")
    doc = json.loads(result.stdout)
    assert doc["target_ignore"] == 0 and sum(doc["relations"].values()) == len(doc["entries"]) == 66

    lut_path = tmp_path / "m2c.npy"
    result = run_cli("labels", "export", "--dataset", "mapillary", "--to", "cityscapes", "--format", "npy",
                     "--out", str(lut_path))
    assert result.returncode == 0, result.stderr
    lut = np.load(lut_path)
    assert lut.shape == (256,) and lut.dtype == np.uint8
    by_source = {e["source_id"]: e["target_id"] for e in doc["entries"]}
    assert all(lut[s] == t for s, t in by_source.items())
    assert lut[200] == 0  # undefined values fall to the target's ignore value


def test_labels_export_label_map_and_errors(tmp_path):
    result = run_cli("labels", "export", "--dataset", "ade20k")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 151 and rows[0]["ignore"] == "1"
    animal = next(r for r in rows if r["name"] == "animal")
    assert animal["concept"] == "animal_things" and animal["concept_path"].endswith("/animal_things")
    result = run_cli("labels", "export", "--dataset", "kitti")
    assert result.returncode == 2 and result.stderr.startswith("error: unknown dataset 'kitti'")
    assert "Traceback" not in result.stderr
    result = run_cli("labels", "export", "--dataset", "ade20k", "--format", "npy")
    assert result.returncode == 2 and "--out" in result.stderr


def test_labels_remap_and_stats_commands(tmp_path):
    src = tmp_path / "gtFine"
    src.mkdir()
    m = {label.name: label.id for label in load_spec("mapillary").labels}
    label = np.array([[m["marking--general"], m["object--vehicle--car"], m["construction--barrier--curb"]],
                      [m["nature--sky"], 65, m["construction--flat--sidewalk"]]], np.uint8)
    Image.fromarray(label).save(src / "a.png")
    result = run_cli("labels", "remap", "--from", "mapillary", "--to", "cityscapes", str(src), str(tmp_path / "out"),
                     "--glob", "*.png")
    assert result.returncode == 0, result.stderr
    c = {lb.name: lb.id for lb in load_spec("cityscapes").labels}
    out = np.asarray(Image.open(tmp_path / "out" / "a.png"))
    # a curb is Cityscapes' sidewalk or, "possibly adjacent", its terrain: only partly comparable, so ignore
    assert out.tolist() == [[c["road"], c["car"], 0], [c["sky"], 0, c["sidewalk"]]]
    assert "1 written" in result.stdout
    assert "overlap (now 0, ignore): 2 construction--barrier--curb; 41 object--manhole" in result.stdout

    result = run_cli("labels", "stats", "--dataset", "mapillary", str(src), "--glob", "*.png", "--format", "json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["images"] == 1 and stats["pixels"] == 6
    result = run_cli("labels", "stats", "--dataset", "mapillary", str(src), "--glob", "*.png", "--format", "csv")
    assert result.stdout.splitlines()[0].startswith("kind,key,name,pixels")

    Image.fromarray(np.array([[99]], np.uint8)).save(src / "b.png")
    result = run_cli("labels", "remap", "--from", "mapillary", "--to", "cityscapes", str(src), str(tmp_path / "o2"),
                     "--glob", "*.png")
    assert result.returncode == 2
    assert result.stderr.strip().endswith("b.png: value 99 is not a mapillary label id")
    assert "Traceback" not in result.stderr
    result = run_cli("labels", "stats", "--dataset", "mapillary", str(tmp_path / "missing"))
    assert result.returncode == 2 and "no such annotation folder" in result.stderr


def test_taxonomy_export_graphml_dot_json(tmp_path):
    path = tmp_path / "tree.graphml"
    assert run_cli("taxonomy", "export", "--format", "graphml", "--out", str(path)).returncode == 0
    tree = nx.read_graphml(path)
    assert tree.number_of_nodes() == 359 and tree.number_of_edges() == 358
    assert nx.is_arborescence(tree)
    assert tree.nodes["animal_things"]["ade20k"] == "127"
    neurons = json.loads(run_cli("taxonomy", "export", "--graph", "neurons").stdout)
    graph = NeuronGraph(Taxonomy.load())
    assert len(neurons["nodes"]) == len(graph) and len(neurons["edges"]) == len(graph) - 1
    road = next(n for n in neurons["nodes"] if n["id"] == "road")
    assert road["active_mapillary"] and not road["active_cityscapes"]
    assert road["self_output"]  # Cityscapes labels road, Mapillary splits it
    dot = run_cli("taxonomy", "export", "--format", "dot").stdout
    assert dot.startswith("digraph tree {") and dot.count(" -> ") == 358


def test_taxonomy_draw_png_and_svg(tmp_path):
    png = tmp_path / "cityscapes.png"
    result = run_cli("taxonomy", "draw", "--dataset", "cityscapes", "--out", str(png))
    assert result.returncode == 0, result.stderr
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        pixels = np.asarray(image.convert("L"))
        assert image.format == "PNG" and image.width > 300 and image.height > 300
    assert (pixels < 128).mean() > 0.005  # there is text and lines on the white page
    svg = tmp_path / "tree.svg"
    assert run_cli("taxonomy", "draw", "--out", str(svg)).returncode == 0
    root = ET.parse(svg).getroot()
    texts = [el for el in root.iter("{http://www.w3.org/2000/svg}text")]
    assert len(texts) >= 359
    result = run_cli("taxonomy", "draw", "--out", str(tmp_path / "tree.pdf"))
    assert result.returncode == 2 and "use .svg or .png" in result.stderr

"""`taxonomy compare` against MSeg: hand-made TSVs with answers worked out from the tree, the real MSeg taxonomy,
and every kind of broken input."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from hierseg.taxonomy import Taxonomy
from hierseg.taxonomy.authoring.compare import COLUMNS, CompareError, compare, load_notes, read_mseg
from tests.conftest import run_cli

MSEG = Path(__file__).resolve().parents[1] / "fixtures" / "mseg" / "MSeg_master.tsv"
HEADER = ["Parent Category", *COLUMNS, "universal", "WordNet 3.1 Synset"]


def tsv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    path.write_text("\r\n".join("\t".join(row) for row in [header, *rows]) + "\r\n", encoding="utf-8")
    return path


def row(universal: str, coco: str = "", ade: str = "", city: str = "", mapillary: str = "") -> list[str]:
    return ["parent", coco, ade, city, mapillary, universal, ""]


@pytest.fixture(scope="module")
def tax() -> Taxonomy:
    return Taxonomy.load()


def test_relations_worked_out_from_the_tree(tmp_path, tax):
    path = tsv(tmp_path / "m.tsv", [
        row("car", coco="car", ade="car", city="car", mapillary="Car"),  # one concept
        row("terrain", coco="{grass, sand}", city="terrain"),  # Cityscapes' terrain covers both: nested
        row("river_lake", coco="river", ade="lake"),  # COCO labels lakes as water-other: kept apart by COCO
        row("box", coco="cardboard", ade="box"),  # a material and an object: an overlap the merge spec lists
        row("field", coco="playingfield", ade="field"),  # a pitch and open land: no dataset separates them
        row("wall", coco="wall-other-merged", ade="wall"),  # a COCO panoptic merge: skipped, one label left
        row("pole", ade="pole", city="{pole, polegroup}"),  # polegroup is a pole: below Cityscapes' pole
        row("ground", ade="earth", city="ground"),  # Cityscapes' ground is void in the tree: skipped
    ])
    result = compare(tax, read_mseg(path), {"field": "a pitch is no open field"})
    kinds = {c["universal"]: c["relation"] for c in result.classes}
    assert kinds == {"car": "one concept", "terrain": "nested", "river_lake": "unrelated", "box": "unrelated",
                     "field": "unrelated", "pole": "nested", "ground": "one concept"}  # ground: earth alone is left
    assert len(result.pairs) == 6 + 2 + 1 + 1 + 1 + 2
    unrelated = {(p.a.name, p.b.name): p for p in result.unrelated}
    assert set(unrelated) == {("river", "lake"), ("cardboard", "box"), ("playingfield", "field")}
    # ADE20K labels COCO's river as its own river, so it keeps river and lake apart (COCO does too: lake is water-other)
    assert unrelated[("river", "lake")].why == "kept apart by ade20k: it labels 'river' as 'river', not 'lake'"
    assert unrelated[("cardboard", "box")].why.startswith("overlap: COCO's cardboard is a raw material")
    assert unrelated[("cardboard", "box")].a_to_b == unrelated[("cardboard", "box")].b_to_a == "overlap"
    assert unrelated[("playingfield", "field")].why == "notes: a pitch is no open field"
    assert unrelated[("river", "lake")].a_to_b == "equal" and unrelated[("river", "lake")].b_to_a == "coarser"
    assert any("wall-other-merged" in s for s in result.skipped)
    assert any("cityscapes:ground (void in the tree)" in s for s in result.skipped)
    summary = result.summary()
    assert summary["unrelated_pairs"] == 3 and summary["unrelated_unexplained"] == 0
    assert summary["unrelated_overlaps"] == 1 and summary["unrelated_explained_in_notes"] == 1


def test_unexplained_pairs_are_listed_as_such(tmp_path, tax):
    result = compare(tax, read_mseg(tsv(tmp_path / "m.tsv", [row("field", coco="playingfield", ade="field")])), {})
    assert [p.why for p in result.unrelated] == [""]
    assert result.summary()["unrelated_unexplained"] == 1


def test_real_mseg_taxonomy_every_unrelated_pair_is_explained(tax):
    result = compare(tax, read_mseg(MSEG), load_notes())
    summary = result.summary()
    # MSeg's count less the pairs of labels void in our tree: COCO's panoptic merges only, now that polegroup is a pole
    assert summary["cross_dataset_pairs"] == 293
    assert summary["unrelated_unexplained"] == 0, [(p.a, p.b) for p in result.unrelated if not p.why]
    relation = {c["universal"]: c["relation"] for c in result.classes}
    # the errors MSeg showed on the old tree, now nested as the datasets define them
    for universal in ("bag", "table", "terrain", "person", "boat_ship", "mountain_hill", "potted_plant"):
        assert relation[universal] == "nested", universal
    pairs = {(p.a.name, p.b.name): p.relation for p in result.pairs}
    assert pairs[("sidewalk", "Pedestrian Area")] == "nested"  # Cityscapes' sidewalk includes pedestrian zones
    assert pairs[("stop sign", "Traffic Sign (Front)")] == "nested"
    assert pairs[("grass", "terrain")] == "nested"


def test_cli_formats(tmp_path):
    path = tsv(tmp_path / "m.tsv", [row("river_lake", coco="river", ade="lake"),
                                    row("car", coco="car", city="car")])
    table = run_cli("taxonomy", "compare", "--mseg", str(path))
    assert table.returncode == 0, table.stderr
    assert "river_lake" in table.stdout and "kept apart by ade20k" in table.stdout
    rows = list(csv.DictReader(io.StringIO(run_cli("taxonomy", "compare", "--mseg", str(path), "--format", "csv").stdout)))
    assert [(r["universal"], r["relation"], r["concept_a"], r["concept_b"]) for r in rows] == [
        ("river_lake", "unrelated", "river", "lake"), ("car", "same", "car", "car")]
    data = json.loads(run_cli("taxonomy", "compare", "--mseg", str(path), "--format", "json").stdout)
    assert data["summary"]["unrelated_pairs"] == 1 and len(data["pairs"]) == 2


def test_cli_bad_input_one_error_line_per_problem(tmp_path):
    path = tsv(tmp_path / "bad.tsv", [
        row("car", coco="car", ade="carr"),  # line 2: unknown ADE20K name
        ["only", "three", "fields"],  # line 3: broken row
        row("bag", coco="{handbag", ade="bag"),  # line 4: unbalanced braces
        row("dog", coco="dog", mapillary="Ground Animal"),  # fine
        row("person", city="persons"),  # line 6: unknown Cityscapes name
    ])
    result = run_cli("taxonomy", "compare", "--mseg", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith(f"error: {path}:") for line in lines)
    assert f"{path}:2: column ade20k-150: unknown ade20k label 'carr'" in lines[0]
    assert f"{path}:3: 3 tab-separated fields, the header has 7" in lines[1]
    assert f"{path}:4: column coco-panoptic-133: unbalanced braces" in lines[2]
    assert f"{path}:6: column cityscapes-34: unknown cityscapes label 'persons'" in lines[3]


def test_cli_missing_columns_and_unreadable_file(tmp_path):
    path = tsv(tmp_path / "cols.tsv", [["a", "b"]], header=["universal", "ade20k-150"])
    result = run_cli("taxonomy", "compare", "--mseg", str(path))
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: {path}:1: missing column(s) coco-panoptic-133, cityscapes-34, "
                                     "mapillary-public65")
    missing = run_cli("taxonomy", "compare", "--mseg", str(tmp_path / "nope.tsv"))
    assert missing.returncode == 2 and missing.stderr.startswith("error: ")
    assert "nope.tsv: no such MSeg taxonomy" in missing.stderr
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(CompareError, match="empty file"):
        read_mseg(empty)


def test_duplicate_universal_class_is_named(tmp_path):
    path = tsv(tmp_path / "dup.tsv", [row("car", coco="car"), row("car", ade="car")])
    with pytest.raises(CompareError) as info:
        read_mseg(path)
    assert info.value.problems == [f"{path}:3: universal class 'car' already on line 2"]

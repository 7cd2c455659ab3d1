from __future__ import annotations

import pytest

from hierseg.core.errors import HiersegError
from hierseg.taxonomy.specs import DatasetSpec, load_spec


def test_official_label_counts():
    coco = load_spec("coco_stuff")
    assert len(coco.labels) == 182 and sum(lab.evaluated for lab in coco.labels) == 171 and coco.ignore == 255
    ade = load_spec("ade20k")
    assert ade.ids == tuple(range(1, 151)) and ade.ignore == 0
    assert ade.label(90).synonyms[:2] == ("television", "television receiver")
    cityscapes = load_spec("cityscapes")
    assert cityscapes.ids == tuple(range(1, 34))
    assert sorted(int(lab.extra["train_id"]) for lab in cityscapes.labels if lab.evaluated) == list(range(19))
    mapillary = load_spec("mapillary")
    assert mapillary.ids == tuple(range(65)) and mapillary.ignore == 65
    assert all(lab.evaluated for lab in mapillary.labels) and mapillary.label(24).color == (255, 255, 255)


def test_unknown_dataset():
    with pytest.raises(HiersegError, match="unknown dataset 'pascal'"):
        load_spec("pascal")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("1,road,,1;2,1", "color '1;2' is not r;g;b"),
        ("x,road,,,1", "id 'x' is not an integer"),
        ("1,road,,,yes", "evaluated must be 0 or 1"),
        ("255,road,,,1", "label id 255 equals the ignore value"),
        ("-3,road,,,1", "id -3 is outside 0..65535"),
        ("70000,road,,,1", "id 70000 is outside 0..65535"),
        ("5,road", "too few fields (no synonyms, color, evaluated)"),
    ],
)
def test_bad_table_names_file_and_line(tmp_path, row, message):
    path = tmp_path / "mine.csv"
    path.write_text("id,name,synonyms,color,evaluated\n0,sky,,,1\n" + row + "\n")
    with pytest.raises(HiersegError) as info:
        DatasetSpec.from_csv(path, "mine", ignore=255)
    assert str(info.value).startswith(f"{path}:3: ") and message in str(info.value)

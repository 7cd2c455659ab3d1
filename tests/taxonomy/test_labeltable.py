"""A user's label table is read strictly: every problem is one line naming the file and line."""

from __future__ import annotations

import pytest

from hierseg.core.errors import HiersegError, ProblemList
from hierseg.taxonomy.authoring.labeltable import read_label_table


def test_optional_columns_are_read_and_others_kept(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("\ufeffid,name,synonyms,description,synset,color,evaluated,source\n"
                    "0,background,,,,,0,x\n"
                    '3,Potted Plant,pot plant; houseplant,"a plant, in a pot",pot_plant.n.01,0;64;0,,y\n',
                    encoding="utf-8")
    table = read_label_table(path)
    plant = table.labels[1]
    assert plant.name == "Potted Plant" and plant.synonyms == ("pot plant", "houseplant")
    assert plant.extra == {"description": "a plant, in a pot", "synset": "pot_plant.n.01", "source": "y"}
    assert plant.color == (0, 64, 0) and plant.evaluated
    assert not table.labels[0].evaluated and table.evaluated_given == {0}
    assert table.lines == {0: 2, 3: 3} and table.where(3) == f"{path}:3"


def test_every_problem_is_one_line_naming_file_and_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("id,name,color\n"
                    "1,road,\n"
                    "1,sidewalk,\n"      # duplicate id
                    "2,Road,\n"          # duplicate name (case and separators do not make a new name)
                    "3,  ,\n"            # empty name
                    "4,-,\n"             # a name of separators only is empty too
                    "x,car,\n"           # id not an integer
                    "5,bus,1;2\n"        # bad colour
                    "6,truck\n"          # too few fields
                    "70000,tram,\n")     # id beyond 16-bit label maps
    with pytest.raises(ProblemList) as info:
        read_label_table(path)
    problems = info.value.problems
    assert problems == [
        f"{path}:3: duplicate id 1 (first on line 2)",
        f"{path}:4: duplicate name 'Road' (first on line 2)",
        f"{path}:5: empty name (id 3)",
        f"{path}:6: empty name '-'",
        f"{path}:7: id 'x' is not an integer",
        f"{path}:8: color '1;2' is not r;g;b with values 0..255",
        f"{path}:9: 2 fields, the header has 3",
        f"{path}:10: id 70000 is outside 0..65534",
    ]


def test_bytes_that_are_not_utf8_name_their_lines(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("id,name\n1,caf\u00e9\n2,road\n3,cr\u00e8me\n".encode("latin-1"))
    with pytest.raises(ProblemList) as info:
        read_label_table(path)
    assert info.value.problems == [f"{path}:2: not UTF-8 (byte 0xe9 at column 6); save the table as UTF-8",
                                   f"{path}:4: not UTF-8 (byte 0xe8 at column 5); save the table as UTF-8"]


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty label table"),
    ("id,label\n1,road\n", ":1: missing column(s) name"),
    ("id,name\n", "no labels below the header"),
])
def test_unusable_tables(tmp_path, text, message):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(HiersegError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_label_table(path)

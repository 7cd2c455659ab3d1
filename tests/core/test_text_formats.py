"""The one YAML loader, the JSON and CSV readers and the one-line error text: what a few hostile bytes can do to
them. An alias bomb expands nothing, a repeated key is refused with both lines, ``!!python/`` tags and deep nesting
are refused, a 5000-digit number, a JSON document nested 100000 deep and a 200 KiB CSV field are one line each, and
a newline in a name cannot forge a second ``error:`` line."""

from __future__ import annotations

import csv
import io
import time

import pytest
import yaml

from hierseg.core.csvtext import csv_rows
from hierseg.core.errors import HiersegError, one_line
from hierseg.core.jsontext import parse_json
from hierseg.core.yamltext import compose_yaml, load_yaml, parse_overrides, read_yaml, yaml_line, yaml_problem, yaml_value

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))  # 9**9 leaves


def refusal(text: str) -> tuple[int | None, str]:
    with pytest.raises(yaml.YAMLError) as info:
        load_yaml(text)
    return yaml_line(info.value), yaml_problem(info.value)


def test_plain_yaml_reads_as_safe_load_does():
    text = "model: {name: dsspn, kwargs: {m: 48}}\nsteps: 10\nlr: 1.0e-3\nflag: true\nnone: null\nlist: [a, 1]\n"
    assert load_yaml(text) == yaml.safe_load(text)
    assert load_yaml("") is None
    assert load_yaml("when: 2024-01-01") == {"when": "2024-01-01"}  # a date stays text


def test_an_alias_bomb_is_refused_at_once():
    start = time.monotonic()
    assert refusal(BOMB) == (2, "alias *a is not accepted; write the value out where it applies")
    assert time.monotonic() - start < 1


def test_a_repeated_key_names_both_lines():
    assert refusal("optim:\n  lr_head: 0.01\nrun: {}\noptim:\n  lr_head: 5.0\n") == (
        4, "key 'optim' given twice (first on line 1)")
    assert refusal("labels:\n  1: a\n  0x1: b\n")[1] == "key '0x1' given twice (first on line 2)"  # the same int


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['touch x']", "!!python/name:os.system",
                                 "!!binary aGk=", "!custom 3"])
def test_tags_other_than_the_plain_types_are_refused(tag):
    line, problem = refusal(f"a: 1\nb: {tag}\n")
    assert line == 2 and problem.startswith("tag ") and "is not accepted" in problem


def test_deep_nesting_and_huge_numbers_are_one_line():
    assert refusal("a: " + "[" * 5000 + "]" * 5000)[1] == "nested more than 64 levels deep"
    assert "4300 digits" in refusal("steps: " + "9" * 5000)[1]


def test_composed_nodes_keep_their_lines_and_values():
    node = compose_yaml("root: entity\nadded:\n  - {id: a, parent: entity}\n")
    key, value = node.value[1]
    assert key.start_mark.line == 1 and yaml_value(value) == [{"id": "a", "parent": "entity"}]
    with pytest.raises(yaml.YAMLError, match="given twice"):
        compose_yaml("root: a\nroot: b\n")


def test_files_and_overrides_go_through_the_same_loader(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("a: 1\nb: *x\n")
    with pytest.raises(HiersegError, match=f"^{path}:2: not valid YAML \\(alias \\*x is not accepted"):
        read_yaml(path)
    with pytest.raises(HiersegError, match="not valid YAML"):
        parse_overrides(["m=!!python/name:os.system"])


def test_json_repeats_and_depth_are_one_line():
    assert parse_json('{"a": [1, {"b": null}]}', "x.json") == {"a": [1, {"b": None}]}
    with pytest.raises(HiersegError, match="^x.json: not a valid taxonomy: key 'root' given twice"):
        parse_json('{"root": "a", "root": "b"}', "x.json", "taxonomy")
    with pytest.raises(HiersegError, match="^x.json: not a valid taxonomy: nested too deeply$"):
        parse_json("[" * 100000 + "]" * 100000, "x.json", "taxonomy")
    with pytest.raises(HiersegError, match="^x.json:1: not valid JSON"):
        parse_json("{", "x.json")


def test_a_csv_field_over_the_module_limit_is_one_line():
    text = "id,name\n1," + "a" * (200 << 10) + "\n"
    with pytest.raises(HiersegError, match="^labels.csv:2: not a readable CSV row \\(field larger than field limit"):
        list(csv_rows(csv.reader(io.StringIO(text)), "labels.csv"))


def test_control_characters_are_escaped_on_one_line():
    assert one_line("a.png\nerror: forged") == "a.png\\nerror: forged"
    assert one_line("x\r\x1b[2Jy\tz") == "x\\r\\x1b[2Jy\\tz"
    assert one_line("café 草地") == "café 草地"

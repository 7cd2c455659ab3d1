"""The README and docs/ say what exists: every `hierseg` command they name is a command (`hierseg CMD [SUB] --help`
exits 0), every relative link leads to a file, and every repository path they name in code is in the repository."""

from __future__ import annotations

import glob
import re
from collections import defaultdict
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from hierseg.cli.main import app

REPO = Path(__file__).resolve().parents[1]
DOCS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))

FENCE = re.compile(r"^```.*?^```[^\n]*$", re.S | re.M)
INLINE = re.compile(r"`([^`]+)`")
# `hierseg CMD [SUB]` as a user types it (also `.venv/bin/hierseg`, `python -m hierseg.cli.main`); `hierseg.taxonomy`
# (a module) or `hierseg/models` (a folder) are no commands: the name must be followed by white space.
COMMAND = re.compile(r"(?:^|(?<=[\s/`(]))hierseg(?:\.cli\.main)?[ \t]+([a-z][\w-]*)(?:[ \t]+([a-z][\w-]*))?")
# Inline code that names a command without the program, as prose does: `labels remap --from tree`, `data synth`.
GROUPS = ("taxonomy", "labels", "data", "models")
BARE = re.compile(rf"^({'|'.join(GROUPS)})\s+([a-z][\w-]*)")
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|^\s*\[[^\]]+\]:\s*(\S+)", re.M)
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)
# Repository paths in code: `hierseg/models/dense_block.py`, `taxonomy/specs/pascal_voc.yaml`, `bench/*_bench.py`.
PATH = re.compile(r"^(?:hierseg|taxonomy|cli|bench|tests|configs|docs)/[\w./*{},-]*$")


def split(text: str) -> tuple[list[str], str]:
    """(the code: each fenced block, then each inline span with its line breaks as spaces; the prose without code)."""
    blocks = FENCE.findall(text)
    prose = FENCE.sub("", text)
    spans = [" ".join(s.split()) for s in INLINE.findall(prose)]
    return blocks + spans, INLINE.sub("", prose)


def named_commands(text: str) -> list[tuple[str, str | None]]:
    """(CMD, SUB or None) for every `hierseg CMD [SUB]` in the code of a markdown text, and every inline span that
    starts with a command group and a word (`labels remap ...`)."""
    code, _ = split(text)
    found = []
    for chunk in code:
        found += [(m.group(1), m.group(2)) for m in COMMAND.finditer(chunk)]
        bare = BARE.match(chunk)
        if bare:
            found.append((bare.group(1), bare.group(2)))
    return found


def command_path(cmd: str, sub: str | None) -> tuple[str, ...]:
    """The words that select a command: a group takes the next word (its subcommand), a command takes none."""
    command = typer.main.get_command(app).commands.get(cmd)  # typer's own click: a group is what has commands
    return (cmd, sub) if sub and getattr(command, "commands", None) else (cmd,)


def help_exit(path: tuple[str, ...]) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*path, "--help"])
    return result.exit_code, result.output


def _where() -> dict[tuple[str, ...], list[str]]:
    where: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for doc in DOCS:
        for cmd, sub in named_commands(doc.read_text(encoding="utf-8")):
            path = command_path(cmd, sub)
            label = f"{doc.relative_to(REPO)}: hierseg {cmd}" + (f" {sub}" if sub else "")
            if label not in where[path]:
                where[path].append(label)
    return dict(sorted(where.items()))


NAMED = _where()


def test_the_docs_name_commands():
    # The extraction reads what the docs show: the README's tour and the reference's command blocks.
    assert {("taxonomy", "show"), ("labels", "export"), ("eval",), ("predict",), ("train",), ("data", "synth"),
            ("models", "info")} <= set(NAMED), sorted(NAMED)


@pytest.mark.parametrize("path", list(NAMED), ids=[" ".join(p) for p in NAMED])
def test_every_named_command_exists(path):
    code, output = help_exit(path)
    assert code == 0, (f"`hierseg {' '.join(path)} --help` exits {code}; named in:\n  " + "\n  ".join(NAMED[path])
                       + f"\n{output}")


def test_a_command_that_does_not_exist_is_caught():
    # The check can fail: a stale name (there is no `labels translate`) or a stale group.
    text = "Use `labels translate --to tree`, or:\n\n```bash\nhierseg tree show\nhierseg.taxonomy is a module\n```\n"
    assert named_commands(text) == [("tree", "show"), ("labels", "translate")]
    assert [help_exit(command_path(*c))[0] for c in named_commands(text)] == [2, 2]
    assert command_path("eval", "extra") == ("eval",)  # a command's next word is an argument, not a subcommand


def _targets(doc: Path) -> list[str]:
    _, prose = split(doc.read_text(encoding="utf-8"))
    return [m.group(1) or m.group(2) for m in LINK.finditer(prose)]


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(REPO)) for d in DOCS])
def test_relative_links_lead_to_files(doc):
    targets = [t for t in _targets(doc) if not SCHEME.match(t) and not t.startswith("#")]
    missing = [t for t in targets if not (doc.parent / t.split("#")[0]).exists()]
    assert not missing, f"{doc.relative_to(REPO)}: links to files that do not exist: {missing}"


def test_docs_link_every_page():
    # Every reference page is reachable from docs/README.md, and the README links to the index.
    index = set(_targets(REPO / "docs" / "README.md"))
    pages = {d.name for d in DOCS if d.parent.name == "docs" and d.name != "README.md"}
    assert pages <= index, f"docs/README.md does not link {sorted(pages - index)}"
    assert "docs/README.md" in _targets(REPO / "README.md")


def _expand(path: str) -> list[str]:
    """`a/{b,c}.py` -> `a/b.py`, `a/c.py` (as the docs abbreviate several files of one folder)."""
    brace = re.search(r"\{([^{}]*)\}", path)
    if not brace:
        return [path]
    return [p for part in brace.group(1).split(",") for p in _expand(path[:brace.start()] + part + path[brace.end():])]


def _exists(path: str) -> bool:
    return bool(glob.glob(str(REPO / path)))


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(REPO)) for d in DOCS])
def test_named_repository_paths_exist(doc):
    code, _ = split(doc.read_text(encoding="utf-8"))
    named = {p for chunk in code for token in chunk.split()
             for p in _expand(token.strip(".,;:()[]'\"")) if PATH.match(p)}
    missing = sorted(p for p in named if not _exists(p))
    assert not missing, f"{doc.relative_to(REPO)} names paths that are not in the repository: {missing}"

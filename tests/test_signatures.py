"""The taxonomy crosses the library as one typed object: checked on the source of ``hierseg/`` and ``cli/``.

A tree is read once where it enters (a config, a checkpoint, a CLI option) into a ``hierseg.taxonomy.Taxonomy``;
past that edge no public signature takes it as ``object``/``Any`` or unannotated, which is what let paths, dicts
and graphs travel in its place and be probed with ``getattr``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("taxonomy", "tree")
UNTYPED = {"object", "Any", "typing.Any"}


def untyped_tree_parameters(source: str, where: str) -> list[str]:
    """``FILE:LINE name(param: annotation)`` for every public function or method (``__init__`` included) of a public
    class whose parameter named ``taxonomy`` or ``tree`` is unannotated or annotated ``object``/``Any``."""
    found: list[str] = []

    def visit(node: ast.AST, public: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, public and not child.name.startswith("_"))
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                if public and (not child.name.startswith("_") or child.name == "__init__"):
                    args = child.args
                    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                        if arg.arg not in NAMES:
                            continue
                        text = ast.unparse(arg.annotation) if arg.annotation is not None else None
                        parts = {p.strip() for p in text.split("|")} if text is not None else set()
                        if text is None or parts & UNTYPED:
                            found.append(f"{where}:{child.lineno} {child.name}({arg.arg}: {text})")

    visit(ast.parse(source, where), True)
    return found


def test_no_public_signature_takes_the_taxonomy_untyped():
    offending = []
    for path in sorted([*(ROOT / "hierseg").rglob("*.py"), *(ROOT / "cli").rglob("*.py")]):
        offending += untyped_tree_parameters(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert offending == []


def test_the_check_sees_each_untyped_form():
    source = '''
def a(taxonomy): ...
def b(tree: object = None): ...
def c(x, *, taxonomy: Any | None = None): ...
def d(taxonomy: Taxonomy | None = None): ...
def _private(taxonomy): ...
class Model:
    def __init__(self, taxonomy: object = None): ...
    def _helper(self, tree): ...
class _Hidden:
    def run(self, tree): ...
'''
    assert [line.split(" ", 1)[1] for line in untyped_tree_parameters(source, "m.py")] == [
        "a(taxonomy: None)", "b(tree: object)", "c(taxonomy: Any | None)", "__init__(taxonomy: object)"]

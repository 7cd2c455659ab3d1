"""The package's structure, checked on its source: what the engine and the CLI may import from the models."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL_CONTRACT = {"hierseg.models.registry", "hierseg.models.base"}


def imported_modules(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return names


def test_engine_and_cli_know_models_only_through_the_registry_and_the_base_class():
    offending = []
    for path in sorted([*(ROOT / "hierseg" / "engine").glob("*.py"), *(ROOT / "cli").glob("*.py")]):
        for name in imported_modules(path):
            if name.startswith("hierseg.models") and not any(
                    name == allowed or name.startswith(f"{allowed}.") for allowed in MODEL_CONTRACT):
                offending.append(f"{path.relative_to(ROOT)}: {name}")
    assert offending == []


def test_no_function_in_the_engine_is_over_60_lines():
    long = []
    for path in sorted((ROOT / "hierseg" / "engine").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


def test_library_code_logs_and_leaves_printing_to_the_cli():
    printing = []
    for path in sorted([*(ROOT / "hierseg").rglob("*.py"), *(ROOT / "taxonomy").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                printing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert printing == []


LAYERS = {  # a layer may import itself and the layers listed (docs/architecture.md)
    "core": {"core"},
    "taxonomy": {"core", "taxonomy"},
    "data": {"core", "taxonomy", "data"},
    "models": {"core", "taxonomy", "models"},
    "evaluation": {"core", "taxonomy", "data", "evaluation"},
    "engine": {"core", "taxonomy", "data", "models", "evaluation", "engine"},
    "cli": {"core", "taxonomy", "data", "models", "evaluation", "engine", "cli"},
}
FOLDERS = {"core": "hierseg/core", "taxonomy": "taxonomy", "data": "hierseg/data", "models": "hierseg/models",
           "evaluation": "hierseg/evaluation", "engine": "hierseg/engine", "cli": "cli"}


def test_each_layer_imports_only_the_layers_below_it():
    offending = []
    for layer, folder in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            for name in imported_modules(path):
                parts = name.split(".")
                if parts[0] == "hierseg" and len(parts) > 1 and parts[1] in LAYERS and parts[1] not in LAYERS[layer]:
                    offending.append(f"{path.relative_to(ROOT)}: {name}")
    assert offending == []


def test_the_runtime_never_imports_the_authoring_tools():
    """``hierseg.taxonomy.authoring`` (build, extend, suggest, WordNet, remap, ...) serves the CLI and benchmarks;
    the tree's runtime core and the library (data, models, evaluation, engine) work from a built tree alone."""
    runtime = [p for p in (ROOT / "taxonomy").rglob("*.py") if "authoring" not in p.relative_to(ROOT).parts]
    runtime += [p for p in (ROOT / "hierseg").rglob("*.py")]
    assert len(runtime) > 40 and (ROOT / "taxonomy" / "authoring" / "build.py").exists()
    offending = [f"{path.relative_to(ROOT)}: {name}" for path in sorted(runtime) for name in imported_modules(path)
                 if name == "hierseg.taxonomy.authoring" or name.startswith("hierseg.taxonomy.authoring.")]
    assert offending == []

"""The package's folders are its layers, and imports only run downward (issue 17).

ingest → channels → stores → qa → (kzqa's public API) → bench → app: a module may import from
its own layer or a lower one, never a higher one, and no modules import each other in a circle.
Every import counts, including those inside functions."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kzqa"
LAYERS = {"_version": 0, "ingest": 0, "channels": 1, "stores": 2, "qa": 3, "backends": 4, "remote": 4, "__init__": 4,
          "bench": 5, "app": 6, "__main__": 7}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    """The layer of a kzqa module: its subpackage, or the top-level module's own rank."""
    parts = module.split(".")
    return LAYERS["__init__" if len(parts) == 1 else parts[1]]


def is_package(module: str) -> bool:
    return (PACKAGE.parent / module.replace(".", "/") / "__init__.py").exists()


def imports_of(path: Path) -> set[str]:
    """The kzqa modules a file imports (a name imported from a package counts as its submodule
    when there is one)."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "kzqa"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "kzqa":
                continue
            subs = [f"{target}.{a.name}" for a in node.names if is_package(target) and
                    (PACKAGE.parent / f"{target}.{a.name}".replace(".", "/")).with_suffix(".py").exists()]
            found |= set(subs) if subs and len(subs) == len(node.names) else {target} | set(subs)
    return found - {here}


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_sits_in_a_known_layer():
    for module in import_graph():
        assert module == "kzqa" or module.split(".")[1] in LAYERS, f"{module} is in no layer"


def test_no_import_runs_up_a_layer():
    upward = [f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
              for m, targets in import_graph().items() for t in sorted(targets) if layer(t) > layer(m)]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    graph = import_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target] if target in path else [module, target]
                pytest.fail("import cycle: " + " → ".join(cycle))
            if target in graph and target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The walk is real: a module of a lower layer importing the app is reported."""
    fake = tmp_path / "kzqa"
    (fake / "ingest").mkdir(parents=True)
    (fake / "app").mkdir()
    for f in ("__init__.py", "ingest/__init__.py", "app/__init__.py", "app/cli.py"):
        (fake / f).write_text("")
    (fake / "ingest" / "corpus.py").write_text("def f():\n    from ..app.cli import main\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    graph = import_graph()
    assert graph["kzqa.ingest.corpus"] == {"kzqa.app.cli"}
    with pytest.raises(AssertionError, match="kzqa.ingest.corpus"):
        test_no_import_runs_up_a_layer()


def test_benchmark_scripts_use_only_the_public_api_and_kzqa_bench():
    """``benchmarks/*.py`` import ``kzqa`` (its ``__all__``) and ``kzqa.bench`` (its ``__all__``)
    and nothing else of the package, so the package's insides can move without breaking them."""
    import kzqa
    import kzqa.bench

    allowed = {"kzqa": set(kzqa.__all__), "kzqa.bench": set(kzqa.bench.__all__)}
    wrong = []
    for script in sorted((PACKAGE.parent / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                wrong += [f"{script.name}: import {a.name}" for a in node.names
                          if a.name.startswith("kzqa") and a.name not in allowed]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kzqa"):
                names = {a.name for a in node.names}
                if node.module not in allowed or names - allowed[node.module]:
                    wrong.append(f"{script.name}: from {node.module} import {', '.join(sorted(names))}")
    assert not wrong, "\n".join(wrong)


def test_the_architecture_sketch_follows_the_tree():
    """docs/architecture.md is what docs/layers.py draws from today's imports (regenerate it with
    ``python docs/layers.py > docs/architecture.md`` after moving a module)."""
    root = PACKAGE.parent
    drawn = subprocess.run([sys.executable, str(root / "docs" / "layers.py")], capture_output=True, text=True,
                           check=True).stdout
    assert (root / "docs" / "architecture.md").read_text(encoding="utf-8") == drawn
    assert "-->" in drawn and "stores/" in drawn

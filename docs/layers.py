"""Draw the package's layers from its imports: ``python docs/layers.py > docs/architecture.md``.

Reads every module of ``kzqa/`` (no import of kzqa itself), groups modules by subpackage and
writes a Mermaid graph of the import arrows between subpackages (arrow labels count the
module-to-module imports), lowest layer at the bottom, with the modules of each room.
``tests/test_layers.py`` checks that docs/architecture.md is this script's output.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "kzqa"
ROOMS = ["app", "bench", "api", "qa", "stores", "channels", "ingest"]  # top to bottom
JOBS = {"app": "command, chat, HTTP, feedback", "bench": "eval, speed, scale", "api": "kzqa.load / kzqa.build",
        "qa": "question → Hit / Answer", "stores": "files, PostgreSQL", "channels": "embed, BM25, statistics",
        "ingest": "read, clean, split"}


def room_of(module: str) -> str | None:
    """The layer of a module (None for ``kzqa._version``, which every layer may read)."""
    parts = module.split(".")
    if parts[1:2] == ["_version"]:
        return None
    return parts[1] if len(parts) > 1 and parts[1] in ROOMS else "api"


def module_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    here = module_of(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
            found.add(".".join(base + ([node.module] if node.module else [])))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "kzqa":
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "kzqa"}
    return found - {here}


def render() -> str:
    files = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")
    modules = Counter()
    arrows = Counter()
    for path in files:
        room = room_of(module_of(path))
        if room is None:
            continue
        modules[room] += path.name != "__init__.py" or room == "api"
        for target in imported(path):
            if room_of(target) not in (room, None):
                arrows[(room, room_of(target))] += 1
    out = ["# Architecture", "", "Drawn from the imports by `python docs/layers.py > docs/architecture.md`: each box is a",
           "layer of `kzqa/` (how many modules), each arrow an import between layers (how many), always",
           "downward (`kzqa/_version.py` is read by every layer and left out).", "", "```mermaid", "flowchart TD"]
    out += [f'    {r}["{"__init__.py + backends.py" if r == "api" else r + "/"} — {JOBS[r]} ({modules[r]} modules)"]'
            for r in ROOMS]
    out += [f"    {a} -->|{n}| {b}" for (a, b), n in sorted(arrows.items(), key=lambda t: (ROOMS.index(t[0][0]), ROOMS.index(t[0][1])))]
    out += ["```", ""]
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(render())

"""The import direction: every package imports only downwards, and nothing loops.

protocol <- storage <- node <- actors <- supervisor <- sessions, cli <- scripts
(``protocol`` imports nothing of the project; ``sessions`` and ``cli`` stand side by
side and do not import each other.) Read from the source with ``ast``, so a lazy
import inside a function counts too.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS: dict[str, int] = {
    "protocol": 0,
    "storage": 1,
    "node": 2,
    "actors": 3,
    "supervisor": 4,
    "sessions": 5,
    "cli": 5,
    "scripts": 6,
}


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(path: Path, module: str) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import of the project."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    found: list[tuple[str, int, bool]] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = (
                    module.split(".")[: -node.level]
                    if path.stem != "__init__"
                    else (module.split(".")[: len(module.split(".")) - node.level + 1])
                )
                names = [".".join([*base, node.module or ""]).rstrip(".")]
            elif node.module:
                names = [node.module]
        for name in names:
            if name.split(".")[0] in LAYERS:
                found.append((name, node.lineno, id(node) in top_level))
    return found


def test_every_import_points_down_the_layers():
    upward: list[str] = []
    for module, path in modules().items():
        here = module.split(".")[0]
        for name, line, _ in imports(path, module):
            there = name.split(".")[0]
            if there == here:
                continue
            if LAYERS[there] >= LAYERS[here]:
                upward.append(f"{path.relative_to(ROOT)}:{line} {here} imports {name}")
    assert not upward, "imports that do not point down:\n" + "\n".join(upward)


def test_no_import_cycle_between_modules():
    """Module-level imports only: a cycle there is a load-order trap (and was: settings
    and messages once imported each other, worked around with a lazy ``__getattr__``)."""
    known = modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in known.items():
        for name, _, top in imports(path, module):
            if top and name in known and name != module:
                graph[module].add(name)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for module in sorted(known):
        if module not in state:
            visit(module, [module])
    # A package's __init__ importing its own modules, which import the package's
    # siblings by full name, is not a cycle of modules: drop the package hops.
    real = [c for c in cycles if not any(known[m].stem == "__init__" for m in c)]
    assert not real, "import cycles:\n" + "\n".join(" -> ".join(c) for c in real)


def test_no_package_uses_a_lazy_getattr():
    lazy = [
        str(path.relative_to(ROOT))
        for path in (ROOT / p / "__init__.py" for p in LAYERS)
        if path.exists() and "def __getattr__" in path.read_text()
    ]
    assert not lazy, f"packages exporting lazily: {lazy}"


def test_the_contract_imports_nothing_of_the_project():
    for module, path in modules().items():
        if module.split(".")[0] != "protocol":
            continue
        others = [n for n, _, _ in imports(path, module) if n.split(".")[0] != "protocol"]
        assert not others, f"{module} imports {others}"

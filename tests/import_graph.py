"""The library's import graph, read from every import statement of its source.

Every `import` and `from ... import` counts, at the top of a module or deferred into a
function: a deferred import is still a dependency, it only hides a cycle until the function
runs. Each is resolved to the module it loads: `from a.b import c` is an edge to `a.b.c`
when that is a module, else to `a.b`. Relative imports are resolved against the importing
module. `python tests/import_graph.py [SRC]` prints the cycles and forbidden imports.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "salmubench"
# What the library must never import: the orchestrators and the shells over it.
FORBIDDEN = ("kfp", "kubernetes", "dvc", "salmubench_components", "salmubench_pipelines")


def modules(src: Path) -> dict[str, Path]:
    """{dotted module name: file} of every module of the library under `src`."""
    found = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module `name` imports (library modules resolved; others by their full name)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return found - {name}


def graph(src: Path) -> dict[str, set[str]]:
    """{library module: the modules it imports}."""
    mods = modules(src)
    known = set(mods)
    return {name: imports(name, path, known) for name, path in mods.items()}


def forbidden_imports(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted(
        (m, t) for m, targets in edges.items() for t in targets
        if t.split(".")[0] in FORBIDDEN
    )  # fmt: skip


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted:
    modules that import each other, directly or through others."""
    library = {m: {t for t in ts if t in edges} for m, ts in edges.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(library[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(library)))
    for v in sorted(library):
        if v not in index:
            visit(v)
    return sorted(found)


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "src"
    edges = graph(root)
    for component in cycles(edges):
        print("cycle:", " <-> ".join(component))
    for module, target in forbidden_imports(edges):
        print("forbidden:", module, "->", target)

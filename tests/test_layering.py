"""The architecture, checked from the import graph (every import, function-level ones too).

- ``protocol`` and ``workers`` import neither each other, nor ``cluster``, nor Ray;
- inside ``cluster`` the layers run one way: config < engine < analysis < runtime < cli,
  every module lives in a layer, and only ``cluster.runtime`` imports Ray;
- no import circle anywhere in ``protocol``, ``workers`` or ``cluster``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("protocol", "workers", "cluster")
LAYERS = ("config", "engine", "analysis", "runtime", "cli")
"""Cluster layers, lowest first: a module may import its own layer and those before it."""
RAY_LAYERS = {"runtime"}

Graph = dict[str, set[str]]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, modules: Iterable[str]) -> set[str]:
    """Return every module ``path`` imports, as absolute names.

    ``from x import y`` imports module ``x.y`` when there is one, else ``x``.
    """
    known = set(modules)
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return found


def build_graph() -> Graph:
    """Return ``{module: modules it imports}`` over the three packages."""
    modules = {
        module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))
    }
    graph: Graph = {}
    for name, path in modules.items():
        targets = set()
        for target in imports_of(path, modules):
            # Keep outside packages by their top name (ray, numpy); ours by module.
            top = target.split(".")[0]
            if top not in PACKAGES:
                targets.add(top)
            elif target in modules:
                targets.add(target)
        targets.discard(name)
        graph[name] = targets
    return graph


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "cluster" else None


def violations(graph: Graph) -> list[str]:
    """Return one line per forbidden import in ``graph``."""
    out = []
    for module, targets in sorted(graph.items()):
        top = module.split(".")[0]
        if top == "cluster" and module != "cluster" and layer_of(module) not in LAYERS:
            out.append(f"{module}: not in a layer ({', '.join(LAYERS)})")
            continue
        for target in sorted(targets):
            ttop = target.split(".")[0]
            alone = top in ("protocol", "workers")
            if alone and ttop != top and ttop in {"protocol", "workers", "cluster", "ray"}:
                out.append(f"{module} imports {target}: {top} stands alone")
            if top != "cluster":
                continue
            layer = layer_of(module)
            if ttop == "ray" and layer not in RAY_LAYERS:
                out.append(f"{module} imports ray: only cluster.runtime knows Ray")
            tlayer = layer_of(target)
            ordered = ttop == "cluster" and tlayer in LAYERS and layer in LAYERS
            if ordered and LAYERS.index(tlayer) > LAYERS.index(layer):
                out.append(f"{module} imports {target}: {layer} is below {tlayer}")
    return out


def cycles(graph: Graph) -> list[list[str]]:
    """Return the import circles (strongly connected components of two or more modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def with_import(graph: Graph, module: str, targets: Iterable[str]) -> Graph:
    return {**graph, module: graph[module] | set(targets)}


def test_the_tree_follows_the_layers() -> None:
    assert violations(build_graph()) == []


def test_no_import_circle() -> None:
    assert cycles(build_graph()) == []


def test_the_checks_see_a_forbidden_import() -> None:
    graph = build_graph()
    assert "cluster.engine.coordinator" in graph and "cluster.cli.app" in graph
    assert violations(with_import(graph, "cluster.engine.coordinator", ["cluster.cli.app"]))
    assert violations(with_import(graph, "cluster.engine.coordinator", ["ray"]))
    assert violations(with_import(graph, "cluster.config.schema", ["cluster.engine.messages"]))
    assert violations(with_import(graph, "protocol.market", ["workers"]))
    assert violations(with_import(graph, "workers.spec", ["cluster.engine.messages"]))
    assert violations({**graph, "cluster.helpers": set()})
    looped = with_import(graph, "cluster.engine.messages", ["cluster.engine.coordinator"])
    assert cycles(looped)

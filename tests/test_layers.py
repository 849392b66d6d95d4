"""The package graph of simulator/ and analysis/ (every import, top-level or inside a function): no
cycle between packages, and only the command line (simulator/cli/) imports the plots (analysis/)."""

import ast
from pathlib import Path

import networkx as nx
from conftest import ROOT


def unit(module: str) -> str | None:
    """The package a module belongs to: `simulator.engine.core` -> engine; analysis -> analysis."""
    parts = module.split(".")
    if parts[0] == "analysis":
        return "analysis"
    if parts[0] != "simulator":
        return None
    return parts[1] if len(parts) > 1 else "simulator"


def imported(path: Path, module: str) -> set[str]:
    """Absolute names of what a module imports, relative imports resolved."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            names.add(".".join(base + ([node.module] if node.module else [])))
    return names


def package_graph() -> tuple[nx.DiGraph, dict[str, set[str]]]:
    """Package -> package edges, and for each module outside cli/ the analysis/ modules it imports."""
    graph, plots = nx.DiGraph(), {}
    for top in ("simulator", "analysis"):
        for path in sorted((ROOT / top).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            source = unit(module)
            for name in imported(path, module):
                target = unit(name)
                if target and target != source:
                    graph.add_edge(source, target)
                    if target == "analysis" and source != "cli":
                        plots.setdefault(module, set()).add(name)
    return graph, plots


def test_imports_between_packages_run_one_way() -> None:
    graph, _ = package_graph()
    assert {"engine", "metrics", "program", "cli", "analysis"} <= set(graph)  # the walk saw the tree
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert cycles == []


def test_only_the_command_line_draws_plots() -> None:
    _, plots = package_graph()
    assert plots == {}

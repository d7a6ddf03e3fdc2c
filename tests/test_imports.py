"""sb3_latent has no import cycle: the static graph of its modules, imports inside functions included."""

import ast
from pathlib import Path

import sb3_latent

PACKAGE_DIR = Path(sb3_latent.__file__).parent


def module_names() -> dict[str, Path]:
    """Every module of sb3_latent by dotted name (a package by its own name: ``sb3_latent.transfer``)."""
    modules = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """Module -> the sb3_latent modules it imports anywhere in its text (top level, functions, TYPE_CHECKING blocks).

    An edge goes to the module an import names (``from a.b import c`` names ``a.b.c`` when that is a module, else
    ``a.b``), not to the packages above it that Python also executes: a package ``__init__`` that re-exports its own
    modules is not a cycle.
    """
    modules = module_names()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from .x import y
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            else:
                continue
            graph[name] |= {target for target in targets if target in modules and target != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        path.append(node)
        for target in sorted(graph.get(node, ())):
            cycle = visit(target)
            if cycle is not None:
                return cycle
        path.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle is not None:
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_counts_imports_inside_functions():
    graph = import_graph()
    # LatentSAC._load_generator imports the run-folder reader inside the method.
    assert "sb3_latent.zoo_runs" in graph["sb3_latent.latent_sac.latent_sac"]
    assert "sb3_latent.transfer.latent" in graph["sb3_latent.transfer"]  # the package re-exports its module


def test_sb3_latent_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])

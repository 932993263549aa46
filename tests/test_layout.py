"""The package layout: no import cycle among meshstyle's modules.

Function-level imports count too: a cycle hidden inside a function still ties two stages together
and breaks as soon as someone moves the import to the top of the file.
"""
from __future__ import annotations

import ast
from pathlib import Path

import meshstyle

PACKAGE_ROOT = Path(meshstyle.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _import_graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in PACKAGE_ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from package import module` imports the module; `from module import name` the module
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            for target in targets:
                if target in modules and target != name and target != "meshstyle":
                    graph[name].add(target)
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_function_level_imports():
    graph = _import_graph()
    # cli.py imports the pipeline inside its command functions only (startup time)
    assert "meshstyle.pipeline" in graph["meshstyle.cli"]
    assert len(graph) > 20


def test_no_import_cycle_among_modules():
    cycle = _find_cycle(_import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_suite_uses_its_own_cache():
    from pathlib import Path

    from meshstyle.common.cache import cache_dir

    root = Path(cache_dir("fragments")).parent
    assert root != Path.home() / ".cache" / "meshstyle"
    assert root.name.startswith("meshstyle-test-cache-")


def test_public_stylize_stays_the_function_after_its_subpackage_is_imported():
    """Importing the optimisation's subpackage first (as the pipeline and many tests do) must not
    turn the public function `ms.stylize` into a module (a subpackage named `stylize` would)."""
    import subprocess
    import sys

    code = ("import meshstyle.stylization.optimize, meshstyle as ms; "
            "from meshstyle.stylization import patches; print(callable(ms.stylize), ms.stylize.__module__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["True", "meshstyle.pipeline"], done.stderr

"""The shape of the code: no import cycles in zoo/, short core modules, short functions everywhere."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "zoo"
MAX_MODULE_LINES = 300  # core modules (zoo/*.py)
MAX_FUNCTION_LINES = 60  # every function in zoo/ and plugins/, docstring and decorators included
# (path relative to the repository, qualified function name) -> why it may be longer; ideally none
FUNCTION_EXCEPTIONS: dict[tuple[str, str], str] = {}


def _imports(path: Path) -> set[str]:
    """The zoo modules ``path`` imports anywhere in it (module level, functions, TYPE_CHECKING blocks)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = "zoo"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name == package or a.name.startswith(package + ".")}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
                if base != package and not base.startswith(package + "."):
                    continue
            else:
                base = package + (f".{node.module}" if node.module else "")
            if base != package:
                found.add(base)
                continue
            for alias in node.names:  # from . import x: the submodule x, or a name of the package itself
                found.add(f"{package}.{alias.name}" if (CORE / f"{alias.name}.py").is_file() else package)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {f"zoo.{p.stem}" if p.stem != "__init__" else "zoo": p for p in CORE.glob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_core_has_no_import_cycle():
    graph = import_graph()
    graph.pop("zoo")  # the package's __init__ re-exports the API: every module is below it
    graph = {k: v - {"zoo"} for k, v in graph.items()}
    assert "zoo.training.trainer" in graph["zoo.training"] and "zoo.runtime.device" in graph["zoo.runtime.distributed"]  # the walk sees imports
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_core_modules_are_short():
    long = {p.name: n for p in CORE.glob("*.py") if (n := len(p.read_text(encoding="utf-8").splitlines()))
            > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def _functions(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))

    def walk(node: ast.AST, prefix: str):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                    yield name, child.end_lineno - start + 1
                yield from walk(child, name + ".")

    yield from walk(tree, "")


def test_functions_are_short():
    long = {}
    for path in [*CORE.glob("*.py"), *(ROOT / "plugins").glob("*/*.py")]:
        rel = str(path.relative_to(ROOT))
        for name, n in _functions(path):
            if n > MAX_FUNCTION_LINES and (rel, name) not in FUNCTION_EXCEPTIONS:
                long[f"{rel}:{name}"] = n
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"

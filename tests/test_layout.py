"""The shape of the code: layers that import downwards only, no import cycles, no relative imports in zoo/,
a short top level, short functions everywhere; a module is as long as its one concern needs (a warning,
not a failure, past SOFT_MODULE_LINES)."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "zoo"
SOFT_MODULE_LINES = 500  # past it, a module asks: is this two concerns? (a warning)
MAX_FUNCTION_LINES = 60  # every function in zoo/ and plugins/, docstring and decorators included
# (path relative to the repository, qualified function name) -> why it may be longer; ideally none
FUNCTION_EXCEPTIONS: dict[tuple[str, str], str] = {}


# The layers of zoo/, lowest first: a module may import its own layer and those listed for it, nothing else.
# Each subpackage is one layer; the few top-level modules are named. Changing this table is a design
# decision: say why in the commit.
LAYERS: dict[str, set[str]] = {
    "base": set(),  # zoo.errors, zoo._version, zoo.hookspecs: imported by everything, import nothing of zoo
    "config": {"base"},
    "sdk": {"base", "config"},
    "runtime": {"base", "config", "sdk"},
    "registry": {"base", "config", "sdk", "runtime"},
    # a run's pieces from its resolved config: dataset, tokenizers, task, prepared splits, model
    "build": {"base", "config", "sdk", "runtime", "registry"},
    "store": {"base", "config", "sdk", "runtime", "registry", "build"},
    "inference": {"base", "config", "sdk", "runtime", "registry", "build", "store"},
    "training": {"base", "config", "sdk", "runtime", "registry", "build", "store", "inference"},
    "hub": {"base", "config", "sdk", "runtime", "registry", "build", "store", "inference"},
    "api": {"base", "config", "sdk", "runtime", "registry", "build", "store", "inference", "training"},
    "interop": {"base", "config", "sdk", "runtime", "registry", "build", "store", "inference", "training", "api"},
    "serve": {"base", "config", "sdk", "runtime", "registry", "build", "store", "inference", "api"},
    "cli": {"base", "config", "sdk", "runtime", "registry", "build", "store", "inference", "training", "hub", "api",
            "serve", "interop"},
    # the conformance kit tests a plugin as its author would: through the public package `zoo` ("root")
    "kit": {"root", "base", "config", "sdk", "runtime", "registry", "build", "store", "inference", "training", "api"},
    "root": {"base", "config", "sdk", "runtime", "registry", "build", "store", "inference", "training", "api"},
}
TOP_LEVEL = {"zoo": "root", "zoo.errors": "base", "zoo._version": "base", "zoo.hookspecs": "base", "zoo.api": "api",
             "zoo.testing": "kit", "zoo.__main__": "cli"}


def layer_of(module: str) -> str:
    """The layer of a zoo module: its subpackage, or the table's name for a top-level module."""
    if module in TOP_LEVEL:
        return TOP_LEVEL[module]
    layer = module.split(".")[1]
    if layer not in LAYERS:
        raise AssertionError(f"{module}: not in a layer; add its package or module to LAYERS / TOP_LEVEL")
    return layer


def module_files() -> dict[str, Path]:
    """Every module of zoo/ by dotted name (templates are plugin sources, not zoo's)."""
    out = {}
    for path in CORE.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        if "templates" in rel.parts or path.parent.name == "static":
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = path
    return out


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The zoo modules ``path`` imports anywhere in it (module level, functions, TYPE_CHECKING blocks)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name == "zoo" or a.name.startswith("zoo.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise AssertionError(f"{path}: relative import; zoo's modules import each other by full name")
            base = node.module or ""
            if base != "zoo" and not base.startswith("zoo."):
                continue
            for alias in node.names:  # from zoo.x import y: the submodule zoo.x.y, or a name of zoo.x
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return found


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: {m for m in _imports(path, set(files)) if m in files and m != name} for name, path in files.items()}


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import that goes against :data:`LAYERS`, as ``a -> b (layer -> layer)``."""
    bad = []
    for module, imported in sorted(graph.items()):
        own = layer_of(module)
        for other in sorted(imported):
            theirs = layer_of(other)
            if theirs != own and theirs not in LAYERS[own]:
                bad.append(f"{module} -> {other} ({own} -> {theirs})")
    return bad


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
    assert "zoo.training.trainer" in graph["zoo.training.run"]  # the walk sees imports inside functions too
    assert "zoo.runtime.device" in graph["zoo.runtime.distributed"]
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_imports_follow_the_layers():
    assert layer_violations(import_graph()) == []


def test_the_layer_check_finds_a_forbidden_import():
    graph = import_graph()
    graph["zoo.sdk.tokenizer"] = graph["zoo.sdk.tokenizer"] | {"zoo.training.trainer"}  # sdk may not see training
    graph["zoo.store.card"] = graph["zoo.store.card"] | {"zoo"}  # nor the package root
    assert layer_violations(graph) == ["zoo.sdk.tokenizer -> zoo.training.trainer (sdk -> training)",
                                       "zoo.store.card -> zoo (store -> root)"]


def test_nothing_imports_the_package_root():
    importers = sorted(m for m, imported in import_graph().items() if "zoo" in imported and layer_of(m) != "kit")
    assert importers == [], f"import zoo._version (or the module itself), not the package root: {importers}"


def test_the_top_level_is_short():
    top = sorted(p.name for p in CORE.glob("*.py"))
    assert len(top) <= 12, top


def test_long_modules_are_flagged():
    files = module_files()
    long = {name: n for name, path in files.items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > SOFT_MODULE_LINES}
    if long:
        warnings.warn(f"modules over {SOFT_MODULE_LINES} lines (two concerns?): {long}", stacklevel=1)
    assert "zoo.training.trainer" in files  # the walk finds modules inside subpackages


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
    for path in [*module_files().values(), *(ROOT / "plugins").glob("*/*.py")]:
        rel = str(path.relative_to(ROOT))
        for name, n in _functions(path):
            if n > MAX_FUNCTION_LINES and (rel, name) not in FUNCTION_EXCEPTIONS:
                long[f"{rel}:{name}"] = n
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_walk_of_zoo_train_never_hands_a_value_up_a_layer(tmp_path):
    """benchmarks/layer_walk.py traces `zoo train subseq-gru` (tiny) for real: the entry name and the
    model width pass down the layers only, and the summary would count a hand-off that went up."""
    import json
    import subprocess
    import sys

    out = tmp_path / "walk.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "layer_walk.py"), "--json", str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    walks = json.loads(out.read_text())["walks"]
    for name in ("entry", "model.hidden"):
        walk = walks[name]
        assert walk["upward"] == [] and walk["hand_offs"] > 10, (name, walk)
        assert {"training", "registry", "store"} <= set(walk["packages"]), (name, walk["packages"])
    assert walks["entry"]["packages"][:2] == ["cli", "training"]
    # the run resolves names once and hands the result down: the artifact and the card do not look them up again
    assert walks["entry"]["entered_from"]["registry"] == ["training"], walks["entry"]["entered_from"]
    # issue 27: the entry name enters each package once (resolved once, built once, written once)
    assert walks["entry"]["re_entries"] == 0, walks["entry"]["package_entries"]
    assert set(walks["entry"]["package_entries"].values()) == {1}, walks["entry"]["package_entries"]
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from layer_walk import summarise
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    up = summarise([(None, "zoo.cli.train"), ("zoo.cli.train", "zoo.training.run"),
                    ("zoo.training.run", "zoo.registry.resolve"), ("zoo.registry.resolve", "zoo.training.run")])
    assert up["upward"] == ["zoo.registry.resolve -> zoo.training.run"] and up["re_entries"] == 1
    assert up["entered_from"] == {"training": ["cli", "registry"], "registry": ["training"]}

"""Issue 27's walk: which of zoo's modules and packages one value passes through on its way from
`zoo train` to the run folder, and in which order.

    .venv/bin/python benchmarks/layer_walk.py [--entry subseq-gru] [--hidden 38]

Runs `zoo train ENTRY --set model.hidden=HIDDEN` (the entry's tiny settings, so it takes seconds)
in this process under ``sys.setprofile``. A call of a function in zoo/ is part of the walk when its
arguments hold the value being followed: the entry name (a string equal to it or ending in
``:ENTRY``), or the width HIDDEN, found in strings, numbers, dicts, lists, tuples and dataclasses
up to four levels deep. For every such call the walk records its module; the caller is the nearest
enclosing call that is part of the walk too.

Reported, per followed value:
- ``modules`` and ``packages`` entered (a package is a layer of tests/test_layout.py's table);
- ``hand_offs``: calls from a walked function of one module to a walked function of another;
- ``upward``: hand-offs to a higher layer than the caller's (the layer test forbids the imports
  that would make them; this checks the running code);
- ``package_entries``: how often each package is entered from another one, and ``re_entries``,
  the sum over packages of entries after the first (0 when each package is entered once);
- ``entered_from``: for each package, the packages its entries come from;
- ``packages``: the packages in the order they are first entered.
Results go to ``benchmarks/results/layer_walk.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
from test_layout import LAYERS, layer_of  # noqa: E402  (the layer table the tests check)

RANK = {name: i for i, name in enumerate(LAYERS)}  # lowest first, as the table lists them


def holds(value: Any, want: Any, depth: int = 4) -> bool:
    """Whether ``value`` holds ``want`` (see the module's docstring)."""
    if isinstance(want, str) and isinstance(value, str):
        return value == want or value.endswith(":" + want)
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(want, int) and isinstance(value, int):
        return value == want
    if depth == 0 or isinstance(value, (str, bytes, int, float)):
        return False
    if isinstance(value, dict):
        return any(holds(v, want, depth - 1) for v in list(value.values())[:200])
    if isinstance(value, (list, tuple)):
        return any(holds(v, want, depth - 1) for v in value[:200])
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(holds(getattr(value, f.name, None), want, depth - 1) for f in dataclasses.fields(value))
    return False


def trace(argv: list[str], wants: dict[str, Any]) -> dict[str, list[tuple[str | None, str]]]:
    """(caller module or None, callee module) for every walked call, per followed value, in call order."""
    core = str(ROOT / "zoo") + os.sep
    walks: dict[str, list[tuple[str | None, str]]] = {name: [] for name in wants}
    stacks: dict[str, list[tuple[Any, str]]] = {name: [] for name in wants}  # (frame, module) of walked calls

    def profile(frame, event, arg):
        if event == "return":
            for stack in stacks.values():
                if stack and stack[-1][0] is frame:
                    stack.pop()
            return
        if event != "call" or not frame.f_code.co_filename.startswith(core):
            return
        code = frame.f_code
        n = code.co_argcount + code.co_kwonlyargcount + bool(code.co_flags & 4) + bool(code.co_flags & 8)
        args = [frame.f_locals.get(name) for name in code.co_varnames[:n]]
        module = frame.f_globals.get("__name__", "?")
        for name, want in wants.items():
            if any(holds(a, want) for a in args):
                stack = stacks[name]
                walks[name].append((stack[-1][1] if stack else None, module))
                stack.append((frame, module))

    from zoo.cli.main import build_cli

    group = build_cli()
    sys.setprofile(profile)
    try:
        group.main(args=argv, prog_name="zoo", standalone_mode=False)
    finally:
        sys.setprofile(None)
    return walks


def summarise(walk: list[tuple[str | None, str]]) -> dict[str, Any]:
    modules = list(dict.fromkeys(m for _, m in walk))
    hand_offs = [(a, b) for a, b in walk if a is not None and a != b]
    upward = [f"{a} -> {b}" for a, b in hand_offs if RANK[layer_of(b)] > RANK[layer_of(a)]]
    entries: Counter[str] = Counter()
    entered_from: dict[str, set[str]] = {}
    order: list[str] = []
    for caller, callee in walk:
        pkg = layer_of(callee)
        if caller is None or layer_of(caller) != pkg:
            entries[pkg] += 1
            if caller is not None:
                entered_from.setdefault(pkg, set()).add(layer_of(caller))
        if pkg not in order:
            order.append(pkg)
    return {"calls": len(walk), "modules": modules, "n_modules": len(modules), "packages": order,
            "n_packages": len(order), "hand_offs": len(hand_offs), "upward": upward,
            "package_entries": dict(entries), "re_entries": sum(n - 1 for n in entries.values()),
            "entered_from": {pkg: sorted(callers) for pkg, callers in entered_from.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entry", default="subseq-gru")
    ap.add_argument("--hidden", type=int, default=38, help="model.hidden to follow (pick a value seen nowhere else)")
    ap.add_argument("--json", type=Path, default=HERE / "results" / "layer_walk.json")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from zoo.testing import tiny_overrides

    tiny = [f"{section}.{key}={json.dumps(value)}" for section, table in tiny_overrides(args.entry).items()
            for key, value in table.items()]
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["train", args.entry, "--out", str(Path(tmp) / "run")]
        for setting in [*tiny, f"model.hidden={args.hidden}"]:  # the followed width last: it wins
            argv += ["--set", setting]
        t0 = time.perf_counter()
        walks = trace(argv, {"entry": args.entry, "model.hidden": args.hidden})
        wall = time.perf_counter() - t0
    result = {"argv": ["zoo", *argv[:2], "--out", "TMP", *argv[4:]], "wall_s": round(wall, 1),
              "walks": {name: summarise(w) for name, w in walks.items()}}
    for name, s in result["walks"].items():
        print(f"{name}: {s['n_modules']} modules in {s['n_packages']} packages, {s['hand_offs']} hand-offs, "
              f"{len(s['upward'])} upward, {s['re_entries']} re-entries of a package")
        print("  order:", " -> ".join(s["packages"]))
        print("  entries:", ", ".join(f"{k} {v}" for k, v in s["package_entries"].items()))
        for up in s["upward"]:
            print("  upward:", up)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

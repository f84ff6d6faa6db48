"""Docstring walker, run as a separate, isolated process (``python -s -P -B _walker.py SPEC OUT``).

It imports the public modules of the packages it is given, one package after the other, and
writes one JSON line per public module, class or function docstring to ``OUT``; after each package
one ``{"stats": ...}`` line. It must stay standard-library only and import nothing from the
repository: the parent starts it with a fresh environment (``PYTHONHASHSEED=0``: some libraries
build docstrings while iterating sets), without the user site or the script's folder on
``sys.path``, from a scratch directory, so whatever an import does to the process (prints,
signal handlers, threads, files in the working directory, monkey-patching) stays there, and a hang
is bounded by the per-module alarm and by the parent's kill.

Never executed as a script body: module imports only. ``__main__`` modules, tests, GUI toolkits
and modules that act on import (``antigravity``, ``this``) are skipped by name before importing.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
import re
import signal
import sys
import time
import warnings
from collections import Counter
from typing import Any

# Module-name components never imported: tests, scripts, demos, GUI toolkits, modules that act on
# import, vendored copies of other packages (their docstrings would be another package's label).
SKIP_COMPONENTS = frozenset({
    "test", "tests", "testing", "testsuite", "conftest", "setup", "__main__", "main",
    "example", "examples", "demo", "demos", "benchmark", "benchmarks", "docs", "doc", "scripts",
    "idlelib", "tkinter", "turtle", "turtledemo", "antigravity", "this", "__hello__", "__phello__",
    "pydoc_data", "lib2to3", "ensurepip", "gui", "qt", "wx", "gtk", "tk",
    "vendor", "vendored", "_vendor", "extern", "externals", "_externals",
})
MAX_DOC_CHARS = 4000  # the parent keeps only the opening prose; bound the transfer
# Object reprs in generated signatures ("<... object at 0x7f3a...>") differ from run to run.
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")


class _ImportTimeout(Exception):
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise _ImportTimeout


def _skipped(modname: str) -> bool:
    parts = modname.split(".")
    return any(p.startswith("_") or p in SKIP_COMPONENTS for p in parts)


def _import(modname: str, timeout_s: float, failures: Counter) -> Any | None:
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        return importlib.import_module(modname)
    except _ImportTimeout:
        failures["timeout"] += 1
    except (Exception, SystemExit) as e:  # noqa: BLE001 - an import may fail any way; counted
        failures[type(e).__name__] += 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return None


def _public_names(module: Any) -> list[str]:
    names = getattr(module, "__all__", None)
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        names = list(vars(module))
    return sorted({n for n in names if not n.startswith("_")})


def _kind(obj: Any) -> str | None:
    if inspect.isclass(obj):
        return "class"
    if inspect.isroutine(obj):
        return "function"
    # Callable objects (numpy ufuncs) count when the docstring is their own, not their type's.
    if callable(obj) and not inspect.ismodule(obj) and getattr(obj, "__doc__", None) is not getattr(
            type(obj), "__doc__", None):
        return "function"
    return None


def _group(modname: str, label: str) -> str:
    """Sub-population: the first two public components of the module path (``scipy.stats``)."""
    parts = []
    for p in modname.split("."):
        if p.startswith("_") or len(parts) == 2:
            break
        parts.append(p)
    return ".".join(parts) if parts and parts[0] == label else label


def _emit(out: Any, label: str, module: str, name: str, kind: str, group: str, doc: Any) -> bool:
    if not isinstance(doc, str) or not doc.strip():
        return False
    rec = {"label": label, "module": module, "name": name, "kind": kind, "group": group,
           "doc": _ADDRESS.sub("0x...", inspect.cleandoc(doc)[:MAX_DOC_CHARS])}
    out.write(json.dumps(rec) + "\n")
    return True


def _submodules(module: Any, failures: Counter) -> list[str]:
    path = getattr(module, "__path__", None)
    if path is None:
        return []
    try:
        infos = list(pkgutil.iter_modules(path, module.__name__ + "."))
    except Exception as e:  # noqa: BLE001 - a broken package path only loses its children; counted
        failures[f"submodules:{type(e).__name__}"] += 1
        return []
    return sorted(i.name for i in infos)


def _walk_module(module: Any, label: str, out: Any, seen: set[int], failures: Counter) -> int:
    """Emit the module's docstring, then its public classes (with their own public methods) and
    functions defined in ``label``; an object reachable from several modules is emitted once."""
    modname = module.__name__
    docs = _emit(out, label, modname, modname, "module", _group(modname, label), module.__doc__)
    for name in _public_names(module):
        try:
            docs += _walk_object(module, name, label, out, seen)
        except Exception as e:  # noqa: BLE001 - lazy attributes/proxies raise anything; counted
            failures[f"attribute:{type(e).__name__}"] += 1
    return docs


def _walk_object(module: Any, name: str, label: str, out: Any, seen: set[int]) -> int:
    modname = module.__name__
    obj = getattr(module, name)
    kind = _kind(obj)
    if kind is None or id(obj) in seen:
        return 0
    home = getattr(obj, "__module__", None)
    if isinstance(home, str) and home.split(".")[0] != label:
        return 0  # re-exported from another package: its docstring is not this label's
    seen.add(id(obj))
    qual = getattr(obj, "__qualname__", None)
    full = f"{home}.{qual}" if isinstance(home, str) and isinstance(qual, str) else f"{modname}.{name}"
    group = _group(home if isinstance(home, str) else modname, label)
    docs = _emit(out, label, modname, full, kind, group, getattr(obj, "__doc__", None))
    if kind == "class":
        docs += _walk_methods(obj, full, label, modname, group, out, seen)
    return docs


def _walk_methods(cls: Any, full: str, label: str, modname: str, group: str, out: Any, seen: set[int]) -> int:
    """Public methods defined in the class body itself (inherited ones belong to their base)."""
    docs = 0
    for name, raw in sorted(vars(cls).items()):
        if name.startswith("_"):
            continue
        fn = raw.__func__ if isinstance(raw, (classmethod, staticmethod)) else raw
        if not inspect.isroutine(fn) or id(fn) in seen:
            continue
        seen.add(id(fn))
        docs += _emit(out, label, modname, f"{full}.{name}", "method", group, getattr(fn, "__doc__", None))
    return docs


def walk_package(label: str, out: Any, *, max_modules: int, max_depth: int, module_timeout_s: float,
                 budget_s: float) -> dict[str, Any]:
    """Breadth-first over the public modules of ``label`` (sorted, so the order is deterministic)."""
    start = time.monotonic()
    failures: Counter = Counter()
    seen: set[int] = set()
    queue, imported, docs, truncated = [label], 0, 0, None
    while queue:
        modname = queue.pop(0)
        if imported >= max_modules:
            truncated = "max_modules"
            break
        if time.monotonic() - start > budget_s:
            truncated = "time_budget"
            break
        module = _import(modname, module_timeout_s, failures)
        if module is None:
            continue
        imported += 1
        try:
            docs += _walk_module(module, label, out, seen, failures)
            if modname.count(".") + 1 < max_depth:
                queue += [m for m in _submodules(module, failures) if not _skipped(m)]
        except Exception as e:  # noqa: BLE001 - module __getattr__ may raise anything; counted
            failures[f"walk:{type(e).__name__}"] += 1
        out.flush()
    return {"label": label, "modules": imported, "docs": docs, "failures": dict(failures),
            "truncated": truncated, "seconds": round(time.monotonic() - start, 2)}


def main(spec_path: str, out_path: str) -> None:
    with open(spec_path) as fh:
        spec = json.load(fh)
    warnings.simplefilter("ignore")
    signal.signal(signal.SIGALRM, _on_alarm)
    with open(out_path, "a") as out:
        for label in spec["labels"]:
            stats = walk_package(label, out, max_modules=spec["max_modules"], max_depth=spec["max_depth"],
                                 module_timeout_s=spec["module_timeout_s"], budget_s=spec["budget_s"])
            out.write(json.dumps({"stats": stats}) + "\n")
            out.flush()
    # Imports may leave non-daemon threads or atexit hooks that hang; the results are on disk.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

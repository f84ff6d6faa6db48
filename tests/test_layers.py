"""The layering of the product code (docs/ARCHITECTURE.md), checked on the source itself.

Every import counts: module level, inside functions (lazy imports are still dependencies) and
under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Lowest first: a package may import itself and the packages listed before it, never one after it.
LAYERS = ("core", "storage", "embedding", "monitoring", "maintenance", "flows", "steward")
RANK = {name: i for i, name in enumerate(LAYERS)}


def _modules(package: str) -> list[Path]:
    return sorted(p for p in (REPO / package).rglob("*.py") if "__pycache__" not in p.parts)


def _imported_packages(path: Path) -> set[tuple[str, int]]:
    """(top-level package, line) of every import of one of our layers in ``path``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {(n.split(".")[0], node.lineno) for n in names if n.split(".")[0] in RANK}
    return found


def _violations(package: str) -> list[str]:
    out = []
    for path in _modules(package):
        for imported, line in sorted(_imported_packages(path)):
            if RANK[imported] > RANK[package]:
                out.append(f"{path.relative_to(REPO)}:{line} imports {imported} (a higher layer)")
    return out


@pytest.mark.parametrize("package", LAYERS)
def test_no_package_imports_a_higher_layer(package: str) -> None:
    assert _violations(package) == []


def test_the_check_would_catch_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from steward.cli import main\n    import flows.tasks\n")
    assert {name for name, _ in _imported_packages(bad)} == {"steward", "flows"}


def test_no_flows_module_shadows_a_top_level_package() -> None:
    # Prefect loads deployments by file path with flows/ on sys.path: flows/x.py would hide package x.
    shadowing = {p.stem for p in _modules("flows")} & set(LAYERS)
    assert shadowing == set()


def test_production_is_resolved_in_one_module() -> None:
    # The production alias is read and moved only by storage.production (and the registry itself).
    owners = {REPO / "storage" / "production.py", REPO / "storage" / "registry" / "models.py"}
    offenders = [
        f"{path.relative_to(REPO)}:{i}"
        for package in LAYERS for path in _modules(package) if path not in owners
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if ".get_alias(" in line or ".switch_alias(" in line or "models.rollback(" in line
    ]
    assert offenders == []


def test_no_test_module_imports_another() -> None:
    """Shared test code lives in helper modules (factories, fakes, conftest), never in a test_ module."""
    offenders = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(REPO)} imports {n}" for n in names
                          if n.startswith("tests.") and n.rsplit(".", 1)[-1].startswith("test_")]
    assert not offenders, offenders

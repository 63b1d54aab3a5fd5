"""The design's import rules: catalog knows nothing of stock or orders."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# app -> apps it must never import (directly or inside a function)
FORBIDDEN = {
    "catalog": {"fulfillment", "orders", "storefront", "risk", "distribution"},
    "fulfillment": {"storefront"},
    "orders": {"storefront"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("app", sorted(FORBIDDEN))
def test_app_never_imports_what_the_design_forbids(app):
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & FORBIDDEN[app])
        for path in (ROOT / app).rglob("*.py")
        if "migrations" not in path.parts
    }

    assert {k: v for k, v in offenders.items() if v} == {}

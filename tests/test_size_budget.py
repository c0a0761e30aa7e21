"""Size discipline: small modules with one job, short functions (ruff checks complexity)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("einsum_ir", "mapper", "simulator", "backends", "cascade_cli")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _modules():
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def test_no_module_over_the_budget():
    over = [(str(p.relative_to(ROOT)), n) for p in _modules()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not over, f"modules over {MAX_MODULE_LINES} lines (split by responsibility): {over}"


def test_no_function_over_the_budget():
    over = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    over.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n})")
    assert not over, f"functions over {MAX_FUNCTION_LINES} lines: {over}"

"""Safe arithmetic for spec fields: numbers or strings such as ``"pe_dim * pe_dim"``.

Only numbers, variable names, ``+ - * / // % **``, parentheses and ``min``/``max``/``ceil``/
``floor``/``log2`` are allowed; anything else is a path-addressed :class:`CascadeError`.
"""
from __future__ import annotations

import ast
import math
import operator
from typing import Mapping

from einsum_ir.errors import CascadeError

_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
        ast.Pow: operator.pow}
_FUNCS = {"min": min, "max": max, "ceil": math.ceil, "floor": math.floor, "log2": math.log2}


def evaluate(value, env: Mapping[str, float], where: str) -> float:
    """The numeric value of a spec field (``where`` names it in errors)."""
    if isinstance(value, bool):
        raise CascadeError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return value
    if not isinstance(value, str):
        raise CascadeError(f"{where}: expected a number or an expression, got {type(value).__name__}")
    try:
        tree = ast.parse(value.strip(), mode="eval")
    except SyntaxError:
        raise CascadeError(f"{where}: cannot parse {value!r} as an arithmetic expression") from None

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in env:
                raise CascadeError(f"{where}: unknown variable {node.id!r} in {value!r}",
                                   hint="declare it under 'variables:' "
                                        + (f"(known: {', '.join(sorted(env))})" if env else ""))
            return env[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
            a, b = ev(node.left), ev(node.right)
            if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and b == 0:
                raise CascadeError(f"{where}: division by zero in {value!r}")
            return _BIN[type(node.op)](a, b)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in _FUNCS and not node.keywords:
            return _FUNCS[node.func.id](*[ev(a) for a in node.args])
        raise CascadeError(f"{where}: {value!r} is not an arithmetic expression of numbers and "
                           f"variables")

    result = ev(tree)
    if isinstance(result, float) and result.is_integer() and abs(result) < 2 ** 53:
        return int(result)
    return result

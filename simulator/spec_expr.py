"""Safe arithmetic for spec fields: numbers or strings such as ``"pe_dim * pe_dim"``.

Only numbers, variable names, ``+ - * / // % **``, parentheses and ``min``/``max``/``ceil``/
``floor``/``log2`` are allowed; anything else is a path-addressed :class:`CascadeError`.

The work is bounded whatever the text: an expression has at most ``MAX_CHARS`` characters and
``MAX_NODES`` syntax nodes, every intermediate value is a finite real number of magnitude at most
``MAX_MAGNITUDE`` (checked before a power is computed, so ``9**9**9`` is refused at once), and
domain errors (``log2(0)``, ``0 ** -1``, ``(-8) ** 0.5``) and wrong argument counts (``max()``,
``log2(1, 2)``) are errors naming the field.
"""
from __future__ import annotations

import ast
import math
import operator
from typing import Mapping

from einsum_ir.errors import CascadeError

MAX_CHARS = 500
MAX_NODES = 200
MAX_MAGNITUDE = 2.0 ** 100  # far above any spec quantity (bytes, Hz, pJ, um^2), far below overflow

_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
        ast.Pow: operator.pow}
_FUNCS = {"min": (min, 1, None), "max": (max, 1, None), "ceil": (math.ceil, 1, 1),
          "floor": (math.floor, 1, 1), "log2": (math.log2, 1, 1)}  # name -> (f, least, most args)


class _Eval:
    def __init__(self, text: str, env: Mapping[str, float], where: str):
        self.text = text
        self.env = env
        self.where = where

    def fail(self, message: str, hint: str | None = None) -> CascadeError:
        return CascadeError(f"{self.where}: {message}", hint=hint)

    def bounded(self, value):
        if isinstance(value, complex) or not math.isfinite(value):
            raise self.fail(f"{self.text!r} has no finite real value")
        if abs(value) > MAX_MAGNITUDE:
            raise self.too_large()
        return value

    def too_large(self) -> CascadeError:
        return self.fail(f"{self.text!r} is too large (a value of magnitude over 2**100)",
                         hint="spec quantities are bytes, Hz, pJ or um^2: far smaller")

    def ev(self, node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            return self.bounded(node.value)
        if isinstance(node, ast.Name):
            if node.id not in self.env:
                known = f"(known: {', '.join(sorted(self.env))})" if self.env else ""
                raise self.fail(f"unknown variable {node.id!r} in {self.text!r}",
                                hint="declare it under 'variables:' " + known)
            return self.bounded(self.env[node.id])
        if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
            return self.binary(node.op, self.ev(node.left), self.ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = self.ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in _FUNCS and not node.keywords:
            return self.call(node.func.id, [self.ev(a) for a in node.args])
        raise self.fail(f"{self.text!r} is not an arithmetic expression of numbers and variables",
                        hint="allowed: numbers, variables, + - * / // % **, ( ), "
                             "min, max, ceil, floor, log2")

    def binary(self, op, a, b):
        if isinstance(op, (ast.Div, ast.FloorDiv, ast.Mod)) and b == 0:
            raise self.fail(f"division by zero in {self.text!r}")
        if isinstance(op, ast.Pow):
            if a == 0 and b < 0:
                raise self.fail(f"0 to a negative power in {self.text!r}")
            if a < 0 and b != int(b):
                raise self.fail(f"a negative number to a fractional power in {self.text!r}")
            if abs(a) > 1 and b * math.log2(abs(a)) > 100:  # |a ** b| > 2**100: refuse unseen
                raise self.too_large()
        try:
            return self.bounded(_BIN[type(op)](a, b))
        except OverflowError:
            raise self.too_large() from None

    def call(self, name: str, args: list):
        fn, least, most = _FUNCS[name]
        if len(args) < least or (most is not None and len(args) > most):
            count = f"{least}" if least == most else f"at least {least}"
            raise self.fail(f"{name}() takes {count} argument{'' if least == 1 else 's'}, "
                            f"got {len(args)} in {self.text!r}")
        if name == "log2" and args[0] <= 0:
            raise self.fail(f"log2 of a number that is not positive in {self.text!r}")
        value = fn(args) if name in ("min", "max") else fn(args[0])
        return self.bounded(value)


def evaluate(value, env: Mapping[str, float], where: str) -> float:
    """The numeric value of a spec field (``where`` names it in errors). A number is returned as
    it is (``inf`` and ``nan`` included: the caller checks the field's range); an expression's
    value is always finite."""
    if isinstance(value, bool):
        raise CascadeError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):  # YAML's .inf and .nan: the field's own check refuses them
            return value
        return _Eval(repr(value), env, where).bounded(value)
    if not isinstance(value, str):
        raise CascadeError(f"{where}: expected a number or an expression, got {type(value).__name__}")
    if len(value) > MAX_CHARS:
        raise CascadeError(f"{where}: an expression of {len(value)} characters (at most {MAX_CHARS})")
    try:
        tree = ast.parse(value.strip(), mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        # ValueError: an integer literal over Python's 4,300-digit limit, or a NUL character
        raise CascadeError(f"{where}: cannot parse {value!r} as an arithmetic expression") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise CascadeError(f"{where}: the expression has more than {MAX_NODES} parts",
                           hint="write intermediate values as variables")
    result = _Eval(value, env, where).ev(tree.body)
    if isinstance(result, float) and result.is_integer() and abs(result) < 2 ** 53:
        return int(result)
    return result

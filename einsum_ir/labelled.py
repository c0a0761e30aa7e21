"""Labelled arrays and integer index arithmetic, shared by the interpreter and the existence analysis.

A *labelled array* is a numpy array whose axes are named by index variables, plus an existence
mask (None when every point exists). Index and predicate expressions evaluate to labelled int64
(or bool) arrays with these integer semantics:

* arithmetic is checked int64: a result outside [-2^63, 2^63) is an error, never a wrap;
* ``/`` is floor division and ``%`` takes the sign of the divisor (Python's ``//`` and ``%``);
  a zero divisor anywhere in the evaluated range is an error;
* a number must be an integer (``2.0`` is accepted, ``0.5`` and ``1e400`` are not).
"""
from __future__ import annotations

import contextvars
import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .errors import CascadeError
from .ir import COMPARISONS, Binary, Call, Expr, Name, Num, Unary

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
DEFAULT_MAX_MEMORY = 4 * 2 ** 30

# Bytes one array may take; the command line sets it from --max-memory.
max_memory: contextvars.ContextVar[int] = contextvars.ContextVar("max_memory",
                                                                default=DEFAULT_MAX_MEMORY)


@dataclass
class LArr:
    """``values`` has one axis per label; ``exists`` is None or a bool mask broadcastable to it."""

    labels: tuple[str, ...]
    values: np.ndarray
    exists: np.ndarray | None = None


def union_labels(*label_tuples: tuple[str, ...]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for labels in label_tuples:
        for label in labels:
            seen.setdefault(label)
    return tuple(seen)


def format_bytes(n: int) -> str:
    for unit, scale in (("TiB", 2 ** 40), ("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n} B"


def ensure_fits(shape, itemsize: int, what: str, span=None) -> None:
    """Refuses, before allocating, an array of ``shape`` larger than ``max_memory``."""
    need = math.prod(int(s) for s in shape) * itemsize
    limit = max_memory.get()
    if need > limit:
        raise CascadeError(f"{what} needs {format_bytes(need)} ({' x '.join(map(str, shape))} "
                           f"x {itemsize} B), more than the limit of {format_bytes(limit)}", span,
                           "use smaller sizes (--set P=...) or raise --max-memory")


def align(arr: LArr, labels: tuple[str, ...], sizes: Mapping[str, int] | None = None,
          full: bool = False):
    """``arr``'s values and mask reordered and expanded to broadcast against ``labels``
    (and, with ``full``, broadcast to the extents in ``sizes``)."""
    perm = [arr.labels.index(label) for label in labels if label in arr.labels]
    identity = perm == list(range(len(perm)))

    def expand(a: np.ndarray) -> np.ndarray:
        a = a if identity else np.transpose(a, perm)
        shape, k = [1] * len(labels), 0
        for i, label in enumerate(labels):
            if label in arr.labels:
                shape[i] = a.shape[k]
                k += 1
        return a.reshape(shape)

    values = expand(np.asarray(arr.values))
    exists = None if arr.exists is None else expand(np.asarray(arr.exists))
    if full:
        target = tuple(sizes[label] for label in labels)
        values = np.broadcast_to(values, target)
        if exists is not None:
            exists = np.broadcast_to(exists, target)
    return values, exists


def _bounds(a: np.ndarray) -> tuple[int, int]:
    if a.size == 0:
        return 0, 0
    return int(a.min()), int(a.max())


def _checked(op: str, a: np.ndarray, b: np.ndarray, span) -> np.ndarray:
    """``a op b`` in int64, refused when any result could leave the int64 range."""
    (alo, ahi), (blo, bhi) = _bounds(a), _bounds(b)
    if op == "+":
        lo, hi = alo + blo, ahi + bhi
    elif op == "-":
        lo, hi = alo - bhi, ahi - blo
    else:
        corners = (alo * blo, alo * bhi, ahi * blo, ahi * bhi)
        lo, hi = min(corners), max(corners)
    if lo < INT64_MIN or hi > INT64_MAX:
        raise CascadeError(f"integer overflow: the result of '{op}' leaves the int64 range "
                           f"(it reaches {hi if hi > INT64_MAX else lo})", span,
                           "index and predicate arithmetic is int64; use smaller constants")
    return {"+": np.add, "-": np.subtract, "*": np.multiply}[op](a, b)


def _divide(op: str, a: np.ndarray, b: np.ndarray, span) -> np.ndarray:
    if b.size and a.size and np.any(b == 0):
        raise CascadeError(f"{'division' if op == '/' else 'modulo'} by zero in an integer "
                           "expression", span, "the divisor must be non-zero for every index")
    if np.any((b == -1) & (a == INT64_MIN)):
        raise CascadeError("integer overflow in '/'", span, "index arithmetic is int64")
    return a // b if op == "/" else a % b


_COMPARE = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
            "==": np.equal, "!=": np.not_equal}


def integer_literal(expr: Num) -> int:
    value = expr.value
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer() or not INT64_MIN <= value <= INT64_MAX:
            raise CascadeError(f"an index or predicate needs an integer, not {value!r}", expr.span,
                               "index and predicate arithmetic is on integers")
        return int(value)
    return int(value)


class IndexEvaluator:
    """Evaluates index and predicate expressions to labelled int64/bool arrays.

    ``fixed`` holds the index variables pinned to one value (a stepped recurrence)."""

    def __init__(self, sizes: Mapping[str, int], fixed: Mapping[str, int] | None = None):
        self.sizes = sizes
        self.fixed = fixed or {}

    def __call__(self, expr: Expr) -> LArr:
        if isinstance(expr, (Num, Name)):
            return self._leaf(expr)
        if isinstance(expr, Unary):
            inner = self(expr.operand)
            if expr.op == "not":
                return LArr(inner.labels, ~inner.values.astype(bool))
            zero = np.zeros((), dtype=np.int64)
            return LArr(inner.labels, _checked("-", zero, inner.values, expr.span))
        if isinstance(expr, Call) and expr.func in ("abs", "min", "max"):
            return self._call(expr)
        if isinstance(expr, Binary):
            lhs, rhs = self(expr.lhs), self(expr.rhs)
            labels = union_labels(lhs.labels, rhs.labels)
            a, b = align(lhs, labels)[0], align(rhs, labels)[0]
            return LArr(labels, self._binary(expr, a, b))
        raise CascadeError("not an index or predicate expression", getattr(expr, "span", None),
                           "indices and predicates use integers, index variables and sizes")

    def _leaf(self, expr: Num | Name) -> LArr:
        if isinstance(expr, Num):
            return LArr((), np.asarray(integer_literal(expr), dtype=np.int64))
        if not expr.is_index:
            return LArr((), np.asarray(self.sizes[expr.name], dtype=np.int64))
        if expr.name in self.fixed:
            return LArr((), np.asarray(self.fixed[expr.name], dtype=np.int64))
        extent = self.sizes[expr.name.upper()]
        ensure_fits((extent,), 8, f"the range of index {expr.name}", expr.span)
        return LArr((expr.name,), np.arange(extent, dtype=np.int64))

    def _call(self, expr: Call) -> LArr:
        args = [self(a) for a in expr.args]
        labels = union_labels(*(a.labels for a in args))
        vals = [align(a, labels)[0] for a in args]
        if expr.func == "abs":
            zero = np.zeros((), dtype=np.int64)
            return LArr(labels, np.maximum(vals[0], _checked("-", zero, vals[0], expr.span)))
        return LArr(labels, (np.minimum if expr.func == "min" else np.maximum)(*vals))

    @staticmethod
    def _binary(expr: Binary, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        op = expr.op
        ensure_fits(np.broadcast_shapes(a.shape, b.shape), 8, "an index expression", expr.span)
        if op in ("and", "or"):
            a, b = a.astype(bool), b.astype(bool)
            return (a & b) if op == "and" else (a | b)
        if op in COMPARISONS:
            return _COMPARE[op](a, b)
        if op in ("/", "%"):
            return _divide(op, a, b, expr.span)
        return _checked(op, a, b, expr.span)

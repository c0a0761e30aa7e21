"""A softmax rank split into tiles: ``m`` becomes ``m1*M0 + m0`` in expressions (or ``(m1, m0)``
in the reads of retiled tensors), and the guard that empties the tail of a partial last tile."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ...exprs import coverage
from ...facts import Axis
from ...ir import Access, Binary, Call, Expr, Name, Unary
from ..rewrite import transform


@dataclass(frozen=True)
class Tiling:
    """``split rank = outer * inner``; ``retiled`` maps a tensor to its axis indexed by ``m``
    that becomes the two axes (m1, m0); reads of ``safe`` tensors are empty in the tail."""

    rank: str
    outer: str
    inner: str
    shapes: Mapping[str, tuple[Axis, ...]]
    retiled: Mapping[str, int] = field(default_factory=dict)
    safe: frozenset[str] = frozenset()

    @property
    def m(self) -> str:
        return self.rank.lower()

    @property
    def m1(self) -> str:
        return self.outer.lower()

    @property
    def m0(self) -> str:
        return self.inner.lower()

    @property
    def composite(self) -> Expr:
        return Binary("+", Binary("*", Name(self.m1), Name(self.inner)), Name(self.m0))

    def tile(self, expr: Expr | None) -> Expr | None:
        """``expr`` on the split indices: retiled reads take (m1, m0), every other m is m1*M0+m0."""
        if expr is None:
            return None
        return transform(expr, self._tile_node)

    def _tile_node(self, node: Expr) -> Expr | None:
        m, inner = self.m, Name(self.inner)
        if isinstance(node, Binary) and node.op in ("/", "%") and node.lhs == Name(m) \
                and node.rhs == inner:  # (m1*M0 + m0) / M0 == m1, and % M0 == m0
            return Name(self.m1 if node.op == "/" else self.m0)
        if isinstance(node, Access) and node.tensor in self.retiled:
            axis = self.retiled[node.tensor]
            indices: list[Expr] = []
            for k, i in enumerate(node.indices):
                if k == axis:
                    indices += [Name(self.m1), Name(self.m0)]
                else:
                    indices.append(self.tile(i))
            return Access(node.tensor, tuple(indices), node.span)
        if isinstance(node, Name) and node.name == m:
            return self.composite
        return None

    def guard(self, body: Expr) -> Expr | None:
        """``m1*M0 + m0 < M`` unless a read past the end already empties the tail."""
        if self.tail_safe(body):
            return None
        return Binary("<", self.composite, Name(self.rank))

    def tail_safe(self, expr: Expr) -> bool:
        """Whether ``expr`` is empty at every point of the tail past the end of the rank."""
        if isinstance(expr, Access):
            if expr.tensor in self.retiled or expr.tensor in self.safe:
                return True
            shape = self.shapes.get(expr.tensor, ())
            composite = self.composite
            return any(i == composite and k < len(shape) and shape[k].rank == self.rank
                       and shape[k].extra == 0 for k, i in enumerate(expr.indices))
        if isinstance(expr, Binary):
            if expr.op in ("and", "or"):
                return False
            parts = [self.tail_safe(expr.lhs), self.tail_safe(expr.rhs)]
            if expr.op in ("+", "-"):  # a union of the sides that create points (coverage)
                cover = coverage(expr.lhs, expr.rhs)
                if any(cover):
                    return all(p for p, c in zip(parts, cover, strict=True) if c)
            return any(parts)
        if isinstance(expr, Call):
            parts = [self.tail_safe(a) for a in expr.args]
            return all(parts) if expr.func in ("max", "min") and len(parts) == 2 else any(parts)
        if isinstance(expr, Unary):
            return self.tail_safe(expr.operand)
        return False

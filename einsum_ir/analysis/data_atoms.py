"""Data-dependent predicates and gathers as the analyses see them (see docs/analysis.md).

An *atom* is a maximal part of a ``where`` predicate that reads a tensor (``Adj[p,m] > 0``,
``RK[p/BS, m/BS] < KB``): its truth is known only with the data. ``and``, ``or`` and ``not`` over
atoms and index comparisons stay structural. An atom under an even number of ``not`` is
*positive*: taking it true can only add points (existence is monotone in the predicate), so the
predicate with every atom at its *upper* value (true if positive, false if not) bounds the points
from above. A *gather* is an access whose index reads a tensor (``K[Idx[p,j], e]``).

:func:`structural_cascade` rewrites a cascade so that the region and dense counters, which know
only index arithmetic, count it: each atom becomes a constant truth and each gather index the
constant position 0 (the gathered tensor must be an input: every row of it exists, so row 0 stands
for the row the data picks). Both keep the atom's index variables (``0 * (p + m) == 0``), so no
iteration space changes.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

from ..data_masks import reads_tensors
from ..errors import CascadeError
from ..ir import Access, Binary, Call, Cascade, Einsum, Expr, Name, Num, Unary, index_vars, walk


@dataclass(frozen=True)
class Atom:
    """One data-dependent part of an Einsum's predicate (numbered in predicate order)."""

    key: str  # the Einsum's report label
    number: int
    expr: Expr
    positive: bool  # under an even number of ``not``: true is its upper value
    tensors: tuple[str, ...]  # the tensors it reads
    vars: tuple[str, ...]  # the index variables it depends on

    @property
    def label(self) -> str:
        return f"{self.key}#{self.number}"


def atoms_of(einsum: Einsum) -> tuple[Atom, ...]:
    """The atoms of ``einsum``'s predicate, in the order :func:`substitute` numbers them."""
    found: list[Atom] = []

    def visit(expr: Expr, positive: bool) -> None:
        if isinstance(expr, Binary) and expr.op in ("and", "or"):
            visit(expr.lhs, positive)
            visit(expr.rhs, positive)
        elif isinstance(expr, Unary) and expr.op == "not":
            visit(expr.operand, not positive)
        elif reads_tensors(expr):
            tensors = tuple(dict.fromkeys(n.tensor for n in walk(expr) if isinstance(n, Access)))
            found.append(Atom(str(einsum.id), len(found), expr, positive, tensors,
                              index_vars(expr)))

    if einsum.where is not None:
        visit(einsum.where, True)
    return tuple(found)


def _zero(vars_: tuple[str, ...]) -> Expr:
    """0, written over ``vars_`` so that they stay in the iteration space."""
    if not vars_:
        return Num(0)
    total: Expr = Name(vars_[0])
    for v in vars_[1:]:
        total = Binary("+", total, Name(v))
    return Binary("*", Num(0), total)


def constant_truth(value: bool, vars_: tuple[str, ...]) -> Expr:
    return Binary("==" if value else "!=", _zero(vars_), Num(0))


def substitute(einsum: Einsum, truth: Mapping[int, bool]) -> Expr | None:
    """``einsum``'s predicate with atom ``n`` replaced by the constant ``truth[n]`` (its upper
    value where ``truth`` does not say)."""
    count = [0]

    def visit(expr: Expr, positive: bool) -> Expr:
        if isinstance(expr, Binary) and expr.op in ("and", "or"):
            return replace(expr, lhs=visit(expr.lhs, positive), rhs=visit(expr.rhs, positive))
        if isinstance(expr, Unary) and expr.op == "not":
            return replace(expr, operand=visit(expr.operand, not positive))
        if not reads_tensors(expr):
            return expr
        n = count[0]
        count[0] += 1
        return constant_truth(truth.get(n, positive), index_vars(expr))

    return None if einsum.where is None else visit(einsum.where, True)


# ---------------------------------------------------------------------------- gathers


@dataclass(frozen=True)
class Gather:
    """``K[b,h,Idx[b,h,p,j],e]``: the gathered tensor and the index tensors its indices read."""

    key: str
    access: Access
    index_tensors: tuple[str, ...]


def gathers_of(cascade: Cascade, einsum: Einsum) -> tuple[Gather, ...]:
    """The gathers ``einsum`` reads through; a scatter (an output index that reads a tensor) or a
    gather from an intermediate is refused with its location."""
    for index in einsum.output.indices:
        if reads_tensors(index):
            raise CascadeError(f"{einsum.name}: the work and existence analysis does not support "
                               "scatters through index tensors (an output index that reads a "
                               "tensor) yet", index.span, "evaluate with the interpreter "
                               "(cascade eval)", source=cascade.source)
    out = []
    for access in _all_accesses(einsum):
        inner = [n.tensor for index in access.indices if reads_tensors(index)
                 for n in walk(index) if isinstance(n, Access)]
        if not inner:
            continue
        if cascade.input(access.tensor) is None:
            raise CascadeError(f"the work and existence analysis counts gathers from inputs only "
                               f"({access.tensor} is computed by the cascade)", access.span,
                               "gather from an input, or count with the data "
                               "(count_work(..., inputs=...))", source=cascade.source)
        out.append(Gather(str(einsum.id), access, tuple(dict.fromkeys(inner))))
    return tuple(out)


def _all_accesses(einsum: Einsum):
    for expr in (einsum.body, einsum.where):
        if expr is not None:
            yield from (n for n in walk(expr) if isinstance(n, Access))


def _ungather(expr: Expr) -> Expr:
    """``expr`` with every index that reads a tensor replaced by 0 over its index variables."""
    if isinstance(expr, Access):
        return replace(expr, indices=tuple(_zero(index_vars(i)) if reads_tensors(i)
                                           else _ungather(i) for i in expr.indices))
    if isinstance(expr, Unary):
        return replace(expr, operand=_ungather(expr.operand))
    if isinstance(expr, Binary):
        return replace(expr, lhs=_ungather(expr.lhs), rhs=_ungather(expr.rhs))
    if isinstance(expr, Call):
        return replace(expr, args=tuple(_ungather(a) for a in expr.args))
    return expr


# ---------------------------------------------------------------------------- the rewrite


def is_data_dependent(cascade: Cascade) -> bool:
    """Whether a predicate reads a tensor or an access gathers through an index tensor."""
    return any(atoms_of(e) or any(reads_tensors(i) for a in (e.output, *e.reads())
                                  for i in a.indices) for e in cascade.einsums)


def structural_cascade(cascade: Cascade, truth: Mapping[str, Mapping[int, bool]]) -> Cascade:
    """``cascade`` with its atoms replaced by constants (``truth[key][n]``, else the atom's
    upper value) and its gathers by reads of position 0 (see the module docstring)."""
    for einsum in cascade.einsums:
        gathers_of(cascade, einsum)  # refuses what cannot be counted
    return cascade.replace_einsums(
        replace(e, body=_ungather(e.body), where=substitute(e, truth.get(str(e.id), {})))
        for e in cascade.einsums)

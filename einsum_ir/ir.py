"""The Cascade IR: an immutable description of a cascade of extended Einsums.

Every node is a frozen dataclass. Source spans ride along for error messages but are excluded from
equality and hashing, so a cascade printed and parsed back compares equal to the original.

One expression family serves three contexts:
* size expressions (``M / M0``) over rank and parameter names,
* index expressions (``m1*M0 + m0``, ``h / G``) over index variables and sizes, where ``/`` is
  integer (floor) division,
* value expressions (``exp(QK[b,h,p,m] - GM[b,h,p])``), where ``/`` is real division and a bare
  index variable stands for its integer value.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Iterator, Union

# Scalar functions of the value language, with their arity.
FUNCTIONS = {
    "exp": 1, "log": 1, "sqrt": 1, "abs": 1, "relu": 1, "sigmoid": 1, "tanh": 1, "elu": 1,
    "silu": 1, "gelu": 1, "softplus": 1, "recip": 1, "square": 1, "floor": 1, "ceil": 1,
    "max": 2, "min": 2, "pow": 2,
}

COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")
LOGICAL = ("and", "or")


@dataclass(frozen=True)
class Span:
    """A region of a source file (1-based lines and columns; end column exclusive)."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int


def _span() -> Span | None:
    return field(default=None, compare=False, repr=False)


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Num:
    value: float | int
    span: Span | None = _span()


@dataclass(frozen=True)
class Name:
    """A bare name: an index variable (lower case) or a rank/parameter size (upper case)."""

    name: str
    span: Span | None = _span()

    @property
    def is_index(self) -> bool:
        return self.name[0].islower()


@dataclass(frozen=True)
class Access:
    """A tensor read (or, on a left-hand side, a write) ``T[i, j+1, k/G]``."""

    tensor: str
    indices: tuple["Expr", ...]
    span: Span | None = _span()


@dataclass(frozen=True)
class Unary:
    op: str  # "-" or "not"
    operand: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True)
class Binary:
    op: str  # arithmetic, comparison or logical operator
    lhs: "Expr"
    rhs: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple["Expr", ...]
    span: Span | None = _span()


Expr = Union[Num, Name, Access, Unary, Binary, Call]


def children(expr: Expr, indices: bool = True) -> tuple[Expr, ...]:
    """The direct subexpressions of ``expr`` (``indices=False``: not a read's indices, the
    integer positions, only what computes values)."""
    if isinstance(expr, Access):
        return tuple(expr.indices) if indices else ()
    if isinstance(expr, Unary):
        return (expr.operand,)
    if isinstance(expr, Binary):
        return (expr.lhs, expr.rhs)
    if isinstance(expr, Call):
        return tuple(expr.args)
    return ()


def walk(expr: Expr, indices: bool = True) -> Iterator[Expr]:
    """Pre-order traversal of an expression tree (``indices=False``: not into reads' indices)."""
    yield expr
    for child in children(expr, indices):
        yield from walk(child, indices)


def index_vars(expr: Expr | None) -> tuple[str, ...]:
    """Index variables used anywhere in ``expr``, in order of first appearance."""
    if expr is None:
        return ()
    seen: dict[str, None] = {}
    for node in walk(expr):
        if isinstance(node, Name) and node.is_index:
            seen.setdefault(node.name)
    return tuple(seen)


def accesses(expr: Expr | None) -> tuple[Access, ...]:
    if expr is None:
        return ()
    return tuple(node for node in walk(expr) if isinstance(node, Access))


# ---------------------------------------------------------------- declarations


@dataclass(frozen=True)
class SizeDecl:
    """``rank M = 1024`` or ``param W = 64``: a named integer with a default value.

    Ranks give extents to index variables (index ``m1`` ranges over rank ``M1``); parameters are
    numbers used in expressions only: integers, or reals (a default with a real literal,
    ``param CAP = 30.0``; see :func:`einsum_ir.sizes.real_params`), which only values may use.
    ``index m2 : P`` declares the rank ``M2`` with ``index_of`` set: an alias of ``P`` that exists
    to name a second index over it, printed back the same way and not settable on its own.
    """

    name: str
    default: Expr
    is_rank: bool = True
    index_of: bool = False  # declared as ``index m2 : P``: rank M2 is P under a second index name
    span: Span | None = _span()


@dataclass(frozen=True)
class Split:
    """``split M = M1 * M0``: M1 = ceil(M / M0); points past M in the last tile are empty."""

    rank: str
    outer: str
    inner: str
    span: Span | None = _span()


@dataclass(frozen=True)
class TensorDecl:
    """An input or output declaration; each axis is named by the index of its rank."""

    name: str
    axes: tuple[str, ...]  # index names, e.g. ("b", "h", "p", "e"); axis k has rank axes[k].upper()
    empty: float = 0.0  # the value an output's empty points are written as (``empty -inf``)
    span: Span | None = _span()

    @property
    def ranks(self) -> tuple[str, ...]:
        return tuple(axis.upper() for axis in self.axes)


@dataclass(frozen=True)
class Einsum:
    """``OUT[lhs] = reducer[reduced] body where predicate``.

    ``reducer`` is None for a pure map (no reduced index); an Einsum written without a reducer but
    with indices missing from its output is normalised by the parser to ``reducer="sum"`` with
    ``implicit_sum=True`` so that it prints back the way it was written.
    """

    output: Access
    body: Expr
    reducer: str | None = None
    reduced: tuple[str, ...] = ()
    where: Expr | None = None
    implicit_sum: bool = False
    span: Span | None = _span()

    @property
    def name(self) -> str:
        return self.output.tensor

    @property
    def iteration_space(self) -> tuple[str, ...]:
        """Every index variable of the Einsum: output indices first, then reduced ones."""
        seen: dict[str, None] = {}
        for expr in (*self.output.indices, self.body, self.where):
            for var in index_vars(expr):
                seen.setdefault(var)
        for var in self.reduced:
            seen.setdefault(var)
        return tuple(seen)

    @property
    def output_vars(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for index in self.output.indices:
            for var in index_vars(index):
                seen.setdefault(var)
        return tuple(seen)

    def reads(self) -> tuple[Access, ...]:
        return accesses(self.body) + accesses(self.where)

    @property
    def role(self) -> Role:
        """What this Einsum defines of its tensor: read off the output indices (an integer index
        is an initial value, ``v+1`` a recurrence update, plain variables the one definition)."""
        role = Role.DEF
        for index in self.output.indices:
            if isinstance(index, Num):
                return Role.INIT
            if isinstance(index, Binary):
                role = Role.UPDATE
        return role

    @property
    def id(self) -> EinsumId:
        return EinsumId(self.output.tensor, self.role)


class Role(Enum):
    """The part an Einsum plays for its tensor."""

    DEF = "def"  # the tensor's one definition
    INIT = "init"  # the initial value of a recurrence (``RM[b, h, p, 0] = -inf``)
    UPDATE = "update"  # the recurrence update (``RM[b, h, p, m1+1] = ...``)


@dataclass(frozen=True)
class EinsumId:
    """The identity of an Einsum within a verified cascade: its tensor and its role.

    A verified cascade defines each tensor once, or by an initial value plus one update, so no two
    of its Einsums share an id. ``str`` gives the label reports use: the tensor's name, or
    ``T.init`` for an initial value.
    """

    tensor: str
    role: Role = Role.DEF

    def __str__(self) -> str:
        return f"{self.tensor}.init" if self.role is Role.INIT else self.tensor


@dataclass(frozen=True)
class Cascade:
    """An ordered list of Einsums with the declarations they need."""

    sizes: tuple[SizeDecl, ...]
    splits: tuple[Split, ...]
    inputs: tuple[TensorDecl, ...]
    outputs: tuple[TensorDecl, ...]
    einsums: tuple[Einsum, ...]
    name: str = field(default="cascade", compare=False)
    source: str | None = field(default=None, compare=False, repr=False)

    # Convenience lookups (derived, never stored).
    def size_decl(self, name: str) -> SizeDecl | None:
        return next((s for s in self.sizes if s.name == name), None)

    def split_for(self, rank: str) -> Split | None:
        """The split that divides ``rank`` itself, if any."""
        return next((s for s in self.splits if s.rank == rank), None)

    def rank_names(self) -> tuple[str, ...]:
        names = [s.name for s in self.sizes if s.is_rank]
        for split in self.splits:
            names.append(split.outer)
        return tuple(names)

    def input(self, name: str) -> TensorDecl | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorDecl | None:
        return next((t for t in self.outputs if t.name == name), None)

    def einsum(self, eid: EinsumId) -> Einsum:
        """The Einsum with id ``eid`` (KeyError if there is none)."""
        for einsum in self.einsums:
            if einsum.id == eid:
                return einsum
        raise KeyError(eid)

    def positions(self) -> dict[EinsumId, int]:
        """Each Einsum's position in :attr:`einsums`, by id."""
        return {e.id: k for k, e in enumerate(self.einsums)}

    def definitions(self, tensor: str) -> tuple[Einsum, ...]:
        return tuple(e for e in self.einsums if e.output.tensor == tensor)

    def tensor_names(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for decl in self.inputs:
            seen.setdefault(decl.name)
        for einsum in self.einsums:
            seen.setdefault(einsum.output.tensor)
        return tuple(seen)

    def replace_einsums(self, einsums) -> "Cascade":
        return replace(self, einsums=tuple(einsums))

"""The typed tile IR of the Triton lowering: expression nodes and statements.

The lowering builds these frozen nodes; :mod:`backends.triton.render` alone spells them as
Triton source. Nodes are values (hashable, compared structurally), so memo keys, validity terms
and the facts the rewrites read (``max_of``, ``lin``, ``dot``) hold nodes, never text.

Expressions: names and literals (:class:`Var`, :class:`Int`, :class:`Const`), index sources
(:class:`ProgramId`, :class:`Arange`), operations (:class:`Op`: an element-wise operation of the
spelling table; :class:`BinOp`: infix index arithmetic and compares; :class:`Call`: a ``tl``
function), :class:`Where`, :class:`Select`, :class:`Load`, :class:`Dot`, :class:`Reduce`,
:class:`Full`, :class:`Zeros`, :class:`BroadcastTo`, :class:`Cast`, :class:`Expand` (a 1-D tile
as a column or a row), :class:`Insert` (new unit axes at any positions of an N-D tile),
:class:`Permute` (the axes of an N-D tile reordered), and the n-ary joins :class:`Offset` (pointer offsets), :class:`Conj` / :class:`Disj` (mask conjuncts).

Statements: :class:`Assign`, :class:`StoreStmt`, :class:`For` (a loop with its carried state
assigned in its body), :class:`If`, :class:`Comment`, :class:`Blank`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union


class Node:
    """An expression of the tile IR."""

    __slots__ = ()


@dataclass(frozen=True)
class Var(Node):
    """A named value: a local, a kernel argument, the loop counter ``it``."""

    name: str


@dataclass(frozen=True)
class Int(Node):
    value: int


@dataclass(frozen=True)
class Const(Node):
    """A float literal (``inf`` and ``nan`` included)."""

    value: float


@dataclass(frozen=True)
class Bool(Node):
    """``True`` / ``False``."""

    value: bool


def scalar_test(cmp: Node) -> Node:
    """A comparison of a scalar as ``tl.where(cmp, True, False)``: Triton's interpreter mistypes
    a compared scalar that a reduction made once ``&`` broadcasts it over a tile."""
    return Where(cmp, Bool(True), Bool(False))


@dataclass(frozen=True)
class ProgramId(Node):
    axis: int


@dataclass(frozen=True)
class Arange(Node):
    """``0 .. block - 1``: the offsets of one tile."""

    block: Node


@dataclass(frozen=True)
class Op(Node):
    """An operation of the spelling table (``exp``, ``+``, ``safe_sub``, ``f32``...)."""

    op: str
    args: tuple


@dataclass(frozen=True)
class BinOp(Node):
    """Infix ``x op y`` (index arithmetic, compares, ``&``/``|``); ``wrap``: parenthesised."""

    op: str
    x: Node
    y: Node
    wrap: bool = True


@dataclass(frozen=True)
class Call(Node):
    """A ``tl`` function of the table (``maximum``, ``cdiv``, ``exp2``, ``trans``...)."""

    fn: str
    args: tuple


@dataclass(frozen=True)
class Where(Node):
    cond: Node
    x: Node
    y: Node


@dataclass(frozen=True)
class Select(Node):
    """A scalar ``x if cond else y``."""

    cond: Node
    x: Node
    y: Node


@dataclass(frozen=True)
class Offset(Node):
    """``sum(index * stride)``: a pointer offset."""

    terms: tuple  # ((index node, stride node), ...)


@dataclass(frozen=True)
class Conj(Node):
    """The conjunction of mask terms (spelled without extra parentheses)."""

    items: tuple


@dataclass(frozen=True)
class Disj(Node):
    items: tuple


@dataclass(frozen=True)
class Load(Node):
    ptr: Node
    offset: Node
    mask: Node | None = None  # masked points read 0.0


@dataclass(frozen=True)
class Dot(Node):
    """``tl.dot(a, b)``, accumulating into ``acc`` when given."""

    a: Node
    b: Node
    acc: Node | None = None


@dataclass(frozen=True)
class Reduce(Node):
    """``tl.sum`` / ``tl.max`` / ``tl.min`` of ``x`` along tile axis ``axis``."""

    fn: str
    x: Node
    axis: int


@dataclass(frozen=True)
class Shape(Node):
    blocks: tuple


@dataclass(frozen=True)
class Full(Node):
    shape: Shape
    value: Node


@dataclass(frozen=True)
class Zeros(Node):
    shape: Shape
    dtype: str = "float32"


@dataclass(frozen=True)
class BroadcastTo(Node):
    x: Node
    shape: Shape


@dataclass(frozen=True)
class Cast(Node):
    """``x`` in fp32, or (``like`` a pointer) in that pointer's element type."""

    x: Node
    like: Node | None = None


@dataclass(frozen=True)
class Expand(Node):
    """A 1-D tile as a column (``side="row"``: ``x[:, None]``) or a row (``x[None, :]``)."""

    x: Node
    side: str


@dataclass(frozen=True)
class Insert(Node):
    """``x`` with unit axes inserted (``x[:, None, :]``): ``new[k]`` says whether axis ``k`` of
    the result is a new one; the kept axes are ``x``'s, in order."""

    x: Node
    new: tuple  # of bool, one per axis of the result


@dataclass(frozen=True)
class Permute(Node):
    """``x`` with its axes reordered: axis ``k`` of the result is axis ``dims[k]`` of ``x``."""

    x: Node
    dims: tuple  # of int


# ------------------------------------------------------------------------------------ statements


@dataclass(frozen=True)
class Assign:
    target: str
    value: Node


@dataclass(frozen=True)
class StoreStmt:
    ptr: Node
    offset: Node
    value: Node
    mask: Node | None = None
    atomic: bool = False  # tl.atomic_add: partial sums of a split loop


@dataclass(frozen=True)
class For:
    """``for it in range(lo, hi)`` over the streamed rank."""

    lo: Node
    hi: Node
    body: tuple


@dataclass(frozen=True)
class If:
    cond: Node
    body: tuple
    note: str = ""  # why the block is conditional (a trailing comment)


@dataclass(frozen=True)
class Comment:
    text: str


@dataclass(frozen=True)
class Blank:
    pass


Stmt = Union[Assign, StoreStmt, For, If, Comment, Blank]
LOOP_VAR = Var("it")


def is_simple(node: Node) -> bool:
    """A name or an integer literal: cheap to repeat, never worth a local of its own."""
    return isinstance(node, (Var, Int))


def children(node) -> tuple:
    """The nodes a node or statement reads (in order)."""
    if isinstance(node, (Var, Int, Const, Bool, ProgramId, Comment, Blank)) or node is None:
        return ()
    if isinstance(node, (Op, Call)):
        return node.args
    if isinstance(node, (Offset,)):
        return tuple(x for pair in node.terms for x in pair)
    if isinstance(node, (Conj, Disj)):
        return node.items
    if isinstance(node, Shape):
        return node.blocks
    if isinstance(node, For):
        return (node.lo, node.hi, *node.body)
    if isinstance(node, If):
        return (node.cond, *node.body)
    return tuple(v for v in vars(node).values() if isinstance(v, (Node, Shape)))


def names_read(node) -> list[str]:
    """Every :class:`Var` a node or statement reads (an assignment's target is not read)."""
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Var):
            out.append(n.name)
        else:
            stack.extend(children(n))
    return out


def reducers_used(statements) -> set[str]:
    """The reducers of every :class:`Reduce` in ``statements`` (what helpers a module needs)."""
    out, stack = set(), list(statements)
    while stack:
        n = stack.pop()
        if isinstance(n, Reduce):
            out.add(n.fn)
        stack.extend(children(n))
    return out


def chain_calls(fn: str, items: list) -> Node:
    """``fn(fn(a, b), c)``: a call folded over its items, as the code reads."""
    out = items[0]
    for x in items[1:]:
        out = Call(fn, (out, x))
    return out

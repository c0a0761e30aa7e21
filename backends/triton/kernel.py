"""The emission state of one kernel: statements, names, sizes, bindings of index variables."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from backends.gpu.layout import Limit
from backends.gpu.plan import Lowering
from einsum_ir.errors import CascadeError
from einsum_ir.exprs import rank_root
from einsum_ir.ir import Einsum, Name, Num, walk
from einsum_ir.size_exprs import SizeFold

from .names import Namespace
from .tile_ir import (
    Arange,
    Assign,
    BinOp,
    Call,
    Const,
    Expand,
    Insert,
    Int,
    Node,
    Op,
    Permute,
    Shape,
    Var,
)
from .tiles import (
    Idx,
    _err,
)


TILE_RANKS = "the Triton lowering handles {}-D tiles"  # what rows on the grid or 3-D tiles avoid
MAX_TILE_RANKS = 3  # Config.tile_ranks may allow up to this many
# a 3-D tile's elements at most: its values live in registers (three blocks of 16 x 16 x 64)
MAX_TILE_ELEMENTS = 16384
_RANK_WORDS = {2: "two", 3: "three"}


def broadcast(value: Node, axes, target) -> Node:
    """``value`` over tile ``axes`` laid out over ``target`` (a superset): its axes permuted
    into ``target``'s order, then unit axes inserted for the others (the 2-D cases spelled as
    the tutorials write them: ``x[:, None]``, ``x[None, :]``, ``tl.trans(x)``)."""
    axes, target = tuple(axes), tuple(target)
    if axes == target or not axes:
        return value
    if len(set(axes)) != len(axes) or not set(axes) <= set(target):
        raise CascadeError(f"cannot broadcast a tile over {axes} to {target}")
    if len(target) == 2 and len(axes) == 1:
        return Expand(value, "row" if axes[0] == target[0] else "col")
    if len(target) == 2:
        return Call("trans", (value,))
    order = tuple(a for a in target if a in axes)
    if order != axes:
        value = Permute(value, tuple(axes.index(a) for a in order))
    if len(order) < len(target):
        value = Insert(value, tuple(a not in axes for a in target))
    return value


class _SizeNodes(SizeFold[Node]):
    """A size expression as index arithmetic (every operation parenthesised, ``/`` as ``//``)."""

    def __init__(self, spell):
        self.spell = spell

    def num(self, node) -> Node:
        return Int(int(node.value))

    def name(self, node) -> Node:
        return self.spell(node.name)

    def neg(self, value: Node) -> Node:
        return Op("neg", (value,))

    def binary(self, node, lhs: Node, rhs: Node) -> Node:
        return BinOp("//" if node.op == "/" else node.op, lhs, rhs)

    def call(self, node, args) -> Node:
        return Call(node.func, tuple(args))  # Python's min/max: a size is a scalar


@dataclass(frozen=True)
class PhaseMode:
    """How a phase's kernel runs, fixed when it is built."""

    has_row: bool = True  # grid axis 0 walks the row blocks
    split_stream: bool = False  # programs of grid axis 0 reduce slices, added atomically
    parallel: bool = False  # one loop step per program (grid axis 0), no carried state
    scan_inc: tuple = ()  # (recurrence, update Einsum, increment expr): store increments
    scan_pre: frozenset = frozenset()  # recurrences read from their exclusive prefix in memory
    extra_ranks: tuple = ()  # scratch tensors of the scan: (name, ranks)

    @property
    def extra(self) -> dict:
        return dict(self.extra_ranks)


@dataclass(frozen=True)
class PhaseSpec:
    """What one kernel computes, fixed before it is emitted."""

    name: str
    loops: tuple  # the loops over the streamed rank (backends.gpu.schedule.Loop)
    post: tuple = ()  # Einsums computed and stored after the loops
    store_finals: tuple = ()  # tensors this phase finishes into scratch for a later one
    phase_reads: Mapping = field(default_factory=dict)  # tensor -> ranks, read from scratch
    nan_reads: frozenset = frozenset()  # of those, the ones holding NaN at their empty points
    mode: PhaseMode = PhaseMode()


@dataclass
class Signature:
    """The parameters the kernel's code uses, collected while it is emitted."""

    pointers: list = field(default_factory=list)  # tensors passed by pointer, in order
    strides: dict = field(default_factory=dict)  # tensor -> its stride parameters
    sizes: list = field(default_factory=list)  # runtime sizes (cascade names; NSPLIT_ARG)
    blocks: set = field(default_factory=set)  # block constexprs
    evens: dict = field(default_factory=dict)  # rank -> blocks whose EVEN_ flag is read


@dataclass
class LoopScope:
    """The loop being emitted: its body and the values that exist only inside it."""

    loop: object  # backends.gpu.schedule.Loop
    block: str | None  # the block constexpr of the loop's tile
    body: list = field(default_factory=list)  # statements
    memo: dict = field(default_factory=dict)  # values that vary in the loop, by key
    newval: dict = field(default_factory=dict)  # recurrence -> Tile of its value after the step


class KernelGen:
    """Emits one @triton.jit kernel (one phase): a fixed spec, the signature it collects, the
    statements, and the loop being emitted (``loop``, None outside loops)."""

    def __init__(self, low: Lowering, names: Namespace, spec: PhaseSpec):
        self.low = low
        self.names = names
        self.spec = spec
        self.scope = names.scope()  # the kernel's locals
        self.sig = Signature()
        self.lines: list = []  # statements (tile_ir) of the kernel
        self.loop: LoopScope | None = None
        self.memo_inv: dict = {}  # values that do not vary in a loop, by key
        self.bind: dict = {}  # var -> Idx in the current context
        self.home_bind: dict | None = None  # the bindings outside inlined Einsums, inside one
        self.carried: dict = {}  # recurrence -> local holding its carried (old) value
        self.finals: dict = {}  # tensor -> Tile of the finished value
        self.nan_finals: set = set()  # finals stored to scratch with NaN at their empty points
        # a streamed reduction's facts for its final tile: (the identity marking an empty row of
        # a masked max/min, the validity terms that do not change in the loop, the local that
        # counts whether a step met a point, or None)
        self.acc_facts: dict = {}
        # masks that bound an index value by a rank's extent: mask -> {(rank, value)}; padding
        # for an Einsum one of whose index variables takes that value (masks.MaskGen.padding)
        self.pad_bounds: dict = {}
        self.evaluating: list = []  # the Einsums being evaluated, innermost (inlined) last
        self.bound_codes: dict = {}  # mask of a streamed rank's bound -> (rank, block)

    @property
    def mode(self) -> PhaseMode:
        return self.spec.mode

    @property
    def cur_block(self) -> str | None:
        return self.loop.block if self.loop is not None else None

    def memo(self, variant: bool) -> dict:
        """Where a value is memoised: in the loop when it varies there (a varying value outside
        a loop is never reused)."""
        if not variant:
            return self.memo_inv
        return self.loop.memo if self.loop is not None else {}

    # ----------------------------------------------------------------- emission helpers
    def fresh(self, hint: str) -> str:
        return self.scope.fresh(hint)

    def emit(self, hint: str, value: Node, variant: bool) -> Var:
        """``value`` assigned to a fresh local, in the loop body when it varies there."""
        name = self.fresh(hint)
        self.stmt(Assign(name, value), variant)
        return Var(name)

    def stmt(self, stmt, variant: bool = True):
        target = self.loop.body if (variant and self.loop is not None) else self.lines
        target.append(stmt)

    def size_code(self, name: str) -> Node:
        low = self.low
        if name in low.sizes and low.is_baked(name):
            v = low.sizes[name]
            return Int(v) if isinstance(v, int) else Const(v)
        s = low.split_outer_of(name)
        if s is not None:
            return Call("cdiv", (self.size_code(s.rank), self.size_code(s.inner)))
        d = low.c.size_decl(name)
        if d is not None and d.is_rank and not any(
                rank_root(low.c, r) == rank_root(low.c, name) for t in low.c.inputs for r in t.ranks) and \
                not isinstance(d.default, Num):
            return Op("paren", (_SizeNodes(self.size_code).fold(d.default),))
        root = rank_root(low.c, name)
        if root != name and not any(name in t.ranks for t in low.c.inputs):
            return self.size_code(root)
        if name not in self.sig.sizes:
            self.sig.sizes.append(name)
        return Var(self.names.size(name))

    def index_size_code(self, name: str) -> Node:
        """A size in index arithmetic: the tile of a streamed split by its block name (``it *
        BLOCK_M0``, as the tutorial writes it), other sizes as :meth:`size_code` spells them."""
        low = self.low
        split = low.split_inner_of(name)
        stream = low.roles.stream_rank
        if split is not None and stream and rank_root(low.c, split.rank) == rank_root(low.c, stream):
            var = next((v for v in low.roles.block if v.upper() == name), None)
            if var is not None and int(low.roles.block[var][1]) == int(low.sizes[name]):
                return self.blk(var)
        return self.size_code(name)

    def shape_of(self, axes) -> Shape:
        return Shape(tuple(self.blk(a) for a in axes))

    def blk(self, var: str) -> Var:
        """The block-size constexpr of an index variable's tile (a parameter of the kernel)."""
        name = self.low.roles.block[var][0]
        self.sig.blocks.add(name)
        return Var(name)

    def bcast(self, value: Node, axes: tuple, target: tuple) -> Node:
        return broadcast(value, axes, target)

    def need2d(self, axes, node):
        """Refuses a value over more tile ranks than the mapping allows (``Config.tile_ranks``),
        or a 3-D tile over more than MAX_TILE_ELEMENTS elements (registers), at ``node``: a
        ``Limit.TILE_RANKS`` refusal, which rows on the grid or 3-D tiles may avoid."""
        limit = min(self.low.cfg.tile_ranks, MAX_TILE_RANKS)
        if len(axes) > limit:
            raise _err(f"this expression needs a {len(axes)}-D tile over "
                       f"{', '.join(axes)}; {TILE_RANKS.format(limit)}", node,
                       f"contract or reduce earlier so that each value spans at most "
                       f"{_RANK_WORDS[limit]} tile ranks", Limit.TILE_RANKS)
        if len(axes) > 2:
            blocks = [int(self.low.roles.block[a][1]) for a in axes if a in self.low.roles.block]
            if math.prod(blocks) > MAX_TILE_ELEMENTS:
                raise _err(f"this expression needs a 3-D tile over {', '.join(axes)} of "
                           f"{' x '.join(map(str, blocks))} elements; the Triton lowering keeps "
                           f"a 3-D tile within {MAX_TILE_ELEMENTS} elements", node,
                           "contract or reduce earlier so that each value spans at most two "
                           "tile ranks", Limit.TILE_RANKS)

    # ----------------------------------------------------------------- index values
    def default_bind(self, var: str, node=None) -> Idx:
        low = self.low
        role = low.roles.role.get(var)
        if var in self.bind:
            return self.bind[var]
        if role == "batch":
            return Idx(Var(self.names.idx(var)))
        if role in ("full", "col", "chunk_row"):
            blk = self.blk(var)
            name = self.names.offs(var)
            key = ("offs", var)
            if key not in self.memo_inv:
                self.lines.append(Assign(name, Arange(blk)))
                self.memo_inv[key] = name
            return Idx(Var(name), (var,))
        if role == "row":
            return Idx(Var(self.names.offs(var)), (var,))
        raise _err(f"index {var} ({role or 'unknown role'}) cannot be used here by the Triton "
                   f"lowering", _index_node(self.low.c, var, node) or node)


def _index_node(cascade, var: str, near=None):
    """Where a refusal of index ``var`` points: its first written occurrence in ``near`` (an
    expression or an Einsum), else in the cascade (a rewritten expression has no span)."""
    def parts(e):
        return (e.output, e.body) + ((e.where,) if e.where is not None else ())

    if getattr(near, "span", None) is not None and isinstance(near, Name) and near.name == var:
        return near
    roots = parts(near) if isinstance(near, Einsum) else (near,) if near is not None else ()
    for root in roots + tuple(r for e in cascade.einsums for r in parts(e)):
        for n in walk(root):
            if isinstance(n, Name) and n.name == var and n.span is not None:
                return n
    return None

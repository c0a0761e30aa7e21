"""The emission state of one kernel: statements, names, sizes, bindings of index variables."""
from __future__ import annotations

from dataclasses import dataclass

from backends.gpu.plan import Lowering
from einsum_ir.errors import CascadeError
from einsum_ir.exprs import rank_root
from einsum_ir.ir import Einsum, Name, Num, walk
from einsum_ir.size_exprs import SizeFold

from .names import Namespace
from .tile_ir import Arange, Assign, BinOp, Call, Const, Expand, Int, Node, Op, Shape, Var
from .tiles import (
    Idx,
    _err,
)


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


class KernelGen:
    """Emits one @triton.jit kernel (one phase)."""

    def __init__(self, low: Lowering, names: Namespace, name: str, units: list, phase_reads: dict,
                 stores: list, scratch_out: list, mode: PhaseMode = PhaseMode()):
        self.low = low
        self.name = name
        self.units = units  # list of loops: (style, [Einsum units])
        self.phase_reads = phase_reads  # tensor -> scratch decl axes (read as memory)
        self.stores = stores  # output Einsums stored after loops
        self.scratch_out = scratch_out  # tensors this phase writes to scratch
        self.lines: list = []  # statements (tile_ir) of the kernel
        self.loop_lines: list | None = None  # statements of the loop body being emitted
        self.scope = names.scope()
        self.used_blocks: set[str] = set()  # block constexprs the kernel's code spells
        self.names = names
        self.memo_inv: dict = {}
        self.memo_var: dict = {}
        self.carried: dict = {}  # tensor -> var name of the carried (old) value
        self.newval: dict = {}  # tensor -> var name of the value after this step
        self.finals: dict = {}  # tensor -> Tile of the finished value
        self.acc_empty_at: dict = {}  # streamed max/min -> the identity marking an empty row
        self.pointers: list[str] = []  # tensors passed by pointer, in argument order
        self.strides: dict = {}  # tensor -> list of stride arg names
        self.size_args: list[str] = []  # runtime sizes (names in the cascade; NSPLIT_ARG)
        self.bind: dict = {}  # var -> Idx in the current context
        self.evens: dict = {}
        self.cur_block = None
        self.pad_terms: set = set()
        self.cur_loop = None
        self.bound_codes: dict = {}  # mask variable of a streamed rank's bound -> (rank, block)
        self.loop_names: set = set()
        self.split_stream = mode.split_stream
        self.parallel = mode.parallel
        self.scan_inc = mode.scan_inc
        self.scan_pre = mode.scan_pre
        self.extra_ranks = dict(mode.extra_ranks)
        self.has_row = mode.has_row

    # ----------------------------------------------------------------- emission helpers
    def fresh(self, hint: str) -> str:
        return self.scope.fresh(hint)

    def emit(self, hint: str, value: Node, variant: bool) -> Var:
        """``value`` assigned to a fresh local, in the loop body when it varies there."""
        name = self.fresh(hint)
        if variant and self.loop_lines is not None:
            self.loop_names.add(name)
        target = self.loop_lines if (variant and self.loop_lines is not None) else self.lines
        target.append(Assign(name, value))
        return Var(name)

    def stmt(self, stmt, variant: bool = True):
        target = self.loop_lines if (variant and self.loop_lines is not None) else self.lines
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
        if name not in self.size_args:
            self.size_args.append(name)
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
        self.used_blocks.add(name)
        return Var(name)

    def bcast(self, value: Node, axes: tuple, target: tuple) -> Node:
        if tuple(axes) == tuple(target) or not axes:
            return value
        if len(target) == 2 and len(axes) == 1:
            return Expand(value, "row" if axes[0] == target[0] else "col")
        if len(target) == 2 and tuple(axes) == (target[1], target[0]):
            return Call("trans", (value,))
        raise CascadeError(f"cannot broadcast a tile over {axes} to {target}")

    def need2d(self, axes, node):
        if len(axes) > 2:
            raise _err(f"this expression needs a {len(axes)}-D tile over "
                       f"{', '.join(axes)}; the Triton lowering handles 2-D tiles", node,
                       "contract or reduce earlier so that each value spans at most two tile ranks")

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

"""The emission state of one kernel: statements, names, sizes, bindings of index variables."""
from __future__ import annotations

from dataclasses import dataclass

from backends.gpu.plan import Lowering
from einsum_ir.errors import CascadeError
from einsum_ir.exprs import rank_root
from einsum_ir.ir import Einsum, Name, Num, walk
from einsum_ir.size_exprs import to_code

from .names import Namespace
from .tiles import (
    Idx,
    _err,
)


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
        self.lines: list[str] = []
        self.loop_lines: list[str] | None = None
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

    def emit(self, hint: str, code: str, variant: bool) -> str:
        name = self.fresh(hint)
        if variant and self.loop_lines is not None:
            self.loop_names.add(name)
        target = self.loop_lines if (variant and self.loop_lines is not None) else self.lines
        target.append(f"{name} = {code}")
        return name

    def stmt(self, code: str, variant: bool = True):
        target = self.loop_lines if (variant and self.loop_lines is not None) else self.lines
        target.append(code)

    def size_code(self, name: str) -> str:
        low = self.low
        if name in low.sizes and low.is_baked(name):
            return str(low.sizes[name])
        s = low.split_outer_of(name)
        if s is not None:
            inner = self.size_code(s.inner)
            return f"tl.cdiv({self.size_code(s.rank)}, {inner})"
        d = low.c.size_decl(name)
        if d is not None and d.is_rank and not any(
                rank_root(low.c, r) == rank_root(low.c, name) for t in low.c.inputs for r in t.ranks) and \
                not isinstance(d.default, Num):
            return "(" + to_code(d.default, self.size_code) + ")"
        root = rank_root(low.c, name)
        if root != name and not any(name in t.ranks for t in low.c.inputs):
            return self.size_code(root)
        if name not in self.size_args:
            self.size_args.append(name)
        return self.names.size(name)

    def index_size_code(self, name: str) -> str:
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

    def shape_of(self, axes) -> str:
        return "[" + ", ".join(self.blk(a) for a in axes) + "]"

    def blk(self, var: str) -> str:
        """The block-size constexpr of an index variable's tile (a parameter of the kernel)."""
        name = self.low.roles.block[var][0]
        self.used_blocks.add(name)
        return name

    def bcast(self, code: str, axes: tuple, target: tuple) -> str:
        if tuple(axes) == tuple(target) or not axes:
            return code
        if len(target) == 2 and len(axes) == 1:
            return f"{code}[:, None]" if axes[0] == target[0] else f"{code}[None, :]"
        if len(target) == 2 and tuple(axes) == (target[1], target[0]):
            return f"tl.trans({code})"
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
            return Idx(self.names.idx(var))
        if role in ("full", "col", "chunk_row"):
            blk = self.blk(var)
            name = self.names.offs(var)
            key = ("offs", var)
            if key not in self.memo_inv:
                self.lines.append(f"{name} = tl.arange(0, {blk})")
                self.memo_inv[key] = name
            return Idx(name, (var,))
        if role == "row":
            return Idx(self.names.offs(var), (var,))
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

"""Generic lowering of a cascade to Triton source (design.md section 6).

The lowering does not pattern-match attention variants. It assigns every index variable a *role*
and turns every Einsum into tile operations:

* roles: ranks that lead the inputs' layouts (``b``, ``h``) form the launch grid (one value per
  program); the last axes of the inputs and outputs (``e``, ``f``) are *full* tiles; the rank the
  reductions and recurrences walk (the key rank ``M``, or the chunk rank ``N``) is *streamed* by a
  loop; the remaining un-reduced rank (``p``, or a chunk's ``c``) is the *row* tile and the
  remaining reduced one (``m0``, ``d``) the *column* tile;
* a sum of a product of two 2-D tiles over a shared axis -> ``tl.dot``; other reductions along a
  tile axis -> ``tl.sum``/``tl.max``/``tl.min``; element-wise maps -> Triton expressions;
* recurrences along the streamed rank -> loop-carried values; reductions over the streamed rank ->
  loop-carried accumulators; a tensor needed after the reduction it depends on is finished gets a
  later loop (3-pass code gives three loops; the online-softmax rewrite makes it one);
* ``where`` predicates -> ``tl.where`` validity masks applied at reductions, plus loop bounds
  derived from the predicate by interval arithmetic, so blocks whose points are all empty are never
  visited (causal stops at the diagonal, a sliding window visits only the window's blocks);
* affine index expressions -> pointer arithmetic (``h // G``, ``n*C + c``).

Empty points follow the interpreter: reductions see only existing points, a reduction over nothing
leaves the reducer's identity, ``inf - inf`` is guarded, and an empty output element is stored as 0.

Reductions that do not involve the row rank (the state of linear attention) go to a first kernel
(phase 0) whose results are written to scratch memory and read by the main kernel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from einsum_ir.errors import CascadeError
from einsum_ir.ir import Access, Binary, Call, Einsum, Expr, Name, Num, Unary
from einsum_ir.passes import Prepared

from backends.gpu.plan import (Config, Loop, Lowering, Planner, Roles, _factors, _scan_plan)

from backends.gpu.bounds import loop_bounds, pred_range
from einsum_ir.affine import CeilDiv, FloorDiv, Linear, Max, Min
from .module import header, launcher
from .names import Namespace
from .rules import dead_assignments

LOG2E = 1.4426950408889634
IDENTITY = {"sum": "0.0", "max": "float('-inf')", "min": "float('inf')", "prod": "1.0"}


NSPLIT_ARG = "#nsplit"  # the slice count of a split state phase (not a size of the cascade)


def increments_name(tensor: str) -> str:
    """The scratch tensor of a scanned recurrence's increments (no cascade name has a '#')."""
    return f"{tensor}#inc"


def prefix_name(tensor: str) -> str:
    """The scratch tensor of a scanned recurrence's exclusive prefix sums."""
    return f"{tensor}#pre"


def _err(msg, node=None, hint=None):
    return CascadeError(msg, getattr(node, "span", None), hint)


# ------------------------------------------------------------------------------------------ values


@dataclass(frozen=True)
class Idx:
    """An integer index value: Triton code over physical axes (None axes = scalar)."""

    code: str
    axes: tuple = ()
    variant: bool = False
    composite: tuple | None = None  # (outer Idx, size, inner Idx) for x = outer*size + inner


@dataclass(frozen=True)
class Tile:
    code: str
    axes: tuple = ()
    kind: str = "f32"  # f32 | native | int
    terms: frozenset = frozenset()  # validity conjuncts: (code, axes)
    zero_terms: frozenset = frozenset()  # conjuncts outside which the value is known to be 0
    may_inf: bool = False
    variant: bool = False
    src: str | None = None  # pointer whose element type a native tile has
    lin: tuple | None = None  # (base code, c): the value is base * c (c a constant)
    diff: tuple | None = None  # (a, b): the value is a - b (no inf - inf guard needed)
    ninf_terms: frozenset = frozenset()  # conjuncts outside which the value is -inf
    max_of: frozenset = frozenset()  # codes of tiles this row value bounds from above (a max)
    dot: tuple | None = None  # (a, b): the value is tl.dot(a, b), so "+ acc" can accumulate in it


# ------------------------------------------------------------------------------------------ roles


# ------------------------------------------------------------------------------------- code gen


_UNION = ("+", "max", "min")


class KernelGen:
    """Emits one @triton.jit kernel (one phase)."""

    def __init__(self, low: Lowering, names: Namespace, name: str, units: list, phase_reads: dict,
                 stores: list, scratch_out: list):
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
        self.pointers: list[str] = []  # tensors passed by pointer, in argument order
        self.strides: dict = {}  # tensor -> list of stride arg names
        self.size_args: list[str] = []  # runtime sizes (names in the cascade; NSPLIT_ARG)
        self.bind: dict = {}  # var -> Idx in the current context
        self.loop_style = None
        self.loop_var_names: set = set()
        self.uses_it = False
        self.evens: dict = {}
        self.cur_block = None
        self.split_stream = False
        self.pad_terms: set = set()
        self.parallel = False  # one loop step per program (grid axis 0), no carried state
        self.scan_inc: list = []  # (recurrence, update Einsum, increment expr): store increments
        self.scan_pre: set = set()  # recurrences read from their exclusive prefix in memory
        self.extra_ranks: dict = {}  # scratch tensors of the scan: name -> ranks
        self.cur_loop = None
        self.bound_codes: dict = {}  # mask variable of a streamed rank's bound -> (rank, block)
        self.variant_codes: set = set()
        self.loop_names: set = set()
        self.has_row = True

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
                low.root(r) == low.root(name) for t in low.c.inputs for r in t.ranks) and \
                not isinstance(d.default, Num):
            return "(" + self.int_code_of_size(d.default) + ")"
        root = low.root(name)
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
        if split is not None and low.root(split.rank) == low.roles.stream_rank:
            var = next((v for v in low.roles.block if v.upper() == name), None)
            if var is not None and int(low.roles.block[var][1]) == int(low.sizes[name]):
                return self.blk(var)
        return self.size_code(name)

    def int_code_of_size(self, expr: Expr) -> str:
        if isinstance(expr, Num):
            return str(int(expr.value))
        if isinstance(expr, Name):
            return self.size_code(expr.name)
        if isinstance(expr, Binary):
            op = "//" if expr.op == "/" else expr.op
            return f"({self.int_code_of_size(expr.lhs)} {op} {self.int_code_of_size(expr.rhs)})"
        if isinstance(expr, Unary) and expr.op == "-":
            return f"(-{self.int_code_of_size(expr.operand)})"
        raise _err("unsupported size expression", expr)

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
                   f"lowering", node)

    def eval_int(self, expr: Expr) -> Idx:
        if isinstance(expr, Num):
            return Idx(str(int(expr.value)))
        if isinstance(expr, Name):
            if expr.is_index:
                return self.default_bind(expr.name, expr)
            return Idx(self.index_size_code(expr.name))
        if isinstance(expr, Unary) and expr.op == "-":
            i = self.eval_int(expr.operand)
            return Idx(f"(-{i.code})", i.axes, i.variant)
        if isinstance(expr, Binary) and expr.op in ("+", "-", "*", "/", "%"):
            a, b = self.eval_int(expr.lhs), self.eval_int(expr.rhs)
            if expr.op in ("/", "%") and a.composite is not None and not b.axes:
                outer, size, inner = a.composite
                if b.code == str(size):
                    return outer if expr.op == "/" else inner
            axes = self.low.order(a.axes + b.axes)
            self.need2d(axes, expr)
            op = {"/": "//"}.get(expr.op, expr.op)
            code = f"({self.bcast(a.code, a.axes, axes)} {op} {self.bcast(b.code, b.axes, axes)})"
            return Idx(code, axes, a.variant or b.variant)
        if isinstance(expr, Call) and expr.func in ("min", "max", "abs"):
            args = [self.eval_int(x) for x in expr.args]
            axes = self.low.order(sum((x.axes for x in args), ()))
            codes = [self.bcast(x.code, x.axes, axes) for x in args]
            fn = {"min": "tl.minimum", "max": "tl.maximum", "abs": "tl.abs"}[expr.func]
            return Idx(f"{fn}({', '.join(codes)})", axes, any(x.variant for x in args))
        raise _err("this index expression is outside the Triton lowering's reach", expr)

    def eval_pred(self, expr: Expr) -> Idx:
        if isinstance(expr, Unary) and expr.op == "not":
            i = self.eval_pred(expr.operand)
            return Idx(f"(~{i.code})" if i.axes else f"(not {i.code})", i.axes, i.variant)
        if isinstance(expr, Binary) and expr.op in ("and", "or", "<", "<=", ">", ">=", "==", "!="):
            ev = self.eval_pred if expr.op in ("and", "or") else self.eval_int
            a, b = ev(expr.lhs), ev(expr.rhs)
            axes = self.low.order(a.axes + b.axes)
            self.need2d(axes, expr)
            op = {"and": "&", "or": "|"}.get(expr.op, expr.op)
            code = f"({self.bcast(a.code, a.axes, axes)} {op} {self.bcast(b.code, b.axes, axes)})"
            return Idx(code, axes, a.variant or b.variant)
        return self.eval_int(expr)

    # ----------------------------------------------------------------- values
    def f32(self, t: Tile) -> str:
        if t.kind == "native":
            return f"{t.code}.to(tl.float32)"
        if t.kind == "int":
            return f"{t.code}.to(tl.float32)" if t.axes else f"({t.code} * 1.0)"
        return t.code

    def eval_value(self, expr: Expr) -> Tile:
        if isinstance(expr, Num):
            v = float(expr.value)
            if math.isinf(v):
                return Tile("float('inf')" if v > 0 else "float('-inf')", may_inf=True)
            return Tile(repr(v))
        if isinstance(expr, Name):
            i = self.eval_int(expr)
            if not i.axes:
                return Tile(f"({i.code} * 1.0)", variant=i.variant)
            return Tile(i.code, i.axes, kind="int", variant=i.variant)
        if isinstance(expr, Access):
            return self.read(expr)
        if isinstance(expr, Unary):
            t = self.eval_value(expr.operand)
            if expr.op == "-":
                return replace(t, code=f"(-{self.f32(t)})", kind="f32", zero_terms=t.zero_terms,
                               src=None)
            return replace(t, code=f"tl.where({self.f32(t)} == 0, 1.0, 0.0)", kind="f32",
                           zero_terms=frozenset(), src=None)
        if isinstance(expr, Binary):
            if expr.op in ("and", "or", "<", "<=", ">", ">=", "==", "!="):
                try:
                    p = self.eval_pred(expr)
                    return Tile(f"tl.where({p.code}, 1.0, 0.0)" if p.axes else
                                f"(1.0 if {p.code} else 0.0)", p.axes, variant=p.variant)
                except CascadeError:
                    a, b = self.eval_value(expr.lhs), self.eval_value(expr.rhs)
                    return self.binary(expr.op, a, b, expr)
            return self.binary(expr.op, self.eval_value(expr.lhs), self.eval_value(expr.rhs), expr)
        if isinstance(expr, Call):
            args = [self.eval_value(a) for a in expr.args]
            if len(args) == 2:
                return self.binary(expr.func, args[0], args[1], expr)
            return self.unary(expr.func, args[0], expr)
        raise _err("unsupported expression", expr)

    def unary(self, fn: str, t: Tile, node) -> Tile:
        if fn == "exp" and t.diff is not None and t.axes:
            # exp(base * c - b) = exp2(base * (c * log2 e) - b * log2 e): one FMA per element,
            # the scale of the scores folded into the exponent (FlashAttention's qk_scale)
            a, b = t.diff
            if a.lin is not None and a.axes == t.axes and len(b.axes) < len(t.axes):
                base, c = a.lin
                y = self.f32(b)
                yb = self.bcast(f"({y} * {LOG2E})" if b.axes or not _is_const(y)
                                else repr(float(eval(y)) * LOG2E), b.axes, t.axes) if b.axes \
                    else f"({y} * {LOG2E})"
                code = f"tl.exp2({base} * {c * LOG2E!r} - {yb})"
                return Tile(code, t.axes, "f32", t.terms, t.ninf_terms, False, t.variant)
        x = self.f32(t)
        if t.axes or t.variant:
            x = self.emit(fn + "_in", x, t.variant) if not _simple(x) else x
        table = {
            "exp": f"tl.exp2({x} * {LOG2E})",
            "log": f"tl.log({x})",
            "sqrt": f"tl.sqrt({x})",
            "abs": f"tl.abs({x})",
            "relu": f"tl.maximum({x}, 0.0)",
            "sigmoid": f"(1.0 / (1.0 + tl.exp2(-{x} * {LOG2E})))",
            "tanh": f"(1.0 - 2.0 / (tl.exp2({x} * {2 * LOG2E}) + 1.0))",
            "elu": f"tl.where({x} > 0, {x}, tl.exp2(tl.minimum({x}, 0.0) * {LOG2E}) - 1.0)",
            "silu": f"({x} / (1.0 + tl.exp2(-{x} * {LOG2E})))",
            "gelu": f"(0.5 * {x} * (2.0 - 2.0 / (tl.exp2(({x} + 0.044715 * {x} * {x} * {x}) * "
                    f"{2 * LOG2E * math.sqrt(2 / math.pi)}) + 1.0)))",
            "softplus": f"tl.where({x} > 20.0, {x}, tl.log(1.0 + tl.exp2({x} * {LOG2E})))",
            "recip": f"(1.0 / {x})",
            "square": f"({x} * {x})",
            "floor": f"tl.floor({x})",
            "ceil": f"tl.ceil({x})",
        }
        if fn not in table:
            raise _err(f"function {fn!r} is outside the Triton lowering's reach", node)
        if not t.axes and not t.variant and _is_const(x):
            return Tile(repr(_const_fold(fn, float(eval(x)))))
        zero = t.zero_terms if fn in ("relu", "abs", "sqrt", "square", "silu", "tanh") else frozenset()
        if fn in ("exp", "sigmoid"):
            zero = t.ninf_terms  # exp(-inf) = 0
        may_inf = t.may_inf and fn not in ("exp", "sigmoid", "tanh")
        return Tile(table[fn], t.axes, "f32", t.terms, zero, may_inf, t.variant)

    def binary(self, op: str, a: Tile, b: Tile, node) -> Tile:
        axes = self.low.order(a.axes + b.axes)
        self.need2d(axes, node)
        union = op in ("+", "max", "min")
        if union:
            terms = a.terms & b.terms if (a.terms and b.terms) else frozenset()
            if not a.terms or not b.terms:
                terms = frozenset()
        else:
            terms = a.terms | b.terms
        x, y = self.f32(a), self.f32(b)
        if not a.axes and not b.axes and not a.variant and not b.variant and _is_const(x) and _is_const(y):
            try:
                return Tile(repr(_const_binary(op, float(eval(x)), float(eval(y)))))
            except (ZeroDivisionError, ValueError, OverflowError):
                pass
        ninf = frozenset()
        if a.ninf_terms and op in ("+", "-") and not b.may_inf and not b.ninf_terms:
            ninf = a.ninf_terms  # -inf - finite = -inf
        if (a.ninf_terms and op == "-" and b.may_inf and len(b.axes) == len(a.axes) - 1
                and set(b.axes) < set(a.axes) and _bounded_by(a, b)):
            # b is a running max of a's row: where b is -inf no point of the row exists, so
            # b -> 0 there is exact and keeps -inf - b = -inf (FlashAttention's safe max)
            safe = self.emit(f"{_name_of(b.code)}_safe",
                             f"tl.where({self.f32(b)} == float('-inf'), 0.0, {self.f32(b)})",
                             b.variant)
            b = replace(b, code=safe, may_inf=False, max_of=frozenset())
            y = safe
            ninf = a.ninf_terms
        x, y = self.bcast(x, a.axes, axes), self.bcast(y, b.axes, axes)
        may_inf = a.may_inf or b.may_inf
        zero = frozenset()
        if op in _UNION:
            code = {"+": f"({x} + {y})", "max": f"tl.maximum({x}, {y})",
                    "min": f"tl.minimum({x}, {y})"}[op]
            # a union op keeps the side that exists where the other is empty (design.md 3);
            # padding positions are outside every iteration space and need no select
            sa = [tm for tm in a.terms if tm[0] not in self.pad_terms]
            sb = [tm for tm in b.terms if tm[0] not in self.pad_terms]
            if sa and not sb:
                code = f"tl.where({self.mask_var(sa, axes)}, {code}, {y})"
                ninf = frozenset()
            elif sb and not sa:
                code = f"tl.where({self.mask_var(sb, axes)}, {code}, {x})"
                ninf = frozenset()
            elif sa and sb:
                ma, mb = self.mask_var(sa, axes), self.mask_var(sb, axes)
                code = f"tl.where({ma} & {mb}, {code}, tl.where({ma}, {x}, {y}))"
                ninf = frozenset()
            if op == "+":
                if not sa and not sb:
                    # acc + tl.dot(a, b) accumulates in the dot (FlashAttention's acc update)
                    for d, other, oc in ((b, a, x), (a, b, y)):
                        if d.dot is not None and tuple(d.axes) == tuple(axes) and \
                                tuple(other.axes) == tuple(axes) and other.kind == "f32":
                            code = f"tl.dot({d.dot[0]}, {d.dot[1]}, {oc})"
                            break
                return Tile(code, axes, "f32", terms, zero, may_inf, a.variant or b.variant,
                            ninf_terms=ninf)
            return Tile(code, axes, "f32", terms, zero, a.may_inf and b.may_inf,
                        a.variant or b.variant, max_of=a.max_of | b.max_of if op == "max"
                        else frozenset())
        elif op == "-":
            if a.may_inf and b.may_inf:  # inf - inf is undefined: an empty history contributes 0
                code = f"tl.where({x} == {y}, 0.0, {x} - {y})"
            else:
                code = f"({x} - {y})"
                out = Tile(code, axes, "f32", terms, zero, may_inf, a.variant or b.variant,
                           ninf_terms=ninf)
                return replace(out, diff=(a, b))
        elif op == "*":
            code = f"({x} * {y})"
            zero = a.zero_terms | b.zero_terms
            for t, c in ((a, b), (b, a)):
                if t.axes and t.kind == "f32" and _simple(t.code) and not c.axes and _is_const(c.code):
                    k = float(eval(c.code))
                    out = Tile(code, axes, "f32", terms, zero, may_inf, a.variant or b.variant,
                               ninf_terms=t.ninf_terms if k > 0 else frozenset(),
                               max_of=t.max_of if k > 0 else frozenset())
                    return replace(out, lin=(t.code, k))
            zero = a.zero_terms | b.zero_terms
        elif op == "/" and not b.axes and _is_const(y) and float(eval(y)) != 0:
            code = f"({x} * {1.0 / float(eval(y))!r})"
            zero = a.zero_terms
            if a.axes and a.kind == "f32" and _simple(a.code):
                k = 1.0 / float(eval(y))
                out = Tile(code, axes, "f32", terms, zero, may_inf, a.variant or b.variant,
                           ninf_terms=a.ninf_terms if k > 0 else frozenset())
                return replace(out, lin=(a.code, k))
        elif op == "/":
            code = f"({x} / {y})"
            zero = a.zero_terms
        elif op == "max":
            code = f"tl.maximum({x}, {y})"
            may_inf = a.may_inf and b.may_inf
            return Tile(code, axes, "f32", terms, zero, may_inf, a.variant or b.variant,
                        max_of=a.max_of | b.max_of)
        elif op == "min":
            code = f"tl.minimum({x}, {y})"
            may_inf = a.may_inf and b.may_inf
        elif op == "pow":
            code = f"tl.exp2(tl.log2({x}) * {y})"
        elif op == "%":
            code = f"({x} % {y})"
        elif op in ("<", "<=", ">", ">=", "==", "!="):
            code = f"tl.where({x} {op} {y}, 1.0, 0.0)"
        else:
            raise _err(f"operator {op!r} is outside the Triton lowering's reach", node)
        return Tile(code, axes, "f32", terms, zero, may_inf, a.variant or b.variant)

    def materialize(self, t: Tile, hint: str) -> Tile:
        if _simple(t.code) or not t.axes and not t.variant and _is_const(t.code):
            return t
        return replace(t, code=self.emit(hint, t.code, t.variant))

    # ----------------------------------------------------------------- reads
    def read(self, acc: Access) -> Tile:
        low = self.low
        name = acc.tensor
        if name in low.inputs or name in self.phase_reads:
            return self.load(acc)
        rec = low.a.recurrences.get(name)
        if rec is not None:
            index = acc.indices[rec.axis]
            step = rec.var
            if isinstance(index, Name) and not index.is_index:
                if name not in self.finals:
                    raise _err(f"{name} is read at its final iterate before its recurrence is "
                               f"lowered", acc)
                self.check_same(acc, rec.update, skip=rec.axis)
                return self.finals[name]
            if isinstance(index, Name) and index.name == step and name in self.scan_pre:
                # the state before step n: the exclusive prefix sum computed between kernels
                return self.load(Access(prefix_name(name), acc.indices, acc.span))
            if isinstance(index, Name) and index.name == step:
                if name not in self.carried:
                    raise _err(f"{name}[..., {step}] is read outside its recurrence loop", acc)
                self.check_same(acc, rec.update, skip=rec.axis)
                axes = self.rec_axes(rec)
                return Tile(self.carried[name], axes, may_inf=True, variant=True)
            if (isinstance(index, Binary) and index.op == "+" and isinstance(index.lhs, Name)
                    and index.lhs.name == step and isinstance(index.rhs, Num) and index.rhs.value == 1):
                self.check_same(acc, rec.update, skip=rec.axis)
                return self.rec_update(name)
            raise _err(f"{name} is read at an index the Triton lowering cannot map onto its "
                       f"recurrence loop (use {step}, {step}+1 or the final {step.upper()})", acc)
        if name in self.finals:  # a finished stream reduction
            defs = low.defs[name]
            self.check_same(acc, defs[0])
            return self.finals[name]
        (einsum,) = low.defs[name]
        if einsum in self.stream_reductions():
            raise _err(f"{name} is read before the loop that reduces it has finished", acc)
        return self.inline(einsum, acc)

    def check_same(self, acc: Access, einsum: Einsum, skip=None):
        for k, (i, j) in enumerate(zip(acc.indices, einsum.output.indices)):
            if k == skip:
                continue
            vi = self.eval_int(i)
            vj = self.eval_int(j) if isinstance(j, Name) else None
            if vj is None or vi.code != vj.code:
                raise _err(f"{acc.tensor} is finished in a loop and read here at a shifted index; "
                           f"the Triton lowering keeps only this program's own values", acc)

    def rec_axes(self, rec) -> tuple:
        axes = []
        for k, i in enumerate(rec.update.output.indices):
            if k == rec.axis:
                continue
            axes += list(self.eval_int(i).axes)
        return self.low.order(axes)

    def inline(self, einsum: Einsum, acc: Access) -> Tile:
        """Evaluates ``einsum`` at the access's indices (recomputed, never stored)."""
        bound = {}
        for i, j in zip(acc.indices, einsum.output.indices):
            if not (isinstance(j, Name) and j.is_index):
                raise _err(f"{einsum.name} cannot be inlined at this access", acc)
            bound[j.name] = self.eval_int(i)
        key = (einsum.name, tuple((v, b.code, b.axes) for v, b in sorted(bound.items())))
        for memo in (self.memo_var, self.memo_inv):
            if key in memo:
                return memo[key]
        saved = self.bind
        self.bind = {**{k: v for k, v in saved.items() if k not in einsum.reduced}, **bound}
        for v in einsum.reduced:
            self.bind.pop(v, None)
        try:
            t = self.einsum_value(einsum)
        finally:
            self.bind = saved
        t = self.materialize(t, einsum.name)
        (self.memo_var if t.variant else self.memo_inv)[key] = t
        return t

    def load(self, acc: Access) -> Tile:
        low = self.low
        name = acc.tensor
        idx = [self.eval_int(i) for i in acc.indices]
        axes = low.order(sum((i.axes for i in idx), ()))
        self.need2d(axes, acc)
        key = ("load", name, tuple((i.code, i.axes) for i in idx))
        for memo in (self.memo_var, self.memo_inv):
            if key in memo:
                return memo[key]
        ptr = self.pointer(name)
        strides = self.strides[name]
        if name in low.inputs:
            ranks = low.inputs[name].ranks
        else:
            ranks = tuple(self.phase_reads[name])
        parts, terms = [], []
        for k, i in enumerate(idx):
            parts.append(f"{self.bcast(i.code, i.axes, axes)} * {strides[k]}")
            if i.axes:
                ext = self.size_code(ranks[k])
                if len(i.axes) == 1 and _is_ident(i.code, i.axes[0], self.names):
                    var = i.axes[0]
                    b = low.roles.block.get(var)
                    if b and not b[3] and str(b[1]) == str(low.sizes.get(ranks[k])) and \
                            self.size_code(ranks[k]) == b[2]:
                        continue  # full tile exactly covers the axis: no mask
                term = f"({i.code} < {ext})"
                stream_bound = None
                if "-" in i.code:
                    term = f"(({i.code} >= 0) & ({i.code} < {ext}))"
                if (low.root(ranks[k]) == low.roles.stream_rank and self.cur_block
                        and i.variant and "-" not in i.code):
                    rank = ranks[k]
                    term = f"(({i.code} < {ext}) | {self.names.even(rank)})"
                    self.evens.setdefault(rank, set()).add(self.cur_block)
                    stream_bound = (rank, self.cur_block)
                padding = "-" not in i.code and len(i.axes) == 1 and _is_ident(i.code, i.axes[0], self.names)
                if not _simple(term):
                    mkey = ("mask", term)
                    memo = self.memo_var if i.variant else self.memo_inv
                    if mkey not in memo:
                        memo[mkey] = self.emit(f"in_{ranks[k].lower()}", term, i.variant)
                    term = memo[mkey]
                if padding:
                    self.pad_terms.add(term)
                if stream_bound is not None:
                    self.bound_codes[term] = stream_bound
                terms.append((term, i.axes))
        mask_parts = [self.bcast(t, a, axes) for t, a in terms]
        offs = " + ".join(parts)
        variant = any(i.variant for i in idx)
        if mask_parts:
            code = f"tl.load({ptr} + {offs}, mask={' & '.join(mask_parts)}, other=0.0)"
        else:
            code = f"tl.load({ptr} + {offs})"
        var = self.emit(name, code, variant)
        kind = "native" if name in low.inputs else "f32"
        t = Tile(var, axes, kind, frozenset(terms), frozenset(terms), False, variant,
                 src=ptr if kind == "native" else None)
        (self.memo_var if variant else self.memo_inv)[key] = t
        return t

    def pointer(self, name: str) -> str:
        ptr = self.names.ptr(name)
        if name not in self.pointers:
            self.pointers.append(name)
            if name in self.extra_ranks:
                self.strides[name] = [self.names.stride(name, k)
                                      for k in range(len(self.extra_ranks[name]))]
                return ptr
            n = len(self.low.inputs[name].axes) if name in self.low.inputs else (
                len(self.phase_reads.get(name) or self.low.outputs[name].axes)
                if name in self.phase_reads or name in self.low.outputs else
                len(self.scratch_axes(name)))
            self.strides[name] = [self.names.stride(name, k) for k in range(n)]
        return ptr

    def scratch_axes(self, name):
        (e,) = self.low.defs[name]
        return [i.name.upper() for i in e.output.indices]

    # ----------------------------------------------------------------- einsums
    def stream_reductions(self):
        return self.low.stream_reductions

    def einsum_value(self, einsum: Einsum, stream_var: str | None = None) -> Tile:
        """The value of ``einsum`` in the current bindings; a reduction over ``stream_var`` is
        reduced only along this block's tile (the caller accumulates across iterations)."""
        pred = None
        if einsum.where is not None:
            pred = self.eval_pred(einsum.where)
        reduced = [v for v in einsum.reduced]
        if not reduced:
            t = self.eval_value(einsum.body)
            if pred is not None:
                t = self.mask(t, pred)
            return t
        if len(reduced) > 1:
            raise _err("a reduction over several indices is outside the Triton lowering's reach; "
                       "split it into one Einsum per index", einsum)
        (r,) = reduced
        rb = self.default_bind(r, einsum)
        if len(rb.axes) != 1:
            raise _err(f"the reduction over {r} is outside the Triton lowering's reach", einsum)
        ax = rb.axes[0]
        if einsum.reducer == "sum":
            dot = self.try_dot(einsum, ax, pred)
            if dot is not None:
                return dot
        t = self.eval_value(einsum.body)
        if pred is not None:
            t = self.mask(t, pred)
        if ax not in t.axes:
            raise _err(f"the reduced index {r} does not vary in this tile", einsum)
        need = [tm for tm in t.terms if ax in tm[1]]
        bt = self.bound_term(r)
        if bt is not None and bt not in need:
            need.append(bt)
        if einsum.reducer == "sum":
            need = [tm for tm in need if tm not in t.zero_terms]
        if einsum.reducer == "max":
            need = [tm for tm in need if tm not in t.ninf_terms]
        max_of = frozenset({t.code} | ({t.lin[0]} if t.lin else set())) \
            if einsum.reducer == "max" else frozenset()
        x = self.f32(t)
        if need:
            m = self.mask_var(need, t.axes)
            x = f"tl.where({m}, {x}, {IDENTITY[einsum.reducer]})"
        if (einsum.reducer in ("max", "min") and t.lin is not None and t.lin[1] > 0
                and not any(tm[0] == x for tm in need)):
            base, c = t.lin
            inner = base if not need else f"tl.where({self.mask_var(need, t.axes)}, {base}, " \
                                          f"{IDENTITY[einsum.reducer]})"
            fn = "tl.max" if einsum.reducer == "max" else "tl.min"
            axis = t.axes.index(ax)
            out_axes = tuple(a for a in t.axes if a != ax)
            terms = frozenset(tm for tm in t.terms if ax not in tm[1])
            return Tile(f"({fn}({inner}, axis={axis}) * {c!r})", out_axes, "f32", terms,
                        frozenset(), bool(need) or t.may_inf or bool(t.ninf_terms), t.variant,
                        max_of=max_of)
        fn = {"sum": "tl.sum", "max": "tl.max", "min": "tl.min"}.get(einsum.reducer)
        if fn is None:
            raise _err(f"the reducer {einsum.reducer} is outside the Triton lowering's reach",
                       einsum)
        axis = t.axes.index(ax)
        out_axes = tuple(a for a in t.axes if a != ax)
        terms = frozenset(tm for tm in t.terms if ax not in tm[1])
        return Tile(f"{fn}({x}, axis={axis})", out_axes, "f32", terms, frozenset(),
                    einsum.reducer in ("max", "min") and (bool(need) or bool(t.ninf_terms))
                    or t.may_inf, t.variant, max_of=max_of)

    def bound_term(self, var: str):
        """The validity of ``var``'s padded tile positions (None when the tile has no padding)."""
        low = self.low
        role = low.roles.role.get(var)
        b = self.default_bind(var)
        if len(b.axes) != 1 or b.code != self.names.offs(var):
            return None
        rank = var.upper()
        if role == "stream_plain":
            ext = self.size_code(rank)
            code = f"(({b.code} < {ext}) | {self.names.even(rank)})"
            if self.cur_block:
                self.evens.setdefault(rank, set()).add(self.cur_block)
            else:
                code = f"({b.code} < {ext})"
        elif role in ("full", "col", "chunk_row"):
            blk = low.roles.block[var]
            if int(blk[1]) == int(low.sizes[rank]):
                return None
            code = f"({b.code} < {self.size_code(rank)})"
        else:
            return None
        mkey = ("mask", code)
        memo = self.memo_var if b.variant else self.memo_inv
        if mkey not in memo:
            memo[mkey] = self.emit(f"in_{rank.lower()}", code, b.variant)
        self.pad_terms.add(memo[mkey])
        if role == "stream_plain" and self.cur_block:
            self.bound_codes[memo[mkey]] = (rank, self.cur_block)
        return (memo[mkey], b.axes)

    def mask_var(self, need, axes) -> str:
        """The conjunction of validity terms over ``axes``, computed once per scope."""
        need = sorted(set(need))
        code = " & ".join(self.bcast(c, a, axes) for c, a in need)
        if len(need) == 1 and _simple(code):
            return code
        variant = self.loop_lines is not None and any(_mentions_loop(c, self) for c, _ in need)
        key = ("validity", code)
        memo = self.memo_var if variant else self.memo_inv
        if key not in memo:
            memo[key] = self.emit("valid", code, variant)
        return memo[key]

    def mask(self, t: Tile, pred: Idx) -> Tile:
        return replace(t, terms=t.terms | {(pred.code, pred.axes)}, variant=t.variant or pred.variant)

    def try_dot(self, einsum: Einsum, ax: str, pred: Idx | None) -> Tile | None:
        factors = _factors(einsum.body)
        tiles = [(self.eval_value(f), inv) for f, inv in factors]
        with_ax = [k for k, (t, inv) in enumerate(tiles) if ax in t.axes]
        if len(with_ax) != 2:
            return None
        (ka, ta_inv), (kb, tb_inv) = tiles[with_ax[0]], tiles[with_ax[1]]
        if ta_inv or tb_inv or len(ka.axes) != 2 or len(kb.axes) != 2:
            return None
        oa = next(a for a in ka.axes if a != ax)
        ob = next(a for a in kb.axes if a != ax)
        if oa == ob:
            return None
        for other, inv in (tiles[k] for k in range(len(tiles)) if k not in with_ax):
            if ax in other.axes:
                return None
        lo = self.low
        for a in (oa, ob, ax):
            blk = lo.roles.block.get(a)
            if blk and blk[1] < 16:
                raise _err(f"tl.dot needs tiles of at least 16 along {a} (got {blk[1]})", einsum)
        # operands in [other, ax] / [ax, other] order, validity zeroed where needed
        bound = self.bound_term(einsum.reduced[0])
        zeroed = set()

        def operand(t: Tile, first: bool, other_t: Tile):
            need = [tm for tm in t.terms if ax in tm[1]]
            if bound is not None and bound not in need:
                need.append(bound)
            if pred is not None and ax in pred.axes:
                need.append((pred.code, pred.axes))
            # a product is zero where either factor is: one zeroed operand is enough
            need = [tm for tm in need if tm not in t.zero_terms and tm not in other_t.zero_terms
                    and tm not in zeroed]
            zeroed.update(need)
            code = t.code
            if t.kind == "int":
                code = f"{code}.to(tl.float32)"
            if need:
                m = self.mask_var(need, t.axes)
                code = f"tl.where({m}, {code}, 0.0)"
            # dtype: computed fp32 operands meet a native operand in its dtype
            if t.kind != "native" and other_t.kind == "native":
                code = f"{code}.to({other_t.src}.dtype.element_ty)"
            want = (oa, ax) if first else (ax, ob)
            if tuple(t.axes) != want:
                code = f"tl.trans({code})"
            return code
        ca = operand(ka, True, kb)
        cb = operand(kb, False, ka)
        out = (oa, ob)
        code = f"tl.dot({ca}, {cb})"
        axes = lo.order(out)
        if axes != out:
            code = f"tl.trans({code})"
        variant = ka.variant or kb.variant or (pred is not None and pred.variant)
        terms = frozenset(tm for tm in ka.terms | kb.terms if ax not in tm[1])
        ninf = frozenset()
        if pred is not None and ax not in pred.axes and lo.feeds_max(einsum.name):
            # masked scores are -inf at the source, so the max needs no mask and exp gives 0
            rows = {v for v, r in lo.roles.role.items() if r in ("row", "chunk_row")}
            ninf = frozenset(tm for tm in terms | {(pred.code, pred.axes)} if set(tm[1]) - rows)
            cond = self.partial_block_condition(einsum, pred, ninf)
            if cond is None:
                code = f"tl.where({self.mask_var(list(ninf), axes)}, {code}, float('-inf'))"
            else:
                # blocks that the predicate covers entirely skip the mask (FlexAttention's full
                # blocks, the tutorial's off-band stage), in the same loop
                var = self.emit(einsum.name, code, True)
                mask = " & ".join(self.bcast(c, a, axes) for c, a in sorted(ninf))
                self.loop_lines.append(f"if {cond}:  # a block the predicate cuts")
                self.loop_lines.append(f"    {var} = tl.where({mask}, {var}, float('-inf'))")
                code = var
        t = Tile(code, axes, "f32", terms, frozenset(), False, variant, ninf_terms=ninf)
        t = self.materialize(t, einsum.name)
        if not ninf and code.startswith("tl.dot(") and axes == out:
            t = replace(t, dot=(ca, cb))
        for k, (other, inv) in enumerate(tiles):
            if k in with_ax:
                continue
            t = self.binary("/" if inv else "*", t, other, einsum)
        if pred is not None and ax not in pred.axes:
            t = self.mask(t, pred)
        elif pred is not None:
            rest = Idx(pred.code, pred.axes, pred.variant)
            t = replace(t, variant=t.variant or rest.variant)
        return t

    # ----------------------------------------------------------------- recurrences
    def rec_update(self, name: str) -> Tile:
        if name in self.newval:
            return self.newval[name]
        if name not in self.carried:
            raise _err(f"{name}[..., {self.low.a.recurrences[name].var}+1] is read outside its "
                       f"recurrence loop", self.low.a.recurrences[name].update)
        rec = self.low.a.recurrences[name]
        t = self.einsum_value(rec.update)
        axes = self.rec_axes(rec)
        code = self.f32(t)
        if tuple(t.axes) != tuple(axes):
            code = f"tl.broadcast_to({self.bcast(code, t.axes, axes) if t.axes else code}, " \
                   f"{self.shape_of(axes)})"
        var = self.emit(name.lower() + "_next", code, True)
        may_inf = t.may_inf
        out = Tile(var, axes, "f32", frozenset(), frozenset(), may_inf, True, max_of=t.max_of)
        self.newval[name] = out
        return out


# ----------------------------------------------------------------------------------- utilities


def _bounded_by(a: Tile, b: Tile) -> bool:
    codes = {a.code} | ({a.lin[0]} if a.lin else set())
    return bool(codes & b.max_of)


def _name_of(code: str) -> str:
    import re as _re
    m = _re.match(r"[A-Za-z_][A-Za-z0-9_]*", code)
    return m.group(0) if m else "row"


def _mentions_loop(code: str, gen) -> bool:
    """Whether ``code`` depends on the loop counter or a per-iteration name."""
    import re as _re
    names = set(_re.findall(r"[A-Za-z_][A-Za-z0-9_]*", code))
    if "it" in names:
        return True
    return any(n in gen.loop_names for n in names)


def _simple(code: str) -> bool:
    return code.replace("_", "").isalnum()


def _is_ident(code, var, names):
    return var is not None and code == names.offs(var)


def _is_const(code: str) -> bool:
    try:
        float(eval(code, {"__builtins__": {}}, {"float": float}))
        return True
    except Exception:
        return False


def _const_fold(fn, x):
    import math as m
    table = {"exp": m.exp, "log": m.log, "sqrt": m.sqrt, "abs": abs, "relu": lambda v: max(v, 0.0),
             "tanh": m.tanh, "recip": lambda v: 1 / v, "square": lambda v: v * v,
             "sigmoid": lambda v: 1 / (1 + m.exp(-v)), "floor": m.floor, "ceil": m.ceil}
    return float(table[fn](x)) if fn in table else x


def _const_binary(op, x, y):
    return {"+": x + y, "-": x - y, "*": x * y}.get(op) if op in "+-*" else (
        x / y if op == "/" else max(x, y) if op == "max" else min(x, y) if op == "min" else
        x ** y if op == "pow" else (_ for _ in ()).throw(ValueError()))


class PhaseGen(KernelGen):
    def run(self, loops: list, post: list, store_finals: list):
        low = self.low
        roles = low.roles
        head = []
        # program ids: rows (axis 0) and batch (axis 1)
        if roles.row and roles.role[roles.row] == "row" and self.has_row:
            v = roles.row
            head.append("pid_r = tl.program_id(0)")
            offs = self.names.offs(v)
            head.append(f"{offs} = pid_r * {self.blk(v)} + tl.arange(0, {self.blk(v)})")
            self.memo_inv[("offs", v)] = offs
        if roles.batch:
            head.append("pid_b = tl.program_id(1)")
            rem = "pid_b"
            for k, v in enumerate(reversed(roles.batch)):
                ext = self.size_code(v.upper())
                if k == len(roles.batch) - 1:
                    head.append(f"{self.names.idx(v)} = {rem}")
                else:
                    head.append(f"{self.names.idx(v)} = {rem} % {ext}")
                    quotient = self.fresh(f"rem_{k}")
                    head.append(f"{quotient} = {rem} // {ext}")
                    rem = quotient
        self.lines = head
        for k, loop in enumerate(loops):
            self.emit_loop(k, loop)
        # after the loops: outputs and scratch
        for e in post:
            self.store_einsum(e)
        for name in store_finals:
            self.store_scratch(name)
        return dead_assignments(self.lines)

    # ----------------------------------------------------------------- loops
    def bound_code(self, expr) -> str:
        """Triton code of a typed loop bound (backends.gpu.bounds)."""
        return render_bound(expr, self.symbol_code)

    def symbol_code(self, sym) -> str:
        kind = sym[0]
        if kind == "size":
            return self.size_code(sym[1])
        if kind == "block":
            return self.blk(sym[1])
        if kind == "pid":
            return "pid_r"
        return self.names.idx(sym[1])

    def closure_of(self, einsum, seen=None):
        seen = seen if seen is not None else {}
        if einsum.name in seen:
            return seen.values()
        seen[einsum.name] = einsum
        for acc in einsum.reads():
            t = acc.tensor
            if t in self.low.inputs:
                continue
            for e in self.low.defs[t]:
                if e.name in self.low.a.recurrences and e.name != einsum.name:
                    continue
                if e.name in self.low.stream_red_names:
                    continue
                self.closure_of(e, seen)
        return list(seen.values())

    def partial_block_condition(self, einsum, pred, ninf):
        """Code of "this loop step needs the mask", or None to mask every step."""
        low = self.low
        loop = self.cur_loop
        if loop is None or self.loop_lines is None or self.parallel:
            return None
        full = pred_range(low, einsum, loop, full=True)
        if full is None:
            return None
        parts = []
        if full.lo is not None:
            parts.append(f"(it < {self.emit('full_lo', self.bound_code(full.lo), False)})")
        if full.hi is not None:
            parts.append(f"(it >= {self.emit('full_hi', self.bound_code(full.hi), False)})")
        if not parts:
            return None
        for code, axes in ninf:
            if code == pred.code:
                continue
            if code in self.bound_codes:
                rank, blk = self.bound_codes[code]
                self.used_blocks.add(blk)
                parts.append(f"((it + 1) * {blk} > {self.size_code(rank)})")
                continue
            return None  # another kind of emptiness: mask every step
        return " | ".join(parts)

    def emit_loop(self, k: int, loop: Loop):
        low = self.low
        roles = low.roles
        bounds = loop_bounds(low, loop)
        lo, hi, notes = self.bound_code(bounds.lo), self.bound_code(bounds.hi), bounds.notes
        desc = ", ".join(sorted({e.name for kind, u in loop.units
                                 for e in (u if kind == "rec" else [u])} | {e.name for e in loop.outputs}
                                | {self.names.tensor(increments_name(n))
                                   for n, _, _ in self.scan_inc}))
        self.lines.append("")
        self.lines.append(f"# loop {k} over the streamed rank ({loop.var}, {loop.style}): {desc}")
        if self.parallel:
            lo = "tl.program_id(0)"
            self.lines.append("# one step per program: the programs of grid axis 0 run the steps "
                              "in parallel")
            if self.scan_pre:
                self.lines.append("# the state before each step is read from its prefix sum ("
                                  + ", ".join(self.names.tensor(prefix_name(n))
                                              for n in sorted(self.scan_pre)) + ")")
        else:
            for n in notes:
                self.lines.append(f"# bounds derived from {n}")
        # initial values of carried state
        self.carried = {}
        accs = {}
        for kind, u in loop.units:
            if kind == "rec":
                for e in u:
                    if e.name in low.a.recurrences and e.name not in self.carried:
                        rec = low.a.recurrences[e.name]
                        init = self.einsum_value(rec.init)
                        axes = self.rec_axes(rec)
                        code = self.f32(init)
                        code = f"tl.zeros({self.shape_of(axes)}, tl.float32) + " \
                               f"{self.bcast(code, init.axes, axes) if init.axes else code}" \
                            if axes else code
                        name = self.emit(e.name.lower(), code, False)
                        self.carried[e.name] = name
            else:
                e = u
                axes = low.order(sum((self.eval_int(i).axes for i in e.output.indices), ()))
                name = self.emit(e.name.lower() + "_acc",
                                 f"tl.full({self.shape_of(axes)}, {IDENTITY[e.reducer]}, tl.float32)"
                                 if axes else IDENTITY[e.reducer], False)
                accs[e.name] = (name, axes)
        lo_n = self.emit(f"lo_{k}", lo, False)
        hi_n = self.emit(f"hi_{k}", f"{lo_n} + 1" if self.parallel else hi, False)
        if self.split_stream:
            nsplit = self.names.keyed(("nsplit",), "NSPLIT")
            self.lines.append(f"# this program reduces one of {nsplit} slices of the loop")
            chunk = self.fresh(f"chunk_{k}")
            self.lines.append(f"{chunk} = tl.cdiv({hi_n} - {lo_n}, {nsplit})")
            self.lines.append(f"{lo_n} = {lo_n} + tl.program_id(0) * {chunk}")
            self.lines.append(f"{hi_n} = tl.minimum({lo_n} + {chunk}, {hi_n})")
            if NSPLIT_ARG not in self.size_args:
                self.size_args.append(NSPLIT_ARG)
        header = f"for it in range({lo_n}, {hi_n}):"
        self.cur_loop = loop
        if loop.style == "plain":
            self.cur_block = roles.block[loop.var][0]
        else:
            split = low.split_outer_of(loop.var.upper())
            self.cur_block = next((roles.block[v][0] for v, r in roles.role.items()
                                   if v.upper() == split.inner and v in roles.block), None)
        self.loop_lines = []
        self.memo_var = {}
        self.newval = {}
        saved = dict(self.bind)
        if loop.style == "split":
            self.bind[loop.var] = Idx("it", (), True)
            split = low.split_outer_of(loop.var.upper())
            for v, r in roles.role.items():
                if r == "reshape" and v.upper() == split.rank:
                    inner_v = next(x for x, rr in roles.role.items()
                                   if x.upper() == split.inner and rr in ("chunk_row", "col"))
                    inner = self.default_bind(inner_v)
                    size = self.index_size_code(split.inner)
                    self.bind[v] = Idx(f"(it * {size} + {inner.code})", inner.axes, True,
                                       (Idx("it", (), True), size, inner))
        else:
            v = loop.var
            blk = self.blk(v)
            local = self.fresh(f"arange_{v}")
            offs = self.names.offs(v)
            self.loop_lines.append(f"{offs} = it * {blk} + tl.arange(0, {blk})")
            self.loop_names.add(offs)
            if ("arange", v) not in self.memo_inv:
                self.lines.append(f"{local} = tl.arange(0, {blk})")
                self.memo_inv[("arange", v)] = local
            self.bind[v] = Idx(offs, (v,), True,
                               (Idx("it", (), True), blk, Idx(self.memo_inv[("arange", v)], (v,))))
        # the body
        for kind, u in loop.units:
            if kind == "rec":
                for e in u:
                    if e.name in low.a.recurrences:
                        self.rec_update(e.name)
                    else:
                        pass  # plain members are inlined on demand
            else:
                e = u
                name, axes = accs[e.name]
                t = self.einsum_value(e, stream_var=loop.var)
                part = self.f32(t)
                if tuple(t.axes) != tuple(axes):
                    part = self.bcast(part, t.axes, axes)
                op = {"sum": f"{name} + {part}", "max": f"tl.maximum({name}, {part})",
                      "min": f"tl.minimum({name}, {part})", "prod": f"{name} * {part}"}[e.reducer]
                self.loop_lines.append(f"{name} = {op}")
        for name, upd, inc in self.scan_inc:
            rec = low.a.recurrences[name]
            idx = [Name(rec.var) if k == rec.axis else i for k, i in enumerate(upd.output.indices)]
            self.store(increments_name(name), idx, self.eval_value(inc), cast=False, in_loop=True)
        for e in loop.outputs:
            self.store_einsum(e, in_loop=True)
        for name, var in self.carried.items():
            if name in self.newval:
                self.loop_lines.append(f"{var} = {self.newval[name].code}")
        self.cur_block = None
        self.cur_loop = None
        self.lines.append(header)
        self.lines += ["    " + x for x in self.loop_lines]
        self.loop_lines = None
        self.memo_var = {}
        self.bind = saved
        # finished values
        for name, var in self.carried.items():
            rec = low.a.recurrences[name]
            self.finals[name] = Tile(var, self.rec_axes(rec), "f32", may_inf=True)
        for kind, u in loop.units:
            if kind == "sred":
                name, axes = accs[u.name]
                self.finals[u.name] = Tile(name, axes, "f32", may_inf=u.reducer in ("max", "min"))
        self.carried = {}
        self.newval = {}

    # ----------------------------------------------------------------- stores
    def store_einsum(self, e: Einsum, in_loop=False):
        if e.name in self.finals:
            t = self.finals[e.name]
        else:
            t = self.einsum_value(e)
        self.store(e.name, e.output.indices, t, cast=True, in_loop=in_loop)

    def store_scratch(self, name: str):
        (e,) = [x for x in self.low.defs[name]] if name not in self.low.a.recurrences else \
            [self.low.a.recurrences[name].update]
        t = self.finals[name]
        idx = [i for k, i in enumerate(e.output.indices)
               if name not in self.low.a.recurrences or k != self.low.a.recurrences[name].axis]
        self.store(name, idx, t, cast=False)

    def store(self, name, indices, t: Tile, cast: bool, in_loop=False):
        low = self.low
        idx = [self.eval_int(i) for i in indices]
        axes = low.order(sum((i.axes for i in idx), ()))
        ptr = self.pointer(name)
        strides = self.strides[name]
        ranks = [d for d in (low.outputs[name].ranks if name in low.outputs else
                             self.extra_ranks[name] if name in self.extra_ranks else
                             self.scratch_axes(name))]
        parts, terms = [], []
        for k, i in enumerate(idx):
            parts.append(f"{self.bcast(i.code, i.axes, axes)} * {strides[k]}")
            if i.axes:
                ext = self.size_code(ranks[k])
                var = i.axes[0] if len(i.axes) == 1 and _is_ident(i.code, i.axes[0], self.names) else None
                b = low.roles.block.get(var) if var else None
                if b and not b[3] and str(b[1]) == str(low.sizes.get(ranks[k])):
                    continue
                terms.append(self.bcast(f"({i.code} < {ext})", i.axes, axes))
        value = self.f32(t)
        if tuple(t.axes) != tuple(axes):
            if not set(t.axes) <= set(axes):
                raise CascadeError(f"cannot store {name}: its value spans {t.axes}")
            value = self.bcast(value, t.axes, axes) if t.axes else value
            value = f"tl.broadcast_to({value}, {self.shape_of(axes)})" if axes else value
        v = self.emit(name.lower() + "_out", value, in_loop)
        if cast and any(e.where is not None for e in low.c.einsums):
            # a row whose points are all empty ends as 0 / 0: stored as 0 (design.md 3)
            v2 = self.emit(name.lower() + "_val",
                           f"tl.where({v} == {v}, {v}, 0.0).to({ptr}.dtype.element_ty)", in_loop)
        elif cast:
            v2 = self.emit(name.lower() + "_val", f"{v}.to({ptr}.dtype.element_ty)", in_loop)
        else:
            v2 = v
        mask = f", mask={' & '.join(terms)}" if terms else ""
        op = "tl.atomic_add" if (self.split_stream and not cast) else "tl.store"
        self.stmt(f"{op}({ptr} + {' + '.join(parts)}, {v2}{mask})", in_loop)


def _linear_code(lin: Linear, sym) -> str:
    """Readable code of sum(coef * product) + const."""
    out = ""
    for product, c in lin.terms:
        mag = "" if abs(c) == 1 else f"{abs(c)} * "
        out += (" - " if c < 0 else " + ") + mag + " * ".join(sym(x) for x in product)
    if lin.const:
        out += (" - " if lin.const < 0 else " + ") + str(abs(lin.const))
    out = out.strip()
    if not out:
        return "0"
    return out[2:] if out.startswith("+ ") else "-" + out[2:]


def render_bound(expr, sym) -> str:
    """Triton code of a bound expression; ``sym`` spells a symbol."""
    if isinstance(expr, Linear):
        return _linear_code(expr, sym)
    if isinstance(expr, (Max, Min)):
        fn = "tl.maximum" if isinstance(expr, Max) else "tl.minimum"
        a, b = (render_bound(x, sym) for x in expr.items)
        return f"{fn}({a}, {b})"
    if isinstance(expr, FloorDiv):
        den = render_bound(expr.den, sym)
        return f"(tl.maximum({render_bound(expr.num, sym)}, 0) // {den})"
    if isinstance(expr, CeilDiv):
        den = render_bound(expr.den, sym)
        return f"((tl.maximum({render_bound(expr.num, sym)}, 0) + {den} - 1) // {den})"
    return f"tl.cdiv({render_bound(expr.a, sym)}, {render_bound(expr.b, sym)})"


def _fmt(expr):
    from einsum_ir.printer import format_expr
    return format_expr(expr)


# ------------------------------------------------------------------------------ the module


@dataclass
class Generated:
    source: str
    phases: list  # [{"kernel", "grid_row", "pointers", "sizes"}]
    roles: Roles
    config: Config
    tunable: dict  # block constexpr name -> default


def generate(prepared: Prepared, sizes: dict, config: Config | None = None, *,
             mapping_note: str = "") -> Generated:
    """The module of a prepared cascade for resolved sizes and a mapping."""
    try:
        return _generate(prepared, sizes, config or Config(), mapping_note)
    except CascadeError as exc:
        raise exc.with_source(prepared.source.source or prepared.cascade.source)


def _generate(prepared: Prepared, sizes, config, mapping_note):
    cascade, facts = prepared.cascade, prepared.facts
    names = Namespace()
    low = Lowering(cascade, sizes, config, facts, names.block)
    planner = Planner(low)
    phases, post = planner.plan()
    scan = _scan_plan(low, phases, post) if config.scan else None
    if scan is not None:
        try:
            return _generate_scan(low, names, phases, post, scan, config, mapping_note, prepared)
        except CascadeError:
            names = Namespace()  # fall back to the sequential loop
            low = Lowering(cascade, sizes, config, facts, names.block)
            planner = Planner(low)
            phases, post = planner.plan()
    kernels = []
    finals_from = {}
    phase_keys = sorted(phases)
    for ph in phase_keys:
        loops = phases[ph]
        last = ph == phase_keys[-1]
        phase_reads = {}
        if last:
            for name, ph0 in finals_from.items():
                phase_reads[name] = ph0
        store_finals = []
        if not last:
            for lp in loops:
                for kind, u in lp.units:
                    for e in (u if kind == "rec" else [u]):
                        if e.name in low.a.recurrences or kind == "sred":
                            if e.name not in store_finals:
                                store_finals.append(e.name)
        gen = PhaseGen(low, names, f"_phase{ph}", loops, phase_reads, post if last else [], store_finals)
        # a state phase made only of sums over the streamed rank splits that rank across
        # programs (grid axis 0) and adds the partial sums atomically
        gen.split_stream = (not last and len(loops) == 1 and all(
            kind == "sred" and u.reducer == "sum" for kind, u in loops[0].units))
        gen.has_row = last or any(planner.iterates_row(e) for lp in loops for _, u in lp.units
                                  for e in (u if isinstance(u, tuple) else [u]))
        if not last:
            gen.has_row = False
        lines = gen.run(loops, post if last else [], store_finals)
        if not last:
            for name in store_finals:
                rec = low.a.recurrences.get(name)
                e = rec.update if rec else low.defs[name][0]
                axes = [i for k, i in enumerate(e.output.indices) if not rec or k != rec.axis]
                finals_from[name] = [i.name.upper() for i in axes]
        kernels.append((gen, lines, store_finals))
    return _assemble(low, names, kernels, finals_from, config, mapping_note, prepared)


def _generate_scan(low, names, phases, post, scan, config, mapping_note, prepared):
    loop = phases[1][0]
    recs = low.a.recurrences
    ranks = {}
    for name, upd, inc in scan:
        rec = recs[name]
        ranks[name] = [rec.var.upper() if k == rec.axis else i.name.upper()
                       for k, i in enumerate(upd.output.indices)]
    inc_loop = Loop(loop.level, loop.style, loop.var)
    gen_inc = PhaseGen(low, names, "_phase_increments", [inc_loop], {}, [], [])
    gen_inc.parallel = True
    gen_inc.has_row = False
    gen_inc.scan_inc = scan
    gen_inc.extra_ranks = {increments_name(n): r for n, r in ranks.items()}
    lines_inc = gen_inc.run([inc_loop], [], [])
    main_loop = Loop(loop.level, loop.style, loop.var, [], list(loop.outputs))
    reads = {prefix_name(n): r for n, r in ranks.items()}
    gen = PhaseGen(low, names, "_phase_steps", [main_loop], reads, [], [])
    gen.parallel = True
    gen.has_row = False
    gen.scan_pre = {n for n, _, _ in scan}
    lines = gen.run([main_loop], [], [])
    scan_meta = [(n, ranks[n], recs[n].axis, float(recs[n].init.body.value)) for n, _, _ in scan]
    return _assemble(low, names, [(gen_inc, lines_inc, []), (gen, lines, [])], {}, config, mapping_note,
                     prepared, scan=scan_meta)


def _assemble(low: Lowering, names: Namespace, kernels, scratch, config: Config, mapping_note, prepared,
              scan=None):
    roles = low.roles
    c = low.c
    src = header(prepared, low.roles, config, mapping_note)
    blocks = {name: size for name, size, _, _ in roles.block.values()}
    src.append("import torch")
    src.append("import triton")
    src.append("import triton.language as tl")
    src.append("")
    baked = {k: v for k, v in low.sizes.items() if low.is_baked(k)}
    src.append(f"BAKED_SIZES = {baked!r}  # sizes compiled into the kernels")
    tunable = {}
    if roles.row and roles.role[roles.row] == "row":
        tunable[roles.block[roles.row][0]] = config.block_r
    for v, r in roles.role.items():
        if r == "stream_plain":
            tunable[roles.block[v][0]] = config.block_c
    fixed_blocks = {k: v for k, v in blocks.items() if k not in tunable}
    src.append(f"FIXED_BLOCKS = {fixed_blocks!r}")
    src.append(f"CONFIG = {dict(tunable, num_warps=config.num_warps, num_stages=config.num_stages)!r}")
    src.append("")
    metas = []
    for gen, lines, store_finals in kernels:
        consts = sorted(gen.used_blocks)
        evens = dict(sorted(gen.evens.items()))
        args = [names.ptr(p) for p in gen.pointers]
        for p in gen.pointers:
            args += gen.strides[p]
        args += [names.keyed(("nsplit",), "NSPLIT") if s == NSPLIT_ARG else names.size(s)
                 for s in gen.size_args]
        args += [f"{k}: tl.constexpr" for k in consts]
        args += [f"{names.even(k)}: tl.constexpr" for k in evens]
        src.append("@triton.jit")
        src.append(f"def {gen.name}(")
        for a in args:
            src.append(f"    {a},")
        src.append("):")
        for line in lines:
            src.append("    " + line if line else "")
        src.append("")
        src.append("")
        split = None
        if gen.split_stream:
            lp = gen.units[0]
            if lp.style == "plain":
                split = (lp.var.upper(), roles.block[lp.var][0])
            else:
                sp = low.split_outer_of(lp.var.upper())
                split = (sp.rank, next(roles.block[v][0] for v in roles.block if v.upper() == sp.inner))
        metas.append({"split": split, "kernel": gen.name, "pointers": list(gen.pointers),
                      "args": _typed_args(low, names, gen, consts, evens),
                      "sizes": list(gen.size_args), "consts": consts, "evens": evens,
                      "row": roles.row if gen.has_row and roles.row and roles.role[roles.row] == "row" else None})
    if scan:
        for m in metas:
            split = low.split_outer_of(gen_loop_var(kernels).upper())
            m["parallel"] = (split.rank, split.inner)
        metas[0]["scan"] = scan
    src += launcher(low, names, metas, scratch, nsplit_arg=NSPLIT_ARG, increments=increments_name,
                    prefix=prefix_name)
    return Generated("\n".join(src) + "\n", metas, roles, config, tunable)


def _typed_args(low: Lowering, names: Namespace, gen, consts, evens) -> list:
    """The kernel's parameters as (identifier, kind, detail): ``ptr`` (detail: the tensor has the
    inputs' dtype, else fp32 scratch), ``stride`` (detail: the last axis), ``size``, ``block``,
    ``even``; what an ahead-of-time compile needs to specialise them."""
    out = [(names.ptr(p), "ptr", p in low.inputs or p in low.outputs) for p in gen.pointers]
    for p in gen.pointers:
        strides = gen.strides[p]
        out += [(x, "stride", k == len(strides) - 1) for k, x in enumerate(strides)]
    out += [(names.keyed(("nsplit",), "NSPLIT") if s == NSPLIT_ARG else names.size(s), "size",
             None) for s in gen.size_args]
    out += [(k, "block", None) for k in consts]
    out += [(names.even(k), "even", None) for k in evens]
    return out


def gen_loop_var(kernels):
    return kernels[0][0].units[0].var



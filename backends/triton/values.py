"""Index, predicate and value expressions of the cascade as Triton tiles (element-wise maps)."""
from __future__ import annotations

from dataclasses import replace

from einsum_ir.errors import CascadeError
from einsum_ir.exprs import coverage
from einsum_ir.ir import Access, Binary, Call, Expr, Name, Num, Unary

from einsum_ir.data_masks import reads_tensors

from .data import value_predicate
from .kernel import KernelGen
from .peepholes import dot_accumulate, fold_exp2_scale, safe_running_max, scaled_product
from .powers import pow_node
from .render import OPS
from .tile_ir import BinOp, Cast, Conj, Const, Disj, Int, Node, Op, Select, Where, scalar_test
from .tile_ir import Call as TlCall
from .tiles import (
    _UNION,
    Idx,
    Term,
    Tile,
    _const_binary,
    _const_fold,
    _err,
    _simple,
    const_tile,
)

_INDEX_OPS = frozenset({"neg", "neg_bare", "paren", "invert", "not", "to_int"})  # not cascade functions
_NEUTRAL = {"max": float("-inf"), "min": float("inf")}  # the identity of a max/min operation
BINARY_OPS = frozenset({"+", "-", "*", "/", "%", "max", "min", "pow", "<", "<=", ">", ">=",
                        "==", "!="})


def _index_f32(value: Node, axes) -> Node:
    """An integer index value in fp32. A scalar one may be a Python int (a loop counter under
    TRITON_INTERPRET=1), which has no ``.to``: it is scaled by 1.0 instead."""
    return Cast(value) if axes else BinOp("*", value, Const(1.0))


def _makes_nan(op: str, a: Tile, b: Tile) -> bool:
    """Whether ``a op b`` may be a fresh NaN (the interpreter's empty point)."""
    if op in ("/", "%"):
        return not (b.const is not None and b.const != 0 and not b.axes and not b.variant)
    return False  # (0 * inf is not flagged: carried state is conservatively "may be inf")


def _selected(terms: list, zero_terms, op: str) -> list:
    """The terms of a union's side whose missing points need a select: in ``+`` / ``-`` not
    those outside which the side is 0 (it adds nothing there)."""
    return [tm for tm in terms if tm not in zero_terms] if op in ("+", "-") else terms


def _scaled(steps, k: int):
    return None if steps is None else tuple(k * x for x in steps)


def _step_sum(op: str, a: Idx, b: Idx):
    """The step form of ``a op b`` (see Idx.steps), where it stays one."""
    if a.steps is None or b.steps is None or op not in ("+", "-"):
        return None
    sign = 1 if op == "+" else -1
    return tuple(x + sign * y for x, y in zip(a.steps, b.steps, strict=True))


class ValueGen(KernelGen):
    def eval_int(self, expr: Expr) -> Idx:
        if isinstance(expr, Num):
            return Idx(Int(int(expr.value)), steps=(0, 0, int(expr.value)))
        if isinstance(expr, Name):
            if expr.is_index:
                return self.default_bind(expr.name, expr)
            loop_rank = self.loop.loop.var.upper() if self.loop is not None else None
            return Idx(self.index_size_code(expr.name),
                       steps=(0, 1, 0) if expr.name == loop_rank else None)
        if isinstance(expr, Unary) and expr.op == "-":
            i = self.eval_int(expr.operand)
            return Idx(Op("neg", (i.value,)), i.axes, i.variant, steps=_scaled(i.steps, -1))
        if isinstance(expr, Binary) and expr.op in ("+", "-", "*", "/", "%"):
            a, b = self.eval_int(expr.lhs), self.eval_int(expr.rhs)
            if expr.op in ("/", "%") and a.composite is not None and not b.axes:
                outer, size, inner = a.composite
                if b.value == size:
                    return outer if expr.op == "/" else inner
            axes = self.low.order(a.axes + b.axes)
            self.need2d(axes, expr)
            op = {"/": "//"}.get(expr.op, expr.op)
            value = BinOp(op, self.bcast(a.value, a.axes, axes), self.bcast(b.value, b.axes, axes))
            return Idx(value, axes, a.variant or b.variant, steps=_step_sum(expr.op, a, b))
        if isinstance(expr, Call) and expr.func in ("min", "max", "abs"):
            args = [self.eval_int(x) for x in expr.args]
            axes = self.low.order(sum((x.axes for x in args), ()))
            values = tuple(self.bcast(x.value, x.axes, axes) for x in args)
            fn = {"min": "minimum", "max": "maximum", "abs": "abs"}[expr.func]
            return Idx(TlCall(fn, values), axes, any(x.variant for x in args))
        raise _err("this index expression is outside the Triton lowering's reach", expr)

    def eval_pred(self, expr: Expr) -> Idx:
        if reads_tensors(expr) and not (isinstance(expr, Unary) and expr.op == "not"
                                        or isinstance(expr, Binary) and expr.op in ("and", "or")):
            return value_predicate(self, expr)
        if isinstance(expr, Unary) and expr.op == "not":
            i = self.eval_pred(expr.operand)
            return Idx(Op("invert" if i.axes else "not", (i.value,)), i.axes, i.variant)
        if isinstance(expr, Binary) and expr.op in ("and", "or", "<", "<=", ">", ">=", "==", "!="):
            ev = self.eval_pred if expr.op in ("and", "or") else self.eval_int
            a, b = ev(expr.lhs), ev(expr.rhs)
            axes = self.low.order(a.axes + b.axes)
            self.need2d(axes, expr)
            op = {"and": "&", "or": "|"}.get(expr.op, expr.op)
            value = BinOp(op, self.bcast(a.value, a.axes, axes), self.bcast(b.value, b.axes, axes))
            return Idx(value, axes, a.variant or b.variant)
        i = self.eval_int(expr)  # an integer as a truth value: nonzero (``&`` would be bitwise)
        return Idx(BinOp("!=", i.value, Int(0)), i.axes, i.variant)

    # ----------------------------------------------------------------- values
    def f32(self, t: Tile) -> Node:
        if t.kind == "int":
            return _index_f32(t.value, t.axes)
        return Cast(t.value) if t.kind == "native" else t.value

    def eval_value(self, expr: Expr) -> Tile:
        if isinstance(expr, Num):
            return const_tile(float(expr.value))
        if isinstance(expr, Name):
            value = self.low.sizes.get(expr.name)
            if not expr.is_index and isinstance(value, float):  # a real parameter: its literal
                return const_tile(value)
            i = self.eval_int(expr)
            if not i.axes:
                low = self.low
                baked = not expr.is_index and low.is_baked(expr.name) and expr.name in low.sizes
                return Tile(BinOp("*", i.value, Const(1.0)), variant=i.variant,
                            const=float(low.sizes[expr.name]) if baked else None)
            return Tile(i.value, i.axes, kind="int", variant=i.variant)
        if isinstance(expr, Access):
            return self.read(expr)
        if isinstance(expr, Unary):
            t = self.settle_empty(self.eval_value(expr.operand))
            if expr.op == "-":
                return self.negate(t)
            is_zero = BinOp("==", self.f32(t), Int(0), wrap=False)
            return replace(t, value=Where(is_zero, Const(1.0), Const(0.0)), kind="f32",
                           zero_terms=frozenset(), src=None, const=None)
        if isinstance(expr, Binary):
            if expr.op in ("and", "or", "<", "<=", ">", ">=", "==", "!="):
                try:
                    p = self.eval_pred(expr)
                    pick = Where if p.axes else Select
                    return Tile(pick(p.value, Const(1.0), Const(0.0)), p.axes, variant=p.variant)
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

    def settle_empty(self, t: Tile) -> Tile:
        """A max/min over no point (``empty_at``) as a validity term, before an operation
        changes the identity that marks it: the point stays empty through the operation."""
        if t.empty_at is None:
            return t
        t = self.materialize(t, "red")
        test = BinOp("!=", t.value, Const(t.empty_at))
        term = Term(test if t.axes else scalar_test(test), t.axes, t.variant)
        return replace(t, terms=t.terms | {term}, empty_at=None)

    def negate(self, t: Tile) -> Tile:
        t = self.settle_empty(t)
        return replace(t, value=Op("neg", (self.f32(t),)), kind="f32", zero_terms=t.zero_terms,
                       src=None, const=None if t.const is None else -t.const)

    def unary(self, fn: str, t: Tile, node) -> Tile:
        t = self.settle_empty(t)
        out = self._unary(fn, t, node)
        nan = t.may_nan or fn in ("log", "sqrt")
        return replace(out, may_nan=True) if nan and not out.may_nan and out.const is None else out

    def _unary(self, fn: str, t: Tile, node) -> Tile:
        folded = fold_exp2_scale(self, fn, t)
        if folded is not None:
            return folded
        if fn not in OPS or fn in BINARY_OPS or fn in _INDEX_OPS:
            raise _err(f"function {fn!r} is outside the Triton lowering's reach", node)
        if not t.axes and not t.variant and t.const is not None:
            value = _const_fold(fn, t.const)
            if value is not None:  # (a constant read where its tensor may be empty keeps it)
                return replace(const_tile(value), terms=t.terms)
        x = self.f32(t)
        if t.axes or t.variant:
            x = self.emit(fn + "_in", x, t.variant) if not _simple(x) else x
        zero = t.zero_terms if fn in ("relu", "abs", "sqrt", "square", "silu", "tanh") else frozenset()
        if fn in ("exp", "sigmoid"):
            zero = t.ninf_terms  # exp(-inf) = 0
        may_inf = t.may_inf and fn not in ("exp", "sigmoid", "tanh")
        return Tile(Op(fn, (x,)), t.axes, "f32", t.terms, zero, may_inf, t.variant)

    def binary(self, op: str, a: Tile, b: Tile, node) -> Tile:
        neutral = _NEUTRAL.get(op)
        # max(x, -inf) = x: an empty max is this max's identity and keeps its mark
        keep = neutral is not None and not (self._non_pad(a) or self._non_pad(b)) \
            and {a.empty_at, b.empty_at} <= {None, neutral}
        empty_at = neutral if keep and a.empty_at is not None and b.empty_at is not None else None
        if not keep:
            a, b = self.settle_empty(a), self.settle_empty(b)
        out = replace(self._binary(op, a, b, node), empty_at=empty_at)
        if out.const is not None:
            return out
        nan = out.may_nan if op in _UNION else a.may_nan or b.may_nan or out.may_nan
        nan = nan or _makes_nan(op, a, b)
        return out if nan == out.may_nan else replace(out, may_nan=nan)

    def _binary(self, op: str, a: Tile, b: Tile, node) -> Tile:
        axes = self.low.order(a.axes + b.axes)
        self.need2d(axes, node)
        if op not in BINARY_OPS:
            raise _err(f"operator {op!r} is outside the Triton lowering's reach", node)
        if not a.axes and not b.axes and not a.variant and not b.variant \
                and a.const is not None and b.const is not None and not a.terms and not b.terms:
            try:
                return const_tile(_const_binary(op, a.const, b.const))
            except (ZeroDivisionError, ValueError, OverflowError):
                pass
        cover = coverage(node.lhs, node.rhs) if isinstance(node, Binary) and op in ("+", "-") \
            else (True, True)
        if op in _UNION or (op == "-" and self._needs_union(a, b, cover)):
            return self._union(op, a, b, axes, cover)
        terms = a.terms | b.terms
        ninf = a.ninf_terms if (a.ninf_terms and op == "-" and not b.may_inf
                                and not b.ninf_terms) else frozenset()  # -inf - finite = -inf
        if op == "-":
            b, ninf = safe_running_max(self, a, b, ninf)
        x, y = self.bcast(self.f32(a), a.axes, axes), self.bcast(self.f32(b), b.axes, axes)
        variant = a.variant or b.variant
        may_inf = a.may_inf or b.may_inf
        if op == "-" and a.may_inf and b.may_inf and node in self.low.rescaled.values():
            # an online softmax's RM[k] - RM[k+1], both -inf: 0, a factor of 1 on a zero state
            # (einsum_ir.autodiff.online.rescaled_maxes)
            return Tile(Op("safe_sub", (x, y)), axes, "f32", terms, frozenset(), may_inf,
                        variant)
        if op == "-":  # inf - inf is NaN, the interpreter's empty point
            return Tile(Op("-", (x, y)), axes, "f32", terms, frozenset(), may_inf, variant,
                        ninf_terms=ninf, diff=(a, b), may_nan=a.may_inf and b.may_inf)
        if op == "*":
            return scaled_product(a, b, Op("*", (x, y)), axes, terms, may_inf)
        if op == "/" and not b.axes and b.const:
            return scaled_product(a, const_tile(1.0 / b.const), BinOp("*", x, Const(1.0 / b.const)),
                                  axes, terms, may_inf, zero=a.zero_terms)
        if op == "pow":
            return self._pow(a, b, x, y, axes, terms, variant, node)
        zero = a.zero_terms if op == "/" else frozenset()
        return Tile(Op(op, (x, y)), axes, "f32", terms, zero, may_inf, variant)

    def _index_exponent(self, node):
        """The exponent of ``pow`` as an integer index value, or None when it is not one."""
        if not (isinstance(node, Call) and len(node.args) == 2):
            return None
        try:
            return self.eval_int(node.args[1])
        except CascadeError:
            return None

    def _pow(self, a: Tile, b: Tile, x: Node, y: Node, axes, terms, variant, node) -> Tile:
        """``a ** b`` with numpy's meaning for negative and zero bases (backends.triton.powers)."""
        n = b.const if not b.axes and not b.variant else None
        x = x if _simple(x) else self.emit("pow_base", x, variant)
        y_int = None
        exponent = self._index_exponent(node)
        if n is None and exponent is not None:  # ``p - m``: the parity from the integers
            y_int = self.bcast(exponent.value, exponent.axes, axes)
            y_int = y_int if _simple(y_int) else self.emit("pow_int", y_int, variant)
        if n is None and not _simple(y):
            y = self.emit("pow_exp", _index_f32(y_int, exponent.axes) if y_int else y, variant)
        zero = a.zero_terms if n is not None and n > 0 else frozenset()
        fractional = y_int is None and (n is None or not float(n).is_integer())  # (-2) ** 0.5
        # a finite base to a constant power >= 0 is finite (as a product is: no overflow)
        may_inf = a.may_inf or n is None or n < 0
        return Tile(pow_node(x, y, n, y_int), axes, "f32", terms, zero, may_inf, variant,
                    may_nan=fractional)

    def _non_pad(self, t: Tile) -> set:
        return {tm for tm in t.terms if not self.padding(tm)}

    def _needs_union(self, a: Tile, b: Tile, cover) -> bool:
        """Whether ``a - b`` has other points than its operands' intersection (exprs.coverage)."""
        sa, sb = self._non_pad(a), self._non_pad(b)
        if all(cover):
            return sa != sb
        return not (sb <= sa if cover[0] else sa <= sb) if any(cover) else False

    def _union(self, op: str, a: Tile, b: Tile, axes, cover=(True, True)) -> Tile:
        """``+``, ``-``, ``max``, ``min``: a union keeps the side that exists where the other is
        empty (the empty-point rule; ``-`` negates a lone right operand; a NaN side is an empty
        point); an operand that does not cover the other's indices creates no points
        (exprs.coverage); padding positions are outside every iteration space and need no
        select."""
        x, y = self.bcast(self.f32(a), a.axes, axes), self.bcast(self.f32(b), b.axes, axes)
        if a.may_nan or b.may_nan:
            x, y = self._operand_var(x, a, "union_lhs"), self._operand_var(y, b, "union_rhs")
        if not any(cover):
            return Tile(Op(op, (x, y)), axes, "f32", a.terms | b.terms, frozenset(),
                        a.may_inf or b.may_inf, a.variant or b.variant,
                        may_nan=a.may_nan or b.may_nan)
        terms = a.terms & b.terms if (a.terms and b.terms) else frozenset()
        ninf = a.ninf_terms if (a.ninf_terms and op == "+" and not b.may_inf
                                and not b.ninf_terms) else frozenset()
        code = Op(op, (x, y))
        lone_y = Op("neg", (y,)) if op == "-" else y
        # a NaN side is an empty point: the other side passes, where it creates points
        if a.may_nan and cover[1]:
            code, ninf = Where(BinOp("!=", x, x, wrap=False), lone_y, code), frozenset()
        if b.may_nan and cover[0]:
            code, ninf = Where(BinOp("!=", y, y, wrap=False), x, code), frozenset()
        # a term both sides have is the union's own validity (where it fails neither side
        # exists): only the others need a select
        shared = a.terms & b.terms
        sa = [tm for tm in a.terms if not self.padding(tm) and tm not in shared]
        sb = [tm for tm in b.terms if not self.padding(tm) and tm not in shared]
        # a missing side that is 0 there (a sum over no point) needs no select in a + or -
        za, zb = (_selected(s, t.zero_terms, op) for s, t in ((sa, a), (sb, b)))
        if not all(cover):  # the covering side's points; a missing other side is the identity
            if sa if cover[0] else sb:
                terms = a.terms if cover[0] else b.terms
            other, keep = (zb, x) if cover[0] else (za, lone_y)
            if other:
                code, ninf = Where(self.mask_var(other, axes), code, keep), frozenset()
        elif za and not zb:
            code, ninf = Where(self.mask_var(za, axes), code, lone_y), frozenset()
        elif zb and not za:
            code, ninf = Where(self.mask_var(zb, axes), code, x), frozenset()
        elif za and zb:
            ma, mb = self.mask_var(za, axes), self.mask_var(zb, axes)
            code, ninf = Where(Conj((ma, mb)), code, Where(ma, x, lone_y)), frozenset()
        if all(cover) and sa and sb and set(sa) != set(sb):  # exists where either side does
            ma, mb = self.mask_var(sa, axes), self.mask_var(sb, axes)
            var = a.variant or b.variant
            either = self.emit("either", Disj((ma, mb)), var and self.loop is not None)
            terms = terms | {Term(either, tuple(axes), var)}
        # padding (past a rank's extent) is outside every iteration space: it stays masked
        terms = terms | {tm for tm in a.terms | b.terms if self.padding(tm)}
        variant = a.variant or b.variant
        # NaN stays where both sides may be NaN, or where the NaN side's partner creates no point
        nan = (a.may_nan and (b.may_nan or not cover[1])) or (b.may_nan and not cover[0])
        if op == "-":
            return Tile(code, axes, "f32", terms, frozenset(), a.may_inf or b.may_inf, variant,
                        may_nan=nan)
        if op != "+":
            return Tile(code, axes, "f32", terms, frozenset(), a.may_inf and b.may_inf, variant,
                        max_of=a.max_of | b.max_of if op == "max" else frozenset(), may_nan=nan)
        if not za and not zb and not (a.may_nan or b.may_nan):
            code = dot_accumulate(a, b, x, y, axes) or code
        return Tile(code, axes, "f32", terms, frozenset(), a.may_inf or b.may_inf, variant,
                    ninf_terms=ninf, may_nan=nan)

    def _operand_var(self, value: Node, t: Tile, hint: str) -> Node:
        return value if _simple(value) else self.emit(hint, value, t.variant)

    def materialize(self, t: Tile, hint: str) -> Tile:
        if _simple(t.value) or not t.axes and not t.variant and t.const is not None:
            return t
        return replace(t, value=self.emit(hint, t.value, t.variant))

    # ----------------------------------------------------------------- reads

"""Index, predicate and value expressions of the cascade as Triton tiles (element-wise maps)."""
from __future__ import annotations

import math
from dataclasses import replace

from einsum_ir.errors import CascadeError
from einsum_ir.ir import Access, Binary, Call, Expr, Name, Num, Unary

from .kernel import KernelGen
from .tiles import (
    _UNION,
    LOG2E,
    Idx,
    Tile,
    _bounded_by,
    _const_binary,
    _const_fold,
    _err,
    _is_const,
    _name_of,
    _simple,
)


class ValueGen(KernelGen):
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
            # a union op keeps the side that exists where the other is empty (the empty-point rule);
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

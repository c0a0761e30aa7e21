"""IR to text. The output parses back to an IR equal to the input (spans aside)."""
from __future__ import annotations

import math

from .ir import Access, Binary, Call, Cascade, Einsum, Expr, Name, Num, TensorDecl, Unary

# Binding strength, loosest first; mirrors cascade.lark.
_PRECEDENCE = {"or": 1, "and": 2, "not": 3, "cmp": 4, "+": 5, "-": 5, "*": 6, "/": 6, "%": 6,
               "neg": 7, "atom": 8}


def _level(expr: Expr) -> int:
    if isinstance(expr, Binary):
        return _PRECEDENCE["cmp"] if expr.op in ("<", "<=", ">", ">=", "==", "!=") else _PRECEDENCE[expr.op]
    if isinstance(expr, Unary):
        return _PRECEDENCE["neg"] if expr.op == "-" else _PRECEDENCE["not"]
    if isinstance(expr, Num) and (expr.value < 0 or (isinstance(expr.value, float) and math.isnan(expr.value))):
        return _PRECEDENCE["neg"]
    return _PRECEDENCE["atom"]


def format_number(value: float | int) -> str:
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = repr(float(value))
    return text


def format_expr(expr: Expr) -> str:
    if isinstance(expr, Num):
        return format_number(expr.value)
    if isinstance(expr, Name):
        return expr.name
    if isinstance(expr, Access):
        return f"{expr.tensor}[{', '.join(format_expr(i) for i in expr.indices)}]"
    if isinstance(expr, Call):
        return f"{expr.func}({', '.join(format_expr(a) for a in expr.args)})"
    if isinstance(expr, Unary):
        inner = format_expr(expr.operand)
        if _level(expr.operand) < _level(expr):
            inner = f"({inner})"
        return f"-{inner}" if expr.op == "-" else f"not {inner}"
    if isinstance(expr, Binary):
        level = _level(expr)
        lhs, rhs = format_expr(expr.lhs), format_expr(expr.rhs)
        if _level(expr.lhs) < level or (level == _PRECEDENCE["cmp"] and _level(expr.lhs) == level):
            lhs = f"({lhs})"
        # Left-associative: an equal-precedence right operand needs parentheses.
        if _level(expr.rhs) <= level:
            rhs = f"({rhs})"
        return f"{lhs} {expr.op} {rhs}"
    raise TypeError(f"not an expression: {expr!r}")


def format_einsum(einsum: Einsum) -> str:
    text = f"{format_expr(einsum.output)} = "
    if einsum.reducer is not None and not einsum.implicit_sum:
        text += f"{einsum.reducer}[{', '.join(einsum.reduced)}] "
    text += format_expr(einsum.body)
    if einsum.where is not None:
        text += f" where {format_expr(einsum.where)}"
    return text


def _format_decl(decl: TensorDecl) -> str:
    text = f"{decl.name}[{', '.join(decl.axes)}]"
    return text if decl.empty == 0 else f"{text} empty {format_number(decl.empty)}"


def format_cascade(cascade: Cascade) -> str:
    lines = [f"# cascade {cascade.name}"]
    # One declaration per line keeps the order, which matters for equality.
    for decl in cascade.sizes:
        if decl.index_of:
            lines.append(f"index {decl.name.lower()} : {format_expr(decl.default)}")
            continue
        keyword = "rank" if decl.is_rank else "param"
        lines.append(f"{keyword} {decl.name} = {format_expr(decl.default)}")
    for split in cascade.splits:
        lines.append(f"split {split.rank} = {split.outer} * {split.inner}")
    if cascade.inputs:
        lines.append("input " + ", ".join(_format_decl(d) for d in cascade.inputs))
    if cascade.outputs:
        lines.append("output " + ", ".join(_format_decl(d) for d in cascade.outputs))
    lines.append("")
    lines.extend(format_einsum(e) for e in cascade.einsums)
    return "\n".join(lines) + "\n"

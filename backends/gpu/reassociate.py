"""One reduced index per Einsum: ``sum[f, m] A * B`` as ``sum[m] (sum[f] A) * B``.

The single-kernel lowering reduces one index per Einsum, and gradient cascades are full of sums
over two (``dSD[h,p] = sum[f, m] -(dAV[h,p,f] * SN[h,p,m] * V[h,m,f])``). A sum of a product
reassociates exactly in the interpreter's semantics: the factors that involve the inner index go
into a new Einsum that reduces it (with the original ``where``, so that the same points exist),
and the others multiply its result in the outer one. A point of the outer reduction exists when
some inner point does and its outer factors exist, which is when some point of the original
iteration space does. ``max`` and ``min`` nest the same way (their bodies stay whole). The inner
index is the one whose Einsum keeps the fewest indices (the 2-D contraction ``sum[f] dAV * V``),
among equals the one written last: ``sum[b, p, m]`` nests as its loops are written, m innermost,
so that the leading (batch-like) index is summed last, over a small tensor (summed first, it
would be a reduction over a rank the kernel maps to its grid, which the lowering refuses).
"""
from __future__ import annotations

from einsum_ir import Cascade
from einsum_ir.exprs import Factor, Product, product_factors
from einsum_ir.ir import Access, Binary, Einsum, Expr, Name, Num, Role, Unary, index_vars

_NESTING = ("sum", "max", "min")


def split_reductions(cascade: Cascade) -> Cascade:
    """The cascade with every reduction over several indices nested one index at a time."""
    taken = set(cascade.tensor_names())
    out = []
    for e in cascade.einsums:
        out += _nested(e, taken)
    return cascade if len(out) == len(cascade.einsums) else cascade.replace_einsums(out)


def _nested(e: Einsum, taken: set[str]) -> list[Einsum]:
    if e.reducer not in _NESTING or len(e.reduced) < 2 or e.role is not Role.DEF \
            or not all(isinstance(i, Name) and i.is_index for i in e.output.indices):
        return [e]
    product = product_factors(e.body) if e.reducer == "sum" else Product(False, (Factor(e.body),))
    best = None
    for r in reversed(e.reduced):  # among equals, the index written last
        inner = [f for f in product.factors if r in index_vars(f.expr)]
        if not inner:
            continue
        rest = [v for v in e.reduced if v != r]
        wanted = {v for f in inner for v in index_vars(f.expr)} | set(index_vars(e.where))
        keep = [v for v in (*e.output_vars, *rest) if v in wanted]
        if best is None or len(keep) < len(best[2]):
            best = (r, inner, keep, rest)
    if best is None:
        return [e]
    r, inner, keep, rest = best
    name = _fresh(f"{e.name}_{r}", taken)
    access = Access(name, tuple(Name(v) for v in keep), e.output.span)
    inner_body = _product(Product(product.negated, tuple(inner)))
    first = Einsum(access, inner_body, e.reducer, (r,), e.where, span=e.span)
    outer = [f for f in product.factors if f not in inner]
    body = _product(Product(False, (Factor(access), *outer)))
    second = Einsum(e.output, body, e.reducer, tuple(rest), None, span=e.span)
    return [first, *_nested(second, taken)]


def _product(p: Product) -> Expr:
    num = [f.expr for f in p.factors if not f.divisor]
    den = [f.expr for f in p.factors if f.divisor]
    expr = num[0] if num else None
    for x in num[1:]:
        expr = Binary("*", expr, x)
    for x in den:
        expr = Binary("/", expr if expr is not None else _one(), x)
    if expr is None:
        expr = _one()
    return Unary("-", expr) if p.negated else expr


def _one() -> Expr:
    return Num(1)


def _fresh(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    taken.add(name)
    return name

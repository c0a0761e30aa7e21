"""The vector-Jacobian product of one Einsum with respect to one of its reads.

For ``Y[out] = reduce[red] f(X1, ..., Xn) where pred`` and a read ``Xi[e1, ..., ek]``::

    dXi[j1, ..., jk] = sum[(out ∪ red) \\ {j}] dY[out] * w * ∂f/∂Xi  where pred and e == j

with ``w = 1`` for ``sum`` and for a map, and for ``max``/``min`` the arg-max weight
``(f == Y[out]) / NY[out]``, NY counting the points that reach the extremum (ties share the
gradient equally, as torch.amax does). A read index that is a plain variable of the axis's rank
becomes the gradient's index; any other index (``h / G``, ``m1*M0 + m0``, ``p % C``) gets the
axis's own variable and an equality in the predicate, which scatters the gradient back.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import CascadeError
from ..exprs import rank_root
from ..ir import Access, Binary, Cascade, Einsum, Expr, Name, index_vars
from .algebra import compare, div, is_num, mul
from .derivative import partial, reindex, replace_subexpr
from .invert import solve, tidy


@dataclass(frozen=True)
class Target:
    """The tensor a gradient is taken for: its name and the variable naming each axis."""

    tensor: str
    axes: tuple[str, ...]
    drop: int | None = None  # an axis read at a constant index the gradient goes without
    step: int | None = None  # an axis read at ``n + 1``: the gradient is of X[.., n + 1], at n


def tie_count(einsum: Einsum, name: str) -> Einsum:
    """NY[out] = sum[red] (f == Y[out]) where pred: how many points reach the extremum."""
    hit = compare("==", einsum.body, einsum.output)
    return Einsum(Access(name, einsum.output.indices), hit, "sum", einsum.reduced, einsum.where)


def vjp(cascade: Cascade, einsum: Einsum, read: Access, target: Target, grad_out: str,
        name: str, fresh, ties: str | None = None, seed: Access | None = None,
        alias=None) -> tuple[Einsum, ...] | None:
    """The Einsums whose last, ``name[...]``, holds this read's share of the gradient of
    ``target``, or None when the body does not depend on the read. ``seed`` reads the output's
    gradient (default: ``grad_out`` at the output's indices); ``fresh(base)`` names a tensor;
    ``alias(rank, avoid)`` gives an index of an alias rank of ``rank`` not in ``avoid``, for an
    axis whose own index the Einsum already uses.

    A scatter (an equality in the predicate) that also sums over other indices is two Einsums:
    the contraction first, at the read's own indices, then the scatter, a sum over one index."""
    d = partial(einsum.body, read)
    if is_num(d, 0):
        return None
    if einsum.reducer is None:  # exp(x)' is exp(x): read the value rather than recompute it
        d = replace_subexpr(d, einsum.body, einsum.output)
    seed = seed or Access(grad_out, einsum.output.indices)
    body = mul(seed, d)
    if einsum.reducer in ("max", "min"):
        weight = div(compare("==", einsum.body, einsum.output),
                     Access(ties, einsum.output.indices))
        body = mul(mul(seed, weight), d)
    elif einsum.reducer not in (None, "sum"):
        raise CascadeError(f"{einsum.name}: the gradient of a {einsum.reducer} reduction is not "
                           "supported", einsum.span, "write it as a sum of logarithms")
    out, equalities = _gradient_indices(cascade, einsum, read, target, alias)
    space = list(einsum.iteration_space)
    reduced = [v for v in space if v not in out]
    eq_vars = {v for eq in equalities for v in index_vars(eq.lhs)}
    inner = tuple(v for v in reduced if v not in eq_vars)
    if equalities and inner and len(inner) < len(reduced):
        # the contraction first, at the read's own indices (in its axes' order) ...
        order = [v for index in read.indices for v in index_vars(index)]
        gathered = tuple(dict.fromkeys(v for v in [*order, *space] if v not in inner))
        part = fresh(f"{name}_at")
        first = Einsum(Access(part, tuple(Name(v) for v in gathered)), body, "sum", inner,
                       einsum.where)
        # ... then the scatter (or, solved, the gather) over the other indices
        return (first, _assemble(cascade, einsum, name, out, Access(part, first.output.indices),
                                 None, list(gathered), equalities, alias))
    return (_assemble(cascade, einsum, name, out, body, einsum.where, space, equalities, alias),)


def _assemble(cascade, einsum, name, out, body, where, space, equalities, alias) -> Einsum:
    """``name[out] = sum[space \\ out] body where where and equalities``, with the equalities
    solved for the summed indices where they can be (:mod:`.invert`)."""
    if equalities and alias is not None:
        subst, added, equalities = solve(cascade, equalities,
                                         [v for v in space if v not in out], alias)
        for var, value in subst.items():
            body, where = reindex(body, var, value, set()), reindex(where, var, value, set())
        body, where = tidy(body), tidy(where)
        space = list(dict.fromkeys([*(v for v in space if v not in subst), *out, *added]))
    for eq in equalities:
        where = eq if where is None else Binary("and", where, eq)
    reduced = tuple(v for v in space if v not in out)
    missing = [v for v in reduced if v not in index_vars(body)]
    if missing:
        raise CascadeError(f"{einsum.name}: a gradient sums over {missing[0]}, which its "
                           "expression does not use", einsum.span,
                           "the pass cannot yet scale by the count of such points")
    return Einsum(Access(name, tuple(Name(v) for v in out)), body,
                  "sum" if reduced else None, reduced, where)


def _gradient_indices(cascade: Cascade, einsum: Einsum, read: Access, target: Target,
                      alias) -> tuple[tuple[str, ...], list[Expr]]:
    space = set(einsum.iteration_space)
    out: list[str] = []
    equalities: list[Expr] = []
    for k, (index, axis) in enumerate(zip(read.indices, target.axes, strict=True)):
        if k == target.drop:
            continue
        if k == target.step:
            out.append(index.lhs.name)  # read_kind checked the form n + 1
            continue
        if (isinstance(index, Name) and index.is_index and index.name not in out
                and rank_root(cascade, index.name.upper()) == rank_root(cascade, axis.upper())):
            out.append(index.name)
            continue
        if (axis in space or axis in out) and alias is not None:
            axis = alias(axis.upper(), space | set(out))
        elif axis in space or axis in out:
            raise CascadeError(f"{einsum.name}: the gradient of the read {read.tensor}[...] needs "
                               f"a fresh index for axis {axis}, which the Einsum already uses",
                               read.span or einsum.span,
                               "declare an alias rank for a second index of the same rank")
        out.append(axis)
        equalities.append(Binary("==", index, Name(axis)))
    return tuple(out), equalities

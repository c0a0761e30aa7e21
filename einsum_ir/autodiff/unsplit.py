"""Einsums over the two parts of a split (``m1``, ``m0`` of ``split M = M1 * M0``) rewritten
over the whole index ``m``.

The final-value form of an online softmax (:mod:`.online`) reduces over both parts of the split
its recurrences step over; the Triton lowering reduces over one index, and a value over ``m1``,
``m0`` and a third index needs a 3-D tile. Every point of the split's tail is empty and every
``m < M`` is ``m1 = m / M0``, ``m0 = m % M0``, so ``sum[m1, m0] f(m1, m0)`` is
``sum[m] f(m / M0, m % M0)``; a map over the parts read at ``T[.., x / M0, x % M0, ..]`` is the
same map over the whole index read at ``x``, and ``(x / M0) * M0 + x % M0`` is ``x``.
"""
from __future__ import annotations

from dataclasses import replace

from ..ir import Access, Binary, Cascade, Einsum, Expr, Name, Role
from ..passes.rewrite import fresh, readers, transform


def merge_split(cascade: Cascade, new: set[str], split, taken: set[str]) -> Cascade:
    """``cascade`` with the Einsums of ``new`` over the whole index of ``split`` where they
    span both its parts, and the maps over the parts they read defined over it too."""
    parts = (split.outer.lower(), split.inner.lower())
    einsums = [_over_whole(e, parts, split) if e.name in new else e for e in cascade.einsums]
    whole = {e.name for e in einsums if e.name in new}
    out, made = [], {}
    for e in einsums:
        out.append(e)
        if e.role is Role.DEF and e.name not in whole and _read_at_whole(einsums, e.name, split) \
                and _plain_pair(e.output, parts):
            merged = _over_whole(e, parts, split)
            made[e.name] = fresh(f"{e.name}_{split.rank.lower()}", taken)
            out.append(replace(merged, output=Access(made[e.name], merged.output.indices)))
            whole.add(made[e.name])
    renames = {t: made.get(t, t) for t in whole | set(made)}
    out = [_reads_whole(e, renames, split) for e in out]
    dropped = {t for t in made if not readers(replace(cascade, einsums=tuple(out)), t)
               and cascade.output(t) is None}
    return replace(cascade, einsums=tuple(e for e in out if e.name not in dropped))


def _plain_pair(output: Access, parts) -> int | None:
    names = [i.name if isinstance(i, Name) else None for i in output.indices]
    for n in range(len(names) - 1):
        if (names[n], names[n + 1]) == parts:
            return n
    return None


def _whole_var(e: Einsum, split) -> str:
    used = set(e.iteration_space)
    name = split.rank.lower()
    while name in used:
        name += "_"
    return name


def _over_whole(e: Einsum, parts, split) -> Einsum:
    """``e`` with the adjacent output indices (or the reduced indices) ``m1, m0`` merged."""
    k, r = parts
    m = _whole_var(e, split)
    at = _plain_pair(e.output, parts)
    output = e.output
    reduced = e.reduced
    if at is not None:
        idx = e.output.indices
        output = Access(e.name, (*idx[:at], Name(m), *idx[at + 2:]), e.output.span)
    elif k in e.reduced and r in e.reduced:
        reduced = tuple(m if v == k else v for v in e.reduced if v != r)
    else:
        return e
    inner = Name(split.inner)
    sub = {k: Binary("/", Name(m), inner), r: Binary("%", Name(m), inner)}

    def rewrite(expr):
        if expr is None:
            return None
        return _simplified(transform(expr, lambda n: sub.get(n.name) if isinstance(n, Name)
                                     else None), split)

    return replace(e, output=output, reduced=reduced, body=rewrite(e.body), where=rewrite(e.where))


def _simplified(expr: Expr, split) -> Expr:
    """``(x / M0) * M0 + x % M0`` read as ``x``."""
    inner = Name(split.inner)

    def whole(n):
        if isinstance(n, Binary) and n.op == "+" and isinstance(n.lhs, Binary) \
                and n.lhs.op == "*" and isinstance(n.rhs, Binary) and n.rhs.op == "%":
            quotient = n.lhs.lhs if n.lhs.rhs == inner else n.lhs.rhs if n.lhs.lhs == inner \
                else None
            x = n.rhs.lhs
            if n.rhs.rhs == inner and quotient == Binary("/", x, inner):
                return x
        return None

    return transform(expr, whole)


def _pair_read(access: Access, split) -> tuple[int, Expr] | None:
    """(n, x) where ``access`` reads ``x / M0, x % M0`` at positions n and n + 1."""
    inner = Name(split.inner)
    idx = access.indices
    for n in range(len(idx) - 1):
        a, b = idx[n], idx[n + 1]
        if isinstance(a, Binary) and isinstance(b, Binary) and a.op == "/" and b.op == "%" \
                and a.rhs == inner and b.rhs == inner and a.lhs == b.lhs:
            return n, a.lhs
    return None


def _read_at_whole(einsums, tensor: str, split) -> bool:
    return any(a.tensor == tensor and _pair_read(a, split) is not None
               for e in einsums for a in e.reads())


def _reads_whole(e: Einsum, renames: dict[str, str], split) -> Einsum:
    def read(n):
        if isinstance(n, Access) and n.tensor in renames:
            found = _pair_read(n, split)
            if found is not None:
                at, x = found
                return Access(renames[n.tensor], (*n.indices[:at], x, *n.indices[at + 2:]),
                              n.span)
        return None

    where = None if e.where is None else transform(e.where, read)
    return replace(e, body=transform(e.body, read), where=where)

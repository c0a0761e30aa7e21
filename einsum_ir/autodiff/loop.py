"""The reverse of a general recurrence: a recurrence stepping backwards, written forwards.

A recurrence ``X[.., 0] = c``, ``X[.., i+1] = f_i(X[.., i], ...)`` (through the Einsums of its
recurrent group, such as ``SPD = PRM * RD`` for ``RD``) has the adjoint

    λ[j] = D[j] + VJP_j(λ[j+1]),    λ[N] = D[N]

where D[j] is what the readers outside the group contribute to ``X[.., j]`` (reads at ``n``,
at ``n+1`` and at the end ``N``) and VJP_j the vector-Jacobian product of step j with respect to
its input state. The language steps forwards only, so the pass writes Λ[r] = λ[N - r]::

    L[.., 0]   = D1[.., N - 1] + Dfinal[..]
    L[.., r+1] = D0[.., N - 1 - r] + D1[.., N - 2 - r] + VJP(L[.., r]) at step N - 1 - r
    G[.., i]   = L[.., N - 1 - i]          # the gradient of X[.., i+1], in forward order

Reads past either end are empty and ``+`` passes the other operand through, which is what the
boundary terms need. G then seeds the ordinary VJPs of the group's Einsums.
"""
from __future__ import annotations

from ..errors import CascadeError
from ..ir import Access, Binary, Einsum, Expr, Name, Num
from .derivative import reindex
from .recurrence import RECURRENCE_HINT, Loop
from .vjp import Target, vjp


def _minus(rank: str, var: str, k: int) -> Expr:
    """``rank - k - var`` (``rank - var`` for k = 0)."""
    base: Expr = Name(rank) if k == 0 else Binary("-", Name(rank), Num(k))
    return Binary("-", base, Name(var))


def _sum(terms: list[Expr]) -> Expr:
    body = terms[0]
    for term in terms[1:]:
        body = Binary("+", body, term)
    return body


def reverse_loop(cascade, loop: Loop, d0, d1, dfin, names, axes_of, alias):
    """The Einsums of Λ and G (see the module's docstring) and the read of G at step ``var``."""
    v, rank, axes = loop.var, loop.rank, loop.axes()

    def at(index: Expr) -> tuple[Expr, ...]:
        return tuple(index if k == loop.axis else Name(a) for k, a in enumerate(axes))

    rest = tuple(Name(a) for k, a in enumerate(axes) if k != loop.axis)
    lam = names.fresh(f"d{loop.tensor}_rev")
    start = ([Access(d1, at(Binary("-", Name(rank), Num(1))))] if d1 else []) + \
        ([Access(dfin, rest)] if dfin else [])
    einsums = [Einsum(Access(lam, at(Num(0))), _sum(start) if start else Num(0))]
    chain, jac = _chain(cascade, loop, Access(lam, at(Name(v))), names, axes_of, alias)
    einsums += chain
    terms = ([Access(d0, at(_minus(rank, v, 1)))] if d0 else []) + \
        ([Access(d1, at(_minus(rank, v, 2)))] if d1 else []) + jac
    einsums.append(Einsum(Access(lam, at(Binary("+", Name(v), Num(1)))),
                          _sum(terms) if terms else Num(0)))
    grad = names.fresh(f"d{loop.tensor}_next")
    einsums.append(Einsum(Access(grad, at(Name(v))), Access(lam, at(_minus(rank, v, 1)))))
    return einsums, Access(grad, at(Name(v)))


def _chain(cascade, loop: Loop, seed: Access, names, axes_of, alias):
    """VJP(Λ[r]) with respect to the state X[.., i], through the group's Einsums, at the forward
    step i = N - 1 - r: the Einsums and the terms to add up."""
    v, rank = loop.var, loop.rank
    members = {e.name for e in loop.members}
    grads: dict[str, list[Access]] = {loop.update.name: [seed]}
    reverse = {seed.tensor}
    out: list[Einsum] = []
    jac: list[Expr] = []
    for e in (loop.update, *reversed(loop.members)):
        seeds = grads.get(e.name)
        if not seeds:
            continue
        g = seeds[0] if len(seeds) == 1 else None
        if g is None:
            g = Access(names.fresh(f"d{e.name}_rev"), seeds[0].indices)
            out.append(Einsum(g, _sum(list(seeds))))
            reverse.add(g.tensor)
        for read in dict.fromkeys(a for a in e.reads() if a.tensor in members | {loop.tensor}):
            if read.tensor == loop.tensor and read.indices[loop.axis] != Name(v):
                raise CascadeError(f"{e.name} reads {loop.tensor} at a step other than {v} inside "
                                   "its recurrence", read.span or e.span, RECURRENCE_HINT)
            name = names.fresh(f"d{read.tensor}_{e.name}_rev")
            share = vjp(cascade, e, read, Target(read.tensor, axes_of(read.tensor)), g.tensor,
                        name, names.fresh, seed=g, alias=alias)
            if share is None:
                continue
            if len(share) > 1 or share[-1].where is not None and _scatters(share[-1]):
                raise CascadeError(f"{e.name}: a scattered read inside a recurrence is not "
                                   "supported", read.span or e.span, RECURRENCE_HINT)
            for s in share:
                reverse.add(s.name)
            share = [_reversed(s, v, rank, reverse) for s in share]
            out += share
            target = Access(share[-1].name, share[-1].output.indices)
            if read.tensor == loop.tensor:
                jac.append(target)
            else:
                grads.setdefault(read.tensor, []).append(target)
    return out, jac


def _scatters(e: Einsum) -> bool:
    return any(isinstance(n, Binary) and n.op == "==" for n in _walk(e.where))


def _walk(expr):
    from ..ir import walk

    return walk(expr) if expr is not None else ()


def _reversed(e: Einsum, v: str, rank: str, reverse: set[str]) -> Einsum:
    """A VJP Einsum of step i, rewritten for the reverse step r = N - 1 - i: forward values read
    at N - 1 - v; the adjoint tensors stay at v."""
    new = _minus(rank, v, 1)
    return Einsum(e.output, reindex(e.body, v, new, reverse), e.reducer, e.reduced,
                  reindex(e.where, v, new, reverse))

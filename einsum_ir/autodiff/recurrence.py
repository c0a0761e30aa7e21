"""Additive recurrences and their reverse: a running sum's gradient is a suffix sum.

For ``X[.., 0] = c`` and ``X[.., i+1] = X[.., i] + E(i)`` (``c`` reading no tensor), every later
value is ``X[.., i] = c + sum over j < i of E(j)``. The readers of ``X`` read it at a plain index
of the stepped rank (``X[.., n]``, 0 <= n < N) or at its end (``X[.., N]``), so the gradient of
``E(i)``, the value ``X[.., i+1]`` adds to, is::

    G[.., i] = sum[j] Dplain[.., j] where j > i   +   Dfinal[..]

with ``j`` an index of a new alias rank of the stepped rank. Any other recurrence (a running max,
a rescaled sum) is refused with a located error: its reverse needs the stepped index reversed,
which the language cannot write yet.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import CascadeError
from ..exprs import rank_root
from ..facts import Recurrence
from ..ir import Access, Binary, Cascade, Einsum, Expr, Name, accesses

RECURRENCE_HINT = ("only running sums X[.., i+1] = X[.., i] + E with a constant initial value are "
                   "differentiated; differentiate the cascade before the online-softmax rewrite "
                   "(the 3-pass or deferred form)")


@dataclass(frozen=True)
class Additive:
    tensor: str
    axis: int  # position of the stepped axis
    var: str  # the update's step index (``n`` in ``S[.., n+1]``)
    init: Einsum
    update: Einsum
    increment: Expr  # E

    @property
    def rank(self) -> str:
        return self.var.upper()

    def axes(self) -> tuple[str, ...]:
        return tuple(self.var if k == self.axis else i.name
                     for k, i in enumerate(self.update.output.indices))


def additive(cascade: Cascade, rec: Recurrence) -> Additive:
    """The running sum ``rec`` is, or a located error saying why it is not one."""
    update = rec.update

    def refuse(why: str, node=None):
        return CascadeError(f"{rec.tensor}: reverse-mode differentiation of a recurrence is not "
                            f"supported here: {why}", getattr(node, "span", None) or update.span,
                            RECURRENCE_HINT)

    if accesses(rec.init.body) or rec.init.where is not None:
        raise refuse("its initial value reads tensors or has a predicate", rec.init)
    if update.reducer is not None or update.where is not None:
        raise refuse("the update reduces or has a predicate")
    prev = Access(rec.tensor, tuple(Name(rec.var) if k == rec.axis else i
                                    for k, i in enumerate(update.output.indices)))
    body = update.body
    if not (isinstance(body, Binary) and body.op == "+" and prev in (body.lhs, body.rhs)):
        raise refuse(f"the update is not {rec.tensor}[.., {rec.var}] + ...")
    increment = body.rhs if body.lhs == prev else body.lhs
    if any(a.tensor == rec.tensor for a in accesses(increment)):
        raise refuse(f"the increment reads {rec.tensor}", increment)
    return Additive(rec.tensor, rec.axis, rec.var, rec.init, update, increment)


def is_final(cascade: Cascade, rec: Additive, read: Access) -> bool:
    """True for a read of the last value (``X[.., N]``), False for one at a plain index."""
    index = read.indices[rec.axis]
    if isinstance(index, Name) and not index.is_index and index.name == rec.rank:
        return True
    if (isinstance(index, Name) and index.is_index
            and rank_root(cascade, index.name.upper()) == rank_root(cascade, rec.rank)):
        return False
    raise CascadeError(f"{rec.tensor} is read at an index other than a plain index of "
                       f"{rec.rank} or its end {rec.rank}: the gradient of this read is not "
                       "supported", read.span, RECURRENCE_HINT)


def suffix_sum(rec: Additive, plain: str | None, final: str | None, alias: str,
               names) -> tuple[list[Einsum], Access]:
    """The Einsums computing G (the gradient of each increment) and the read of G to seed the
    update's VJP with."""
    axes = rec.axes()
    j = alias.lower()
    at = lambda var: tuple(Name(var if k == rec.axis else a) for k, a in enumerate(axes))  # noqa: E731
    rest = tuple(Name(a) for k, a in enumerate(axes) if k != rec.axis)
    einsums: list[Einsum] = []
    terms: list[Expr] = []
    if plain is not None:
        after = names.fresh(f"d{rec.tensor}_after")
        einsums.append(Einsum(Access(after, at(rec.var)), Access(plain, at(j)), "sum", (j,),
                              Binary(">", Name(j), Name(rec.var))))
        terms.append(Access(after, at(rec.var)))
    if final is not None:
        terms.append(Access(final, rest))
    if len(terms) == 1 and isinstance(terms[0], Access) and terms[0].indices == at(rec.var):
        return einsums, terms[0]
    name = names.fresh(f"d{rec.tensor}_step")
    body = terms[0] if len(terms) == 1 else Binary("+", terms[0], terms[1])
    einsums.append(Einsum(Access(name, at(rec.var)), body))
    return einsums, Access(name, at(rec.var))

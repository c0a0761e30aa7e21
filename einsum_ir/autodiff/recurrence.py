"""Recurrences to differentiate (:class:`Loop`) and the reverse of a running sum.

A recurrence is reversible here when it has one state ``X`` with a constant initial value, its
update maps (no reduction, no predicate) and readers outside its group read ``X[.., n]``,
``X[.., n+1]`` or the end ``X[.., N]``; :mod:`.loop` writes the reverse. A running sum
(``X[.., i+1] = X[.., i] + E(i)``, no other Einsum in its group, no read at ``n+1``) needs no
reverse recurrence: every ``X[.., i] = c + sum over j < i of E(j)``, so the gradient of ``E(i)``
is a suffix sum::

    G[.., i] = sum[j] Dplain[.., j] where j > i   +   Dfinal[..]

with ``j`` an index of a new alias rank of the stepped rank.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import CascadeError
from ..exprs import rank_root
from ..facts import Recurrence
from ..ir import Access, Binary, Cascade, Einsum, Expr, Name, Num, Role, accesses

RECURRENCE_HINT = ("a recurrence is differentiated when it has one state with a constant initial "
                   "value, read at n, n+1 or its end; or differentiate the cascade before the "
                   "online-softmax rewrite (the 3-pass or deferred form)")


@dataclass(frozen=True)
class Loop:
    """A recurrence to differentiate: its state tensor, the update and the other Einsums of its
    recurrent group; ``increment`` is E when the update is a running sum X[i] + E."""

    tensor: str
    axis: int  # position of the stepped axis
    var: str  # the update's step index (``n`` in ``S[.., n+1]``)
    init: Einsum
    update: Einsum
    members: tuple[Einsum, ...] = ()
    increment: Expr | None = None

    @property
    def rank(self) -> str:
        return self.var.upper()

    def axes(self) -> tuple[str, ...]:
        return tuple(self.var if k == self.axis else i.name
                     for k, i in enumerate(self.update.output.indices))


def loop_of(cascade: Cascade, analysis, rec: Recurrence) -> Loop:
    """The recurrence ``rec`` as a :class:`Loop`, or a located error saying why the pass cannot
    reverse it."""
    update = rec.update

    def refuse(why: str, node=None):
        return CascadeError(f"{rec.tensor}: reverse-mode differentiation of a recurrence is not "
                            f"supported here: {why}", getattr(node, "span", None) or update.span,
                            RECURRENCE_HINT)

    if accesses(rec.init.body) or rec.init.where is not None:
        raise refuse("its initial value reads tensors or has a predicate", rec.init)
    if update.reducer is not None or update.where is not None:
        raise refuse("the update reduces or has a predicate")
    step = next(s for s in analysis.steps if update in s.einsums)
    members = tuple(e for e in step.einsums if e is not update)
    for e in members:
        if e.role is not Role.DEF:
            raise refuse(f"it shares its recurrence with {e.name}, a second state", e)
    order = cascade.positions()
    if any(order[e.id] > order[update.id] for e in members):
        raise refuse("an Einsum of its recurrence comes after the update", update)
    prev = Access(rec.tensor, tuple(Name(rec.var) if k == rec.axis else i
                                    for k, i in enumerate(update.output.indices)))
    body = update.body
    increment = None
    if not members and isinstance(body, Binary) and body.op == "+" and prev in (body.lhs, body.rhs):
        increment = body.rhs if body.lhs == prev else body.lhs
        if any(a.tensor == rec.tensor for a in accesses(increment)):
            increment = None
    return Loop(rec.tensor, rec.axis, rec.var, rec.init, update, members, increment)


def read_kind(cascade: Cascade, rec: Loop, read: Access) -> str:
    """How a reader outside the recurrence reads the state: "plain" (``X[.., n]``), "next"
    (``X[.., n+1]``) or "final" (``X[.., N]``)."""
    index = read.indices[rec.axis]
    root = rank_root(cascade, rec.rank)
    if isinstance(index, Name) and not index.is_index and index.name == rec.rank:
        return "final"
    if isinstance(index, Name) and index.is_index and rank_root(cascade, index.name.upper()) == root:
        return "plain"
    if (isinstance(index, Binary) and index.op == "+" and isinstance(index.lhs, Name)
            and index.lhs.is_index and isinstance(index.rhs, Num) and index.rhs.value == 1
            and rank_root(cascade, index.lhs.name.upper()) == root):
        return "next"
    raise CascadeError(f"{rec.tensor} is read at an index other than n, n+1 or the end "
                       f"{rec.rank} of its recurrence: the gradient of this read is not "
                       "supported", read.span, RECURRENCE_HINT)


def suffix_sum(rec: Loop, plain: str | None, final: str | None, alias: str,
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
    if final is not None and plain is not None:
        # '+' takes no points from an operand broadcast along n (the coverage rule), and the
        # suffix sum is empty at the last step: spread the end's gradient along n first.
        spread = names.fresh(f"d{rec.tensor}_end_all")
        einsums.append(Einsum(Access(spread, at(rec.var)), Access(final, rest)))
        terms.append(Access(spread, at(rec.var)))
    elif final is not None:
        terms.append(Access(final, rest))
    if len(terms) == 1 and isinstance(terms[0], Access) and terms[0].indices == at(rec.var):
        return einsums, terms[0]
    name = names.fresh(f"d{rec.tensor}_step")
    body = terms[0] if len(terms) == 1 else Binary("+", terms[0], terms[1])
    einsums.append(Einsum(Access(name, at(rec.var)), body))
    return einsums, Access(name, at(rec.var))

"""The direction of a recurrence loop, from the index arithmetic of the reads.

A recurrence ``R[n+1] = f(R[n])`` always steps forward in ``n``, but its consumers may read it at
reversed steps, ``R[N - 1 - n]`` (the gradient of a forward recurrence, ``cascade grad``): at
position ``n`` they need the state after ``N - 1 - n`` steps. Such a recurrence runs as a loop
whose positions count down: step ``it`` is position ``N - 1 - it``, where the consumers read the
carried state. The recurrence is *reversed* when a read outside its group indexes its step axis
with coefficient -1 on an index (every such read: one forward read makes the loop forward).
"""
from __future__ import annotations

from einsum_ir.affine import affine_of


def step_coefficient(index) -> int | None:
    """+1 or -1: how the step an access reads moves with the reader's index; None for a read
    at a fixed step (``R[0]``, the final ``R[N]``) or outside the affine fragment."""
    form = affine_of(index, lambda _name: None)
    coefs = {c for _, c in (form.indices if form is not None else ()) if c}
    if len(coefs) != 1 or not coefs <= {1, -1}:
        return None
    return coefs.pop()


def reversed_recurrences(low, rec_groups) -> frozenset:
    """The recurrences that every consumer (an Einsum outside their group) reading a varying
    step reads at reversed steps. One read both ways runs forward: its reversed reads need
    states of other steps, which the lowering refuses where it meets them."""
    member = {e.id: k for k, g in enumerate(rec_groups) for e in g}
    coefs: dict = {}  # recurrence -> the step coefficients of its consumers' reads
    for e in low.c.einsums:
        for acc in e.reads():
            rec = low.a.recurrences.get(acc.tensor)
            if rec is None or member.get(e.id, -1) == member.get(rec.update.id):
                continue
            coef = step_coefficient(acc.indices[rec.axis])
            if coef is not None:
                coefs.setdefault(acc.tensor, set()).add(coef)
    return frozenset(name for name, cs in coefs.items() if cs == {-1})


def reads_reversed(low, einsum, reverse: frozenset, seen=None) -> bool:
    """Whether ``einsum`` reads a reversed recurrence at a reversed step, directly or through
    the intermediates it inlines."""
    seen = seen if seen is not None else set()
    for node in einsum.reads():
        rec = low.a.recurrences.get(node.tensor)
        if rec is not None:
            if node.tensor in reverse and step_coefficient(node.indices[rec.axis]) == -1:
                return True
            continue
        if node.tensor in low.inputs or node.tensor in seen:
            continue
        seen.add(node.tensor)
        if any(reads_reversed(low, d, reverse, seen) for d in low.defs.get(node.tensor, ())):
            return True
    return False

"""Online softmaxes read as their final values, so that their gradient saves a log-sum-exp.

The 1-pass (FuseMax's, FlashAttention-2's forward) and 2-pass (online-normaliser) forms keep a
running max and running sums rescaled at every step (any names; ``o`` the rows, ``k`` the step,
``r`` the reduced index of a step, intermediates may be inlined)::

    LM[o, k]     = max[r] s(o, k, r)
    RM[o, 0]     = -inf
    RM[o, k+1]   = max(RM[o, k], LM[o, k])
    SLN[o, k, r] = exp(s(o, k, r) - RM[o, k+1])
    PRM[o, k]    = exp(RM[o, k] - RM[o, k+1])
    R[o, 0, x]   = 0
    R[o, k+1, x] = PRM[o, k] * R[o, k, x] + sum[r] SLN[o, k, r] * rest(o, k, r, x)

By induction on k, ``R[o, k, x] = sum over j < k, r of exp(s - RM[o, k]) * rest`` for any
running shift, and ``RM[o, K] = max[k, r] s``: at the end the recurrences are the deferred form
``GM[o] = max[k, r] s; SN = exp(s - GM); R_end[o, x] = sum[k, r] SN * rest``. Differentiated as
written, the backward reads every step of every recurrence (a reverse loop each, and the arg-max
rule through the running max, whose terms cancel since the outputs do not depend on the shift);
no kernel program passes those histories between kernels. :func:`collapse` rewrites the cascade to
the final-value form where every reader outside the pattern reads only ``RM[o, K]`` and
``R[o, K, x]``; :mod:`.softmax` then finds the softmax and the backward is FlashAttention-2's,
recomputing the probabilities from the saved log-sum-exp. The forward pass keeps the recurrences:
:attr:`Collapsed.finals` says which final value each new tensor is (the log-sum-exp is computed
from ``RM[o, K]`` and the running denominator's end).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..exprs import product_factors
from ..ir import Access, Binary, Call, Cascade, Einsum, Expr, Name, Num, Role, Unary, walk
from ..passes.rewrite import fresh, readers, taken_names, transform
from .unsplit import merge_split


@dataclass(frozen=True)
class Collapsed:
    """The cascade to differentiate and, for each tensor it adds, the final value of the
    original cascade it equals (``GM -> RM[o, M1]``, at the new tensor's own indices)."""

    cascade: Cascade
    finals: tuple[tuple[str, Access], ...]


@dataclass(frozen=True)
class _Sum:
    """One rescaled running sum of the pattern: its state and the tile's contribution."""

    state: str
    axis: int  # the stepped axis of the state
    local: Einsum  # sum[r] SLN * rest (the Einsum holding it)
    members: frozenset[str]  # the tensors only this sum uses (SPD, SLD, ...)
    rescale: frozenset[str] = frozenset()  # the maps its update computes through (SPD, PRM)


def collapse(cascade: Cascade, analysis) -> Collapsed | None:
    """The cascade with its online softmaxes in the final-value form, or None where it has none
    (or one whose history is read elsewhere)."""
    out, finals = cascade, []
    for name in list(analysis.recurrences):
        rec = analysis.recurrences[name]
        found = _collapse_one(out, rec, analysis.recurrences)
        if found is not None:
            out, new = found
            finals += new
    return None if out is cascade else Collapsed(out, tuple(finals))


def _at(access: Access, axis: int, index: Expr) -> Access:
    indices = list(access.indices)
    indices[axis] = index
    return Access(access.tensor, tuple(indices))


def _def(cascade: Cascade, tensor: str) -> Einsum | None:
    defs = cascade.definitions(tensor)
    return defs[0] if len(defs) == 1 and defs[0].role is Role.DEF and defs[0].where is None \
        else None


def _resolve(cascade: Cascade, expr: Expr, used: set[str]) -> Expr:
    """``expr``, or the body of the map it reads at its own output indices (``SPD[o, k]`` for
    ``PRM[o, k] * RD[o, k]``); the tensors looked through go into ``used``."""
    if isinstance(expr, Access):
        d = _def(cascade, expr.tensor)
        if d is not None and d.reducer is None and d.output == expr:
            used.add(expr.tensor)
            return d.body
    return expr


def _running_max(cascade: Cascade, rec):
    """(LM's Einsum, the step index k) where ``rec`` is ``RM[o, k+1] = max(RM[o, k], LM[o, k])``
    from ``-inf`` with ``LM = max[r] s``, else None."""
    if rec.init.body != Unary("-", Num(float("inf"))) or rec.update.where is not None:
        return None
    body, prev = rec.update.body, _at(rec.update.output, rec.axis, Name(rec.var))
    if not (isinstance(body, Call) and body.func == "max" and prev in body.args):
        return None
    other = body.args[1] if body.args[0] == prev else body.args[0]
    lm = _def(cascade, other.tensor) if isinstance(other, Access) else None
    if lm is None or lm.reducer != "max" or len(lm.reduced) != 1 or lm.output != other:
        return None
    return lm


def _sum_of(cascade: Cascade, rec, rm, sln_body: Expr) -> _Sum | None:
    """The rescaled running sum ``rec`` over the running max ``rm`` (a Recurrence), or None."""
    upd = rec.update
    if rec.init.body != Num(0) or upd.where is not None or rec.var != rm.var:
        return None
    used: set[str] = set()
    body = _resolve(cascade, upd.body, used)
    if not (isinstance(body, Binary) and body.op == "+"):
        return None
    prev = _at(upd.output, rec.axis, Name(rec.var))
    prm = Call("exp", (_step_difference(rm),))
    scaled = [t for t in (body.lhs, body.rhs) if _is_rescaled(cascade, t, prev, prm, used)]
    if len(scaled) != 1:
        return None
    local_read = body.rhs if scaled[0] is body.lhs else body.lhs
    local = _def(cascade, local_read.tensor) if isinstance(local_read, Access) else None
    if local is None or local.reducer != "sum" or local.output != local_read:
        return None
    hits = [f.expr for f in product_factors(local.body).factors if not f.divisor
            and isinstance(f.expr, Access) and getattr(_def(cascade, f.expr.tensor), "body",
                                                       None) == sln_body]
    if len(hits) != 1 or local.output.indices != prev.indices:
        return None
    return _Sum(rec.tensor, rec.axis, local, frozenset(used | {local.name, hits[0].tensor}),
                frozenset(used))


def _is_rescaled(cascade: Cascade, term: Expr, prev: Access, prm: Expr, used: set[str]) -> bool:
    """``term`` is ``exp(RM[k] - RM[k+1]) * R[k]`` (through maps that compute either)."""
    seen: set[str] = set()
    term = _resolve(cascade, term, seen)
    factors = product_factors(term)
    if factors.negated or len(factors.factors) != 2 or any(f.divisor for f in factors.factors):
        return False
    a, b = (f.expr for f in factors.factors)
    a, b = (b, a) if b == prev else (a, b)
    if a != prev or _resolve(cascade, b, seen) != prm:
        return False
    used |= seen
    return True


def _step_difference(rm) -> Binary:
    """``RM[o, k] - RM[o, k+1]``: the exponent of the rescale factor of a running max ``rm``."""
    out, k = rm.update.output, rm.var
    return Binary("-", _at(out, rm.axis, Name(k)), _at(out, rm.axis, Binary("+", Name(k), Num(1))))


def rescaled_maxes(cascade: Cascade, recurrences) -> dict[str, Binary]:
    """The running maxes of the pattern above whose step difference ``RM[o, k] - RM[o, k+1]``
    (the value) is read only as the exponent of the rescale factor of its running sums: by
    tensor. Where ``RM[o, k] = RM[o, k+1] = -inf`` the difference is an empty point and so is
    the factor, which leaves the sum's step contribution; a kernel may take the difference as 0
    there (a factor of 1): every term the state holds is exp(-inf - ..) = 0, so the state is 0 and
    the sum is the step's contribution either way. Any other reader of the difference (an
    output, a sum not of the pattern) sees the empty point."""
    out = {}
    for rm in recurrences.values():
        lm = _running_max(cascade, rm)
        if lm is None:
            continue
        sln_body = Call("exp", (Binary("-", lm.body, rm.update.output),))
        sums = [s for other in recurrences.values() if other.tensor != rm.tensor
                for s in [_sum_of(cascade, other, rm, sln_body)] if s is not None]
        diff = _step_difference(rm)
        if sums and _read_only_to_rescale(cascade, sums, diff):
            out[rm.tensor] = diff
    return out


def _read_only_to_rescale(cascade: Cascade, sums: list[_Sum], diff: Binary) -> bool:
    """The maps the sums rescale through (PRM, SPD) are no outputs and are read only by them, and
    only they (and the sums' updates) read ``diff``."""
    inner = frozenset().union(*(s.rescale for s in sums))
    within = inner | {s.state for s in sums}
    if any(cascade.output(t) is not None for t in inner):
        return False
    if any(e.name not in within for t in inner for e in readers(cascade, t)):
        return False
    return all(e.name in within for e in cascade.einsums
               if any(x == diff for part in (e.body, e.where) if part is not None
                      for x in walk(part)))


def _collapse_one(cascade: Cascade, rm, recurrences):
    """``cascade`` with the online softmax over the running max ``rm`` (a Recurrence) in the
    final-value form, and the finals of the tensors added; None where ``rm`` is not one."""
    lm = _running_max(cascade, rm)
    if lm is None:
        return None
    k, score = rm.var, lm.body
    sln_body = Call("exp", (Binary("-", score, rm.update.output),))
    sums = [s for other in recurrences.values() if other.tensor != rm.tensor
            for s in [_sum_of(cascade, other, rm, sln_body)] if s is not None]
    if not sums:
        return None
    chain = {rm.tensor, lm.name}.union(*(s.members | {s.state} for s in sums))
    rows = tuple(i for n, i in enumerate(rm.update.output.indices) if n != rm.axis)
    if not all(isinstance(i, Name) and i.is_index for i in rows) \
            or not _read_only_at_the_end(cascade, chain, {rm.tensor: rm.axis,
                                                          **{s.state: s.axis for s in sums}}, k):
        return None
    taken = taken_names(cascade)
    gm = Access(fresh("GM", taken), rows)
    sln = next(f.expr for f in product_factors(sums[0].local.body).factors
               if isinstance(f.expr, Access) and f.expr.tensor in chain)
    sn = Access(fresh("SN", taken), sln.indices)
    new = {rm.tensor: [Einsum(gm, score, "max", (k, *lm.reduced), span=lm.span),
                       Einsum(sn, Call("exp", (Binary("-", score, gm),)), span=lm.span)]}
    ends = {rm.tensor: gm.tensor}
    finals = [(gm.tensor, _at_end(gm, rm.tensor, rm.axis, k))]
    for s in sums:
        out = Access(fresh(f"{s.state}_end", taken),
                     tuple(i for n, i in enumerate(s.local.output.indices) if n != s.axis))
        body = transform(s.local.body, lambda e: Access(sn.tensor, e.indices)
                         if isinstance(e, Access) and e.tensor == sln.tensor else None)
        new[s.state] = [Einsum(out, body, "sum", (k, *s.local.reduced), span=s.local.span)]
        ends[s.state] = out.tensor
        finals.append((out.tensor, _at_end(out, s.state, s.axis, k)))
    einsums = []
    for e in cascade.einsums:
        if e.name not in chain:
            einsums.append(_read_ends(e, ends, {rm.tensor: rm.axis,
                                                **{s.state: s.axis for s in sums}}))
        elif e.role is Role.UPDATE and e.name in new:
            einsums += new[e.name]
    out = replace(cascade, einsums=tuple(einsums))
    split = next((sp for sp in cascade.splits
                  if (sp.outer, sp.inner) == (k.upper(), lm.reduced[0].upper())), None)
    if split is not None:  # the steps are the tiles of a split: reduce over the whole rank
        out = merge_split(out, {e.name for es in new.values() for e in es}, split, taken)
    return out, finals


def _at_end(access: Access, state: str, axis: int, k: str) -> Access:
    """The read of ``state``'s end at ``access``'s indices (the step axis put back)."""
    indices = list(access.indices)
    indices.insert(axis, Name(k.upper()))
    return Access(state, tuple(indices))


def _read_only_at_the_end(cascade: Cascade, chain: set[str], axes: dict[str, int],
                          k: str) -> bool:
    """No output is a tensor of the pattern, and every other Einsum reads only the states'
    ends (``RM[o, K]``, ``R[o, K, x]``)."""
    if any(cascade.output(t) is not None for t in chain):
        return False
    for t in chain:
        for e in readers(cascade, t):
            if e.name in chain:
                continue
            for a in e.reads():
                if a.tensor == t and (t not in axes or a.indices[axes[t]] != Name(k.upper())):
                    return False
    return True


def _read_ends(e: Einsum, ends: dict[str, str], axes: dict[str, int]) -> Einsum:
    def swap(node):
        if isinstance(node, Access) and node.tensor in ends:
            axis = axes[node.tensor]
            return Access(ends[node.tensor],
                          tuple(i for n, i in enumerate(node.indices) if n != axis), node.span)
        return None

    where = None if e.where is None else transform(e.where, swap)
    return replace(e, body=transform(e.body, swap), where=where)

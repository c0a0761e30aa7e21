"""Matching the softmax-contraction patterns the online-softmax rewrite replaces.

:func:`find` returns a typed :class:`Match` (or raises :class:`NotApplicable` saying why) for the
3-pass form, the deferred-division form and the 2-pass online-normaliser form.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ...exprs import product_factors
from ...facts import Analysis, Recurrence
from ...ir import Access, Binary, Call, Cascade, Einsum, EinsumId, Expr, Name, Num, Split, accesses
from ..rewrite import conjunction, conjuncts, mentions, readers, transform
from .tiling import Tiling


class NotApplicable(Exception):
    """The pattern does not hold; ``str(exc)`` says why."""


class Form(Enum):
    THREE_PASS = "3pass"  # A = SN / SD; Y = sum[m] A * rest
    DEFERRED = "deferred"  # SNV = sum[m] SN * rest; Y = SNV / SD
    ONLINE = "online"  # a running max and denominator exist (2-pass online normaliser)


@dataclass(frozen=True)
class Masks:
    """The predicates the pattern carries over (None where absent)."""

    gm: Expr | None = None  # the max's
    sn: Expr | None = None  # the numerator's
    sd: Expr | None = None  # the denominator's
    contraction: Expr | None = None  # A's and the contraction's (3-pass), or SNV's (deferred)
    final: Expr | None = None  # the final division's: the conjuncts that do not use m


@dataclass(frozen=True)
class Running:
    """The tensors of an existing running max and denominator (the online form), to reuse."""

    sln: Access  # the tile numerator SLN[o, m1, m0]
    prm: str  # the correction factor
    rd: str  # the running denominator
    split: Split


@dataclass(frozen=True)
class Match:
    form: Form
    m: str  # the softmax index variable
    rows: tuple[str, ...]  # o: the row indices
    score: Expr  # s(o, m)
    masks: Masks
    rest: Expr  # the contraction body with the softmax factor replaced by PLACEHOLDER
    out: Access  # the final output's access
    extras: tuple[str, ...]  # x: the contraction's extra output indices
    removed: frozenset[EinsumId]  # the Einsums the rewrite replaces
    anchor: EinsumId  # the final output's Einsum: the new block goes where it was
    running: Running | None = None

    @property
    def out_name(self) -> str:
        return self.out.tensor


PLACEHOLDER = Access("__softmax__", ())


def plain(acc: Access) -> bool:
    """Every index is a distinct index variable."""
    names = [i.name for i in acc.indices if isinstance(i, Name) and i.is_index]
    return len(names) == len(acc.indices) and len(set(names)) == len(names)


def find(analysis: Analysis, tile_rank: str | None) -> Match:
    """The first softmax-contraction over ``tile_rank`` (any rank when None)."""
    cascade = analysis.cascade
    candidates = [e for e in cascade.einsums if e.reducer == "max" and len(e.reduced) == 1
                  and e.name not in analysis.recurrences]
    split_parts = {s.outer for s in cascade.splits} | {s.inner for s in cascade.splits}
    if tile_rank is not None:
        candidates = [e for e in candidates if e.reduced[0].upper() == tile_rank]
    reasons = []
    for gm in candidates:
        try:
            if gm.reduced[0].upper() in split_parts:
                raise NotApplicable(f"{gm.name} reduces over {gm.reduced[0].upper()}, a part of a "
                                    f"split rank")
            return _match_softmax(analysis.cascade, gm)
        except NotApplicable as exc:
            reasons.append(str(exc))
    try:
        return _match_online(analysis, tile_rank)
    except NotApplicable as exc:
        online_reason = str(exc)
    if reasons:
        raise NotApplicable(reasons[0])
    if online_reason:
        raise NotApplicable(online_reason)
    over = f" over {tile_rank}" if tile_rank else ""
    raise NotApplicable(f"no softmax{over}: no Einsum takes a max over one index "
                        f"(the pattern starts with GM[o] = max[m] s(o, m))")


# ---------------------------------------------------------------------- shared pieces


def _only_readers(cascade: Cascade, tensor: str, allowed: list[Einsum], what: str) -> None:
    if cascade.output(tensor) is not None:
        raise NotApplicable(f"{tensor} ({what}) is an output of the cascade; the 1-pass form "
                            f"never materialises it")
    ids = {a.id for a in allowed}
    extra = [e.name for e in readers(cascade, tensor) if e.id not in ids]
    if extra:
        raise NotApplicable(f"{tensor} ({what}) is also read by {', '.join(sorted(set(extra)))}; "
                            f"the 1-pass form never materialises it")


def _row_conjuncts(where: Expr | None, m: str) -> Expr | None:
    return conjunction([c for c in conjuncts(where) if not mentions(c, m)])


def _extras(c: Einsum, rows) -> tuple[str, ...]:
    return tuple(v for v in c.output_vars if v not in rows)


def _as_factor(body: Expr, target: Access) -> Expr | None:
    """``body`` with the one multiplicative occurrence of ``target`` replaced by a placeholder."""
    hits = [f for f in product_factors(body).factors if f.expr == target and not f.divisor]
    if len(hits) != 1 or sum(1 for n in accesses(body) if n.tensor == target.tensor) != 1:
        return None
    return transform(body, lambda n: PLACEHOLDER if n == target else None)


def _contraction(c: Einsum, target: Access, m: str, rows) -> Expr:
    if c.reducer != "sum" or c.reduced != (m,):
        raise NotApplicable(f"{c.name} must be a sum over {m} alone of {target.tensor} times "
                            f"the rest")
    if not plain(c.output) or not set(rows) <= set(c.output_vars):
        raise NotApplicable(f"{c.name} must keep the row indices {', '.join(rows)} as plain "
                            f"output indices")
    rest = _as_factor(c.body, target)
    if rest is None:
        raise NotApplicable(f"{c.name} must multiply {target.tensor}[...] (once, as a factor) by "
                            f"the rest of its body")
    return rest


def _sole_contraction(cascade: Cascade, a: Einsum, m: str, long: bool) -> Einsum:
    """The one Einsum that contracts the normalised scores ``a`` over ``m``."""
    cs = readers(cascade, a.name)
    if cascade.output(a.name) is None and len(cs) == 1:
        return cs[0]
    if not long:
        raise NotApplicable(f"{a.name} must be contracted over {m} by exactly one Einsum")
    raise NotApplicable(f"the normalised scores {a.name} must be contracted over {m} by "
                        f"exactly one Einsum (the 1-pass form needs A * V summed over "
                        f"{m}); {a.name} is "
                        + ("an output" if cascade.output(a.name) else
                           f"read by {', '.join(e.name for e in cs) or 'none'}"))


# ---------------------------------------------------------------------- 3-pass and deferred


@dataclass(frozen=True)
class _Softmax:
    """GM = max[m] s; SN = exp(s - GM); SD = sum[m] SN, and SN's one other reader."""

    gm: Einsum
    sn: Einsum
    sd: Einsum
    nxt: Einsum
    m: str
    rows: tuple[str, ...]


def _match_softmax(cascade: Cascade, gm: Einsum) -> Match:
    sm = _numerator_and_sum(cascade, gm)
    sn, sd, nxt = sm.sn, sm.sd, sm.nxt
    if nxt.reducer is None and nxt.body == Binary("/", sn.output, sd.output):
        return _three_pass(cascade, sm)
    if nxt.reducer == "sum":
        return _deferred(cascade, sm)
    raise NotApplicable(f"{nxt.name} must divide {sn.name} by {sd.name} ({sn.name}[...] / "
                        f"{sd.name}[...]) or contract {sn.name} over {sm.m}")


def _numerator_and_sum(cascade: Cascade, gm: Einsum) -> _Softmax:
    (m,) = gm.reduced
    if not plain(gm.output):
        raise NotApplicable(f"{gm.name}'s output indices must be plain index variables")
    rows = tuple(i.name for i in gm.output.indices)
    sns = readers(cascade, gm.name)
    if len(sns) != 1:
        raise NotApplicable(f"{gm.name} (the max over {m}) must be read by exactly one Einsum, "
                            f"exp(s - {gm.name}); it is read by "
                            f"{', '.join(e.name for e in sns) or 'none'}")
    sn = sns[0]
    if sn.reducer is not None or sn.body != Call("exp", (Binary("-", gm.body, gm.output),)):
        raise NotApplicable(f"{sn.name} must be exp(s - {gm.name}[...]) with the score s that "
                            f"{gm.name} maximises, at the same indices")
    if not plain(sn.output) or set(sn.output_vars) != set(rows) | {m}:
        raise NotApplicable(f"{sn.name} must be indexed by {gm.name}'s indices and {m}")
    _only_readers(cascade, gm.name, [sn], "the row max")
    # Every numerator point must see a finite running max: SN masked at least like the max.
    sn_parts = conjuncts(sn.where)
    if any(part not in sn_parts for part in conjuncts(gm.where)):
        raise NotApplicable(f"{sn.name} must be masked at least like {gm.name} (repeat "
                            f"{gm.name}'s 'where' on {sn.name}, or move it to the score)")
    sn_readers = readers(cascade, sn.name)
    sds = [e for e in sn_readers if e.reducer == "sum" and e.reduced == (m,) and e.body == sn.output
           and plain(e.output) and set(e.output_vars) == set(rows)]
    if len(sds) != 1:
        raise NotApplicable(f"no single denominator sum[{m}] {sn.name}[...] over the rows of "
                            f"{gm.name}")
    sd = sds[0]
    if any(part not in sn_parts for part in conjuncts(sd.where)):
        raise NotApplicable(f"{sd.name} sums a subset of {sn.name} (its 'where' is not on "
                            f"{sn.name}); the running denominator would differ")
    others = [e for e in sn_readers if e.id != sd.id]
    if len(others) != 1:
        raise NotApplicable(f"{sn.name} must be read by its sum and by one more Einsum (a "
                            f"division by the sum, or a contraction over {m})")
    return _Softmax(gm, sn, sd, others[0], m, rows)


def _three_pass(cascade: Cascade, sm: _Softmax) -> Match:
    gm, sn, sd, a, m, rows = sm.gm, sm.sn, sm.sd, sm.nxt, sm.m, sm.rows
    if not plain(a.output) or set(a.output_vars) != set(rows) | {m}:
        raise NotApplicable(f"{a.name} must be indexed by {gm.name}'s indices and {m}")
    _only_readers(cascade, sn.name, [sd, a], "the softmax numerator")
    _only_readers(cascade, sd.name, [a], "the softmax denominator")
    c = _sole_contraction(cascade, a, m, long=True)
    rest = _contraction(c, a.output, m, rows)
    masks = Masks(gm.where, sn.where, sd.where, conjunction([a.where, c.where]),
                  _row_conjuncts(c.where, m))
    return Match(Form.THREE_PASS, m, rows, gm.body, masks, rest, c.output, _extras(c, rows),
                 frozenset(e.id for e in (gm, sn, sd, a, c)), c.id)


def _deferred(cascade: Cascade, sm: _Softmax) -> Match:
    gm, sn, sd, snv, m, rows = sm.gm, sm.sn, sm.sd, sm.nxt, sm.m, sm.rows
    rest = _contraction(snv, sn.output, m, rows)
    ds = readers(cascade, snv.name)
    if len(ds) != 1 or ds[0].reducer is not None or ds[0].body != Binary("/", snv.output,
                                                                        sd.output):
        raise NotApplicable(f"{snv.name} must be read only by {snv.name} / {sd.name}")
    d = ds[0]
    if not plain(d.output) or set(d.output_vars) != set(snv.output_vars):
        raise NotApplicable(f"{d.name} must keep the indices of {snv.name}")
    _only_readers(cascade, sn.name, [sd, snv], "the softmax numerator")
    _only_readers(cascade, sd.name, [d], "the softmax denominator")
    _only_readers(cascade, snv.name, [d], "the unnormalised output")
    masks = Masks(gm.where, sn.where, sd.where, snv.where,
                  conjunction([_row_conjuncts(snv.where, m), d.where]))
    return Match(Form.DEFERRED, m, rows, gm.body, masks, rest, d.output, _extras(d, rows),
                 frozenset(e.id for e in (gm, sn, sd, snv, d)), d.id)


# ---------------------------------------------------------------------- the online form


@dataclass(frozen=True)
class _Final:
    """``A[o, m] = exp(s - RM[o, M1]) / RD[o, M1]``: the second pass of the online form."""

    a: Einsum
    score: Expr
    rm: Access  # RM[o, M1]
    rd: Access  # RD[o, M1]
    rm_rec: Recurrence
    rd_rec: Recurrence
    split: Split

    def rm_at(self, index: Expr) -> Access:
        return Access(self.rm.tensor, _at(self.rm.indices, self.rm_rec.axis, index))

    def rd_at(self, index: Expr) -> Access:
        return Access(self.rd.tensor, _at(self.rm.indices, self.rm_rec.axis, index))


def _match_online(analysis: Analysis, tile_rank: str | None) -> Match:
    """The 2-pass online-normaliser form: a running max and denominator, then a second pass.

    Matches ``A[o, m] = exp(s - RM[o, M1]) / RD[o, M1]`` and ``Y = sum[m] A * rest``, where RM is
    a running max and RD a running denominator over the tiles ``m1`` of ``split M = M1 * M0``
    (``RD[o, m1+1] = PRM[o, m1] * RD[o, m1] + ...`` with ``PRM = exp(RM[o, m1] - RM[o, m1+1])``) and
    ``SLN[o, m1, m0] = exp(s_t - RM[o, m1+1])`` is the tile's numerator.
    """
    reasons = []
    for a in analysis.cascade.einsums:
        final = _final_division(analysis, a, tile_rank)
        if final is None:
            continue
        try:
            return _online(analysis, final)
        except NotApplicable as exc:
            reasons.append(str(exc))
    if reasons:
        raise NotApplicable(reasons[0])
    raise NotApplicable("")


def _final_division(analysis: Analysis, a: Einsum, tile_rank: str | None) -> _Final | None:
    body, recs = a.body, analysis.recurrences
    if not (a.reducer is None and isinstance(body, Binary) and body.op == "/"
            and isinstance(body.lhs, Call) and body.lhs.func == "exp"
            and isinstance(body.lhs.args[0], Binary) and body.lhs.args[0].op == "-"
            and isinstance(body.lhs.args[0].rhs, Access) and isinstance(body.rhs, Access)):
        return None
    score, rm, rd = body.lhs.args[0].lhs, body.lhs.args[0].rhs, body.rhs
    rm_rec, rd_rec = recs.get(rm.tensor), recs.get(rd.tensor)
    if rm_rec is None or rd_rec is None or rd_rec.var != rm_rec.var:
        return None
    split = next((sp for sp in analysis.cascade.splits if sp.outer == rm_rec.var.upper()), None)
    if split is None or (tile_rank is not None and split.rank != tile_rank):
        return None
    return _Final(a, score, rm, rd, rm_rec, rd_rec, split)


def _online(analysis: Analysis, f: _Final) -> Match:
    cascade, a, split = analysis.cascade, f.a, f.split
    m, m1, m0 = split.rank.lower(), split.outer.lower(), split.inner.lower()
    rows = tuple(i.name for k, i in enumerate(f.rm.indices) if k != f.rm_rec.axis
                 if isinstance(i, Name))
    if (len(rows) != len(f.rm.indices) - 1 or f.rm.indices[f.rm_rec.axis] != Name(split.outer)
            or f.rd != Access(f.rd.tensor, _at(f.rm.indices, f.rd_rec.axis, Name(split.outer)))
            or f.rd_rec.axis != f.rm_rec.axis):
        raise NotApplicable(f"{a.name} must read the final iterates {f.rm.tensor}"
                            f"[..., {split.outer}] and {f.rd.tensor}[..., "
                            f"{split.outer}] at the same row indices")
    if not plain(a.output) or set(a.output_vars) != set(rows) | {m}:
        raise NotApplicable(f"{a.name} must be indexed by the rows and {m}")
    row_names = tuple(Name(r) for r in rows)
    nxt = Binary("+", Name(m1), Num(1))
    prm_body = Call("exp", (Binary("-", f.rm_at(Name(m1)), f.rm_at(nxt)),))
    prm = next((e for e in cascade.einsums if e.body == prm_body and e.reducer is None
                and e.output.indices == (*row_names, Name(m1))), None)
    if prm is None:
        raise NotApplicable(f"no correction factor exp({f.rm.tensor}[..., {m1}] - "
                            f"{f.rm.tensor}[..., {m1}+1]) to rescale a running numerator with")
    terms = _sum_terms(f.rd_rec.update.body)
    scaled = [t for t in terms if _is_scaled_by(cascade, t, prm.output, f.rd_at(Name(m1)))]
    if len(terms) != 2 or len(scaled) != 1:
        raise NotApplicable(f"the running denominator {f.rd.tensor} must be "
                            f"{prm.name} * {f.rd.tensor}[..., {m1}] plus the tile's sum")
    s_t = Tiling(split.rank, split.outer, split.inner, analysis.shapes).tile(f.score)
    sln_body = Call("exp", (Binary("-", s_t, f.rm_at(nxt)),))
    sln = next((e for e in cascade.einsums if e.body == sln_body and e.reducer is None
                and e.output.indices == (*row_names, Name(m1), Name(m0))), None)
    if sln is None:
        raise NotApplicable(f"no tile numerator exp(s_t - {f.rm.tensor}[..., {m1}+1]) "
                            f"matching {a.name}'s score on the tiles of {split.rank}")
    c = _sole_contraction(cascade, a, m, long=False)
    rest = _contraction(c, a.output, m, rows)
    masks = Masks(contraction=conjunction([a.where, c.where]), final=_row_conjuncts(c.where, m))
    return Match(Form.ONLINE, m, rows, f.score, masks, rest, c.output, _extras(c, rows),
                 frozenset((a.id, c.id)), c.id,
                 running=Running(sln.output, prm.name, f.rd.tensor, split))


def _at(indices, axis, value):
    out = list(indices)
    out[axis] = value
    return tuple(out)


def _sum_terms(expr: Expr) -> list[Expr]:
    if isinstance(expr, Binary) and expr.op == "+":
        return _sum_terms(expr.lhs) + _sum_terms(expr.rhs)
    return [expr]


def _is_scaled_by(cascade: Cascade, term: Expr, prm: Access, rd_prev: Access) -> bool:
    """``term`` is PRM * RD[.., m1], directly or through a tensor defined so (SPD)."""
    want = {Binary("*", prm, rd_prev), Binary("*", rd_prev, prm)}
    if term in want:
        return True
    if isinstance(term, Access):
        defs = cascade.definitions(term.tensor)
        return (len(defs) == 1 and defs[0].reducer is None and defs[0].body in want
                and defs[0].output == term)
    return False

"""The online-softmax rewrite: a 3-pass (or 2-pass) softmax-contraction into the 1-pass form.

What it matches (any tensor and rank names; ``o`` are the row indices, ``m`` the softmax rank)::

    GM[o]    = max[m] s(o, m)                        [where g]
    SN[o, m] = exp(s(o, m) - GM[o])                  [where n]
    SD[o]    = sum[m] SN[o, m]                       [where d]
    A[o, m]  = SN[o, m] / SD[o]                      [where a]     \\  3-pass form, or the
    Y[o, x]  = sum[m] A[o, m] * rest(o, m, x)        [where c]     /  deferred division:
                  SNV[o, x] = sum[m] SN[o, m] * rest(o, m, x);  Y[o, x] = SNV[o, x] / SD[o]

GM, SN, SD, A (SNV) must be read only inside the pattern and must not be outputs. The conjuncts of
``g`` and ``d`` must also appear in ``n`` (true when the mask sits on the score, or on every Einsum
of the softmax): then every numerator point sees a finite running max and the running
denominator sums what SD sums. ``s`` is any
score expression (a scaled QK, a biased score, ...); ``rest`` any product (V, V[b, h / G, m, f]).

What it produces (FuseMax's 1-pass cascade, FlashAttention-2's recurrence): the rank M is split
``split M = M1 * M0`` with ``rank M0 = tile``, ``m`` becomes ``m1*M0 + m0`` everywhere it is used,
and the pattern is replaced by exactly these Einsums, in this order (names are the FuseMax names,
suffixed ``_2``, ... if taken; ``o`` keeps GM's index order, ``x`` the contraction's extra output
indices in its order)::

    LM[o, m1]         = max[m0] s_t                          where g_t       local max
    RM[o, 0]          = -inf
    RM[o, m1+1]       = max(RM[o, m1], LM[o, m1])                           running max
    SLN[o, m1, m0]    = exp(s_t - RM[o, m1+1])               where n_t       local numerator
    PRM[o, m1]        = exp(RM[o, m1] - RM[o, m1+1])                        correction factor
    SPD[o, m1]        = PRM[o, m1] * RD[o, m1]
    SLD[o, m1]        = sum[m0] SLN[o, m1, m0]               where d_t
    RD[o, 0]          = 0
    RD[o, m1+1]       = SPD[o, m1] + SLD[o, m1]                             running denominator
    SPNV[o, m1, x]    = PRM[o, m1] * RNV[o, m1, x]
    SLNV[o, m1, x]    = sum[m0] SLN[o, m1, m0] * rest_t      where a_t and c_t
    RNV[o, 0, x]      = 0
    RNV[o, m1+1, x]   = SPNV[o, m1, x] + SLNV[o, m1, x]                     running numerator
    Y[o, x]           = RNV[o, M1, x] / RD[o, M1]                           one division

``_t`` means with ``m`` replaced by ``m1*M0 + m0``. Where a predicate is carried over it is
rewritten on the split indices; its conjuncts that do not use ``m`` also guard the final division.
The tensors the score is computed from are *retiled* when the softmax is their only reader (so
``QK[b,h,p,m]`` becomes ``QK[b,h,p,m1,m0]`` with ``K[b,h,m1*M0 + m0,e]``), as in the FuseMax
cascade. A tile that does not divide the rank leaves empty points in the last tile: reads past the
end of a tensor are empty; an Einsum whose emptiness there is not implied by such a read gets the
guard ``where m1*M0 + m0 < M``.

``rewrite_online_softmax(...).roles`` names, per rewrite, the tensor playing each role above
(and ``rank``, ``outer``, ``inner``, ``rows``, ``extras``, ``retiled``), so that a backend can lower
the block without matching it again.

A softmax whose rank is already split and that keeps a running max and denominator (the 2-pass
online-normaliser form) is completed the same way: its second pass
``A[o, m] = exp(s - RM[o, M1]) / RD[o, M1]``, ``Y = sum[m] A * rest`` becomes the running numerator
SPNV, SLNV, RNV and the final division.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import CascadeError
from ..ir import Access, Binary, Call, Cascade, Einsum, Expr, Name, Num, SizeDecl, Split, Unary
from ..verifier import Analysis, analyze
from .rewrite import (NEG_INF, access, conjunction, conjuncts, fresh, mentions, plus_one, readers,
                      taken_names, transform)

DEFAULT_TILE = 64


class NotApplicable(Exception):
    """The pattern does not hold; ``str(exc)`` says why."""


@dataclass(frozen=True)
class RewriteResult:
    cascade: Cascade
    changed: bool
    reason: str | None  # why nothing changed (None when the rewrite applied)
    rewritten: tuple[str, ...] = ()  # the outputs whose softmax was rewritten
    # per rewrite, the role of every tensor and index of the 1-pass block, for backends:
    # {"output", "rank", "outer", "inner", "rows", "extras", "retiled", "LM", "RM", "SLN", "PRM",
    #  "SPD", "SLD", "RD", "SPNV", "SLNV", "RNV"} (names as chosen in the new cascade)
    roles: tuple[dict, ...] = ()


def online_softmax(cascade: Cascade, tile_rank: str | None = None,
                   tile_size: int | None = None) -> Cascade:
    """The 1-pass form of every softmax-contraction in ``cascade`` (see the module docstring).

    ``tile_rank`` restricts the rewrite to softmaxes over that rank (default: any); ``tile_size``
    is the default size of the new inner rank (default 64, or the existing inner rank when the
    rank is already split). Returns ``cascade`` itself when the pattern does not hold; use
    :func:`online_softmax_reason` or :func:`rewrite_online_softmax` to learn why.
    """
    return rewrite_online_softmax(cascade, tile_rank, tile_size).cascade


def online_softmax_reason(cascade: Cascade, tile_rank: str | None = None) -> str | None:
    """Why :func:`online_softmax` leaves ``cascade`` unchanged, or None if it applies."""
    return rewrite_online_softmax(cascade, tile_rank).reason


def rewrite_online_softmax(cascade: Cascade, tile_rank: str | None = None,
                           tile_size: int | None = None) -> RewriteResult:
    """The rewrite with its outcome: the new cascade, whether it changed, and why not."""
    if tile_size is not None and (not isinstance(tile_size, int) or tile_size <= 0):
        raise CascadeError(f"the tile size must be a positive integer, got {tile_size!r}",
                           hint="for example --set M0=64")
    current, done, roles, first_reason = cascade, [], [], None
    while True:
        analysis = analyze(current)
        try:
            match = _find(analysis, tile_rank)
        except NotApplicable as exc:
            if not done:
                first_reason = str(exc)
            break
        builder = _Builder(analysis, match, tile_size)
        current = builder.build()
        done.append(match.out_name)
        roles.append(builder.roles)
        if len(done) > 64:  # every rewrite removes a max over an unsplit rank; a guard anyway
            break
    if not done:
        return RewriteResult(cascade, False, first_reason)
    analyze(current)
    return RewriteResult(current, True, None, tuple(done), tuple(roles))


# ---------------------------------------------------------------------- matching


@dataclass(frozen=True)
class _Match:
    kind: str  # "3pass", "deferred" or "online" (2-pass online normaliser)
    m: str  # the softmax index variable
    rows: tuple[str, ...]  # o: GM's output indices
    score: Expr  # s(o, m)
    gm_where: Expr | None
    sn_where: Expr | None
    sd_where: Expr | None
    c_where: Expr | None  # a and c (3-pass), or SNV's (deferred)
    final_where: Expr | None
    rest: Expr  # contraction body with the softmax factor replaced by a placeholder access
    placeholder: Access
    out: Access  # the final output's access
    extras: tuple[str, ...]
    removed: tuple[int, ...]  # positions of the Einsums the rewrite replaces
    anchor: int  # position of the final output's Einsum
    # the online-normaliser form only: existing tensors to reuse
    online: dict | None = None

    @property
    def out_name(self) -> str:
        return self.out.tensor


_PLACEHOLDER = "__softmax__"


def _plain(acc: Access) -> bool:
    names = [i.name for i in acc.indices if isinstance(i, Name) and i.is_index]
    return len(names) == len(acc.indices) and len(set(names)) == len(names)


def _factor_list(expr: Expr, divisor: bool = False) -> list[tuple[Expr, bool]]:
    if isinstance(expr, Binary) and expr.op == "*":
        return _factor_list(expr.lhs, divisor) + _factor_list(expr.rhs, divisor)
    if isinstance(expr, Binary) and expr.op == "/":
        return _factor_list(expr.lhs, divisor) + [(expr.rhs, True)]
    return [(expr, divisor)]


def _as_factor(body: Expr, target: Access) -> Expr | None:
    """``body`` with the one multiplicative occurrence of ``target`` replaced by a placeholder."""
    factors = _factor_list(body)
    hits = [f for f, d in factors if f == target and not d]
    if len(hits) != 1 or sum(1 for n in _accesses(body) if n.tensor == target.tensor) != 1:
        return None
    placeholder = Access(_PLACEHOLDER, ())
    return transform(body, lambda n: placeholder if n == target else None)


def _accesses(expr: Expr):
    from ..ir import walk

    return [n for n in walk(expr) if isinstance(n, Access)]


def _find(analysis: Analysis, tile_rank: str | None) -> _Match:
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
            return _match_softmax(analysis, gm)
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


def _only_readers(cascade: Cascade, tensor: str, allowed: list[Einsum], what: str) -> None:
    if cascade.output(tensor) is not None:
        raise NotApplicable(f"{tensor} ({what}) is an output of the cascade; the 1-pass form "
                            f"never materialises it")
    extra = [e.name for e in readers(cascade, tensor) if not any(e is a for a in allowed)]
    if extra:
        raise NotApplicable(f"{tensor} ({what}) is also read by {', '.join(sorted(set(extra)))}; "
                            f"the 1-pass form never materialises it")


def _match_softmax(analysis: Analysis, gm: Einsum) -> _Match:
    cascade = analysis.cascade
    (m,) = gm.reduced
    if not _plain(gm.output):
        raise NotApplicable(f"{gm.name}'s output indices must be plain index variables")
    rows = tuple(i.name for i in gm.output.indices)
    score = gm.body
    pos = {id(e): k for k, e in enumerate(cascade.einsums)}

    sns = readers(cascade, gm.name)
    if len(sns) != 1:
        raise NotApplicable(f"{gm.name} (the max over {m}) must be read by exactly one Einsum, "
                            f"exp(s - {gm.name}); it is read by "
                            f"{', '.join(e.name for e in sns) or 'none'}")
    sn = sns[0]
    want = Call("exp", (Binary("-", score, gm.output),))
    if sn.reducer is not None or sn.body != want:
        raise NotApplicable(f"{sn.name} must be exp(s - {gm.name}[...]) with the score s that "
                            f"{gm.name} maximises, at the same indices")
    if not _plain(sn.output) or set(sn.output_vars) != set(rows) | {m}:
        raise NotApplicable(f"{sn.name} must be indexed by {gm.name}'s indices and {m}")
    _only_readers(cascade, gm.name, [sn], "the row max")
    # Every numerator point must see a finite running max: SN masked at least like the max.
    sn_parts = conjuncts(sn.where)
    if any(part not in sn_parts for part in conjuncts(gm.where)):
        raise NotApplicable(f"{sn.name} must be masked at least like {gm.name} (repeat "
                            f"{gm.name}'s 'where' on {sn.name}, or move it to the score)")

    sn_readers = readers(cascade, sn.name)
    sds = [e for e in sn_readers if e.reducer == "sum" and e.reduced == (m,) and e.body == sn.output
           and _plain(e.output) and set(e.output_vars) == set(rows)]
    if len(sds) != 1:
        raise NotApplicable(f"no single denominator sum[{m}] {sn.name}[...] over the rows of "
                            f"{gm.name}")
    sd = sds[0]
    if any(part not in sn_parts for part in conjuncts(sd.where)):
        raise NotApplicable(f"{sd.name} sums a subset of {sn.name} (its 'where' is not on "
                            f"{sn.name}); the running denominator would differ")
    others = [e for e in sn_readers if e is not sd]
    if len(others) != 1:
        raise NotApplicable(f"{sn.name} must be read by its sum and by one more Einsum (a "
                            f"division by the sum, or a contraction over {m})")
    nxt = others[0]
    sd_readers = readers(cascade, sd.name)
    if nxt.reducer is None and nxt.body == Binary("/", sn.output, sd.output):
        a = nxt
        if not _plain(a.output) or set(a.output_vars) != set(rows) | {m}:
            raise NotApplicable(f"{a.name} must be indexed by {gm.name}'s indices and {m}")
        _only_readers(cascade, sn.name, [sd, a], "the softmax numerator")
        _only_readers(cascade, sd.name, [a], "the softmax denominator")
        cs = readers(cascade, a.name)
        if cascade.output(a.name) is not None or len(cs) != 1:
            raise NotApplicable(f"the normalised scores {a.name} must be contracted over {m} by "
                                f"exactly one Einsum (the 1-pass form needs A * V summed over "
                                f"{m}); {a.name} is "
                                + ("an output" if cascade.output(a.name) else
                                   f"read by {', '.join(e.name for e in cs) or 'none'}"))
        c = cs[0]
        rest = _contraction(c, a.output, m, rows)
        return _Match("3pass", m, rows, score, gm.where, sn.where, sd.where,
                      conjunction([a.where, c.where]), _row_conjuncts(c.where, m), rest,
                      Access(_PLACEHOLDER, ()), c.output, _extras(c, rows),
                      tuple(pos[id(e)] for e in (gm, sn, sd, a, c)), pos[id(c)])
    if nxt.reducer == "sum":
        snv = nxt
        rest = _contraction(snv, sn.output, m, rows)
        ds = readers(cascade, snv.name)
        if len(ds) != 1 or ds[0].reducer is not None or ds[0].body != Binary("/", snv.output,
                                                                            sd.output):
            raise NotApplicable(f"{snv.name} must be read only by {snv.name} / {sd.name}")
        d = ds[0]
        if not _plain(d.output) or set(d.output_vars) != set(snv.output_vars):
            raise NotApplicable(f"{d.name} must keep the indices of {snv.name}")
        _only_readers(cascade, sn.name, [sd, snv], "the softmax numerator")
        _only_readers(cascade, sd.name, [d], "the softmax denominator")
        _only_readers(cascade, snv.name, [d], "the unnormalised output")
        return _Match("deferred", m, rows, score, gm.where, sn.where, sd.where, snv.where,
                      conjunction([_row_conjuncts(snv.where, m), d.where]), rest,
                      Access(_PLACEHOLDER, ()), d.output, _extras(d, rows),
                      tuple(pos[id(e)] for e in (gm, sn, sd, snv, d)), pos[id(d)])
    raise NotApplicable(f"{nxt.name} must divide {sn.name} by {sd.name} ({sn.name}[...] / "
                        f"{sd.name}[...]) or contract {sn.name} over {m}")


def _row_conjuncts(where: Expr | None, m: str) -> Expr | None:
    return conjunction([c for c in conjuncts(where) if not mentions(c, m)])


def _extras(c: Einsum, rows) -> tuple[str, ...]:
    return tuple(v for v in c.output_vars if v not in rows)


def _contraction(c: Einsum, target: Access, m: str, rows) -> Expr:
    if c.reducer != "sum" or c.reduced != (m,):
        raise NotApplicable(f"{c.name} must be a sum over {m} alone of {target.tensor} times "
                            f"the rest")
    if not _plain(c.output) or not set(rows) <= set(c.output_vars):
        raise NotApplicable(f"{c.name} must keep the row indices {', '.join(rows)} as plain "
                            f"output indices")
    rest = _as_factor(c.body, target)
    if rest is None:
        raise NotApplicable(f"{c.name} must multiply {target.tensor}[...] (once, as a factor) by "
                            f"the rest of its body")
    return rest


def _match_online(analysis: Analysis, tile_rank: str | None) -> _Match:
    """The 2-pass online-normaliser form: a running max and denominator, then a second pass.

    Matches ``A[o, m] = exp(s - RM[o, M1]) / RD[o, M1]`` and ``Y = sum[m] A * rest``, where RM is
    a running max and RD a running denominator over the tiles ``m1`` of ``split M = M1 * M0``
    (``RD[o, m1+1] = PRM[o, m1] * RD[o, m1] + ...`` with ``PRM = exp(RM[o, m1] - RM[o, m1+1])``) and
    ``SLN[o, m1, m0] = exp(s_t - RM[o, m1+1])`` is the tile's numerator.
    """
    cascade, recs = analysis.cascade, analysis.recurrences
    pos = {id(e): k for k, e in enumerate(cascade.einsums)}
    reasons = []
    for a in cascade.einsums:
        body = a.body
        if not (a.reducer is None and isinstance(body, Binary) and body.op == "/"
                and isinstance(body.lhs, Call) and body.lhs.func == "exp"
                and isinstance(body.lhs.args[0], Binary) and body.lhs.args[0].op == "-"
                and isinstance(body.lhs.args[0].rhs, Access) and isinstance(body.rhs, Access)):
            continue
        score, rm_final, rd_final = body.lhs.args[0].lhs, body.lhs.args[0].rhs, body.rhs
        rm_rec, rd_rec = recs.get(rm_final.tensor), recs.get(rd_final.tensor)
        if rm_rec is None or rd_rec is None:
            continue
        outer = rm_rec.var.upper()
        split = next((sp for sp in cascade.splits if sp.outer == outer), None)
        if split is None or rd_rec.var != rm_rec.var:
            continue
        if tile_rank is not None and split.rank != tile_rank:
            continue
        m, m1, m0 = split.rank.lower(), split.outer.lower(), split.inner.lower()
        try:
            rows = tuple(i.name for k, i in enumerate(rm_final.indices) if k != rm_rec.axis
                         if isinstance(i, Name))
            if (len(rows) != len(rm_final.indices) - 1
                    or rm_final.indices[rm_rec.axis] != Name(split.outer)
                    or rd_final != Access(rd_final.tensor, _at(rm_final.indices, rd_rec.axis,
                                                               Name(split.outer)))
                    or rd_rec.axis != rm_rec.axis):
                raise NotApplicable(f"{a.name} must read the final iterates {rm_final.tensor}"
                                    f"[..., {split.outer}] and {rd_final.tensor}[..., "
                                    f"{split.outer}] at the same row indices")
            if not _plain(a.output) or set(a.output_vars) != set(rows) | {m}:
                raise NotApplicable(f"{a.name} must be indexed by the rows and {m}")
            rm_at = lambda i: Access(rm_final.tensor, _at(rm_final.indices, rm_rec.axis, i))  # noqa: E731
            rd_at = lambda i: Access(rd_final.tensor, _at(rm_final.indices, rm_rec.axis, i))  # noqa: E731
            nxt = Binary("+", Name(m1), Num(1))
            prm_body = Call("exp", (Binary("-", rm_at(Name(m1)), rm_at(nxt)),))
            prms = [e for e in cascade.einsums if e.body == prm_body and e.reducer is None
                    and e.output.indices == (*[Name(r) for r in rows], Name(m1))]
            if not prms:
                raise NotApplicable(f"no correction factor exp({rm_final.tensor}[..., {m1}] - "
                                    f"{rm_final.tensor}[..., {m1}+1]) to rescale a running "
                                    f"numerator with")
            prm = prms[0]
            rd_update = rd_rec.update.body
            terms = _sum_terms(rd_update)
            scaled = [t for t in terms if _is_scaled_by(cascade, t, prm.output, rd_at(Name(m1)))]
            if len(terms) != 2 or len(scaled) != 1:
                raise NotApplicable(f"the running denominator {rd_final.tensor} must be "
                                    f"{prm.name} * {rd_final.tensor}[..., {m1}] plus the tile's sum")
            builder = _Builder(analysis, None, None)
            builder.set_split(split.rank, split.outer, split.inner, retiled={})
            s_t = builder.tile(score)
            sln_body = Call("exp", (Binary("-", s_t, rm_at(nxt)),))
            slns = [e for e in cascade.einsums if e.body == sln_body and e.reducer is None
                    and e.output.indices == (*[Name(r) for r in rows], Name(m1), Name(m0))]
            if not slns:
                raise NotApplicable(f"no tile numerator exp(s_t - {rm_final.tensor}[..., {m1}+1]) "
                                    f"matching {a.name}'s score on the tiles of {split.rank}")
            sln = slns[0]
            cs = readers(cascade, a.name)
            if cascade.output(a.name) is not None or len(cs) != 1:
                raise NotApplicable(f"{a.name} must be contracted over {m} by exactly one Einsum")
            c = cs[0]
            rest = _contraction(c, a.output, m, rows)
            return _Match("online", m, rows, score, None, None, None,
                          conjunction([a.where, c.where]), _row_conjuncts(c.where, m), rest,
                          Access(_PLACEHOLDER, ()), c.output, _extras(c, rows),
                          (pos[id(a)], pos[id(c)]), pos[id(c)],
                          online={"SLN": sln.output, "PRM": prm.name, "RD": rd_final.tensor,
                                  "outer": split.outer, "inner": split.inner})
        except NotApplicable as exc:
            reasons.append(str(exc))
    if reasons:
        raise NotApplicable(reasons[0])
    raise NotApplicable("")


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


# ---------------------------------------------------------------------- building


class _Builder:
    def __init__(self, analysis: Analysis, match: _Match | None, tile_size: int | None):
        self.a = analysis
        self.c = analysis.cascade
        self.mt = match
        self.tile_size = tile_size
        self.taken = taken_names(self.c)
        self.rank = match.m.upper() if match is not None else None

    def set_split(self, rank: str, outer: str, inner: str, retiled: dict[str, int]) -> None:
        self.rank, self.outer, self.inner = rank, outer, inner
        self.m1, self.m0 = outer.lower(), inner.lower()
        self.composite = Binary("+", Binary("*", Name(self.m1), Name(inner)), Name(self.m0))
        self.retiled = retiled

    # the split -------------------------------------------------------------------------
    def _split(self):
        c, rank = self.c, self.rank
        sizes = list(c.sizes)
        splits = list(c.splits)
        existing = c.split_for(rank)
        if existing is not None:
            outer, inner = existing.outer, existing.inner
            if self.tile_size is not None:
                sizes = [replace(d, default=Num(self.tile_size)) if d.name == inner else d
                         for d in sizes]
        else:
            outer = fresh(rank + "1", self.taken)
            inner = fresh(rank + "0", self.taken)
            sizes.append(SizeDecl(inner, Num(self.tile_size or DEFAULT_TILE), True))
            splits.append(Split(rank, outer, inner))
        if outer.lower().upper() != outer or inner.lower().upper() != inner:
            raise NotApplicable(f"cannot name index variables for the tiles of {rank}")
        return sizes, splits, outer, inner

    def build(self) -> Cascade:
        mt = self.mt
        if mt.kind == "online":
            sizes, splits = self.c.sizes, self.c.splits
            if self.tile_size is not None:
                sizes = tuple(replace(d, default=Num(self.tile_size))
                              if d.name == mt.online["inner"] else d for d in sizes)
            self.set_split(self.rank, mt.online["outer"], mt.online["inner"], {})
        else:
            sizes, splits, outer, inner = self._split()
            self.set_split(self.rank, outer, inner, {})
            self.retiled = self._retile_set()
        retiled = self.retiled

        einsums = list(self.c.einsums)
        new: list[Einsum | None] = []
        for k, e in enumerate(einsums):
            if k in mt.removed and k != mt.anchor:
                continue
            if k == mt.anchor:
                new.extend(self._block())
                continue
            if e.name in retiled:
                new.append(self._retile(e, retiled[e.name]))
            else:
                new.append(e)
        return replace(self.c, sizes=tuple(sizes), splits=tuple(splits), einsums=tuple(new),
                       source=None)

    # retiling --------------------------------------------------------------------------
    def _retile_set(self) -> dict[str, int]:
        """Tensors computed only for the softmax's score: tensor -> its axis indexed by m."""
        c, m = self.c, self.mt.m
        removed_ids = {id(c.einsums[k]) for k in self.mt.removed}
        cand: dict[str, int] = {}
        frontier = [self.mt.score]
        while frontier:
            expr = frontier.pop()
            for acc in _accesses(expr):
                axes = [k for k, i in enumerate(acc.indices) if i == Name(m)]
                if len(axes) != 1 or any(mentions(i, m) for k, i in enumerate(acc.indices)
                                         if k != axes[0]):
                    continue
                defs = c.definitions(acc.tensor)
                if (acc.tensor in cand or len(defs) != 1 or acc.tensor in self.a.recurrences
                        or c.output(acc.tensor) is not None):
                    continue
                d = defs[0]
                if d.output.indices[axes[0]] != Name(m) or not _plain(d.output):
                    continue
                cand[acc.tensor] = axes[0]
                frontier.append(d.body)
        changed = True
        while changed:
            changed = False
            for tensor, axis in list(cand.items()):
                ok = True
                for reader in readers(c, tensor):
                    inside = id(reader) in removed_ids or reader.name in cand
                    if not inside:
                        ok = False
                        break
                    for acc in reader.reads():
                        if acc.tensor == tensor and (acc.indices[axis] != Name(m) or any(
                                mentions(i, m) for k, i in enumerate(acc.indices) if k != axis)):
                            ok = False
                if not ok:
                    del cand[tensor]
                    changed = True
        return cand

    def tile(self, expr: Expr | None) -> Expr | None:
        """``expr`` on the split indices: retiled reads take (m1, m0), every other m is m1*M0+m0."""
        if expr is None:
            return None
        m = self.rank.lower()
        inner = Name(self.inner)

        def fn(node):
            if isinstance(node, Binary) and node.op in ("/", "%") and node.lhs == Name(m) \
                    and node.rhs == inner:  # (m1*M0 + m0) / M0 == m1, and % M0 == m0
                return Name(self.m1 if node.op == "/" else self.m0)
            if isinstance(node, Access) and node.tensor in self.retiled:
                axis = self.retiled[node.tensor]
                indices = []
                for k, i in enumerate(node.indices):
                    if k == axis:
                        indices += [Name(self.m1), Name(self.m0)]
                    else:
                        indices.append(self.tile(i))
                return Access(node.tensor, tuple(indices), node.span)
            if isinstance(node, Name) and node.name == m:
                return self.composite
            return None

        return transform(expr, fn)

    def _guard(self, body: Expr) -> Expr | None:
        """``m1*M0 + m0 < M`` unless a read past the end already empties the tail."""
        if self._tail_safe(body):
            return None
        return Binary("<", self.composite, Name(self.rank))

    def _tail_safe(self, expr: Expr) -> bool:
        if isinstance(expr, Access):
            if expr.tensor in self.retiled or expr.tensor in self._safe_tensors:
                return True
            shape = self.a.shapes.get(expr.tensor, ())
            return any(i == self.composite and k < len(shape) and shape[k].rank == self.rank
                       and shape[k].extra == 0 for k, i in enumerate(expr.indices))
        if isinstance(expr, Binary):
            if expr.op in ("and", "or"):
                return False
            parts = [self._tail_safe(expr.lhs), self._tail_safe(expr.rhs)]
            return all(parts) if expr.op in ("+",) else any(parts)
        if isinstance(expr, Call):
            parts = [self._tail_safe(a) for a in expr.args]
            return all(parts) if expr.func in ("max", "min") and len(parts) == 2 else any(parts)
        if isinstance(expr, Unary):
            return self._tail_safe(expr.operand)
        return False

    _safe_tensors: frozenset = frozenset()

    def _retile(self, e: Einsum, axis: int) -> Einsum:
        indices = list(e.output.indices)
        indices[axis:axis + 1] = [Name(self.m1), Name(self.m0)]
        body = self.tile(e.body)
        where = conjunction([self.tile(e.where), self._guard(body)])
        return replace(e, output=Access(e.name, tuple(indices)), body=body, where=where, span=None)

    # the 1-pass block ------------------------------------------------------------------
    def _record(self, names: dict) -> None:
        mt = self.mt
        self.roles = {"output": mt.out.tensor, "rank": self.rank, "outer": self.outer,
                      "inner": self.inner, "rows": tuple(mt.rows), "extras": tuple(mt.extras),
                      "retiled": tuple(self.retiled), **names}

    def _online_roles(self) -> dict:
        """The tensors of an existing running max and denominator, by role."""
        mt, recs = self.mt, self.a.recurrences
        sln = mt.online["SLN"]
        rd = mt.online["RD"]
        sln_def = next(e for e in self.c.einsums if e.output == sln)
        rm = next((a.tensor for a in _accesses(sln_def.body) if a.tensor in recs), None)
        lm = next((a.tensor for a in recs[rm].update.reads() if a.tensor != rm), None)
        spd = next((a.tensor for a in recs[rd].update.reads()
                    if a.tensor != rd and a.tensor not in (sln.tensor,)
                    and any(x.tensor == mt.online["PRM"] for d in self.c.definitions(a.tensor)
                            for x in d.reads())), None)
        sld = next((e.name for e in self.c.einsums if e.reducer == "sum" and e.body == sln),
                   None)
        return {"SLN": sln.tensor, "PRM": mt.online["PRM"], "RD": rd, "RM": rm, "LM": lm,
                "SPD": spd, "SLD": sld}

    def _online_block(self) -> list[Einsum]:
        """Completes a running max and denominator with a running numerator (2-pass -> 1-pass)."""
        mt, m1 = self.mt, self.m1
        rows, x = list(mt.rows), list(mt.extras)
        names = {n: fresh(n, self.taken) for n in ("SPNV", "SLNV", "RNV")}
        self._record({**names, **self._online_roles()})
        SPNV, SLNV, RNV = names["SPNV"], names["SLNV"], names["RNV"]
        sln = mt.online["SLN"]
        prm = access(mt.online["PRM"], *rows, m1)
        rd = mt.online["RD"]
        self._safe_tensors = frozenset({sln.tensor})
        slnv_body = transform(self.tile(mt.rest), lambda n: sln if n == mt.placeholder else None)
        rnv = lambda i: access(RNV, *rows, i, *x)  # noqa: E731
        rd_rec = self.a.recurrences[rd]
        rd_final = Access(rd, _at(rd_rec.update.output.indices, rd_rec.axis, Name(self.outer)))
        return [
            Einsum(access(SPNV, *rows, m1, *x), Binary("*", prm, rnv(m1))),
            Einsum(access(SLNV, *rows, m1, *x), slnv_body, "sum", (self.m0,),
                   self.tile(mt.c_where)),
            Einsum(rnv(Num(0)), Num(0)),
            Einsum(rnv(plus_one(m1)), Binary("+", access(SPNV, *rows, m1, *x),
                                             access(SLNV, *rows, m1, *x))),
            Einsum(mt.out, Binary("/", rnv(Name(self.outer)), rd_final), where=mt.final_where),
        ]

    def _block(self) -> list[Einsum]:
        mt, m1, m0 = self.mt, self.m1, self.m0
        if mt.kind == "online":
            return self._online_block()
        rows = list(mt.rows)
        x = list(mt.extras)
        names = {n: fresh(n, self.taken) for n in
                 ("LM", "RM", "SLN", "PRM", "SPD", "SLD", "RD", "SPNV", "SLNV", "RNV")}
        self._record(names)
        LM, RM, SLN, PRM, SPD, SLD, RD, SPNV, SLNV, RNV = (names[n] for n in names)
        s_t = self.tile(mt.score)
        score_guard = self._guard(s_t)
        sln = access(SLN, *rows, m1, m0)
        self._safe_tensors = frozenset({SLN})
        rest_t = self.tile(mt.rest)
        slnv_body = transform(rest_t, lambda n: sln if n == mt.placeholder else None)

        def E(out, body, reducer=None, reduced=(), where=None):
            return Einsum(out, body, reducer, tuple(reduced), where)

        rm = lambda i: access(RM, *rows, i)  # noqa: E731
        rd = lambda i: access(RD, *rows, i)  # noqa: E731
        rnv = lambda i: access(RNV, *rows, i, *x)  # noqa: E731
        return [
            E(access(LM, *rows, m1), s_t, "max", (m0,),
              conjunction([self.tile(mt.gm_where), score_guard])),
            E(rm(Num(0)), NEG_INF),
            E(rm(plus_one(m1)), Call("max", (rm(m1), access(LM, *rows, m1)))),
            E(sln, Call("exp", (Binary("-", s_t, rm(plus_one(m1))),)),
              where=conjunction([self.tile(mt.sn_where), score_guard])),
            E(access(PRM, *rows, m1), Call("exp", (Binary("-", rm(m1), rm(plus_one(m1))),))),
            E(access(SPD, *rows, m1), Binary("*", access(PRM, *rows, m1), rd(m1))),
            E(access(SLD, *rows, m1), sln, "sum", (m0,), where=self.tile(mt.sd_where)),
            E(rd(Num(0)), Num(0)),
            E(rd(plus_one(m1)), Binary("+", access(SPD, *rows, m1), access(SLD, *rows, m1))),
            E(access(SPNV, *rows, m1, *x), Binary("*", access(PRM, *rows, m1), rnv(m1))),
            E(access(SLNV, *rows, m1, *x), slnv_body, "sum", (m0,), where=self.tile(mt.c_where)),
            E(rnv(Num(0)), Num(0)),
            E(rnv(plus_one(m1)), Binary("+", access(SPNV, *rows, m1, *x),
                                        access(SLNV, *rows, m1, *x))),
            E(mt.out, Binary("/", rnv(Name(self.outer)), rd(Name(self.outer))),
              where=mt.final_where),
        ]


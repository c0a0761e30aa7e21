"""The rewrite must keep which points of the output exist.

The running numerator starts at an existing 0 (``RNV[o, 0, x] = 0``), so the rewritten output
exists wherever the running denominator does. The original numerator ``sum[m] SN * rest`` is
empty where it has no point, and so then is the output: when ``rest`` or the contraction's
``where`` empties every ``m`` of a row that the denominator has (``rest`` exists only at
``p <= m``, the softmax only at ``p != 0``), the rewrite would make a point. So it applies only
when, at every size, the numerator has a point wherever the softmax numerator SN has one:

* every conjunct over ``m`` of the contraction's ``where`` is one of SN's conjuncts (conjuncts
  without ``m`` guard the final division, which keeps their rows empty);
* every tensor that ``rest`` reads is an input or a tensor defined from such reads, whose own
  ``where`` conjuncts (at the read's indices) are SN's, and is read within its extent: at an
  index variable of the axis's rank, or at an index that the score also reads on an axis of the
  same rank where an empty read empties the score (``V[b, h / G, m, f]`` beside
  ``K[b, h / G, m, e]``).

Rows that the denominator leaves empty end empty in both forms (the running max stays -inf and
the correction factor is empty), so they need no condition.
"""
from __future__ import annotations

from ...ir import Access, Binary, Call, Cascade, Expr, Name, Unary, accesses, index_vars
from ..rewrite import conjuncts, mentions, transform
from .match import PLACEHOLDER, Form, Match, NotApplicable
from .tiling import Tiling


def check_points(analysis, match: Match) -> None:
    """Raises :class:`NotApplicable` when the rewrite could make an output point exist that the
    original lacks (its numerator has fewer points than its denominator)."""
    cascade, m = analysis.cascade, match.m
    implied = _required(cascade, analysis.shapes, match.score, set())
    score_reads = {(f[1], f[2]) for f in implied if f[0] == "read"}
    # the conjuncts that hold wherever the softmax numerator SN exists
    sn = [*_numerator_conjuncts(analysis, match), *(f[1] for f in implied if f[0] == "where")]
    extra = [c for c in conjuncts(match.masks.contraction) if mentions(c, m) and c not in sn]
    if extra:
        raise NotApplicable(_why(match, f"its 'where' conjunct {_show(extra[0])} is not "
                                        f"one of the softmax numerator's"))
    for acc in accesses(match.rest):
        if acc == PLACEHOLDER:
            continue
        bad = _sparse_read(cascade, analysis.shapes, acc, set(sn), score_reads, set())
        if bad:
            raise NotApplicable(_why(match, bad))


def _why(match: Match, detail: str) -> str:
    return (f"{match.out_name}'s numerator may have no point where its denominator has some "
            f"({detail}); the running numerator starts at an existing 0 and would make the point "
            f"exist")


def _show(expr: Expr) -> str:
    from ...printer import format_expr

    return format_expr(expr)


def _numerator_conjuncts(analysis, match: Match) -> list[Expr]:
    """SN's conjuncts, in the original's indices (the online form's SLN is on the tiles of m)."""
    if match.form is not Form.ONLINE:
        return conjuncts(match.masks.sn)
    split = match.running.split
    tiling = Tiling(split.rank, split.outer, split.inner, analysis.shapes)
    (sln,) = analysis.cascade.definitions(match.running.sln.tensor)
    tiled = conjuncts(sln.where)
    # a conjunct over m of the contraction is SLN's when its tiled form is
    return [c for c in conjuncts(match.masks.contraction) if tiling.tile(c) in tiled]


def _rank(cascade: Cascade, var: str) -> str:
    decl = cascade.size_decl(var.upper())
    if decl is not None and decl.index_of and isinstance(decl.default, Name):
        return decl.default.name
    return var.upper()


def _sparse_read(cascade, shapes, acc: Access, sn: set, score_reads: set, seen: set) -> str | None:
    """Why ``acc`` may be empty where SN exists (None when it cannot be)."""
    axes = shapes.get(acc.tensor, ())
    for k, index in enumerate(acc.indices):
        rank = axes[k].rank if k < len(axes) else None
        plain = isinstance(index, Name) and index.is_index and _rank(cascade, index.name) == rank
        if not plain and (rank, index) not in score_reads:
            return f"{acc.tensor} is read at {_show(index)}, which may be outside its extent"
    if cascade.input(acc.tensor) is not None or acc.tensor in seen:
        return None
    defs = cascade.definitions(acc.tensor)
    if len(defs) != 1 or not all(isinstance(i, Name) and i.is_index for i in defs[0].output.indices):
        return f"{acc.tensor} has no single plain definition"
    d = defs[0]
    if any(mentions(c, r) for c in conjuncts(d.where) for r in d.reduced):
        return f"{acc.tensor} reduces over a masked range"
    if set(d.reduced) & {v for i in acc.indices for v in index_vars(i)}:
        return f"{acc.tensor} is read at an index named like one it reduces over"
    at = {o.name: i for o, i in zip(d.output.indices, acc.indices, strict=True)}
    renamed = lambda e: transform(e, lambda n: at.get(n.name) if isinstance(n, Name)  # noqa: E731
                                  and n.name in at else None)
    for c in conjuncts(d.where):
        if renamed(c) not in sn:
            return f"{acc.tensor} exists only where {_show(renamed(c))}"
    for inner in accesses(d.body):
        bad = _sparse_read(cascade, shapes, renamed(inner), sn, score_reads, seen | {acc.tensor})
        if bad:
            return bad
    return None


def _required(cascade, shapes, expr: Expr, seen: set) -> set:
    """What an existing point of ``expr`` implies, through the plain definitions of the tensors
    it reads at their own output indices: ``("read", rank, index)``, a read within the extent,
    and ``("where", conjunct)``, a conjunct that holds."""
    if isinstance(expr, Access):
        axes = shapes.get(expr.tensor, ())
        out = {("read", axes[k].rank, i) for k, i in enumerate(expr.indices) if k < len(axes)}
        defs = cascade.definitions(expr.tensor)
        if (len(defs) == 1 and expr.tensor not in seen and defs[0].output == expr
                and defs[0].reducer in (None, "sum")):
            d = defs[0]
            inner = {("where", c) for c in conjuncts(d.where)}
            inner |= _required(cascade, shapes, d.body, seen | {expr.tensor})
            # a reduction's point implies only what holds at each of its reduced points
            out |= {f for f in inner if not any(mentions(f[-1], r) for r in d.reduced)}
        return out
    if isinstance(expr, Binary) and expr.op not in ("and", "or"):  # and/or exist everywhere
        lhs = _required(cascade, shapes, expr.lhs, seen)
        rhs = _required(cascade, shapes, expr.rhs, seen)
        return lhs | rhs if expr.op in ("*", "/") else lhs & rhs
    if isinstance(expr, Unary) or (isinstance(expr, Call) and len(expr.args) == 1):
        return _required(cascade, shapes, (expr.operand if isinstance(expr, Unary)
                                           else expr.args[0]), seen)
    return set()

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

A softmax whose rank is already split and that keeps a running max and denominator (the 2-pass
online-normaliser form) is completed the same way: its second pass
``A[o, m] = exp(s - RM[o, M1]) / RD[o, M1]``, ``Y = sum[m] A * rest`` becomes the running numerator
SPNV, SLNV, RNV and the final division.

The matching is in :mod:`.match` (typed :class:`Match` results), the tiling of expressions in
:mod:`.tiling`, the construction of the new Einsums in :mod:`.build`.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import CascadeError
from ...ir import Cascade
from ...verifier import analyze
from .build import DEFAULT_TILE, build
from .match import Form, Match, NotApplicable, find
from .points import check_points


@dataclass(frozen=True)
class RewriteResult:
    cascade: Cascade
    changed: bool
    reason: str | None  # why nothing changed (None when the rewrite applied)
    rewritten: tuple[str, ...] = ()  # the outputs whose softmax was rewritten


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
    current, done, first_reason = cascade, [], None
    # Every rewrite removes a max over an unsplit rank, so this ends; the bound is a guard.
    while len(done) <= 64:
        analysis = analyze(current)
        try:
            match = find(analysis, tile_rank)
            check_points(analysis, match)
            current = build(analysis, match, tile_size)
        except NotApplicable as exc:
            if not done:
                first_reason = str(exc)
            break
        done.append(match.out_name)
    if not done:
        return RewriteResult(cascade, False, first_reason)
    analyze(current)
    return RewriteResult(current, True, None, tuple(done))


__all__ = ["DEFAULT_TILE", "Form", "Match", "NotApplicable", "RewriteResult", "online_softmax",
           "online_softmax_reason", "rewrite_online_softmax"]

"""Building the 1-pass block that replaces a matched softmax-contraction (see the package
docstring for the Einsums it produces)."""
from __future__ import annotations

from dataclasses import replace

from ...facts import Analysis
from ...ir import (Access, Binary, Call, Cascade, Einsum, Expr, Name, Num, SizeDecl, Split,
                   accesses, index_vars)
from ..rewrite import NEG_INF, access, conjunction, fresh, mentions, plus_one, readers, \
    taken_names, transform
from .match import PLACEHOLDER, Form, Match, NotApplicable, plain
from .tiling import Tiling

DEFAULT_TILE = 64


def build(analysis: Analysis, match: Match, tile_size: int | None) -> Cascade:
    """``analysis.cascade`` with the matched Einsums replaced by the 1-pass block."""
    cascade = analysis.cascade
    taken = taken_names(cascade)
    if match.form is Form.ONLINE:
        split = match.running.split
        sizes = _with_tile(cascade.sizes, split.inner, tile_size)
        splits = cascade.splits
        tiling = Tiling(split.rank, split.outer, split.inner, analysis.shapes)
    else:
        sizes, splits, split = _split(cascade, match.m.upper(), tile_size, taken)
        _check_tile_names_free(cascade, match.m, split)
        tiling = Tiling(split.rank, split.outer, split.inner, analysis.shapes,
                        retiled=retile_set(analysis, match))
    block = (_online_block if match.form is Form.ONLINE else _full_block)(analysis, match,
                                                                          tiling, taken)
    new: list[Einsum] = []
    for e in cascade.einsums:
        if e.id == match.anchor:
            # The block stands for the softmax-contraction it replaces: a refusal of one of its
            # Einsums points at the contraction's source line.
            new.extend(replace(b, span=e.span) for b in block)
        elif e.id in match.removed:
            continue
        elif e.name in tiling.retiled:
            new.append(_retile(tiling, e, tiling.retiled[e.name]))
        else:
            new.append(e)
    return replace(cascade, sizes=tuple(sizes), splits=tuple(splits), einsums=tuple(new),
                   source=None)


def _check_tile_names_free(cascade: Cascade, m: str, split: Split) -> None:
    """An existing split's index names must not already index, for other positions, the
    Einsums over ``m`` that the rewrite tiles (``T15[m, m1, m0, e]``: tiled, m1 would repeat)."""
    parts = {split.outer.lower(), split.inner.lower()}
    for e in cascade.einsums:
        used = {*index_vars(e.output), *index_vars(e.body), *index_vars(e.where), *e.reduced}
        clash = sorted(parts & used) if m in used else ()
        if clash:
            raise NotApplicable(f"the tiles of {split.rank} would be indexed by "
                                f"{', '.join(clash)}, which {e.name} already uses beside {m}")


def _with_tile(sizes, inner: str, tile_size: int | None) -> tuple[SizeDecl, ...]:
    if tile_size is None:
        return tuple(sizes)
    return tuple(replace(d, default=Num(tile_size)) if d.name == inner else d for d in sizes)


def _split(cascade: Cascade, rank: str, tile_size: int | None, taken: set[str]):
    """The declarations with ``rank`` split (reusing an existing split of it), and the split."""
    existing = cascade.split_for(rank)
    if existing is not None:
        sizes, splits, split = _with_tile(cascade.sizes, existing.inner, tile_size), \
            cascade.splits, existing
    else:
        split = Split(rank, fresh(rank + "1", taken), fresh(rank + "0", taken))
        sizes = (*cascade.sizes, SizeDecl(split.inner, Num(tile_size or DEFAULT_TILE), True))
        splits = (*cascade.splits, split)
    if any(part.lower().upper() != part for part in (split.outer, split.inner)):
        raise NotApplicable(f"cannot name index variables for the tiles of {rank}")
    return sizes, splits, split


# ---------------------------------------------------------------------- retiling


def retile_set(analysis: Analysis, match: Match) -> dict[str, int]:
    """Tensors computed only for the softmax's score: tensor -> its axis indexed by m."""
    cand = _score_operands(analysis, match)
    changed = True
    while changed:
        changed = False
        for tensor, axis in list(cand.items()):
            if not _read_only_inside(analysis.cascade, match, cand, tensor, axis):
                del cand[tensor]
                changed = True
    return cand


def _single_m_axis(acc: Access, m: str) -> int | None:
    axes = [k for k, i in enumerate(acc.indices) if i == Name(m)]
    if len(axes) != 1 or any(mentions(i, m) for k, i in enumerate(acc.indices) if k != axes[0]):
        return None
    return axes[0]


def _score_operands(analysis: Analysis, match: Match) -> dict[str, int]:
    """Tensors the score is computed from, through plain definitions indexed by m."""
    c, m = analysis.cascade, match.m
    cand: dict[str, int] = {}
    frontier = [match.score]
    while frontier:
        for acc in accesses(frontier.pop()):
            axis = _single_m_axis(acc, m)
            if axis is None:
                continue
            defs = c.definitions(acc.tensor)
            if (acc.tensor in cand or len(defs) != 1 or acc.tensor in analysis.recurrences
                    or c.output(acc.tensor) is not None):
                continue
            d = defs[0]
            if d.output.indices[axis] != Name(m) or not plain(d.output):
                continue
            cand[acc.tensor] = axis
            frontier.append(d.body)
    return cand


def _read_only_inside(cascade: Cascade, match: Match, cand, tensor: str, axis: int) -> bool:
    """Every reader of ``tensor`` is replaced or retiled, and reads it at m on ``axis``."""
    for reader in readers(cascade, tensor):
        if reader.id not in match.removed and reader.name not in cand:
            return False
        for acc in reader.reads():
            if acc.tensor == tensor and _single_m_axis(acc, match.m) != axis:
                return False
    return True


def _retile(tiling: Tiling, e: Einsum, axis: int) -> Einsum:
    indices = list(e.output.indices)
    indices[axis:axis + 1] = [Name(tiling.m1), Name(tiling.m0)]
    body = tiling.tile(e.body)
    where = conjunction([tiling.tile(e.where), tiling.guard(body)])
    return replace(e, output=Access(e.name, tuple(indices)), body=body, where=where)


# ---------------------------------------------------------------------- the 1-pass block


def _numerator_block(match: Match, tiling: Tiling, names: dict[str, str], sln: Access,
                     prm: Access, final_rd: Access) -> list[Einsum]:
    """SPNV, SLNV, RNV (running numerator) and the final division."""
    rows, x, m1 = match.rows, match.extras, tiling.m1
    spnv, slnv = access(names["SPNV"], *rows, m1, *x), access(names["SLNV"], *rows, m1, *x)

    def rnv(i: Expr | str) -> Access:
        return access(names["RNV"], *rows, i, *x)

    slnv_body = transform(tiling.tile(match.rest), lambda n: sln if n == PLACEHOLDER else None)
    return [
        Einsum(spnv, Binary("*", prm, rnv(m1))),
        Einsum(slnv, slnv_body, "sum", (tiling.m0,), tiling.tile(match.masks.contraction)),
        Einsum(rnv(Num(0)), Num(0)),
        Einsum(rnv(plus_one(m1)), Binary("+", spnv, slnv)),
        Einsum(match.out, Binary("/", rnv(Name(tiling.outer)), final_rd),
               where=match.masks.final),
    ]


def _online_block(analysis: Analysis, match: Match, tiling: Tiling,
                  taken: set[str]) -> list[Einsum]:
    """Completes a running max and denominator with a running numerator (2-pass -> 1-pass)."""
    running = match.running
    names = {n: fresh(n, taken) for n in ("SPNV", "SLNV", "RNV")}
    tiling = replace(tiling, safe=frozenset({running.sln.tensor}))
    prm = access(running.prm, *match.rows, tiling.m1)
    rd_rec = analysis.recurrences[running.rd]
    final_rd = Access(running.rd, _at(rd_rec.update.output.indices, rd_rec.axis,
                                      Name(tiling.outer)))
    return _numerator_block(match, tiling, names, running.sln, prm, final_rd)


def _full_block(analysis: Analysis, match: Match, tiling: Tiling,
                taken: set[str]) -> list[Einsum]:
    """The running max, denominator and numerator of a 3-pass or deferred softmax."""
    rows, m1, m0 = match.rows, tiling.m1, tiling.m0
    names = {n: fresh(n, taken) for n in
             ("LM", "RM", "SLN", "PRM", "SPD", "SLD", "RD", "SPNV", "SLNV", "RNV")}
    lm, sld, spd = (access(names[n], *rows, m1) for n in ("LM", "SLD", "SPD"))
    prm = access(names["PRM"], *rows, m1)
    sln = access(names["SLN"], *rows, m1, m0)

    def rm(i: Expr | str) -> Access:
        return access(names["RM"], *rows, i)

    def rd(i: Expr | str) -> Access:
        return access(names["RD"], *rows, i)

    s_t = tiling.tile(match.score)
    score_guard = tiling.guard(s_t)
    masks = match.masks
    block = [
        Einsum(lm, s_t, "max", (m0,), conjunction([tiling.tile(masks.gm), score_guard])),
        Einsum(rm(Num(0)), NEG_INF),
        Einsum(rm(plus_one(m1)), Call("max", (rm(m1), lm))),
        Einsum(sln, Call("exp", (Binary("-", s_t, rm(plus_one(m1))),)),
               where=conjunction([tiling.tile(masks.sn), score_guard])),
        Einsum(prm, Call("exp", (Binary("-", rm(m1), rm(plus_one(m1))),))),
        Einsum(spd, Binary("*", prm, rd(m1))),
        Einsum(sld, sln, "sum", (m0,), where=tiling.tile(masks.sd)),
        Einsum(rd(Num(0)), Num(0)),
        Einsum(rd(plus_one(m1)), Binary("+", spd, sld)),
    ]
    tiling = replace(tiling, safe=frozenset({names["SLN"]}))
    return block + _numerator_block(match, tiling, names, sln, prm, rd(Name(tiling.outer)))


def _at(indices, axis, value):
    out = list(indices)
    out[axis] = value
    return tuple(out)

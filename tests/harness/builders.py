"""The Einsums a random cascade is made of: maps, contractions, reductions of every kind,
softmax chains and running recurrences along a split rank. Each builder appends to a ``Ctx``;
a builder that finds nothing to work on falls back to a map."""
from __future__ import annotations

import math

from hypothesis import strategies as st

from einsum_ir.ir import Access, Call, Einsum, Name

from . import intervals as iv_
from .context import Ctx, Tensor, binary, body_vars, num, ordered
from .exprs import expression, unary
from .intervals import Iv
from .masks import predicate


def _leaves(draw, ctx: Ctx, most: int):
    first = ctx.pick(draw)
    names = [first]
    if most > 1 and draw(st.booleans()):
        names.append(ctx.pick(draw))
    return [ctx.read(draw, t) for t in names]


def build_map(draw, ctx: Ctx) -> None:
    leaves = _leaves(draw, ctx, 2)
    body, iv = expression(draw, ctx, leaves, body_vars(*(e for e, _ in leaves)))
    vars_ = body_vars(body)
    ctx.define(vars_, body, iv, where=predicate(draw, ctx, vars_))


def _split_reduced(draw, vars_, prefer=()) -> tuple[tuple[str, ...], tuple[str, ...]]:
    choices = [v for v in vars_ if v in prefer] or list(vars_)
    reduced = draw(st.lists(st.sampled_from(choices), min_size=1,
                            max_size=max(1, min(2, len(vars_) - 1)), unique=True))
    if len(reduced) >= len(vars_):
        reduced = reduced[:len(vars_) - 1]
    keep = tuple(v for v in vars_ if v not in reduced)
    return ordered(reduced), keep


def build_reduction(draw, ctx: Ctx) -> None:
    leaves = _leaves(draw, ctx, 2)
    body, iv = expression(draw, ctx, leaves, body_vars(*(e for e, _ in leaves)))
    vars_ = body_vars(body)
    if len(vars_) < 2:
        return build_map(draw, ctx)
    reducer = draw(st.sampled_from(["sum", "max", "min", "prod", "implicit"]))
    if reducer == "prod" and not (iv.lo >= 0.5 and iv.hi <= 1.5):
        body, iv = binary("+", Call("sigmoid", (body,)), num(0.5)), Iv(0.5, 1.5)
    reduced, keep = _split_reduced(draw, vars_)
    where = predicate(draw, ctx, vars_)
    count = math.prod(ctx.extent(v) for v in reduced)
    kind = "sum" if reducer == "implicit" else reducer
    ctx.define(keep, body, iv_.reduce(iv, kind, count), reducer=kind, reduced=reduced,
               where=where, implicit=reducer == "implicit")


def build_contraction(draw, ctx: Ctx) -> None:
    (a, ia), (b, ib) = [ctx.read(draw, ctx.pick(draw)) for _ in range(2)]
    body, iv = binary("*", a, b), iv_.mul(ia, ib)
    scale = draw(st.sampled_from([None, "sqrt", "half"]))
    if scale == "sqrt" and "E" in ctx.sizes:
        body, iv = binary("/", body, Call("sqrt", (Name("E"),))), iv_.mul(iv, Iv(0, 1))
    elif scale == "half":
        body, iv = binary("*", body, num(0.5)), iv_.mul(iv, Iv(0.5, 0.5))
    vars_ = body_vars(body)
    if len(vars_) < 2:
        return build_map(draw, ctx)
    shared = set(body_vars(a)) & set(body_vars(b))
    reduced, keep = _split_reduced(draw, vars_, prefer=shared)
    where = predicate(draw, ctx, vars_)
    count = math.prod(ctx.extent(v) for v in reduced)
    ctx.define(keep, body, iv_.reduce(iv, "sum", count), reducer="sum", reduced=reduced,
               where=where, implicit=draw(st.booleans()))


def _plain(tensor: str, axes) -> Access:
    return Access(tensor, tuple(Name(a) for a in axes))


def build_softmax(draw, ctx: Ctx) -> None:
    """S (masked scores), GM = max, SN = exp(S - GM), SD = sum SN, A = SN / SD, maybe A x V."""
    leaves = _leaves(draw, ctx, 2)
    body, iv = expression(draw, ctx, leaves, body_vars(*(e for e, _ in leaves)))
    vars_ = body_vars(body)
    if len(vars_) < 2:
        return build_map(draw, ctx)
    k = draw(st.sampled_from(vars_))
    rest = tuple(v for v in vars_ if v != k)
    s = ctx.define(vars_, body, iv, where=predicate(draw, ctx, vars_))
    partial = ctx.tensors[s].partial
    gm = ctx.define(rest, _plain(s, vars_), iv, reducer="max", reduced=(k,), partial=partial)
    sn = ctx.define(vars_, Call("exp", (binary("-", _plain(s, vars_), _plain(gm, rest)),)),
                    Iv(math.exp(iv.lo - iv.hi), 1.0), partial=partial)
    sd = ctx.define(rest, _plain(sn, vars_), Iv(math.exp(iv.lo - iv.hi), ctx.extent(k)),
                    reducer="sum", reduced=(k,), partial=partial)
    a = ctx.define(vars_, binary("/", _plain(sn, vars_), _plain(sd, rest)), Iv(0.0, 1.0),
                   partial=partial)
    for t in (s, gm, sn, sd):
        ctx.tensors[t].reads = 2
    values = [t for t in ctx.consumables() if k in ctx.tensors[t].axes and t not in (s, sn, a)]
    if values and draw(st.booleans()):
        v = draw(st.sampled_from(values))
        vi = ctx.tensors[v]
        vi.reads += 1
        ctx.tensors[a].reads += 1
        av_vars = ordered(set(vars_) | set(vi.axes))
        ctx.define(tuple(x for x in av_vars if x != k),
                   binary("*", _plain(a, vars_), _plain(v, vi.axes)),
                   iv_.reduce(iv_.mul(Iv(0.0, 1.0), vi.iv), "sum", ctx.extent(k)),
                   reducer="sum", reduced=(k,), partial=partial or vi.partial)


def build_recurrence(draw, ctx: Ctx) -> None:
    """A running max, sum or decayed sum over the key tiles ``m1`` of ``split M = M1 * M0``:
    ``L[o, m1] = red[m0] f(T[.., m1*M0 + m0, ..])``, ``R[o, 0] = init``,
    ``R[o, m1+1] = update(R[o, m1], L[o, m1])``, and the final iterate ``F[o] = R[o, M1]``."""
    source = ctx.pick(draw, need=lambda t: "m" in t.axes and len(t.axes) >= 2) if ctx.split else None
    if source is None:
        return build_map(draw, ctx)
    tile = (ctx.tile_position(), ctx.sizes["M"] % ctx.sizes["M0"] != 0)
    body, iv = ctx.read(draw, source, fixed={"m": tile})
    if draw(st.booleans()):
        body, iv = unary(draw, body, iv)
    vars_ = body_vars(body)
    outer = tuple(v for v in vars_ if v not in ("m1", "m0"))
    if not outer or "m0" not in vars_:
        return build_map(draw, ctx)
    kind = draw(st.sampled_from(["max", "sum", "decay"]))
    where = predicate(draw, ctx, vars_)
    local = ctx.define(outer + ("m1",), body, iv_.reduce(iv, "max" if kind == "max" else "sum",
                                                       ctx.sizes["M0"]),
                       reducer="max" if kind == "max" else "sum", reduced=("m0",), where=where)
    partial = ctx.tensors[local].partial
    liv = ctx.tensors[local].iv
    init = draw(st.sampled_from([float("-inf"), 0.0] if kind == "max" else [0.0, 1.0]))
    run = ctx.fresh()
    prev = Access(run, tuple(Name(v) for v in outer) + (Name("m1"),))
    nxt = Access(run, tuple(Name(v) for v in outer) + (binary("+", Name("m1"), num(1)),))
    cur = _plain(local, outer + ("m1",))
    if kind == "max":
        update = Call("max", (prev, cur))
        riv = Iv(min(liv.lo, init) if init == 0.0 else liv.lo, max(liv.hi, init),
                 may_be_inf=init != 0.0 and partial)
    elif kind == "sum":
        update = binary("+", prev, cur)
        riv = iv_.reduce(liv, "sum", ctx.extent("m1")).hull(Iv(init, init))
    else:
        update = binary("+", binary("*", num(0.5), prev), cur)
        riv = Iv(min(0.0, 2 * liv.lo, init), max(0.0, 2 * liv.hi, init))
    ctx.einsums.append(Einsum(Access(run, tuple(Name(v) for v in outer) + (num(0),)), num(init)))
    ctx.einsums.append(Einsum(nxt, update))
    ctx.tensors[run] = Tensor(outer + ("m1",), riv, consumable=False, reads=1, partial=partial)
    ctx.tensors[local].reads += 1
    final = Access(run, tuple(Name(v) for v in outer) + (Name("M1"),))
    ctx.define(outer, final, riv, consumable=not riv.may_be_inf, partial=partial)
    if kind != "max" and draw(st.integers(0, 3)) == 0:
        # an intermediate iterate, read by an Einsum outside the recurrence
        ctx.define(outer + ("m1",), binary("*", prev, num(0.5)), iv_.mul(riv, Iv(0.5, 0.5)),
                   partial=partial)


def _at(tensor: str, axes, step=None) -> Access:
    """``tensor[axes]`` with the recurrence index (``m1``) replaced by ``step`` where given."""
    return Access(tensor, tuple(step if (a == "m1" and step is not None) else Name(a) for a in axes))


def build_online_softmax(draw, ctx: Ctx) -> None:
    """FlashAttention-2's recurrence (as in mha_1pass.ein): tile scores, running max RM, correction
    PRM, running denominator RD and numerator x V RNV, final ``RNV[.., M1, ..] / RD[.., M1]``."""
    def keyed(t: Tensor) -> bool:
        return "m" in t.axes and not {"m1", "m0"} & set(t.axes)

    score = ctx.pick(draw, need=lambda t: keyed(t) and len(t.axes) >= 2) if ctx.split else None
    value = ctx.pick(draw, need=keyed) if score else None
    if value is None:
        return build_map(draw, ctx)
    tile = (ctx.tile_position(), ctx.sizes["M"] % ctx.sizes["M0"] != 0)
    body, iv = ctx.read(draw, score, fixed={"m": tile})
    outer = tuple(v for v in body_vars(body) if v not in ("m1", "m0"))
    if not outer or "m0" not in body_vars(body):
        return build_map(draw, ctx)
    o_t = outer + ("m1", "m0")
    qk = ctx.define(o_t, body, iv, where=predicate(draw, ctx, body_vars(body)))
    partial = ctx.tensors[qk].partial
    lm = ctx.define(outer + ("m1",), _plain(qk, o_t), iv, reducer="max", reduced=("m0",))
    rm = ctx.fresh()
    o1 = outer + ("m1",)
    nxt = binary("+", Name("m1"), num(1))
    ctx.einsums.append(Einsum(_at(rm, o1, num(0)), num(float("-inf"))))
    ctx.einsums.append(Einsum(_at(rm, o1, nxt), Call("max", (_plain(rm, o1), _plain(lm, o1)))))
    sln = ctx.define(o_t, Call("exp", (binary("-", _plain(qk, o_t), _at(rm, o1, nxt)),)),
                     Iv(0.0, 1.0), partial=partial)
    prm = ctx.define(o1, Call("exp", (binary("-", _plain(rm, o1), _at(rm, o1, nxt)),)),
                     Iv(0.0, 1.0), partial=partial)
    sld = ctx.define(o1, _plain(sln, o_t), Iv(0.0, ctx.sizes["M0"]), reducer="sum",
                     reduced=("m0",), partial=partial)
    rd = ctx.fresh()
    ctx.einsums.append(Einsum(_at(rd, o1, num(0)), num(0.0)))
    ctx.einsums.append(Einsum(_at(rd, o1, nxt), binary("+", binary("*", _plain(prm, o1),
                                                                     _plain(rd, o1)),
                                                        _plain(sld, o1))))
    vi = ctx.tensors[value]
    vi.reads += 1
    rest = tuple(a for a in vi.axes if a != "m" and a not in outer)
    v_read = Access(value, tuple(tile[0] if a == "m" else Name(a) for a in vi.axes))
    o1w = o1 + rest
    slnv = ctx.define(o1w, binary("*", _plain(sln, o_t), v_read),
                      iv_.reduce(iv_.mul(Iv(0.0, 1.0), vi.iv), "sum", ctx.sizes["M0"]),
                      reducer="sum", reduced=("m0",), partial=partial or vi.partial)
    rnv = ctx.fresh()
    ctx.einsums.append(Einsum(_at(rnv, o1w, num(0)), num(0.0)))
    ctx.einsums.append(Einsum(_at(rnv, o1w, nxt), binary("+", binary("*", _plain(prm, o1),
                                                                       _plain(rnv, o1w)),
                                                          _plain(slnv, o1w))))
    final = binary("/", _at(rnv, o1w, Name("M1")), _at(rd, o1, Name("M1")))
    for t in (rm, rd, rnv):
        ctx.tensors[t] = Tensor(o1w if t == rnv else o1, Iv(0, 1), consumable=False, reads=1,
                                partial=partial)
    for t in (qk, lm, sln, prm, sld, slnv):
        ctx.tensors[t].reads += 1
    ctx.define(outer + rest, final, Iv(-vi.iv.mag, vi.iv.mag), partial=partial or vi.partial)


BUILDERS = (build_map, build_reduction, build_contraction, build_softmax, build_recurrence,
            build_online_softmax)

"""Projection of regions: the points of a reduction's output that some reduced point reaches.

``exists x: constraints`` is computed by Fourier-Motzkin elimination, which is exact on integers
for every pair of a lower bound ``a*x >= L`` and an upper bound ``b*x <= U`` with ``a == 1`` or
``b == 1`` (``max ceil(L/a) <= min floor(U/b)`` is then affine, pair by pair). Before that:

* a variable fixed by a unit equality (``m = p - 3*q``) is substituted;
* a product rank read as ``m1 * M2 + m2`` with both parts removed is one variable ``m``;
* a variable whose only constraints define it as a quotient ``floor(e / d)`` is dropped when its
  box holds every such quotient (some value always satisfies them).

When every pair left has coefficients above 1 (``exists q: p - M + 1 <= 3*q <= p``), the other
variables are split by their residues modulo ``d`` (``p = 3*p' + r`` for ``r`` in 0..2, one
conjunction each): the bounds then divide exactly and the pair is affine again. The new ``p'`` is
determined by ``p``; :class:`Projected` names such auxiliaries so that a reader can re-create them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import product

from .regions import (MAX_CONSTRAINTS, MAX_DISJUNCTS, Conjunction, Form, Region, Unsupported,
                      simplify, simplify_region)


@dataclass(frozen=True)
class Projected:
    """A projected region; ``aux[name] = (base, d)``: ``name`` is ``floor(base / d)`` (in order
    of creation, a base may be an earlier auxiliary)."""

    region: Region
    aux: dict = field(default_factory=dict)


def floor_definitions(aux: dict, env=None) -> frozenset:
    """The constraints ``0 <= base - d*name <= d - 1`` of the auxiliaries ``aux``, with ``env``
    giving what a name stands for (default: itself). Met with every conjunction, so that an
    auxiliary is determined in the conjunctions that do not name it too."""
    env = env or {}
    out = set()
    for name, (base, d) in aux.items():
        f = env.get(base, Form.var(base)) - env.get(name, Form.var(name)).scale(d)
        out |= {f.scale(-1), f.plus(1 - d)}
    return frozenset(out)


def _box_forms(var: str, box) -> set:
    return {Form(((var, -1),), box[var][0]), Form(((var, 1),), -box[var][1])}


def _unit_equality(forms, var: str) -> Form | None:
    """``e`` when ``forms`` hold ``var == e`` (a form and its negation, var's coefficient +-1)."""
    for f in forms:
        c = f.coef(var)
        if abs(c) == 1 and f.scale(-1) in forms:
            rest = Form.of({v: k for v, k in f.coefs if v != var}, f.const)
            return rest.scale(-c)
    return None


def _floor_definition(conj: Conjunction, var: str, box) -> bool:
    """Whether ``var``'s only constraints are ``0 <= e - d*var <= d - 1`` (a quotient's
    definition) and its box holds ``floor(e / d)`` for every value of ``e``: some value of it then
    always satisfies them."""
    mine = [f for f in conj if f.coef(var)]
    if len(mine) != 2:
        return False
    f, g = sorted(mine, key=lambda h: h.coef(var))  # f = e - d*var - (d-1), g = d*var - e
    d = g.coef(var)
    total = f + g
    if total.coefs or total.const != -(d - 1) or f.coef(var) != -d:
        return False
    lo, hi = (Form.of({v: c for v, c in g.coefs if v != var}, g.const).scale(-1)).bounds(box)
    return box[var][0] <= lo // d and hi // d <= box[var][1]


def _eliminate(conj: Conjunction, var: str, box) -> Conjunction:
    forms = set(conj) | _box_forms(var, box)
    eq = _unit_equality(forms, var)
    if eq is not None:
        return frozenset(f.substitute({var: eq}) for f in forms)
    lower = [f for f in forms if f.coef(var) < 0]
    upper = [f for f in forms if f.coef(var) > 0]
    rest = {f for f in forms if f.coef(var) == 0}
    for lo in lower:
        for up in upper:
            a, b = -lo.coef(var), up.coef(var)
            if a != 1 and b != 1:
                raise Unsupported(f"eliminating {var} with coefficients {a} and {b}")
            rest.add(lo.scale(b) + up.scale(a))
    if len(rest) > MAX_CONSTRAINTS:
        raise Unsupported(f"{len(rest)} constraints after eliminating {var}")
    return frozenset(rest)


def merge_products(conj: Conjunction, box: dict, candidates) -> tuple[Conjunction, list]:
    """Merges pairs of ``candidates`` (``a``, ``b``) that every form uses only as ``K*a + b``,
    with ``b`` ranging over ``0..K-1`` and ``a`` from 0 (a product rank ``M = M1 * M2`` read as
    ``m1 * M2 + m2``): one variable over ``0..(A*K)-1`` then stands for both (a bijection).
    ``box`` has the merged variables instead of the pairs; returns the forms and the candidates."""
    candidates = list(candidates)
    merged = True
    while merged:
        merged = False
        for a, b in product(candidates, candidates):
            k = box[b][1] + 1
            if a == b or box[a][0] != 0 or box[b][0] != 0 or k < 2:
                continue
            if not any(f.coef(a) for f in conj) or any(
                    f.coef(a) != k * f.coef(b) for f in conj if f.coef(a) or f.coef(b)):
                continue
            name = f"{a}*{b}"
            box[name] = (0, (box.pop(a)[1] + 1) * k - 1)
            del box[b]
            conj = frozenset(Form.of({**{v: c for v, c in f.coefs if v not in (a, b)},
                                      **({name: f.coef(b)} if f.coef(b) else {})}, f.const)
                             for f in conj)
            candidates = [v for v in candidates if v not in (a, b)] + [name]
            merged = True
            break
    return conj, candidates


_EMPTY = object()


def _step(conj: Conjunction, pending, box):
    """One exact removal: the new conjunction, ``_EMPTY`` when it is infeasible, None if stuck."""
    for var in pending:
        if _floor_definition(conj, var, box):
            return frozenset(f for f in conj if not f.coef(var))
        try:
            nxt = simplify(_eliminate(conj, var, box), box)
        except Unsupported:
            continue
        return _EMPTY if nxt is None else nxt
    return None


def _residues(conj: Conjunction, x: str, pending, box: dict, aux: dict, shared: dict):
    """``exists x`` by splitting the other variables of ``x``'s bounds by residues (see the
    module docstring): yields (conjunction, variables still to remove)."""
    mine = [f for f in conj | _box_forms(x, box) if f.coef(x)]
    rest = frozenset(f for f in conj if not f.coef(x))
    d = math.lcm(*(abs(f.coef(x)) for f in mine))
    scaled = [f.scale(d // abs(f.coef(x))) for f in mine]
    without = [Form.of({v: c for v, c in f.coefs if v != x}, f.const) for f in scaled]
    lows = [w for f, w in zip(scaled, without, strict=True) if f.coef(x) < 0]  # d*x >= w
    ups = [w.scale(-1) for f, w in zip(scaled, without, strict=True) if f.coef(x) > 0]  # d*x <= -w
    split = sorted({v for w in lows + ups for v, c in w.coefs if c % d})
    if d ** len(split) > MAX_DISJUNCTS:
        raise Unsupported(f"{d ** len(split)} residue classes to remove {x}")
    names = {}
    for v in split:
        names[v] = f"{v}#d{d}"
        box[names[v]] = shared[names[v]] = (box[v][0] // d, box[v][1] // d)
        if v not in pending:
            aux[names[v]] = (v, d)
    left = [v for v in pending if v != x] + [names[v] for v in split if v in pending]
    for residues in product(range(d), repeat=len(split)):
        env = {v: Form.var(names[v]).scale(d).plus(r)
               for v, r in zip(split, residues, strict=True)}
        eqs = set()
        for v in split:
            f = Form.var(v) - env[v]
            eqs |= {f, f.scale(-1)}
        pairs = set()
        for lo, up in product(lows, ups):
            lo, up = lo.substitute(env), up.substitute(env)
            lq = Form.of({v: c // d for v, c in lo.coefs}, -(-lo.const // d))  # ceil(lo / d)
            uq = Form.of({v: c // d for v, c in up.coefs}, up.const // d)  # floor(up / d)
            pairs.add(lq - uq)
        new = simplify(rest | eqs | pairs, box)
        if new is not None:
            yield new, left


def _project_conj(conj: Conjunction, drop, box, aux: dict, shared: dict) -> list:
    box = dict(box)
    conj, drop = merge_products(conj, box, drop)
    stack, done = [(conj, list(drop))], []
    while stack:
        conj, pending = stack.pop()
        pending = [v for v in pending if any(f.coef(v) for f in conj)]
        if not pending:
            done.append(conj)
            continue
        nxt = _step(conj, pending, box)
        if nxt is _EMPTY:
            continue
        if nxt is not None:
            stack.append((nxt, pending))
            continue
        stack.extend(_residues(conj, pending[0], pending, box, aux, shared))
        if len(stack) + len(done) > MAX_DISJUNCTS:
            raise Unsupported(f"more than {MAX_DISJUNCTS} conjunctions in a projection")
    return done


def project(region: Region, drop, box: dict) -> Projected:
    """``region`` with the variables ``drop`` existentially removed; ``box`` gives every
    variable's range and gains those of the auxiliaries the result uses."""
    aux: dict = {}
    out: list = []
    for conj in region:
        current = simplify(conj, box)
        if current is not None:
            out.extend(_project_conj(current, drop, box, aux, box))
    result = simplify_region(tuple(dict.fromkeys(out)), box)
    used = {v for conj in result for f in conj for v in f.vars}
    return Projected(result, {k: v for k, v in aux.items() if k in used})

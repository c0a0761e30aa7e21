"""Sampled point counts of a region whose exact count costs too much (see
:mod:`einsum_ir.analysis.region_count`).

The widest variable that no auxiliary depends on is kept whole: for uniform samples of the other
variables (auxiliaries computed from them), the length of its set, a union of intervals (one per
conjunction), is exact. The count is the number of outer points times the mean length. Each length
lies in ``[0, R]``, ``R`` the widest the conjunctions' bounds allow, so Hoeffding's inequality
bounds the error of the mean by ``R * sqrt(ln(2 / (1 - CONFIDENCE)) / (2 n))`` with probability
``CONFIDENCE``. A sliding window at P = 1G: ``R = W``, the bound is 0.8% of the count. The seed is
fixed, so a count is reproducible.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from .regions import Box, Form, Region

SAMPLES = 1 << 16
CONFIDENCE = 0.999


def _value(form: Form, values: Mapping[str, np.ndarray], skip: str = "") -> np.ndarray:
    out = np.full(SAMPLES, form.const, dtype=np.int64)
    for v, c in form.coefs:
        if v != skip:
            out += c * values[v]
    return out


def _interval(conj, inner: str, values, box: Box) -> tuple[np.ndarray, np.ndarray]:
    lo = np.full(SAMPLES, box[inner][0], dtype=np.int64)
    hi = np.full(SAMPLES, box[inner][1], dtype=np.int64)
    for f in conj:
        a, rest = f.coef(inner), _value(f, values, inner)
        if a > 0:  # a*x + rest <= 0
            hi = np.minimum(hi, (-rest) // a)
        elif a < 0:
            lo = np.maximum(lo, -((-rest) // -a))
        else:
            hi = np.where(rest <= 0, hi, lo - 1)
    return lo, hi


def _union_length(intervals) -> np.ndarray:
    """Per sample, the number of integers in the union of the intervals."""
    lo = np.stack([i[0] for i in intervals])
    hi = np.stack([i[1] for i in intervals])
    order = np.argsort(lo, axis=0)
    lo, hi = np.take_along_axis(lo, order, 0), np.take_along_axis(hi, order, 0)
    total = np.zeros(SAMPLES, dtype=np.int64)
    end = np.full(SAMPLES, np.iinfo(np.int64).min // 2, dtype=np.int64)
    for k in range(lo.shape[0]):
        total += np.maximum(hi[k] - np.maximum(lo[k], end + 1) + 1, 0)
        end = np.maximum(end, hi[k])
    return total


def _widest(conj, inner: str, box: Box) -> int:
    """An upper bound of the conjunction's interval length along ``inner`` (unit bounds)."""
    width = box[inner][1] - box[inner][0] + 1
    lows = [f for f in conj if f.coef(inner) == -1]  # x >= rest
    ups = [f for f in conj if f.coef(inner) == 1]  # x <= -rest
    for lo in lows:
        for up in ups:
            span = (up + lo).scale(-1)  # (-rest_up) - (rest_lo), without x
            width = min(width, max(0, span.bounds(box)[1] + 1))
    return width


def sample_count(region: Region, box: Box, primary, aux: Mapping[str, tuple[Form, int]],
                 seed: int = 0) -> tuple[int, int]:
    """(estimate, bound) of the points of ``region`` over the box of the ``primary`` variables:
    ``|estimate - exact| <= bound`` with probability :data:`CONFIDENCE`. ``aux[name] = (form,
    d)`` defines each auxiliary as ``floor(form / d)`` (in order: a form may use earlier ones)."""
    if not region:
        return 0, 0
    used = {v for form, _ in aux.values() for v in form.vars}
    inner = max((v for v in primary if v not in used), default=None,
                key=lambda v: box[v][1] - box[v][0])
    outer = [v for v in primary if v != inner]
    rng = np.random.default_rng(seed)
    values = {v: rng.integers(box[v][0], box[v][1] + 1, SAMPLES, dtype=np.int64) for v in outer}
    for name, (form, d) in aux.items():
        values[name] = np.floor_divide(_value(form, values), d)
    n_outer = math.prod(box[v][1] - box[v][0] + 1 for v in outer)
    if inner is None:  # every variable feeds an auxiliary: sample points, lengths in [0, 1]
        inside = np.zeros(SAMPLES, dtype=bool)
        for conj in region:
            inside |= np.logical_and.reduce([_value(f, values) <= 0 for f in conj]) if conj else True
        lengths, widest = inside.astype(np.int64), 1
    else:
        lengths = _union_length([_interval(conj, inner, values, box) for conj in region])
        widest = min(box[inner][1] - box[inner][0] + 1,
                     sum(_widest(conj, inner, box) for conj in region))
    half_width = widest * math.sqrt(math.log(2 / (1 - CONFIDENCE)) / (2 * SAMPLES))
    return round(n_outer * float(lengths.mean())), math.ceil(n_outer * half_width)

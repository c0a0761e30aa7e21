"""Kernel outputs against the float64 interpreter.

The tolerance is per element: 1e-3 relative, plus 1e-4 of the output's largest magnitude (or of
1), plus eight times the error the interpreter itself makes in float32 at that element (the
conditioning of the cascade at that point). NaN and infinities must agree exactly.
"""
from __future__ import annotations

import numpy as np

from . import outcomes
from .outcomes import Outcome


def _symptom(got: np.ndarray, ref: np.ndarray, bad: np.ndarray) -> str:
    g, r = got[bad], ref[bad]
    if np.isnan(g).any() and not np.isnan(r).any():
        return "NaN where the interpreter has a value"
    if (g == 0).all():
        return "zeros where the interpreter has values"
    if (r == 0).all():
        return "values where the interpreter has zeros (empty points)"
    if np.isinf(g).any() or np.isinf(r).any():
        return "infinities differ"
    return "values differ"


def compare_one(name: str, got: np.ndarray, ref: np.ndarray, ref32: np.ndarray) -> Outcome | None:
    if got.shape != ref.shape:
        return outcomes.mismatch(f"{name}: shape {got.shape}, expected {ref.shape}", "wrong shape")
    with np.errstate(all="ignore"):
        finite = np.isfinite(ref)
        scale = max(1.0, float(np.abs(ref[finite]).max())) if finite.any() else 1.0
        tol = 1e-3 * np.abs(ref) + 1e-4 * scale + 8 * np.nan_to_num(np.abs(ref32 - ref), nan=0.0,
                                                                   posinf=0.0)
        close = np.abs(got - ref) <= tol
        same = (np.isnan(got) & np.isnan(ref)) | (np.isinf(ref) & (got == ref))
        bad = ~(close | same)
    if not bad.any():
        return None
    idx = np.unravel_index(np.argmax(np.where(bad, np.nan_to_num(np.abs(got - ref), nan=np.inf), -1)),
                           ref.shape)
    where = ", ".join(str(int(i)) for i in idx)
    return outcomes.mismatch(
        f"{name}: {int(bad.sum())} of {bad.size} elements differ; at [{where}] got {got[idx]!r}, "
        f"expected {ref[idx]!r}", _symptom(got, ref, bad))


def compare(got: dict, ref: dict, ref32: dict) -> Outcome:
    for name, expected in ref.items():
        if name not in got:
            return outcomes.mismatch(f"output {name} missing", "output missing")
        out = compare_one(name, np.asarray(got[name], dtype=np.float64), expected,
                          np.asarray(ref32[name], dtype=np.float64))
        if out is not None:
            return out
    return outcomes.matched()

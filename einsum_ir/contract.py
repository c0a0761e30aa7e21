"""Sums of products for the interpreter, with the language's rules for infinities.

In a product a zero factor annihilates: ``0 * inf`` is 0 (a masked-out term, or a 0/1 mask
times ``inf``, contributes nothing), where IEEE arithmetic gives NaN. ``np.einsum`` follows
IEEE, so when a factor holds an infinity the sum is rebuilt exactly from a few einsums over
indicator arrays: the finite terms' sum, and the counts of positive and negative infinite terms.
A sum with both (``inf - inf``) is undefined: that point is empty. A NaN the inputs bring stays
NaN. Every einsum here is of the caller's spec, so no iteration space is materialised.
"""
from __future__ import annotations

import numpy as np


def sum_of_products(spec: str, values: list[np.ndarray], exists: list[np.ndarray | None]
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """``einsum(spec, *values)`` over the terms where every factor exists, and the points where
    that sum is defined (None when all are). ``exists[k]`` is None or broadcastable to
    ``values[k]``."""
    opt = len(values) > 2
    clean = [v if e is None else np.where(e, v, 0) for v, e in zip(values, exists, strict=True)]
    if all(np.isfinite(v).all() for v in clean):
        return np.einsum(spec, *clean, optimize=opt), None

    def count(arrays) -> np.ndarray:
        return np.einsum(spec, *[np.asarray(a, dtype=np.float64) for a in arrays], optimize=opt)

    present = [np.ones(v.shape, dtype=bool) if e is None else np.broadcast_to(e, v.shape)
               for v, e in zip(values, exists, strict=True)]
    nan = [np.isnan(v) for v in clean]
    nan_terms = count(present) - count([p & ~n for p, n in zip(present, nan, strict=True)]) > 0
    clean = [np.where(n, 0, v) for v, n in zip(clean, nan, strict=True)]
    finite = [np.isfinite(v) for v in clean]
    total = np.einsum(spec, *[np.where(f, v, 0) for v, f in zip(clean, finite, strict=True)],
                      optimize=opt)
    nonzero = [v != 0 for v in clean]
    signs = [np.sign(v) for v in clean]
    # Terms with no zero factor and at least one infinite one, and the sum of their signs.
    infinite = count(nonzero) - count([z & f for z, f in zip(nonzero, finite, strict=True)])
    signed = count(signs) - count([s * f for s, f in zip(signs, finite, strict=True)])
    pos, neg = (infinite + signed) > 0.5, (infinite - signed) > 0.5
    out = np.where(pos, np.inf, np.where(neg, -np.inf, total))
    out = np.where(nan_terms, np.nan, out)
    defined = ~(pos & neg & ~nan_terms)
    return out, (None if defined.all() else defined)


def multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a * b`` with a zero annihilating an infinity (NaN operands stay NaN)."""
    out = np.multiply(a, b)
    zero = ((a == 0) & np.isinf(b)) | (np.isinf(a) & (b == 0))
    return np.where(zero, 0.0, out) if np.any(zero) else out


def product(values: np.ndarray, axis) -> np.ndarray:
    """``np.prod`` along ``axis`` with a zero annihilating the infinities (NaN stays NaN)."""
    out = np.prod(values, axis=axis)
    zero = np.any(values == 0, axis=axis) & ~np.any(np.isnan(values), axis=axis)
    return np.where(zero, 0.0, out) if np.any(zero) else out

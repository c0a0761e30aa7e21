"""The language constructs of issue 11: each parsed, printed back, evaluated against numpy written
without the IR, and refused with a located error when misused."""
import numpy as np
import pytest

from einsum_ir import evaluate, loads
from einsum_ir.errors import CascadeError
from einsum_ir.printer import format_cascade


def roundtrip(text: str):
    cascade = loads(text)
    again = loads(format_cascade(cascade))
    assert again == cascade
    return cascade


def located(text: str, *words: str, line: int | None = None) -> CascadeError:
    with pytest.raises(CascadeError) as info:
        loads(text)
    exc = info.value
    assert exc.span is not None, str(exc)
    if line is not None:
        assert exc.span.line == line, str(exc)
    for word in words:
        assert word in str(exc), str(exc)
    return exc


# ------------------------------------------------------------------ '-' and empty points

SUBTRACT = """rank P = 6, E = 3
input B[p], V[p], X[p]
output U[p], W[p]
A[p] = X[p] where p < 3
U[p] = B[p] * V[p] - A[p]
W[p] = A[p] - B[p]
"""


def test_minus_keeps_the_rows_where_the_subtrahend_is_empty():
    rng = np.random.default_rng(0)
    b, v, x = rng.standard_normal((3, 6))
    out = evaluate(roundtrip(SUBTRACT), {"B": b, "V": v, "X": x})
    a = np.where(np.arange(6) < 3, x, 0.0)
    np.testing.assert_allclose(out["U"], b * v - a)  # rows 3..5: B*V alone
    np.testing.assert_allclose(out["W"], np.where(np.arange(6) < 3, x - b, -b))  # -B alone


CAUSAL = """rank P = 5, M = 5, E = 4
input Q[p,e], K[m,e]
output SN[p,m]
QK[p,m] = sum[e] Q[p,e] * K[m,e] where m <= p
GM[p]   = max[m] QK[p,m]
SN[p,m] = exp(QK[p,m] - GM[p])
"""


def test_a_broadcast_subtrahend_does_not_create_points():
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    out = evaluate(roundtrip(CAUSAL), {"Q": q, "K": k})["SN"]
    s = np.where(np.tri(5, dtype=bool), q @ k.T, -np.inf)
    np.testing.assert_allclose(out, np.exp(s - s.max(1, keepdims=True)), atol=1e-14)


MASK_BY_INF = """rank P = 4, M = 5
input S[p,m], Mask[p,m]
output O[p,m], Z[p]
T[p,m] = S[p,m] - inf * Mask[p,m]
O[p,m] = exp(T[p,m])
Z[p] = sum[m] Mask[p,m] * S[p,m] * inf
"""


def test_zero_annihilates_infinity_so_an_inf_mask_is_exact():
    rng = np.random.default_rng(2)
    s = rng.standard_normal((4, 5))
    mask = (rng.random((4, 5)) < 0.5).astype(float)
    out = evaluate(roundtrip(MASK_BY_INF), {"S": s, "Mask": mask})
    np.testing.assert_allclose(out["O"], np.where(mask == 1, 0.0, np.exp(s)))
    # Z: the terms with Mask = 0 are 0; the others are +-inf by the sign of S
    pos = ((mask == 1) & (s > 0)).any(1)
    neg = ((mask == 1) & (s < 0)).any(1)
    expect = np.where(pos & neg, 0.0, np.where(pos, np.inf, np.where(neg, -np.inf, 0.0)))
    np.testing.assert_array_equal(out["Z"], expect)  # inf - inf is empty, written as 0


FUSED_VS_SPLIT = """rank I = 3, J = 4
input A[i,j], B[j]
output F[i], G[i]
AM[i,j] = A[i,j] where j != 1
F[i] = sum[j] AM[i,j] * B[j] * A[i,j]
T[i,j] = AM[i,j] * B[j]
G[i] = sum[j] T[i,j] * A[i,j]
"""


def test_a_multi_factor_sum_with_an_infinity_matches_the_split_form():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 4))
    b = rng.standard_normal(4)
    b[1] = np.inf  # read only where AM is empty: the term does not exist
    a[0, 2] = 0.0
    b[2] = -np.inf  # 0 * -inf = 0 in row 0; -inf elsewhere (sign of A * A > 0)
    out = evaluate(roundtrip(FUSED_VS_SPLIT), {"A": a, "B": b})
    np.testing.assert_array_equal(out["F"], out["G"])
    keep = [0, 3]
    assert out["F"][0] == pytest.approx(float((a[0, keep] ** 2 * b[keep]).sum()))
    assert np.all(out["F"][1:] == -np.inf)


def test_prod_reduction_with_a_zero_and_an_infinity_is_zero():
    text = "rank I = 2, J = 3\ninput X[i,j]\noutput P[i]\nP[i] = prod[j] X[i,j]\n"
    x = np.array([[0.0, np.inf, 2.0], [1.0, np.inf, 2.0]])
    np.testing.assert_array_equal(evaluate(roundtrip(text), {"X": x})["P"], [0.0, np.inf])

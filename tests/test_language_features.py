"""Language features that the attention examples do not all exercise, each against numpy."""
import numpy as np

from einsum_ir import evaluate, loads


def test_relative_bias_alibi_and_dilated_mask():
    text = """
rank H = 2, P = 9, M = 9, E = 3, R = P + M - 1
param D = 2
input Q[h,p,e], K[h,m,e], Bias[h,r], slope[h]
output S[h,p,m]
S[h,p,m] = sum[e] Q[h,p,e] * K[h,m,e] + Bias[h, p - m + M - 1] - slope[h] * (p - m) where (p - m) % D == 0 and not m > p
"""
    rng = np.random.default_rng(0)
    x = {"Q": rng.standard_normal((2, 9, 3)), "K": rng.standard_normal((2, 9, 3)),
         "Bias": rng.standard_normal((2, 17)), "slope": rng.standard_normal(2)}
    out = evaluate(loads(text), x)["S"]
    p, m = np.arange(9)[:, None], np.arange(9)[None, :]
    # The reducer covers the whole body: the bias terms are added once per e (as written).
    ref = np.einsum("hpe,hme->hpm", x["Q"], x["K"]) + 3 * (x["Bias"][:, p - m + 8]
                                                           - x["slope"][:, None, None] * (p - m))
    ref = np.where(((p - m) % 2 == 0) & (m <= p), ref, 0)
    np.testing.assert_allclose(out, ref, atol=1e-12)


def test_min_prod_reducers_and_implicit_sum():
    text = """
rank I = 4, J = 5
input X[i,j]
output LO[i], PR[i], S[i]
LO[i] = min[j] X[i,j]
PR[i] = prod[j] X[i,j]
S[i]  = X[i,j] * X[i,j]
"""
    x = np.random.default_rng(1).standard_normal((4, 5))
    out = evaluate(loads(text), {"X": x})
    np.testing.assert_allclose(out["LO"], x.min(1))
    np.testing.assert_allclose(out["PR"], x.prod(1))
    np.testing.assert_allclose(out["S"], (x * x).sum(1))


def test_empty_reduction_is_empty_and_union_semantics():
    text = """
rank I = 4, J = 4
input X[i,j]
output Y[i], Z[i]
T[i,j] = X[i,j] where j < i
Y[i] = max[j] T[i,j]
Z[i] = Y[i] + 1
"""
    x = np.random.default_rng(2).standard_normal((4, 4))
    out = evaluate(loads(text), {"X": x})
    # Y[0] is empty; the constant 1 covers none of Y's indices, so it adds no point (exprs.coverage)
    assert out["Y"][0] == 0 and out["Z"][0] == 0
    np.testing.assert_allclose(out["Z"][1:], out["Y"][1:] + 1)
    np.testing.assert_allclose(out["Y"][1:], [x[i, :i].max() for i in range(1, 4)])


def test_recurrence_along_a_plain_rank():
    text = """
rank T = 6, D = 3
input X[t,d]
output C[d]
S[0,d]   = 0
S[t+1,d] = 0.5 * S[t,d] + X[t,d]
C[d]     = S[T,d]
"""
    x = np.random.default_rng(3).standard_normal((6, 3))
    s = np.zeros(3)
    for t in range(6):
        s = 0.5 * s + x[t]
    np.testing.assert_allclose(evaluate(loads(text), {"X": x})["C"], s)


def test_cross_attention_1pass_with_ragged_tiles():
    from einsum_ir import load, random_inputs, resolve_sizes

    one = load("examples/attention/mha_1pass.ein")
    sets = {"P": 11, "M": 29, "M0": 8}
    x = random_inputs(one, resolve_sizes(one, sets), seed=9)
    s = np.einsum("bhpe,bhme->bhpm", x["Q"], x["K"]) / 8
    a = np.exp(s - s.max(-1, keepdims=True))
    ref = np.einsum("bhpm,bhmf->bhpf", a / a.sum(-1, keepdims=True), x["V"])
    np.testing.assert_allclose(evaluate(one, x, sets)["AV"], ref, atol=1e-12)

"""Each example against an independent numpy reference written without the IR."""
import numpy as np
import pytest

from einsum_ir import evaluate, load, random_inputs, resolve_sizes

EX = "examples/attention/"


def softmax_attention(q, k, v, mask=None, scale=True):
    s = np.einsum("bhpe,bhme->bhpm", q, k)
    if scale:
        s = s / np.sqrt(q.shape[-1])
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    m = s.max(-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    p = np.exp(s - m)
    d = p.sum(-1, keepdims=True)
    return np.einsum("bhpm,bhmf->bhpf", p / np.where(d == 0, 1, d), v)


def run(name, sets, seed=3):
    cascade = load(EX + name)
    sizes = resolve_sizes(cascade, sets)
    x = random_inputs(cascade, sizes, seed)
    return x, sizes, evaluate(cascade, x, sets)["AV"]


SOFTMAX_FORMS = ["mha_3pass.ein", "mha_2pass.ein", "mha_2pass_deferred.ein", "mha_1pass.ein"]
SIZES = [{"P": 16, "M": 16}, {"P": 33, "M": 17, "E": 5, "F": 7}, {"P": 7, "M": 50, "B": 2, "H": 3}]


@pytest.mark.parametrize("name", SOFTMAX_FORMS)
@pytest.mark.parametrize("sets", SIZES, ids=str)
def test_softmax_forms_match_reference(name, sets):
    sets = dict(sets)
    if "M0" not in sets and name in ("mha_2pass.ein", "mha_1pass.ein"):
        sets["M0"] = 8  # does not divide 17, 33 or 50: tail points are empty
    x, _, out = run(name, sets)
    ref = softmax_attention(x["Q"], x["K"], x["V"])
    np.testing.assert_allclose(out, ref, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("tile", [1, 3, 16, 64])
def test_forms_agree_to_1e9(tile):
    sets = {"P": 40, "M": 37}
    outs = [run(name, {**sets, "M0": tile} if "2pass.ein" in name or "1pass" in name else sets)[2]
            for name in SOFTMAX_FORMS]
    for out in outs[1:]:
        assert np.abs(out - outs[0]).max() < 1e-9


@pytest.mark.parametrize("sets", [{"P": 20, "M": 20}, {"P": 31, "M": 31, "E": 3}])
def test_causal(sets):
    x, s, out = run("causal.ein", sets)
    p, m = np.arange(s["P"])[:, None], np.arange(s["M"])[None, :]
    np.testing.assert_allclose(out, softmax_attention(x["Q"], x["K"], x["V"], m <= p), atol=1e-12)


def test_causal_cross_attention_has_fully_masked_rows_as_zero():
    # P > M: queries p < 0 do not exist, but with the mask m <= p - (P - M) some rows are empty.
    x, s, _ = run("causal.ein", {"P": 12, "M": 12})
    cascade = load(EX + "causal.ein")
    text = cascade.source.replace("where m <= p", "where m + 4 <= p")
    from einsum_ir import loads

    shifted = loads(text)
    out = evaluate(shifted, x, {"P": 12, "M": 12})["AV"]
    assert np.isfinite(out).all()
    assert np.all(out[:, :, :4] == 0)  # queries 0..3 see no key
    p, m = np.arange(12)[:, None], np.arange(12)[None, :]
    np.testing.assert_allclose(out, softmax_attention(x["Q"], x["K"], x["V"], m + 4 <= p), atol=1e-12)


@pytest.mark.parametrize("sets", [{"P": 24, "M": 24, "W": 5}, {"P": 19, "M": 19, "W": 1}, {"P": 10, "M": 10, "W": 40}])
def test_sliding_window(sets):
    x, s, out = run("sliding_window.ein", sets)
    p, m = np.arange(s["P"])[:, None], np.arange(s["M"])[None, :]
    mask = (p - s["W"] < m) & (m <= p)
    np.testing.assert_allclose(out, softmax_attention(x["Q"], x["K"], x["V"], mask), atol=1e-12)


@pytest.mark.parametrize("sets", [{"H": 8, "G": 4, "P": 9, "M": 13}, {"H": 6, "G": 3, "P": 16, "M": 16},
                                  {"H": 4, "G": 1, "P": 5, "M": 5}])
def test_gqa(sets):
    x, s, out = run("gqa.ein", sets)
    k = np.repeat(x["K"], s["G"], axis=1)
    v = np.repeat(x["V"], s["G"], axis=1)
    np.testing.assert_allclose(out, softmax_attention(x["Q"], k, v), atol=1e-12)


def phi(x):
    return np.where(x > 0, x + 1, np.exp(x))


@pytest.mark.parametrize("sets", [{"P": 16, "M": 16}, {"P": 9, "M": 21, "E": 3, "F": 5}])
def test_linear(sets):
    x, s, out = run("linear.ein", sets)
    q, k = phi(x["Q"]), phi(x["K"])
    num = np.einsum("bhpe,bhme,bhmf->bhpf", q, k, x["V"])
    den = np.einsum("bhpe,bhme->bhp", q, k)[..., None]
    np.testing.assert_allclose(out, num / den, rtol=1e-10)


@pytest.mark.parametrize("sets", [{"P": 32, "C": 8}, {"P": 30, "C": 7, "E": 3}, {"P": 16, "C": 16}, {"P": 5, "C": 1}])
def test_linear_causal_chunked(sets):
    x, s, out = run("linear_causal_chunked.ein", sets)
    q, k = phi(x["Q"]), phi(x["K"])
    scores = np.einsum("bhpe,bhme->bhpm", q, k)
    n = s["P"]
    scores = np.where(np.arange(n)[None, :] <= np.arange(n)[:, None], scores, 0)
    ref = np.einsum("bhpm,bhmf->bhpf", scores, x["V"]) / scores.sum(-1, keepdims=True)
    np.testing.assert_allclose(out, ref, rtol=1e-9)


def test_float32_option():
    cascade = load(EX + "mha_1pass.ein")
    out32 = evaluate(cascade, sizes={"P": 32, "M": 32, "M0": 8}, dtype=np.float32)["AV"]
    out64 = evaluate(cascade, sizes={"P": 32, "M": 32, "M0": 8})["AV"]
    assert out32.dtype == np.float32
    assert np.abs(out32 - out64).max() < 1e-5


def test_1pass_invariants_hold():
    # The 1-pass invariant (FuseMax, Alg. AT-1): RM[M1] is the row max of QK and RD[M1] the sum of exp(QK - RM[M1]).
    cascade = load(EX + "mha_1pass.ein")
    out = evaluate(cascade, sizes={"P": 8, "M": 4, "E": 2, "F": 2, "M0": 2}, seed=4, return_all=True)
    qk = out["QK"].reshape(*out["QK"].shape[:3], -1)
    np.testing.assert_allclose(out["RM"][..., -1], qk.max(-1))
    np.testing.assert_allclose(out["RD"][..., -1], np.exp(qk - qk.max(-1, keepdims=True)).sum(-1))


def test_large_single_head_is_fast_enough():
    # issue 2: a single head with P = M = 1024, E = F = 64 evaluates in seconds (vectorised).
    import time

    cascade = load(EX + "mha_1pass.ein")
    start = time.perf_counter()
    out = evaluate(cascade, sizes={"H": 1, "P": 1024, "M": 1024, "M0": 64})["AV"]
    assert out.shape == (1, 1, 1024, 64)
    assert time.perf_counter() - start < 30  # generous: a python loop over P*M would take minutes

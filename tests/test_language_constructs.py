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


# ------------------------------------------------------------------ output empty values

LSE = """rank P = 4, M = 4
input S[p,m]
output LSE[p] empty -inf, O[p,m] empty 0.5
T[p,m]  = S[p,m] where m < p
GM[p]   = max[m] T[p,m]
SD[p]   = sum[m] exp(T[p,m] - GM[p])
LSE[p]  = GM[p] + log(SD[p])
O[p,m]  = T[p,m]
"""


def test_an_output_writes_its_declared_empty_value():
    s = np.random.default_rng(4).standard_normal((4, 4))
    cascade = roundtrip(LSE)
    assert [d.empty for d in cascade.outputs] == [-np.inf, 0.5]
    out = evaluate(cascade, {"S": s})
    lse = [np.log(np.exp(s[p, :p]).sum()) if p else -np.inf for p in range(4)]
    np.testing.assert_allclose(out["LSE"], lse)
    mask = np.arange(4)[None, :] < np.arange(4)[:, None]
    np.testing.assert_array_equal(out["O"], np.where(mask, s, 0.5))


def test_empty_value_misuse_is_located():
    located("rank P = 2\ninput A[p] empty 1\noutput O[p]\nO[p] = A[p]\n", "input", line=2)
    located("rank P = 2\ninput A[p]\noutput O[p] empty p\nO[p] = A[p]\n", "a number", line=3)


# ------------------------------------------------------------------ real parameters

SOFTCAP = """rank P = 3, M = 4
param CAP = 30.0, HALF = CAP / 2
input S[p,m]
output O[p,m]
O[p,m] = CAP * tanh(S[p,m] / HALF)
"""


def test_real_parameters_and_their_overrides():
    s = np.random.default_rng(5).standard_normal((3, 4)) * 50
    cascade = roundtrip(SOFTCAP)
    np.testing.assert_allclose(evaluate(cascade, {"S": s})["O"], 30 * np.tanh(s / 15))
    out = evaluate(cascade, {"S": s}, {"CAP": 0.5})["O"]
    np.testing.assert_allclose(out, 0.5 * np.tanh(s / 0.25))


@pytest.mark.parametrize("text,line", [
    ("rank P = 4, M = CAP\nparam CAP = 3.0\ninput S[p]\noutput O[p]\nO[p] = S[p]\n", 1),
    ("rank P = 4\nparam CAP = 3.0\ninput S[p]\noutput O[p]\nO[p] = S[p] where p < CAP\n", 5),
    ("rank P = 4\nparam CAP = 3.0\ninput S[p]\noutput O[p]\nO[p] = S[p + CAP]\n", 5),
    ("rank P = 4\nparam CAP = 3.0, W = CAP\ninput S[p]\noutput O[p]\nO[p] = S[p] where p < W\n", 5),
])
def test_a_real_parameter_as_a_size_index_or_predicate_is_located(text, line):
    from einsum_ir import verify

    with pytest.raises(CascadeError) as info:
        verify(loads(text))
    assert info.value.span.line == line and "real parameter" in str(info.value)


def test_set_takes_reals_for_real_parameters_only(tmp_path, capsys):
    from cascade_cli.main import main
    from einsum_ir import resolve_sizes

    path = tmp_path / "softcap.ein"
    path.write_text(SOFTCAP)
    assert main(["eval", str(path), "--set", "CAP=0.25", "--out", str(tmp_path / "o.npz")]) == 0
    assert main(["eval", str(path), "--set", "P=2.5", "--out", str(tmp_path / "o.npz")]) == 1
    assert "P is an integer size" in capsys.readouterr().err
    cascade = loads(SOFTCAP)
    assert resolve_sizes(cascade, {"CAP": 2}) == {"P": 3, "M": 4, "CAP": 2.0, "HALF": 1.0}


# ------------------------------------------------------------------ let and continuation lines

WINDOW_2D = """rank P = 12, M = 12, WI = 4
param R = 1
let y = p / WI
let x = p % WI
let my = m / WI
let mx = m % WI
input A[p,m]
output O[p]
O[p] = sum[m] A[p,m] * (y - my)
    where abs(y - my) <= R
    and abs(x - mx) <= R
"""


def test_let_names_an_index_expression_for_predicates_and_values():
    cascade = roundtrip(WINDOW_2D)
    a = np.random.default_rng(6).standard_normal((12, 12))
    p, m = np.arange(12)[:, None], np.arange(12)[None, :]
    mask = (np.abs(p // 4 - m // 4) <= 1) & (np.abs(p % 4 - m % 4) <= 1)
    expect = (np.where(mask, a * (p // 4 - m // 4), 0)).sum(1)
    np.testing.assert_allclose(evaluate(cascade, {"A": a})["O"], expect)
    # the IR holds the expansion: the same cascade written out in full is equal
    expanded = WINDOW_2D.replace("* (y - my)", "* (floor(p / WI) - floor(m / WI))").replace(
        "abs(y - my)", "abs(p / WI - m / WI)").replace("abs(x - mx)", "abs(p % WI - m % WI)")
    assert loads("\n".join(l for l in expanded.splitlines() if not l.startswith("let"))) == cascade


def test_let_in_an_index_position():
    text = "rank P = 6, Q = 3\nlet q = p / 2\ninput A[q]\noutput O[p]\nO[p] = A[q]\n"
    with pytest.raises(CascadeError):  # q is the index of rank Q: a let cannot take its name
        loads(text)
    text = "rank P = 6, Q = 3\nlet h = p / 2\ninput A[q]\noutput O[p]\nO[p] = A[h]\n"
    a = np.arange(3.0)
    np.testing.assert_array_equal(evaluate(roundtrip(text), {"A": a})["O"], a[np.arange(6) // 2])


@pytest.mark.parametrize("text,words,line", [
    ("rank P = 2\nlet Y = p\ninput A[p]\noutput O[p]\nO[p] = A[p]\n", ["lower case"], 2),
    ("rank P = 2\nlet y = p\nlet y = p\ninput A[p]\noutput O[p]\nO[p] = A[p]\n", ["twice"], 3),
    ("rank P = 2\nlet y = A[p]\ninput A[p]\noutput O[p]\nO[p] = A[p]\n", ["integer"], 2),
    ("rank P = 2\nlet y = p / 2.5\ninput A[p]\noutput O[p]\nO[p] = A[p]\n", ["integer"], 2),
    ("rank P = 2\nlet y = p\ninput A[p]\noutput O[p]\nO[y] = A[p]\n", ["axis of O"], 5),
    ("rank P = 2\nlet y = p\ninput A[p]\noutput O[]\nO[] = sum[y] A[p]\n", ["sum[y]"], 5),
])
def test_let_misuse_is_located(text, words, line):
    located(text, *words, line=line)


def test_where_and_or_continue_the_statement_above():
    one = loads("rank P = 4, M = 4\ninput A[p,m]\noutput O[p,m]\n"
                "O[p,m] = A[p,m] where m <= p and m > 0 or p == 3\n")
    split = loads("rank P = 4, M = 4\ninput A[p,m]\noutput O[p,m]\n"
                  "O[p,m] = A[p,m]\n   where m <= p   # a comment\n\tand m > 0\n  or p == 3\n")
    assert one == split
    # a blank line ends the statement: 'where' cannot start one
    located("rank P = 4\ninput A[p]\noutput O[p]\nO[p] = A[p]\n\nwhere p > 0\n", line=6)


# ------------------------------------------------------------------ a second index over a rank

ALIAS_CAUSAL = """rank B = 1, H = 2, P = 7, E = 3, F = 2
rank M = P
input  Q[b,h,p,e], K[b,h,m,e], V[b,h,m,f]
output AV[b,h,p,f]
QK[b,h,p,m] = sum[e] Q[b,h,p,e] * K[b,h,m,e] where m <= p
GM[b,h,p]   = max[m] QK[b,h,p,m]
SN[b,h,p,m] = exp(QK[b,h,p,m] - GM[b,h,p])
SD[b,h,p]   = sum[m] SN[b,h,p,m]
AV[b,h,p,f] = sum[m] SN[b,h,p,m] / SD[b,h,p] * V[b,h,m,f]
"""
INDEX_CAUSAL = ALIAS_CAUSAL.replace("rank M = P", "index m : P")


@pytest.mark.parametrize("text", [ALIAS_CAUSAL, INDEX_CAUSAL], ids=["alias", "index"])
def test_causal_with_a_second_index_over_p_has_three_passes(text):
    from einsum_ir.analysis.passcount import count_passes

    cascade = roundtrip(text)
    report = count_passes(cascade)
    assert report.rank == "M" and report.passes == 3
    assert report.per_einsum["AV"] == 3 and report.per_einsum["QK"] == 1


def test_index_declaration_evaluates_over_the_rank_it_names():
    rng = np.random.default_rng(7)
    q, k, v = rng.standard_normal((7, 3)), rng.standard_normal((7, 3)), rng.standard_normal((7, 2))
    cascade = roundtrip(INDEX_CAUSAL)
    assert "index m : P" in format_cascade(cascade)
    out = evaluate(cascade, {"Q": q[None, None].repeat(2, 1), "K": k[None, None].repeat(2, 1),
                             "V": v[None, None].repeat(2, 1)}, {"P": 7})["AV"][0, 0]
    s = np.where(np.tri(7, dtype=bool), q @ k.T, -np.inf)
    a = np.exp(s - s.max(1, keepdims=True))
    np.testing.assert_allclose(out, (a / a.sum(1, keepdims=True)) @ v, atol=1e-12)


def test_index_declaration_misuse():
    from einsum_ir import resolve_sizes

    with pytest.raises(CascadeError, match="set P instead"):
        resolve_sizes(loads(INDEX_CAUSAL), {"M": 3})
    located(INDEX_CAUSAL.replace("index m : P", "index M : P"), "lower case", line=2)
    bad = INDEX_CAUSAL.replace("index m : P", "param W = 3\nindex m : W")
    with pytest.raises(CascadeError, match="W is not a rank") as info:
        from einsum_ir import verify

        verify(loads(bad))
    assert info.value.span.line == 3


# ------------------------------------------------------------------ reductions inside expressions

INNER = """rank P = 4, M = 5
index m2 : M
input S[p,m]
output A[p,m]
A[p,m] = exp(S[p,m] - (max[m2] S[p,m2] where m2 <= p)) / (sum[m2] exp(S[p,m2] - (max[m] S[p,m])))
"""


def test_a_reduction_in_an_expression_is_lifted_into_an_intermediate():
    cascade = roundtrip(INNER)
    assert [e.name for e in cascade.einsums] == ["A_max1", "A_max2", "A_sum1", "A"]
    s = np.random.default_rng(8).standard_normal((4, 5))
    causal_max = np.array([s[p, :p + 1].max() for p in range(4)])
    denom = np.exp(s - s.max(1, keepdims=True)).sum(1)
    expect = np.exp(s - causal_max[:, None]) / denom[:, None]
    np.testing.assert_allclose(evaluate(cascade, {"S": s})["A"], expect)
    # the intermediates are ordinary tensors: the printed cascade names them
    assert "A_max1[p] = max[m2] S[p, m2] where m2 <= p" in format_cascade(cascade)


def test_lifted_names_do_not_collide():
    text = ("rank P = 3, M = 2\ninput S[p,m], A_max1[p]\noutput A[p]\n"
            "A[p] = A_max1[p] + (max[m] S[p,m])\n")
    cascade = roundtrip(text)
    assert [e.name for e in cascade.einsums] == ["A_max2", "A"]
    s, a = np.random.default_rng(9).standard_normal((3, 2)), np.arange(3.0)
    np.testing.assert_allclose(evaluate(cascade, {"S": s, "A_max1": a})["A"], a + s.max(1))


@pytest.mark.parametrize("text,words", [
    ("rank P = 4\ninput S[p]\noutput A[p]\nA[p] = S[p] where p < (max[p] S[p])\n", ["predicate"]),
    ("rank P = 4\ninput S[p]\noutput A[p]\nA[p] = S[(sum[p] p)]\n", ["an index"]),
    ("rank P = (sum[p] p)\ninput S[p]\noutput A[p]\nA[p] = S[p]\n", ["a size"]),
    ("rank P = 4\nlet y = (sum[p] p)\ninput S[p]\noutput A[p]\nA[p] = S[p]\n", ["let y"]),
    ("rank P = 4\ninput S[p]\noutput A[p]\nA[p] = S[p] * max[p] S[p]\n", ["in parentheses"]),
])
def test_reductions_where_they_cannot_be_are_located(text, words):
    located(text, *words)


# ------------------------------------------------------------------ data-dependent masks, gathers

TOPK = """rank P = 4, M = 6, J = 2, E = 3
param K = 3
index m2 : M
input S[p,m], KV[m,e], Idx[p,j]
output G[p,j,e], T[p,m], POS[p,m]
G[p,j,e] = KV[Idx[p,j], e]
C[p,m]   = sum[m2] (S[p,m2] > S[p,m])     # how many scores beat this one
T[p,m]   = S[p,m] where C[p,m] < K and m <= p + 2
POS[p,m] = S[p,m] where S[p,m] > 0.25 or not (m < 3)
"""


def _topk_inputs(seed=10):
    rng = np.random.default_rng(seed)
    return {"S": rng.standard_normal((4, 6)), "KV": rng.standard_normal((6, 3)),
            "Idx": rng.integers(0, 6, (4, 2)).astype(float)}


def test_top_k_and_value_predicates():
    x = _topk_inputs()
    out = evaluate(roundtrip(TOPK), x)
    s = x["S"]
    beaten = (s[:, None, :] > s[:, :, None]).sum(2)  # [p, m]: scores above S[p,m]
    m, p = np.arange(6)[None, :], np.arange(4)[:, None]
    np.testing.assert_array_equal(out["T"], np.where((beaten < 3) & (m <= p + 2), s, 0))
    np.testing.assert_array_equal(out["POS"], np.where((s > 0.25) | (m >= 3), s, 0))


def test_gather_through_an_index_tensor():
    x = _topk_inputs()
    out = evaluate(roundtrip(TOPK), x)["G"]
    np.testing.assert_array_equal(out, x["KV"][x["Idx"].astype(int)])


@pytest.mark.parametrize("value,words", [(6.0, "outside axis 1"), (-1.0, "outside axis 1"),
                                         (1.5, "not an integer"), (np.nan, "not an integer")])
def test_gather_bounds_and_integers_are_checked(value, words):
    x = _topk_inputs()
    x["Idx"][1, 1] = value
    with pytest.raises(CascadeError, match=words) as info:
        evaluate(loads(TOPK, "topk.ein"), x)
    assert (info.value.span.line, info.value.span.column) == (6, 15)


def test_triton_lowers_data_dependent_constructs():
    """Gathers, top-k counts and value predicates lower (backends/triton/data.py); under
    TRITON_INTERPRET=1 they match the interpreter (tests/test_triton_data_masks.py has more)."""
    import os

    from backends.triton import compile_cascade
    from einsum_ir.analysis.work import count_work

    cascade = loads(TOPK, "topk.ein")
    fn = compile_cascade(cascade)
    assert "in_gather" in fn.source() and "data_mask" in fn.source()
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        torch = pytest.importorskip("torch")
        x = _topk_inputs()
        got = fn(**{k: torch.tensor(v, dtype=torch.float32) for k, v in x.items()})
        for name, want in evaluate(cascade, x).items():
            np.testing.assert_allclose(got[name].double().numpy(), want, atol=1e-5, err_msg=name)
    # the analysis counts them (tests/test_data_masks_analysis.py): exact with the data
    work = count_work(cascade, inputs=_topk_inputs())
    assert work.points["G"] == 4 * 2 * 3 and set(work.kinds.values()) == {"exact"}
    # real parameters and declared empty values: Triton lowers them (tests/test_triton_alias_ranks)


def test_triton_refuses_a_product_with_an_infinite_constant():
    from backends.triton import compile_cascade

    with pytest.raises(CascadeError, match="0 \\* inf = 0") as info:
        compile_cascade(loads(MASK_BY_INF, "inf.ein"))
    assert (info.value.span.line, info.value.span.column) == (4, 19)


@pytest.mark.parametrize("text,where", [
    ("rank P = 4\nparam CAP = 3.0\ninput S[p]\noutput O[p]\nO[p] = S[p] where p < CAP\n", ":5:23:"),
    ("rank P = 4\nlet y = S[p]\ninput S[p]\noutput O[p]\nO[p] = S[p]\n", ":2:9:"),
    ("rank P = 4\nindex Q : P\ninput S[p]\noutput O[p]\nO[p] = S[p]\n", ":2:7:"),
    ("rank P = 4\ninput S[p] empty 1\noutput O[p]\nO[p] = S[p]\n", ":2:12:"),
    ("rank P = 4\ninput S[p]\noutput O[p]\nO[p] = S[(sum[p] p)]\n", ":4:10:"),
])
def test_cli_reports_misuse_located_without_a_traceback(tmp_path, capsys, text, where):
    from cascade_cli.main import main

    path = tmp_path / "bad.ein"
    path.write_text(text)
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"bad.ein{where} error:" in err and "Traceback" not in err

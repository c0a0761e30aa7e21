"""The online-softmax rewrite and the pass framework: before and after agree on random inputs."""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from einsum_ir import evaluate, format_cascade, load, loads, parse, random_inputs, resolve_sizes
from einsum_ir.analysis import count_passes
from einsum_ir.errors import CascadeError
from einsum_ir.ir import Name, Role
from einsum_ir.passes import (REGISTRY, DeadEinsums, OnlineSoftmax, get_pass, online_softmax,
                              online_softmax_reason, rewrite_online_softmax, run_named_pass,
                              run_pipeline)
from cascade_cli.main import main

EX = "examples/attention/"


def assert_same_meaning(before, after, sizes, seed=0):
    env = resolve_sizes(before, sizes)
    inputs = random_inputs(before, env, seed)
    a = evaluate(before, inputs, sizes)
    after_sizes = {k: v for k, v in sizes.items() if after.size_decl(k) is not None}
    b = evaluate(after, inputs, after_sizes)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-9, atol=1e-9, err_msg=name)
    return a


def rewrite(cascade, **kw):
    out = online_softmax(cascade, **kw)
    assert out is not cascade, online_softmax_reason(cascade)
    assert parse(format_cascade(out)) == out  # prints as text that parses back
    return out


def test_3pass_becomes_exactly_the_fusemax_cascade():
    assert rewrite(load(EX + "mha_3pass.ein")) == load(EX + "mha_1pass.ein")
    # the 2-pass online-normaliser form gets the same Einsums (in its own order)
    two, three = rewrite(load(EX + "mha_2pass.ein")), rewrite(load(EX + "mha_3pass.ein"))
    assert sorted(map(repr, two.einsums)) == sorted(map(repr, three.einsums))


# every example with a softmax over an unsplit rank, plus the 2-pass online-normaliser form
SOFTMAX_EXAMPLES = sorted({p.stem for p in Path(EX).glob("*.ein")
                           if "max[m]" in p.read_text() and "exp(" in p.read_text()}
                          | {"mha_3pass", "mha_2pass_deferred", "mha_2pass", "causal",
                             "sliding_window", "gqa"})


@pytest.mark.parametrize("name", SOFTMAX_EXAMPLES)
@pytest.mark.parametrize("tile", [1, 5, 8, 40])
def test_every_softmax_example_keeps_its_meaning(name, tile):
    cascade = load(EX + name + ".ein")
    out = rewrite(cascade, tile_size=tile)
    assert count_passes(out).passes == 1
    sizes = {"P": 12, "M": 24, "E": 4, "F": 3}
    if name == "sliding_window":
        sizes["W"] = 5
    cascade_sizes = {d.name for d in cascade.sizes}
    sizes = {k: v for k, v in sizes.items() if k in cascade_sizes or k in ("P", "M")}
    if name == "gqa":
        sizes.update(H=4, G=2)
    if name == "mha_2pass":
        sizes["M0"] = tile  # the existing split keeps its own tile rank
    # 5 does not divide M = 24: the last tile has empty points
    assert_same_meaning(cascade, out, sizes)
    assert_same_meaning(cascade, out, {**sizes, "M": 23, "P": 17})  # cross-attention, ragged


def test_result_structure_is_regular():
    out = rewrite(load(EX + "causal.ein"), tile_size=16)
    names = [e.name for e in out.einsums]
    assert names == ["QK", "LM", "RM", "RM", "SLN", "PRM", "SPD", "SLD", "RD", "RD", "SPNV",
                     "SLNV", "RNV", "RNV", "AV"]
    text = format_cascade(out)
    assert "split M = M1 * M0" in text and "rank M0 = 16" in text
    assert "K[b, h, m1 * M0 + m0, e] / sqrt(E) where m1 * M0 + m0 <= p" in text
    assert "AV[b, h, p, f] = RNV[b, h, p, M1, f] / RD[b, h, p, M1]" in text
    # The rows, the extra index f and the retiled score QK are those of the written cascade.
    qk = next(e for e in out.einsums if e.name == "QK")
    assert qk.output.indices == tuple(Name(v) for v in ("b", "h", "p", "m1", "m0"))
    rnv = next(e for e in out.einsums if e.name == "RNV" and e.id.role is Role.UPDATE)
    assert [i.name for i in rnv.output.indices if isinstance(i, Name)] == ["b", "h", "p", "f"]
    # The 2-pass form keeps its running max and denominator and adds only the numerator.
    two = load(EX + "mha_2pass.ein")
    done = rewrite_online_softmax(two)
    assert done.rewritten == ("AV",)
    kept = {e.id for e in two.einsums} & {e.id for e in done.cascade.einsums}
    assert {eid.tensor for eid in kept} >= {"LM", "RM", "SLN", "PRM", "SPD", "SLD", "RD"}
    assert {e.name for e in done.cascade.einsums} - {e.name for e in two.einsums} == {
        "SPNV", "SLNV", "RNV"}


BIASED = """
rank B = 1, H = 2, P = 10, M = 14, E = 4, F = 3
rank R = P + M
input  Q[b,h,p,e], K[b,h,m,e], V[b,h,m,f], Bias[h,r], slope[h]
output AV[b,h,p,f]
QK[b,h,p,m] = sum[e] Q[b,h,p,e] * K[b,h,m,e] / sqrt(E)
S[b,h,p,m]  = QK[b,h,p,m] + Bias[h, p - m + M] - slope[h] * (p - m)
GM[b,h,p]   = max[m] S[b,h,p,m]
SN[b,h,p,m] = exp(S[b,h,p,m] - GM[b,h,p])
SD[b,h,p]   = sum[m] SN[b,h,p,m]
A[b,h,p,m]  = SN[b,h,p,m] / SD[b,h,p]
AV[b,h,p,f] = sum[m] A[b,h,p,m] * V[b,h,m,f]
"""


@pytest.mark.parametrize("tile", [3, 14, 32])
def test_biased_alibi_scores_are_retiled(tile):
    cascade = loads(BIASED)
    out = rewrite(cascade, tile_size=tile)
    text = format_cascade(out)
    assert "S[b, h, p, m1, m0] = QK[b, h, p, m1, m0] + Bias[h, p - (m1 * M0 + m0) + M]" in text
    assert_same_meaning(cascade, out, {})
    assert_same_meaning(cascade, out, {"P": 7, "M": 9})


RENAMED = """
# other names everywhere, deferred division, a mask on every Einsum of the softmax
rank I = 9, J = 13, D = 3, C = 2
input  Qx[i,d], Kx[j,d], Vx[j,c]
output O[i,c]
Sc[i,j]  = sum[d] Qx[i,d] * Kx[j,d]
X[i]     = max[j] Sc[i,j] where j <= i + 2
N[i,j]   = exp(Sc[i,j] - X[i]) where j <= i + 2
Z[i]     = sum[j] N[i,j] where j <= i + 2
NV[i,c]  = sum[j] N[i,j] * Vx[j,c] where j <= i + 2
O[i,c]   = NV[i,c] / Z[i]
"""


@pytest.mark.parametrize("tile", [1, 4, 13])
def test_any_names_and_predicates_on_the_softmax_itself(tile):
    cascade = loads(RENAMED)
    out = rewrite(cascade, tile_size=tile)
    text = format_cascade(out)
    assert "split J = J1 * J0" in text and "where j1 * J0 + j0 <= i + 2" in text
    assert_same_meaning(cascade, out, {})
    assert_same_meaning(cascade, out, {"I": 4, "J": 11})


def test_fully_masked_rows_give_zeros_in_both_forms():
    cascade = loads(RENAMED.replace("j <= i + 2", "j < i - 1"))
    out = rewrite(cascade, tile_size=3)
    result = assert_same_meaning(cascade, out, {})
    assert np.all(result["O"][:2] == 0)


SCORE_WITHOUT_KEYS = """
# the score does not read a key-indexed tensor: the last tile needs an explicit guard
rank P = 5, M = 11, F = 2
input  Qs[p], V[m,f]
output Y[p,f]
S[p,m]  = Qs[p] - 0.25 * (p - m) * (p - m)
G[p]    = max[m] S[p,m]
N[p,m]  = exp(S[p,m] - G[p])
D[p]    = sum[m] N[p,m]
A[p,m]  = N[p,m] / D[p]
Y[p,f]  = sum[m] A[p,m] * V[m,f]
"""


def test_tail_guard_when_nothing_empties_the_last_tile():
    cascade = loads(SCORE_WITHOUT_KEYS)
    out = rewrite(cascade, tile_size=4)
    assert "where m1 * M0 + m0 < M" in format_cascade(out)
    assert_same_meaning(cascade, out, {})


SUBTRACTED_BIAS = """
# ALiBi's score: QK - bias is a union, so the bias alone exists in the last tile's tail where
# QK's read is empty; the rewrite must guard it (the 741cfa0 fp16 failure's cause)
rank P = 7, M = 9, E = 2, F = 2
input  Q[p,e], K[m,e], V[m,f]
output Y[p,f]
QK[p,m] = sum[e] Q[p,e] * K[m,e]
S[p,m]  = QK[p,m] - 0.5 * (p - m) where m <= p
G[p]    = max[m] S[p,m]
N[p,m]  = exp(S[p,m] - G[p])
D[p]    = sum[m] N[p,m]
A[p,m]  = N[p,m] / D[p]
Y[p,f]  = sum[m] A[p,m] * V[m,f]
"""


def test_tail_guard_for_a_score_that_subtracts_a_bias_from_a_read():
    cascade = loads(SUBTRACTED_BIAS)
    out = rewrite(cascade, tile_size=4)
    assert "m1 * M0 + m0 < M" in format_cascade(out)
    assert_same_meaning(cascade, out, {})


def test_score_with_other_readers_is_read_through_the_split():
    cascade = loads(Path(EX + "mha_3pass.ein").read_text().replace("output AV[b,h,p,f]",
                                                              "output AV[b,h,p,f], QK[b,h,p,m]"))
    out = rewrite(cascade, tile_size=7)
    text = format_cascade(out)
    assert "QK[b, h, p, m] = " in text and "max[m0] QK[b, h, p, m1 * M0 + m0]" in text
    assert_same_meaning(cascade, out, {"P": 6, "M": 20, "E": 3, "F": 2})


TWO = """
rank P = 6, M = 11, E = 3, F = 2
input  Q[p,e], K[m,e], V[m,f]
output Y[p,f], Z[p,e]
S1[p,m] = sum[e] Q[p,e] * K[m,e]
G1[p]   = max[m] S1[p,m]
N1[p,m] = exp(S1[p,m] - G1[p])
D1[p]   = sum[m] N1[p,m]
A1[p,m] = N1[p,m] / D1[p]
Y[p,f]  = sum[m] A1[p,m] * V[m,f]
S2[p,m] = sum[e] Q[p,e] * K[m,e] where m <= p
G2[p]   = max[m] S2[p,m]
N2[p,m] = exp(S2[p,m] - G2[p])
D2[p]   = sum[m] N2[p,m]
A2[p,m] = N2[p,m] / D2[p]
Z[p,e]  = sum[m] A2[p,m] * K[m,e]
"""


def test_two_softmaxes_are_both_rewritten():
    cascade = loads(TWO)
    result = rewrite_online_softmax(cascade, tile_size=5)
    assert result.changed and set(result.rewritten) == {"Y", "Z"}
    assert "LM_2" in {e.name for e in result.cascade.einsums}
    assert count_passes(result.cascade).passes == 1
    assert_same_meaning(cascade, result.cascade, {})


@pytest.mark.parametrize("edit, reason", [
    (lambda t: t.replace("output AV[b,h,p,f]", "output AV[b,h,p,f], A[b,h,p,m]"), "output"),
    (lambda t: t.replace("output AV[b,h,p,f]", "output AV[b,h,p,f], L[b,h,p]")
     + "L[b,h,p] = GM[b,h,p] + log(SD[b,h,p])\n", "read by"),
    (lambda t: t.replace("exp(QK[b,h,p,m] - GM[b,h,p])", "exp(2 * QK[b,h,p,m] - GM[b,h,p])"),
     "exp(s - GM"),
    (lambda t: t.replace("sum[m] SN[b,h,p,m]", "sum[m] SN[b,h,p,m] * 2"), "denominator"),
    (lambda t: t.replace("max[m] QK[b,h,p,m]", "max[m] QK[b,h,p,m] where m < p"),
     "masked at least like GM"),
    (lambda t: t.replace("sum[m] SN[b,h,p,m]", "sum[m] SN[b,h,p,m] where m < p"), "subset"),
    # the numerator has no point in rows p < 1 where the denominator has some
    (lambda t: t.replace("A[b,h,p,m] * V[b,h,m,f]", "A[b,h,p,m] * V[b,h,m,f] where m < p"),
     "numerator may have no point"),
    (lambda t: t.replace("A[b,h,p,m] * V[b,h,m,f]", "A[b,h,p,m] * VM[b,h,m,f]")
     + "VM[b,h,m,f] = V[b,h,m,f] where m >= 2\n", "VM exists only where m >= 2"),
    (lambda t: t.replace("A[b,h,p,m] * V[b,h,m,f]", "A[b,h,p,m] * V[b,h,m + 1,f]"),
     "outside its extent"),
    (lambda t: t.replace("A[b,h,p,m] * V[b,h,m,f]", "A[b,h,p,m] * VM[b,h,m,f]")
     + "VM[b,h,m,f] = max[e] V[b,h,m,f] * K[b,h,m,e] where e + m < 2\n", "masked range"),
])
def test_not_applicable_leaves_the_cascade_alone_and_says_why(edit, reason):
    cascade = loads(edit(Path(EX + "mha_3pass.ein").read_text()))
    result = rewrite_online_softmax(cascade)
    assert not result.changed and result.cascade is cascade
    assert reason in result.reason
    assert online_softmax(cascade) is cascade
    with pytest.raises(CascadeError, match="does not apply"):
        run_named_pass(cascade, "online-softmax")


CAUSAL_VALUES = """
rank P = 5, M = 7, F = 2
input  Q[p], K[m], V[m,f]
output Y[p,f]
S[p,m]  = Q[p] * K[m] where m <= p
G[p]    = max[m] S[p,m]
N[p,m]  = exp(S[p,m] - G[p])
D[p]    = sum[m] N[p,m]
A[p,m]  = N[p,m] / D[p]
VM[p,m,f] = V[m,f] * 2 where m <= p
Y[p,f]  = sum[m] A[p,m] * VM[p,m,f] where m <= p
"""


def test_a_numerator_masked_like_the_score_is_rewritten():
    # VM and the contraction are masked like the score: the numerator has SN's points
    cascade = loads(CAUSAL_VALUES)
    out = rewrite(cascade, tile_size=3)
    assert_same_meaning(cascade, out, {})
    assert_same_meaning(cascade, out, {"P": 9, "M": 4})


def test_reasons_for_non_softmax_cascades():
    assert "no softmax" in online_softmax_reason(load(EX + "linear.ein"))
    assert "split" in online_softmax_reason(load(EX + "mha_1pass.ein"))
    assert "no softmax over P" in online_softmax_reason(load(EX + "mha_3pass.ein"), "P")
    assert online_softmax_reason(load(EX + "mha_3pass.ein")) is None


def test_framework_registry_pipeline_and_options():
    cascade = load(EX + "mha_3pass.ein")
    assert {"online-softmax", "dead-einsums"} <= set(REGISTRY)
    assert get_pass("online-softmax", tile_size=16) == OnlineSoftmax(tile_size=16)
    out = run_pipeline(cascade, [DeadEinsums(), OnlineSoftmax(tile_size=16), DeadEinsums()],
                       verify=True)
    assert out.size_decl("M0").default.value == 16
    assert run_named_pass(cascade, "online-softmax", {"P": 256}) == load(EX + "mha_1pass.ein")
    with pytest.raises(CascadeError, match="unknown pass"):
        get_pass("nope")
    dead = loads(Path(EX + "mha_3pass.ein").read_text() + "X[b,h,p] = SD[b,h,p] * 2\n")
    assert [e.name for e in DeadEinsums()(dead).einsums] == [e.name for e in cascade.einsums]


def test_cli_rewrite_writes_text_that_parses_back(tmp_path, capsys):
    out = tmp_path / "one.ein"
    assert main(["rewrite", EX + "causal.ein", "--pass", "online-softmax", "--set", "M0=32",
                 "-o", str(out), "--check"]) == 0
    assert "max |before - after|" in capsys.readouterr().out
    cascade = load(out)
    assert cascade.size_decl("M0").default.value == 32
    assert main(["passes", str(out), "--json"]) == 0
    assert '"passes": 1' in capsys.readouterr().out
    assert main(["rewrite", EX + "mha_3pass.ein", "--pass", "online-softmax"]) == 0
    assert parse(capsys.readouterr().out) == load(EX + "mha_1pass.ein")
    assert main(["show", EX + "gqa.ein", "--after", "online-softmax"]) == 0
    assert "RNV" in capsys.readouterr().out


def test_cli_rewrite_errors(capsys):
    assert main(["rewrite", EX + "linear.ein", "--pass", "online-softmax"]) == 1
    err = capsys.readouterr().err
    assert "linear.ein: error: pass online-softmax does not apply" in err and "hint:" in err
    assert main(["rewrite", EX + "mha_3pass.ein", "--pass", "online-softmax", "--set", "T0=4"]) == 1
    assert "its new tile rank is M0" in capsys.readouterr().err


# ---------------------------------------------------------------------- hypothesis


@st.composite
def attention_cascades(draw):
    """Small random softmax-attention cascades: names, shapes, masks, biases, forms."""
    row, key = draw(st.sampled_from([("P", "M"), ("I", "J"), ("T", "S")]))
    dim, val = draw(st.sampled_from([("E", "F"), ("D", "C")]))
    r, k, d, v = row.lower(), key.lower(), dim.lower(), val.lower()
    mask = draw(st.sampled_from([None, f"{k} <= {r}", f"{r} - W < {k} and {k} <= {r}",
                                 f"({r} - {k}) % 2 == 0", f"{k} < {r}"]))
    bias = draw(st.sampled_from(["", f" + Bq[{r}]", f" - 0.5 * ({r} - {k})", f" + Bk[{k}]"]))
    on_all = draw(st.booleans())
    deferred = draw(st.booleans())
    # the values may be masked like the score, or otherwise (then the numerator may have no
    # point where the denominator has some, and the rewrite must keep that point empty)
    vmask = draw(st.sampled_from([None, "score", f"{k} >= 2", f"{k} % 2 == 1", f"{k} < {r}"]))
    if vmask == "score":
        vmask = mask
    empty = draw(st.sampled_from(["", " empty -1"]))  # shows an empty point apart from a 0
    sizes = {row: draw(st.integers(1, 7)), key: draw(st.integers(1, 9)),
             dim: draw(st.integers(1, 3)), val: draw(st.integers(1, 3)), "W": draw(st.integers(1, 4))}
    tile = draw(st.integers(1, 10))
    # sometimes the normalised scores are an output too: the rewrite must not apply
    leak = not deferred and draw(st.integers(0, 4)) == 0
    w_qk = f" where {mask}" if mask and not on_all else ""
    w_all = f" where {mask}" if mask and on_all else ""
    lines = [
        f"rank {row} = 4, {key} = 5, {dim} = 2, {val} = 2",
        "param W = 2",
        f"input Qt[{r},{d}], Kt[{k},{d}], Vt[{k},{v}], Bq[{r}], Bk[{k}]",
        f"output Out[{r},{v}]{empty}" + (f", Pr[{r},{k}]" if leak else ""),
        f"Sc[{r},{k}] = sum[{d}] Qt[{r},{d}] * Kt[{k},{d}]{bias}{w_qk}",
        f"Mx[{r}] = max[{k}] Sc[{r},{k}]{w_all}",
        f"Nm[{r},{k}] = exp(Sc[{r},{k}] - Mx[{r}]){w_all}",
        f"Dn[{r}] = sum[{k}] Nm[{r},{k}]{w_all}",
    ]
    vals = f"Vt[{k},{v}]"
    if vmask:
        lines.append(f"Vm[{r},{k},{v}] = Vt[{k},{v}] where {vmask}")
        vals = f"Vm[{r},{k},{v}]"
    if deferred:
        lines += [f"NV[{r},{v}] = sum[{k}] Nm[{r},{k}] * {vals}{w_all}",
                  f"Out[{r},{v}] = NV[{r},{v}] / Dn[{r}]"]
    else:
        lines += [f"Pr[{r},{k}] = Nm[{r},{k}] / Dn[{r}]{w_all}",
                  f"Out[{r},{v}] = sum[{k}] Pr[{r},{k}] * {vals}{w_all}"]
    return loads("\n".join(lines) + "\n"), sizes, tile, leak, vmask not in (None, mask)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(attention_cascades(), st.integers(0, 2 ** 16))
def test_random_cascades_keep_their_meaning_under_every_pass(case, seed):
    cascade, sizes, tile, leak, sparse_values = case
    passes = [get_pass(name) for name in sorted(REGISTRY)] + [OnlineSoftmax(tile_size=tile)]
    for p in passes:
        out = run_pipeline(cascade, [p], verify=True)
        assert parse(format_cascade(out)) == out
        assert_same_meaning(cascade, out, sizes, seed)
    rewritten = OnlineSoftmax(tile_size=tile)(cascade)
    if leak:
        assert rewritten is cascade and "output" in online_softmax_reason(cascade)
    elif sparse_values:  # values masked otherwise than the score: refused (with the reason)
        assert rewritten is cascade and "numerator" in online_softmax_reason(cascade)
    else:
        assert count_passes(rewritten).passes == 1


def test_new_names_avoid_existing_ranks_and_tensors():
    text = Path(EX + "mha_3pass.ein").read_text().replace(
        "rank B = 1", "rank M1 = 3\nparam M0 = 2\nrank B = 1").replace(
        "input  Q[b,h,p,e]", "input LM[m1], Q[b,h,p,e]")
    cascade = loads(text)
    out = rewrite(cascade, tile_size=5)
    assert out.splits[-1].outer == "M1_2" and out.splits[-1].inner == "M0_2"
    assert "LM_2" in {e.name for e in out.einsums}
    assert_same_meaning(cascade, out, {"P": 9, "M": 21, "E": 3, "F": 2})

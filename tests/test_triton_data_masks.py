"""Data-dependent masks and gathers in the Triton lowering (backends/triton/data.py), against the
interpreter under TRITON_INTERPRET=1 in fp32 and fp16: predicates over tensor values (alone,
with static masks, under ``not``, as truth values), fully masked rows, gathers through index
tensors (P != M, sizes that are not powers of two, index arithmetic, gathers inside a reduction
of a kernel program), and out-of-range indices, which raise on the host as in the interpreter."""
import os

import numpy as np
import pytest

from einsum_ir import evaluate, loads
from einsum_ir.errors import CascadeError

torch = pytest.importorskip("torch")
pytest.importorskip("triton")
if os.environ.get("TRITON_INTERPRET", "0") in ("", "0") and not torch.cuda.is_available():
    pytest.skip("needs a GPU or TRITON_INTERPRET=1", allow_module_level=True)

from backends.triton import compile_cascade  # noqa: E402

DTYPES = {"fp32": (torch.float32, 2e-5), "fp16": (torch.float16, 2e-2)}
DEVICE = "cuda" if torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET", "0") in \
    ("", "0") else "cpu"

SOFTMAX = """
GM[p]   = max[m] QK[p,m]
SN[p,m] = exp(QK[p,m] - GM[p])
SD[p]   = sum[m] SN[p,m]
AV[p,f] = sum[m] SN[p,m] / SD[p] * V[m,f]
"""
GRAPH = """
rank P = 7, M = 11, E = 5, F = 3
input  Q[p,e], K[m,e], V[m,f], Adj[p,m]
output AV[p,f]
QK[p,m] = sum[e] Q[p,e] * K[m,e] where Adj[p,m] > 0
""" + SOFTMAX


def _run(text: str, inputs: dict, dtype: str, **config):
    """(Triton's outputs, the interpreter's on the inputs rounded to ``dtype``, tolerance)."""
    torch_dtype, tol = DTYPES[dtype]
    cascade = loads(text)
    rounded = {k: torch.tensor(v).to(torch_dtype).double().numpy() for k, v in inputs.items()}
    want = evaluate(cascade, rounded)
    fn = compile_cascade(cascade, **config)
    got = fn(**{k: torch.tensor(v, dtype=torch_dtype, device=DEVICE) for k, v in rounded.items()})
    return {k: v.detach().double().cpu().numpy() for k, v in got.items()}, want, tol, fn


def _check(text, inputs, dtype, **config):
    got, want, tol, fn = _run(text, inputs, dtype, **config)
    for name, value in want.items():
        assert np.isfinite(got[name]).all(), name
        np.testing.assert_allclose(got[name], value, atol=tol, rtol=tol, err_msg=name)
    return got, want, fn


def _graph_inputs(rng, p=7, m=11):
    adj = (rng.random((p, m)) < 0.4).astype(float)
    adj[2] = 0.0  # a query with no neighbour: every point of its row is empty
    return {"Q": rng.standard_normal((p, 5)), "K": rng.standard_normal((m, 5)),
            "V": rng.standard_normal((m, 3)), "Adj": adj}


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_value_mask_with_p_not_m_and_a_fully_masked_row(dtype):
    got, want, fn = _check(GRAPH, _graph_inputs(np.random.default_rng(0)), dtype)
    assert np.all(want["AV"][2] == 0) and np.all(got["AV"][2] == 0)  # the empty row: 0, not NaN
    assert "data_mask" in fn.last.source  # the predicate is a loaded tile, not a refusal


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_value_mask_under_not_or_and_a_static_mask(dtype):
    text = """
rank P = 9, E = 4, F = 3
index m : P
input  Q[p,e], K[m,e], V[m,f], Drop[p,m], Keep[m]
output AV[p,f]
QK[p,m] = sum[e] Q[p,e] * K[m,e] where m <= p and (not (Drop[p,m] > 0.5) or Keep[m])
""" + SOFTMAX
    rng = np.random.default_rng(1)
    inputs = {"Q": rng.standard_normal((9, 4)), "K": rng.standard_normal((9, 4)),
              "V": rng.standard_normal((9, 3)), "Drop": rng.random((9, 9)),
              "Keep": (rng.random(9) < 0.3).astype(float)}
    inputs["Drop"][4] = 1.0  # row 4 keeps only the columns Keep names (maybe none)
    _check(text, inputs, dtype)


def test_value_mask_over_a_computed_tensor_in_a_streamed_loop():
    """Scores compared with a per-row threshold the cascade computes; several key blocks, so
    the loop runs more than one step and no block is skipped for the data mask."""
    text = """
rank P = 5, M = 45, E = 4, F = 3
input  Q[p,e], K[m,e], V[m,f], T[p]
output AV[p,f]
S[p,m]  = sum[e] Q[p,e] * K[m,e]
QK[p,m] = S[p,m] where S[p,m] > T[p] and m <= 3 * p + 30
""" + SOFTMAX
    rng = np.random.default_rng(2)
    inputs = {"Q": rng.standard_normal((5, 4)), "K": rng.standard_normal((45, 4)),
              "V": rng.standard_normal((45, 3)), "T": rng.standard_normal(5)}
    inputs["T"][1] = 1e3  # no score above it: an empty row
    got, want, _ = _check(text, inputs, "fp32", block_c=16)
    assert np.all(got["AV"][1] == 0)


GATHER = """
rank P = 5, M = 11, E = 4, F = 3, J = 3
input  Q[p,e], K[m,e], V[m,f], Idx[p,j]
output AV[p,f]
QK[p,j] = sum[e] Q[p,e] * K[Idx[p,j],e]
GM[p]   = max[j] QK[p,j]
SN[p,j] = exp(QK[p,j] - GM[p])
SD[p]   = sum[j] SN[p,j]
AV[p,f] = sum[j] SN[p,j] / SD[p] * V[Idx[p,j],f]
"""


def _gather_inputs(rng, m=11):
    return {"Q": rng.standard_normal((5, 4)), "K": rng.standard_normal((m, 4)),
            "V": rng.standard_normal((m, 3)),
            "Idx": rng.integers(0, m, size=(5, 3)).astype(float)}


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_gather_through_an_index_tensor(dtype):
    inputs = _gather_inputs(np.random.default_rng(3))
    inputs["Idx"][0] = [10, 10, 0]  # repeated positions and both ends of the axis
    _, _, fn = _check(GATHER, inputs, dtype)
    assert "pos = idx.to(tl.int32)" in fn.last.source and "in_gather" in fn.last.source


def test_gather_with_index_arithmetic():
    text = GATHER.replace("K[Idx[p,j],e]", "K[2 * Idx[p,j] + 1,e]").replace(
        "rank P = 5, M = 11", "rank P = 5, M = 23")
    inputs = _gather_inputs(np.random.default_rng(4))
    inputs["K"] = np.random.default_rng(5).standard_normal((23, 4))
    inputs["V"] = np.random.default_rng(6).standard_normal((23, 3))
    _check(text, inputs, "fp32")


@pytest.mark.parametrize("bad", [11.0, -1.0, 2.5])
def test_out_of_range_gather_index_raises_like_the_interpreter(bad):
    inputs = _gather_inputs(np.random.default_rng(7))
    inputs["Idx"][3, 1] = bad
    cascade = loads(GATHER)
    with pytest.raises(CascadeError):
        evaluate(cascade, inputs)
    fn = compile_cascade(cascade)
    with pytest.raises(CascadeError, match=r"Idx .*axis 1 \(extent 11\)") as info:
        fn(**{k: torch.tensor(v, dtype=torch.float32, device=DEVICE) for k, v in inputs.items()})
    assert info.value.span is not None  # located at the index access


def test_gather_index_arithmetic_out_of_range_reads_an_empty_point():
    """An index combined with index arithmetic (or computed by the cascade) is not checked on
    the host: the masked load makes the point empty (nothing is read past the tensor), where the
    interpreter raises."""
    text = GATHER.replace("K[Idx[p,j],e]", "K[Idx[p,j] + J,e]").replace(
        "V[Idx[p,j],f]", "V[Idx[p,j] + J,f]")
    inputs = _gather_inputs(np.random.default_rng(8))
    inputs["Idx"] = np.minimum(inputs["Idx"], 7)
    inputs["Idx"][1] = [8, 9, 9]  # + J = 11, 12, 12: every point of row 1 is outside
    _, want, _, _ = _run(text, {**inputs, "Idx": np.minimum(inputs["Idx"], 7)}, "fp32")
    fn = compile_cascade(loads(text))
    out = fn(**{k: torch.tensor(v, dtype=torch.float32, device=DEVICE)
                for k, v in inputs.items()})["AV"].double().cpu().numpy()
    assert np.all(out[1] == 0)  # the empty row
    rows = [0, 2, 3, 4]
    np.testing.assert_allclose(out[rows], want["AV"][rows], atol=2e-5, rtol=2e-5)


def test_an_empty_operand_compares_false_also_under_not():
    """``X`` is empty above the diagonal: there ``X[p,m] > 0`` is false and ``not`` makes the
    point exist, as in the interpreter (einsum_ir/data_masks.py)."""
    text = """
rank P = 6, E = 4, F = 3
index m : P
input  Q[p,e], K[m,e], V[m,f]
output AV[p,f]
X[p,m]  = sum[e] Q[p,e] * K[m,e] where m <= p
QK[p,m] = sum[e] Q[p,e] * K[m,e] where not (X[p,m] > 0)
""" + SOFTMAX
    rng = np.random.default_rng(9)
    inputs = {"Q": rng.standard_normal((6, 4)), "K": rng.standard_normal((6, 4)),
              "V": rng.standard_normal((6, 3))}
    _check(text, inputs, "fp32")


TOPK = """
rank H = 2, P = 5, M = 13, E = 4, F = 3
param TK = 3
index m2 : M
input  Q[h,p,e], K[h,m,e], V[h,m,f]
output AV[h,p,f]
S[h,p,m]  = sum[e] Q[h,p,e] * K[h,m,e]
C[h,p,m]  = sum[m2] S[h,p,m2] > S[h,p,m]
QK[h,p,m] = S[h,p,m] where C[h,p,m] < TK
GM[h,p]   = max[m] QK[h,p,m]
SN[h,p,m] = exp(QK[h,p,m] - GM[h,p])
SD[h,p]   = sum[m] SN[h,p,m]
AV[h,p,f] = sum[m] SN[h,p,m] / SD[h,p] * V[h,m,f]
"""


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_top_k_as_a_count_runs_with_rows_on_the_grid(dtype):
    """The count ``sum[m2] S[p,m2] > S[p,m]`` spans p, m, m2: the rows go on the grid."""
    rng = np.random.default_rng(10)
    inputs = {"Q": rng.standard_normal((2, 5, 4)), "K": rng.standard_normal((2, 13, 4)),
              "V": rng.standard_normal((2, 13, 3))}
    _, _, fn = _check(TOPK, inputs, dtype)
    assert "rows on the grid" in "".join(g.source for g in fn.last.generated)


def test_rows_on_the_grid_are_the_last_resort_for_a_three_rank_value():
    """``X[p,m,e]`` needs a 3-D tile with tiled rows; with one row per program it is 2-D."""
    text = """
rank P = 5, M = 7, E = 4, F = 3
input  Q[p,e], K[m,e], V[m,f]
output AV[p,f]
X[p,m,e] = Q[p,e] * K[m,e]
Y[p,m] = sum[e] X[p,m,e]
AV[p,f] = sum[m] Y[p,m] * V[m,f]
"""
    rng = np.random.default_rng(11)
    inputs = {"Q": rng.standard_normal((5, 4)), "K": rng.standard_normal((7, 4)),
              "V": rng.standard_normal((7, 3))}
    _, _, fn = _check(text, inputs, "fp32")
    assert "rows on the grid" in fn.last.source


def test_a_count_compares_one_value_with_itself_exactly():
    """``sum[c2] SQ[p,c2] > SQ[p,nc]`` reads the inlined SQ over two axes: computed once, the
    ranks of a row are exactly a permutation (two summation orders would count ties)."""
    text = """
rank P = 9, E = 4, NC = 5
index c2 : NC
input  Q[p,e], Mu[nc,e]
output CQ[p,nc]
SQ[p,nc] = sum[e] Q[p,e] * Mu[nc,e]
CQ[p,nc] = sum[c2] SQ[p,c2] > SQ[p,nc]
"""
    fn = compile_cascade(loads(text))
    for seed in range(4):
        rng = np.random.default_rng(seed)
        q, mu = rng.standard_normal((9, 4)), rng.standard_normal((5, 4))
        got = fn(Q=torch.tensor(q, dtype=torch.float32, device=DEVICE),
                 Mu=torch.tensor(mu, dtype=torch.float32, device=DEVICE))["CQ"].cpu().numpy()
        np.testing.assert_array_equal(np.sort(got, axis=1), np.tile(np.arange(5.0), (9, 1)))

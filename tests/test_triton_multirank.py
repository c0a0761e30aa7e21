"""Cascades whose reductions or rows span several sequence ranks, and reductions over the row
rank, on the Triton lowering (issue 11), against the interpreter.

* Two sequence ranks reduced: one kernel streams one rank, so the kernel-program partition
  (backends/gpu/partition.py) cuts the cascade into a group per reduction rank. A prefix sum
  ``sum[m2] G[m2] where m2 <= p`` masks a value over m2 with a predicate over m2 and p: the value
  is spread over the predicate's axes (reads.py), which the group writing it needs.
* A reduction over the rank that leads the inputs' layouts (``sum[p] Q[p,g,c] * K[p,g,c2]``):
  a summed rank is never a grid axis (backends/gpu/plan.py); it is streamed.
* Two row ranks: the rows past the first go on the grid, one program per combination of their
  indices (``Config.grid_rows``), once neither one kernel nor a cut lowers otherwise.

Fresh cascades at ragged sizes (not powers of two), fp32 and fp16, Triton's interpreter on the
CPU; then the catalogue cascades these mechanisms lower.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

from triton_lane import DEVICE, torch  # noqa: E402 (sets TRITON_INTERPRET first)

from backends.gpu.plan import Config  # noqa: E402
from backends.triton import compile_cascade  # noqa: E402
from backends.triton.lower import Generated, generate  # noqa: E402
from backends.triton.program import Program  # noqa: E402
from einsum_ir import evaluate, load, loads, random_inputs, resolve_sizes  # noqa: E402
from einsum_ir.errors import CascadeError  # noqa: E402
from einsum_ir.passes import prepare  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import catalogue  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
DTYPES = {"fp32": (torch.float32, 1e-4, 1e-5), "fp16": (torch.float16, 1e-2, 1e-2)}

TWO_SEQUENCES = """
rank P = 7, M = 5, N = 6, E = 3, F = 3
input  Q[p,e], K[m,e], V[m,f], U[n,e], W[n,f]
output O[p,f]
SA[p,m] = sum[e] Q[p,e] * K[m,e]
A[p,f]  = sum[m] SA[p,m] * V[m,f]
SB[p,n] = sum[e] Q[p,e] * U[n,e]
B[p,f]  = sum[n] SB[p,n] * W[n,f]
O[p,f]  = A[p,f] + B[p,f]
"""

PREFIX_DECAY = """
rank P = 11, F = 3
index m : P
index m2 : P
input  X[p], V[m,f]
output O[p,f]
G[p]   = 0 - X[p] * X[p]
C[p]   = sum[m2] G[m2] where m2 <= p
O[p,f] = sum[m] V[m,f] * exp(C[p] - C[m]) where m <= p
"""

LEADING_SUM = """
rank P = 7, G = 3, C = 5
index c2 : C
input  Q[p,g,c], K[p,g,c]
output O[p,g,c]
S[g,c,c2] = sum[p] Q[p,g,c] * K[p,g,c2]
O[p,g,c]  = sum[c2] S[g,c,c2] * Q[p,g,c2]
"""

TWO_ROWS = """
rank P = 6, Q = 5, M = 7, F = 3
input  A[p,m], B[q,m], V[m,f]
output O[p,q,f]
O[p,q,f] = sum[m] A[p,m] * B[q,m] * V[m,f]
"""

TWO_OUTPUTS = """
rank P = 6, Q = 5, M = 7, E = 3, F = 3
input  A[p,e], B[q,e], K[m,e], V[m,f]
output OA[p,f], OB[q,f]
SA[p,m]  = sum[e] A[p,e] * K[m,e]
OA[p,f]  = sum[m] SA[p,m] * V[m,f]
SB[q,m]  = sum[e] B[q,e] * K[m,e]
OB[q,f]  = sum[m] SB[q,m] * V[m,f]
"""

OUTER_PRODUCT = """
rank B = 1, H = 2, P = 5, M = 6, E = 3, F = 4
input  Q[b,h,p,e], K[b,h,m,e], V[b,h,m,f]
output AV[b,h,p,f]
X[b,h,p,m,e,f] = Q[b,h,p,e] * K[b,h,m,e] * V[b,h,m,f]
Y[b,h,p,m,f]   = sum[e] X[b,h,p,m,e,f]
AV[b,h,p,f]    = sum[m] Y[b,h,p,m,f]
"""

# two recurrences over different ranks whose final iterates one Einsum adds: a recurrence's
# steps cannot pass between kernels, so no cut helps
TWO_RECURRENCES = """
rank P = 7, M = 6, F = 3
input  X[p,f], Y[m,f]
output O[f]
R[0,f]   = 0
R[p+1,f] = R[p,f] + X[p,f]
U[0,f]   = 0
U[m+1,f] = U[m,f] * 0.5 + Y[m,f]
O[f]     = R[P,f] + U[M,f]
"""


def _run(text: str, dtype: str, seed: int = 0):
    """The compiled cascade after one call, checked against the interpreter on the same
    rounded inputs (fp16: 1e-2 relative plus 1e-2 of the output's scale)."""
    cascade = loads(text)
    torch_dtype, rtol, atol = DTYPES[dtype]
    sizes = resolve_sizes(cascade, {})
    inputs = random_inputs(cascade, sizes, seed, np.float32)
    rounded = {k: torch.tensor(v).to(torch_dtype) for k, v in inputs.items()}
    want = evaluate(cascade, {k: v.double().numpy() for k, v in rounded.items()})
    fn = compile_cascade(cascade)
    got = fn(**{k: v.to(DEVICE) for k, v in rounded.items()})
    for name, ref in want.items():
        scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
        np.testing.assert_allclose(got[name].double().cpu().numpy(), ref, rtol=rtol,
                                   atol=atol * scale, err_msg=name)
    return fn


def _single_kernel_refusal(text: str, **config) -> CascadeError:
    cascade = loads(text)
    with pytest.raises(CascadeError) as info:
        generate(prepare(cascade), resolve_sizes(cascade, {}), Config(**config))
    return info.value


def _group_streams(program: Program) -> list:
    return [fn.last.roles.stream_rank for fn in program.compiled]


# ------------------------------------------------------------------ two sequence ranks reduced

@pytest.mark.parametrize("dtype", list(DTYPES))
def test_two_reduced_sequence_ranks_run_as_a_kernel_per_rank(dtype):
    refusal = _single_kernel_refusal(TWO_SEQUENCES)
    assert "several sequence ranks (M, N)" in refusal.message and refusal.span.line == 8
    fn = _run(TWO_SEQUENCES, dtype)
    assert isinstance(fn.last, Program) and len(fn.last.groups) >= 2
    assert set(_group_streams(fn.last)) >= {"M", "N"}


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_a_prefix_sum_masked_over_a_wider_span_is_cut_from_the_sum_that_reads_it(dtype):
    # C[p] = sum[m2] G[m2] where m2 <= p: the value is over m2, its mask over m2 and p
    assert "several sequence ranks (M, M2)" in _single_kernel_refusal(PREFIX_DECAY).message
    fn = _run(PREFIX_DECAY, dtype)
    assert isinstance(fn.last, Program)
    assert any("C" in g.writes for g in fn.last.groups)


def test_the_group_of_the_prefix_sum_lowers_alone():
    # the group the partition needs: refused before as "cannot broadcast a tile over (m2, p)"
    text = PREFIX_DECAY.replace("output O[p,f]", "output C[p]").rsplit("\nO[p,f]", 1)[0]
    cascade = loads(text)
    gen = generate(prepare(cascade), resolve_sizes(cascade, {}), Config())
    assert "tl.sum" in gen.source
    _run(text, "fp32")


# ------------------------------------------------------------------ a reduction over the row rank

@pytest.mark.parametrize("dtype", list(DTYPES))
def test_a_sum_over_the_rank_leading_the_layouts_is_streamed_not_a_grid_axis(dtype):
    fn = _run(LEADING_SUM, dtype)
    assert isinstance(fn.last, Generated)  # one kernel program
    assert "p" not in fn.last.roles.batch and fn.last.roles.stream_rank == "P"


# ------------------------------------------------------------------ two row ranks

@pytest.mark.parametrize("dtype", list(DTYPES))
def test_two_row_ranks_put_the_second_on_the_grid(dtype):
    refusal = _single_kernel_refusal(TWO_ROWS)
    assert "more than one row rank (p, q)" in refusal.message and refusal.span.line == 5
    fn = _run(TWO_ROWS, dtype)
    assert isinstance(fn.last, Generated)
    assert fn.last.roles.row == "p" and "q" in fn.last.roles.batch
    assert "rows past the first on the grid" in fn.last.source
    assert "tl.dot" in fn.last.source  # B[q,m], one row of B, folds into the operand A[p,m]


def test_rows_past_the_first_go_on_the_grid_only_as_the_last_resort():
    # two outputs over different rows: a kernel per output keeps both rows tiled (on the grid,
    # every program over q would compute OA again)
    assert "more than one row rank (p, q)" in _single_kernel_refusal(TWO_OUTPUTS).message
    fn = _run(TWO_OUTPUTS, "fp32")
    assert isinstance(fn.last, Program) and len(fn.last.groups) == 2
    assert "on the grid" not in fn.last.source
    assert sorted(f.last.roles.row for f in fn.last.compiled) == ["p", "q"]


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_a_group_with_two_row_ranks_lowers_in_the_last_resort(dtype):
    # X spans p, m, e, f: no kernel with tiled rows holds it; cut at Y[p,m,f], whose rows p and
    # m go on the grid (rows past the first, then all of them), it runs as two kernels
    fn = _run(OUTER_PRODUCT, dtype)
    assert isinstance(fn.last, Program)
    assert any({"p", "m"} <= set(g.roles.batch) for g in fn.last.generated)


# ------------------------------------------------------------------ what still refuses

def test_recurrences_over_two_ranks_are_refused_by_one_kernel_at_the_first():
    info = _single_kernel_refusal(TWO_RECURRENCES)
    assert "recurrences over more than one index (m, p)" in info.message
    assert info.span is not None and (info.span.line, info.span.column) == (6, 1)


def test_recurrences_over_two_ranks_run_as_two_kernels_passing_an_end():
    # U is read only at its end, so the first kernel writes U[M] alone (no step axis)
    fn = _run(TWO_RECURRENCES, "fp32")
    assert isinstance(fn.last, Program) and [g.writes for g in fn.last.groups] == [("U_end",), ()]


# ------------------------------------------------------------------ the catalogue

CATALOGUE = ["L9_mamba2_ssd", "H3_hilo", "C1_channel_attention", "L2_lightning_chunked"]


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", CATALOGUE)
def test_catalogue_cascades_match_the_interpreter(name, dtype):
    """As bench/catalogue.py checks its Triton stages (its inputs, its tolerances)."""
    refs = catalogue._refs()
    cascade = load(catalogue.FOLDER / f"{name}.ein")
    assert catalogue.stage_triton(refs, name, cascade, dtype)["status"] == "ok"

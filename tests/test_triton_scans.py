"""Recurrences in the Triton lowering (issues 11, 12 and 8), each against the interpreter.

A recurrence over tokens (a plain rank) runs as a sequential loop over its index inside the
kernel, the state a register tile, parallel over the grid ranks; a recurrence over the chunks of
a split whose steps are running sums of independent increments runs as a parallel scan, chosen
by the schedule up front. Shapes are small and not powers of two: the kernels run under
``TRITON_INTERPRET=1`` on the CPU.
"""
import numpy as np
import pytest

from triton_lane import DEVICE, torch  # noqa: E402 (sets TRITON_INTERPRET first)

from backends.gpu.plan import Config, Lowering, lowering_sizes  # noqa: E402
from backends.gpu.schedule import schedule  # noqa: E402
from backends.triton import compile_cascade  # noqa: E402
from einsum_ir import evaluate, load, parse, resolve_sizes  # noqa: E402
from einsum_ir.inputs import random_inputs  # noqa: E402
from einsum_ir.passes import prepare  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
TOL = {torch.float32: 1e-4, torch.float16: 1e-2}
DTYPES = [torch.float32, torch.float16]


def _check(cascade, dtype, sizes=None, **cfg):
    """The kernel's outputs against the interpreter's on the same (rounded) inputs."""
    sizes = dict(sizes or {})
    arrays = random_inputs(cascade, resolve_sizes(cascade, sizes), 0, np.float64)
    tensors = {k: torch.tensor(v, dtype=dtype, device=DEVICE) for k, v in arrays.items()}
    ref = evaluate(cascade, {k: t.double().cpu().numpy() for k, t in tensors.items()}, sizes)
    kernel = compile_cascade(cascade, **cfg, **sizes)
    got = {k: v.double().cpu().numpy() for k, v in kernel(**tensors).items()}
    assert set(got) == set(ref)
    for k in ref:
        scale = max(1.0, float(np.abs(ref[k]).max()))
        err = float(np.abs(got[k] - ref[k]).max())
        assert err <= TOL[dtype] * scale, f"{k}: max error {err:.3e}"
    return kernel.source()


def _plan(cascade, **sizes):
    prepared = prepare(cascade)
    cfg = Config()
    full = lowering_sizes(prepared, resolve_sizes(cascade, sizes), cfg.block_c)
    return schedule(Lowering(prepared.cascade, full, cfg, prepared.facts), cfg)


# ------------------------------------------------------------- recurrences over tokens

# causal linear attention in its recurrent form, one state per head
RECURRENT_LINEAR = """
rank H = 2, P = 7, E = 5, F = 3
input  Q[h,p,e], K[h,p,e], V[h,p,f]
output O[h,p,f]
S[h,0,e,f]   = 0
S[h,p+1,e,f] = S[h,p,e,f] + K[h,p,e] * V[h,p,f]
O[h,p,f]     = sum[e] Q[h,p,e] * S[h,p+1,e,f]
"""

# a gated (decayed) state, the state before the step read by the output, and its final iterate
GATED = """
rank B = 2, P = 6, E = 3, F = 5
input  Q[b,p,e], K[b,p,e], V[b,p,f], G[b,p]
output O[b,p,f], SF[b,e,f]
S[b,0,e,f]   = 1
S[b,p+1,e,f] = sigmoid(G[b,p]) * S[b,p,e,f] + K[b,p,e] * V[b,p,f]
O[b,p,f]     = sum[e] Q[b,p,e] * S[b,p,e,f]
SF[b,e,f]    = S[b,P,e,f]
"""


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("text", [RECURRENT_LINEAR, GATED], ids=["linear", "gated"])
def test_a_token_recurrence_is_a_sequential_loop_with_a_register_state(text, dtype):
    cascade = parse(text, "case.ein")
    plan = _plan(cascade)
    assert plan.scan is None  # no split to scan over: the steps run in order
    src = _check(cascade, dtype)
    assert src.count("@triton.jit") == 1
    assert "lo_0 = 0" in src and "s = s_next" in src and "for it in range(lo_0, hi_0)" in src


@pytest.mark.parametrize("variant", ["D5_hopfield", "L9_gated_deltanet"])
def test_catalogue_token_recurrences_run_on_triton(variant):
    """D5 (T Hopfield updates, each a softmax over the keys) and L9 (a delta-rule state over
    the tokens) were refused: the recurrence index was not the outer part of a split."""
    cascade = load(f"tests/data/catalogue/{variant}.ein")
    _check(cascade, torch.float32)


# ------------------------------------------------------------- chunked parallel scans

CHUNKED = """
rank H = 2, P = 40, E = 5, F = 3, C = 16
index d : C
split P = N * C
input  Q[h,p,e], K[h,p,e], V[h,p,f]
output O[h,p,f]
KV[h,n,e,f]  = sum[d] K[h,n*C + d,e] * V[h,n*C + d,f]
S[h,0,e,f]   = 0
S[h,n+1,e,f] = S[h,n,e,f] + KV[h,n,e,f]
SC[h,n,c,d]  = sum[e] Q[h,n*C + c,e] * K[h,n*C + d,e] where d <= c
INTRA[h,n,c,f] = sum[d] SC[h,n,c,d] * V[h,n*C + d,f]
INTER[h,n,c,f] = sum[e] Q[h,n*C + c,e] * S[h,n,e,f]
OC[h,n,c,f]  = INTRA[h,n,c,f] + INTER[h,n,c,f]
O[h,p,f]     = OC[h,p / C, p % C, f]
"""


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_chunked_running_sum_is_a_parallel_scan_decided_by_the_schedule(dtype):
    cascade = parse(CHUNKED, "case.ein")
    plan = _plan(cascade)
    assert plan.scan is not None and [name for name, _, _ in plan.scan] == ["S"]
    src = _check(cascade, dtype)
    assert src.count("@triton.jit") == 2 and "S_pre = torch.cumsum(S_inc" in src


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_decayed_chunk_state_is_not_a_scan_and_runs_sequentially(dtype):
    text = CHUNKED.replace("S[h,n+1,e,f] = S[h,n,e,f] + KV[h,n,e,f]",
                           "S[h,n+1,e,f] = 0.5 * S[h,n,e,f] + KV[h,n,e,f]")
    cascade = parse(text, "case.ein")
    assert _plan(cascade).scan is None
    src = _check(cascade, dtype)
    assert src.count("@triton.jit") == 1 and "s = s_next" in src

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


# ------------------------------------------------------------- reversed recurrences

# a decayed suffix sum (the gradient of a decayed running sum): written as a forward recurrence
# over steps, read at reversed steps; O reads the state after position n, OB the one before it
SUFFIX = """
rank B = 2, N = 9, E = 5
input  X[b,n,e]
output O[b,n,e], OB[b,n,e]
G[b,0,e]   = 0
G[b,n+1,e] = 0.5 * G[b,n,e] + X[b,N - 1 - n,e]
O[b,n,e]   = G[b,N - n,e]
OB[b,n,e]  = G[b,N - 1 - n,e]
"""

# the backward of recurrent causal linear attention (S[p+1] = S[p] + K[p] V[p]^T, O[p] = Q[p]
# S[p+1]): dS runs from the last token down, dK[p] = dS after position p times V[p]
LINEAR_BACKWARD = """
rank H = 2, P = 7, E = 5, F = 3
input  Q[h,p,e], V[h,p,f], dO[h,p,f]
output dK[h,p,e]
DS[h,0,e,f]   = 0
DS[h,p+1,e,f] = DS[h,p,e,f] + Q[h,P - 1 - p,e] * dO[h,P - 1 - p,f]
dK[h,p,e]     = sum[f] DS[h,P - p,e,f] * V[h,p,f]
"""


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("text", [SUFFIX, LINEAR_BACKWARD], ids=["suffix", "linear_backward"])
def test_a_recurrence_read_at_reversed_steps_is_a_loop_counting_down(text, dtype):
    cascade = parse(text, "case.ein")
    (loop,) = _plan(cascade).phases[1]
    assert loop.reverse and loop.outputs
    src = _check(cascade, dtype)
    assert "the positions count down" in src and "- 1) - it)" in src


def test_the_reversed_kernel_is_the_gradient_eager_autograd_computes():
    """dK of the linear recurrence by the reversed kernel against torch.autograd of the forward
    recurrence written in torch."""
    g = torch.Generator().manual_seed(0)
    q, k, v, do = (torch.randn(2, 7, n, generator=g, dtype=torch.float64) for n in (5, 5, 3, 3))
    k.requires_grad_()
    state, outs = torch.zeros(2, 5, 3, dtype=torch.float64), []
    for p in range(7):
        state = state + k[:, p, :, None] * v[:, p, None, :]
        outs.append(torch.einsum("he,hef->hf", q[:, p], state))
    (want,) = torch.autograd.grad(torch.stack(outs, 1), k, do)
    kernel = compile_cascade(parse(LINEAR_BACKWARD, "case.ein"))
    got = kernel(Q=q.float().to(DEVICE), V=v.float().to(DEVICE), dO=do.float().to(DEVICE))["dK"]
    torch.testing.assert_close(got.double().cpu(), want, rtol=1e-4, atol=1e-5)


# a forward running sum finished first, then a reversed recurrence started from its final value
FORWARD_THEN_REVERSED = """
rank B = 2, N = 6, E = 3
input  X[b,n,e]
output O[b,n,e]
Z[b,0,e]   = 0
Z[b,n+1,e] = Z[b,n,e] + X[b,n,e]
R[b,0,e]   = Z[b,N,e]
R[b,n+1,e] = R[b,n,e] - X[b,N - 1 - n,e]
O[b,n,e]   = R[b,N - 1 - n,e] * X[b,n,e]
"""


def test_a_forward_loop_and_a_reversed_loop_in_one_kernel():
    cascade = parse(FORWARD_THEN_REVERSED, "case.ein")
    loops = _plan(cascade).phases[1]
    assert [(lp.level, lp.reverse) for lp in loops] == [(0, False), (1, True)]
    _check(cascade, torch.float32)


def test_a_recurrence_read_both_ways_runs_forward_and_refuses_the_reversed_read():
    from einsum_ir.errors import CascadeError

    text = SUFFIX.replace("O[b,n,e]   = G[b,N - n,e]", "O[b,n,e]   = G[b,n,e]")
    cascade = parse(text, "case.ein")
    (loop,) = _plan(cascade).phases[1]
    assert not loop.reverse
    from backends.triton.lower import generate

    with pytest.raises(CascadeError, match="read at an index the Triton lowering cannot map"):
        generate(prepare(cascade), resolve_sizes(cascade, {}), Config())


AOT = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
from backends.triton import compile_cascade
from backends.triton.aot import available, compile_source
from einsum_ir import parse
if not available():
    print(json.dumps("unavailable")); sys.exit(0)
fn = compile_cascade(parse(sys.argv[1], "case.ein"))
fn.source()
print(json.dumps([b.uses_mma for b in compile_source(fn.last, "float16", 80)]))
"""


@pytest.mark.parametrize("text", [GATED, LINEAR_BACKWARD], ids=["token", "reversed"])
def test_the_recurrence_loops_compile_for_a_real_gpu(text):
    """Triton's compiler (not its interpreter) takes the sequential and the counting-down loops
    (sm_80, fp16, ahead of time with the ptxas Triton ships)."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.getcwd()
    r = subprocess.run([sys.executable, "-c", AOT, text], capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if out == "unavailable":
        pytest.skip("Triton's ptxas is not available")
    assert len(out) == 1

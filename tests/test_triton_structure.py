"""The shape of the generated kernels: one kernel, one loop, bounds derived from the predicate.

The loop bounds are the typed bounds of the kernel's plan (backends.gpu.bounds), the values the
generated code is rendered from, evaluated for every row block; the key blocks they visit must be
exactly the blocks that meet the predicate (no fully masked block is visited, no needed block is
skipped).
"""
import math

import pytest
import triton_lane  # noqa: E402,F401 (skips without torch/triton; sets TRITON_INTERPRET first)

from backends.gpu.bounds import bound_env, loop_bounds, visited  # noqa: E402
from backends.gpu.plan import Lowering, lowering_sizes  # noqa: E402
from backends.gpu.schedule import schedule  # noqa: E402
from backends.triton import compile_cascade  # noqa: E402
from einsum_ir import resolve_sizes  # noqa: E402


def _attention_error(fn, P, M) -> float:
    """The largest difference of the kernel's AV from the interpreter's, at P x M (fp32)."""
    import numpy as np
    import torch

    from einsum_ir import evaluate, random_inputs

    cascade = fn.prepared.source
    sizes = {**fn.params, **dict(B=1, H=1, P=P, M=M, E=16, F=16)}
    inputs = random_inputs(cascade, resolve_sizes(cascade, sizes), 0, np.float64)
    ref = evaluate(cascade, inputs, sizes)["AV"]
    out = fn(**{k: torch.tensor(v, dtype=torch.float32) for k, v in inputs.items()})
    return float(np.abs(out["AV"].cpu().numpy() - ref).max())


def _plan(fn, **sizes):
    """The plan and the bounds of the last phase's first loop of ``fn`` compiled for ``sizes``."""
    fn.source(**sizes)
    prepared, config = fn.prepared, fn.last.config
    resolved = resolve_sizes(prepared.source, {**fn.params, **sizes})
    full = lowering_sizes(prepared, resolved, config.block_c, fn.params)
    low = Lowering(prepared.cascade, full, config, prepared.facts)
    phases = schedule(low, config).phases
    return low, full, loop_bounds(low, phases[max(phases)][0])


def _visited(plan, pid):
    low, full, bounds = plan
    return set(visited(bounds, bound_env(low, full, pid)))


def _kernel_body(src):
    return src[src.index("@triton.jit"):src.index("def forward")]


def _expected(pred, p_lo, p_hi, P, M, block):
    out = set()
    for it in range(math.ceil(M / block)):
        if any(pred(p, m) for p in range(p_lo, min(p_hi, P - 1) + 1)
               for m in range(it * block, min(it * block + block, M))):
            out.add(it)
    return out


def test_causal_is_one_kernel_with_one_loop_bounded_by_the_diagonal():
    fn = compile_cascade("examples/attention/causal.ein", block_r=64, block_c=32)
    src = fn.source(P=256, M=256)
    body = _kernel_body(src)
    plan = _plan(fn, P=256, M=256)
    assert src.count("@triton.jit") == 1
    assert body.count("for it in range(") == 1
    assert "# bounds derived from QK: where m1 * M0 + m0 <= p" in body
    P = M = 256
    for pid in range(P // 64):
        steps = _visited(plan, pid)
        assert steps == _expected(lambda p, m: m <= p, pid * 64, pid * 64 + 63, P, M, 32)
        assert max(steps) == (pid * 64 + 63) // 32  # stops at the diagonal block


@pytest.mark.parametrize("W", [16, 64, 100])
def test_sliding_window_visits_only_the_blocks_that_meet_the_window(W):
    P = M = 512
    fn = compile_cascade("examples/attention/sliding_window.ein", block_r=64, block_c=32, W=W)
    body = _kernel_body(fn.source(P=P, M=M))
    assert body.count("for it in range(") == 1
    plan = _plan(fn, P=P, M=M)
    for pid in range(P // 64):
        steps = _visited(plan, pid)
        assert steps == _expected(lambda p, m: p - W < m <= p, pid * 64, pid * 64 + 63, P, M, 32)
        assert len(steps) <= math.ceil((W + 64) / 32) + 1  # grows with the window, not with P


def test_alibi_and_cross_attention_bounds():
    fn = compile_cascade("examples/attention/alibi.ein", block_r=32, block_c=32)
    body = _kernel_body(fn.source(P=96, M=160))
    assert "Slope_ptr + h_idx" in body  # the per-head slope is a scalar load
    plan = _plan(fn, P=96, M=160)
    for pid in range(3):
        assert _visited(plan, pid) == _expected(lambda p, m: m <= p, pid * 32, pid * 32 + 31,
                                                96, 160, 32)


def test_dense_kernel_visits_every_block_and_gqa_uses_pointer_arithmetic():
    fn = compile_cascade("examples/attention/gqa.ein", block_r=64, block_c=64, G=4)
    body = _kernel_body(fn.source(H=8, P=128, M=192, HK=2))
    assert "(h_idx // 4)" in body  # K[b, h / G, m, e]
    assert _visited(_plan(fn, H=8, P=128, M=192, HK=2), 0) == {0, 1, 2}


def test_generated_module_has_a_readable_header_and_no_driver_query():
    src = compile_cascade("examples/attention/causal.ein").source()
    head = src[:src.index("import torch")]  # the title and the header comments
    assert "Cascade causal:" in head and "Mapping:" in head and "after the online-softmax rewrite" in head
    assert "launch grid" in head and "streamed rank: M" in head
    assert "driver" not in src and "autotune" not in src
    compile(src, "<generated>", "exec")  # valid Python


def test_linear_attention_has_a_state_phase_and_chunked_is_one_sequential_loop():
    src = compile_cascade("examples/attention/linear.ein").source()
    assert src.count("@triton.jit") == 2  # phase 0: the state KV, KS; phase 1: the queries
    assert "KV = torch.zeros" in src and "tl.atomic_add(KV_ptr" in src
    # the chunk state S[n+1] = S[n] + KVC[n] is a running sum of independent increments:
    # increments for all chunks in parallel, an exclusive prefix sum, then all chunks in parallel
    src = compile_cascade("examples/attention/linear_causal_chunked.ein").source()
    assert src.count("@triton.jit") == 2
    assert "S_pre = torch.cumsum(S_inc, dim=2) - S_inc" in src
    assert src.count("lo_0 = tl.program_id(0)") == 2
    # without the scan: one kernel whose loop carries the state from chunk to chunk
    from backends.gpu.plan import Config
    from backends.triton.lower import generate
    from einsum_ir import load, resolve_sizes
    from einsum_ir.passes import prepare
    c = load("examples/attention/linear_causal_chunked.ein")
    seq = generate(prepare(c), resolve_sizes(c, {}), Config(64, 64, scan=False)).source
    assert seq.count("@triton.jit") == 1 and "lo_0 = 0" in seq and "s = s_next" in seq


def test_a_union_with_a_masked_score_visits_every_block_and_matches(tmp_path):
    """``QK + Bias`` is a union (design.md 3): masked scores come back as the bias, so no block
    may be skipped; the kernel agrees with the interpreter."""
    import numpy as np
    import torch

    from einsum_ir import evaluate, loads, random_inputs, resolve_sizes

    from pathlib import Path

    text = Path("examples/attention/causal.ein").read_text().replace(
        "input  Q[b,h,p,e], K[b,h,m,e], V[b,h,m,f]",
        "input  Q[b,h,p,e], K[b,h,m,e], V[b,h,m,f], Bias[p,m]").replace(
        "GM[b,h,p]   = max[m] QK[b,h,p,m]\nSN[b,h,p,m] = exp(QK[b,h,p,m] - GM[b,h,p])",
        "S[b,h,p,m]  = QK[b,h,p,m] + Bias[p,m]\nGM[b,h,p]   = max[m] S[b,h,p,m]\n"
        "SN[b,h,p,m] = exp(S[b,h,p,m] - GM[b,h,p])")
    cascade = loads(text, "union.ein")
    fn = compile_cascade(cascade, block_r=16, block_c=16)
    _, _, bounds = _plan(fn, P=40, M=40)
    assert bounds.hi == bounds.count and not bounds.notes  # no bound from the causal predicate
    sizes = dict(P=40, M=40, E=32, F=32)
    inputs = random_inputs(cascade, resolve_sizes(cascade, sizes), 0, np.float64)
    ref = evaluate(cascade, inputs, sizes)["AV"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = fn(**{k: torch.tensor(v, dtype=torch.float32, device=device) for k, v in inputs.items()})
    assert np.abs(out["AV"].cpu().numpy() - ref).max() < 1e-4


@pytest.mark.parametrize("W,S", [(40, 4), (24, 37)])
def test_sinks_visit_the_sinks_and_the_window_and_skip_the_gap_between(W, S):
    """``m < S or p - W < m``: a union of two ranges of key blocks. The loop runs over their hull
    and skips the steps between them, so the visited blocks are exactly those the predicate
    meets (P = 200: ragged blocks); the GPU cost model counts the same blocks; the kernel
    agrees with the interpreter."""

    from backends.gpu.mapping import _steps

    P = M = 200
    fn = compile_cascade("examples/attention/sliding_window_sinks.ein", block_r=32,
                         block_c=32, W=W, S=S)
    body = _kernel_body(fn.source(P=P, M=M))
    assert body.count("for it in range(") == 1 and "a part of the union of ranges" in body
    plan = _plan(fn, P=P, M=M)
    low, full, bounds = plan
    rows = math.ceil(P / 32)
    seen = 0
    for pid in range(rows):
        steps = _visited(plan, pid)
        want = _expected(lambda p, m: m <= p and (m < S or p - W < m), pid * 32, pid * 32 + 31,
                         P, M, 32)
        assert steps == want
        seen += len(steps)
    assert seen < rows * (rows + 1) // 2  # fewer than causal's blocks: the gap is skipped
    phases = schedule(low, fn.last.config).phases
    assert _steps(low, phases[max(phases)][0], full, fn.last.config, rows) == seen
    assert _attention_error(fn, P, M) < 1e-4


def test_a_2d_neighbourhood_visits_the_rows_of_the_window_only():
    """``abs(p / X - m / X) <= R and ...``: floor divisions by a constant relax to the
    necessary ``abs(p - m) < (R + 1) * X`` (einsum_ir.relaxed), so the loop visits a superset of
    the key blocks the predicate meets, and far fewer than all; the kernel agrees with the
    interpreter."""


    P = M = 100
    fn = compile_cascade("examples/attention/neighborhood_2d.ein", block_r=16, block_c=16,
                         X=10, R=1)
    plan = _plan(fn, P=P, M=M)
    X, R = 10, 1
    total = 0
    for pid in range(math.ceil(P / 16)):
        steps = _visited(plan, pid)
        want = _expected(lambda p, m: abs(p // X - m // X) <= R and abs(p % X - m % X) <= R,
                         pid * 16, pid * 16 + 15, P, M, 16)
        assert want <= steps
        total += len(steps)
    assert total < math.ceil(P / 16) * math.ceil(M / 16) * 0.6
    assert _attention_error(fn, P, M) < 1e-4

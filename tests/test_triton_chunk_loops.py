"""Loops over the chunks of a written split: chunk sizes that are not powers of two, and the
skipping of chunks whose contribution is empty only where the recurrence keeps its state.

Both were found by the generality harness: chunk sizes 1 and 2 were refused ("must be a power of
two >= 16"), and a decayed recurrence ``T[n + 1] = 0.5 * T[n] + X`` under a causal mask skipped the
chunks past the diagonal, where the interpreter keeps decaying the state (a silent wrong result).
"""
import numpy as np
import pytest
import triton_lane  # noqa: E402,F401 (skips without torch/triton; sets TRITON_INTERPRET first)
import torch  # noqa: E402

from backends.gpu.bounds import loop_bounds  # noqa: E402
from backends.gpu.plan import Lowering, lowering_sizes  # noqa: E402
from backends.gpu.schedule import schedule  # noqa: E402
from einsum_ir.analysis.skipped_step import EMPTY, Const, State, _binary, _call  # noqa: E402
from backends.triton import compile_cascade  # noqa: E402
from einsum_ir import evaluate, random_inputs, resolve_sizes  # noqa: E402
from einsum_ir.parser import parse  # noqa: E402


def _chunked(m0: int, m: int, pred: str, decay: str) -> str:
    return f"""
rank P = 11, M = {m}, E = 3, M0 = {m0}
split M = M1 * M0
input X[p, m, e], Y[p, m]
output O[p, e], Z[p]
T1[p, e, m1] = sum[m0] X[p, m1 * M0 + m0, e] * Y[p, m1 * M0 + m0] where {pred}
T2[p, e, 0] = 0.0
T2[p, e, m1 + 1] = {decay}T2[p, e, m1] + T1[p, e, m1]
O[p, e] = T2[p, e, M1]
LM[p, m1] = max[m0] Y[p, m1 * M0 + m0] where {pred}
R[p, 0] = -inf
R[p, m1 + 1] = max(R[p, m1], LM[p, m1])
Z[p] = R[p, M1]
"""


def _check(text: str, seed: int = 0):
    cascade = parse(text)
    inputs = random_inputs(cascade, resolve_sizes(cascade, {}), seed)
    ref = evaluate(cascade, inputs, {})
    fn = compile_cascade(cascade)
    got = fn(**{k: torch.tensor(v, dtype=torch.float32) for k, v in inputs.items()})
    for name, value in ref.items():
        np.testing.assert_allclose(got[name].numpy(), value, rtol=2e-5, atol=2e-5, err_msg=name)
    return fn


def _first_loop(fn):
    fn.source()
    prepared, config = fn.prepared, fn.last.config
    full = lowering_sizes(prepared, resolve_sizes(prepared.source, {}), config.block_c, fn.params)
    low = Lowering(prepared.cascade, full, config, prepared.facts)
    phases = schedule(low, config).phases
    return loop_bounds(low, phases[min(phases)][0])


@pytest.mark.parametrize("m0,m", [(1, 12), (2, 13), (3, 13), (12, 30), (20, 13)])
def test_chunks_of_any_size_are_masked_tiles(m0, m):
    _check(_chunked(m0, m, "m1 * M0 + m0 != p", "0.5 * "))


@pytest.mark.parametrize("m0", [3, 16])
def test_a_decayed_state_is_stepped_through_chunks_past_the_diagonal(m0):
    fn = _check(_chunked(m0, 29, "m1 * M0 + m0 <= p", "0.5 * "))
    bounds = _first_loop(fn)
    assert bounds.hi == bounds.count and not bounds.notes  # every chunk is visited


def test_a_kept_state_still_skips_the_chunks_past_the_diagonal():
    fn = _check(_chunked(16, 29, "m1 * M0 + m0 <= p", ""))
    bounds = _first_loop(fn)
    assert bounds.hi != bounds.count and bounds.notes  # bounded by the predicate


def test_the_abstract_step_keeps_what_union_operations_keep():
    rd, rm = State("RD"), State("RM")
    prm = _call("exp", [_binary("-", rm, rm)])  # exp(RM[n] - RM[n + 1]) with RM kept
    assert prm == Const(1.0)
    assert _binary("+", _binary("*", prm, rd), EMPTY) == rd  # the online softmax's denominator
    assert _call("max", [rm, EMPTY]) == rm
    assert _binary("+", _binary("*", Const(0.5), rd), EMPTY) is None  # a decay changes it
    assert _binary("*", EMPTY, rd) is EMPTY and _binary("+", EMPTY, EMPTY) is EMPTY

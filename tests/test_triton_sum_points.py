"""A sum over no point is empty (the output's declared empty value), as in the interpreter: the
'met a point' companion of an additive reduction (MaskGen.any_point, PhaseGen._any_step), emitted
only where a reduction's points can all be masked. Triton's interpreter on the CPU."""
import numpy as np
import pytest
from triton_lane import torch  # noqa: F401 (sets TRITON_INTERPRET first)

from backends.triton import compile_cascade
from einsum_ir import evaluate, loads, random_inputs, resolve_sizes

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

HEAD = """
rank P = 6, M = 5, F = 4
input X[p, m], Y[p]
"""
# p = 0 has no m < p: its row is empty (a sum along a tile, and one streamed over m)
TILE = HEAD + "output T[p] empty -1.5\n\nT[p] = sum[m] X[p, m] where m < p\n"
STREAMED = """
rank M = 3, F = 6
input X[m, f]
output T[f] empty -1.5

T[f] = sum[m] X[m, f] where m < f
"""
BESIDE = HEAD + "output T[p] empty -1.5\n\nS[p] = sum[m] X[p, m] where m < p\nT[p] = 2 * S[p] + 1\n"
PAST_END = """
rank M = 1, E = 3
input I[m, e]
output T[e] empty -1.5

T[e] = sum[m] I[m + 1, e]
"""
# a union with a sum that may be empty: the sum adds 0 there, the other side's points stay
UNION = HEAD + "output T[p]\n\nS[p] = sum[m] X[p, m] where m < p\nT[p] = S[p] + Y[p]\n"
PLAIN = HEAD + "output T[p] empty -1.5\n\nT[p] = sum[m] X[p, m]\n"
EMPTY_ZERO = HEAD + "output T[p]\n\nT[p] = sum[m] X[p, m] where m < p\n"


def _run(text):
    cascade = loads(text)
    inputs = random_inputs(cascade, resolve_sizes(cascade, {}), 0, np.float32)
    want = evaluate(cascade, {k: v.astype(np.float64) for k, v in inputs.items()}, {})
    fn = compile_cascade(cascade)
    got = fn(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    for name, value in want.items():
        np.testing.assert_allclose(got[name].numpy(), value, rtol=1e-4, atol=1e-5)
    return fn.source()


@pytest.mark.parametrize("text", [TILE, STREAMED, BESIDE, PAST_END],
                         ids=["tile", "streamed", "through-a-map", "read-past-the-end"])
def test_a_sum_over_no_point_is_the_empty_value(text):
    source = _run(text)
    assert "has_" in source


@pytest.mark.parametrize("text", [TILE, STREAMED], ids=["tile", "streamed"])
def test_the_empty_row_is_the_declared_value_not_zero(text):
    cascade = loads(text)
    inputs = random_inputs(cascade, resolve_sizes(cascade, {}), 0, np.float32)
    got = compile_cascade(cascade)(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    assert got["T"][0].item() == -1.5 and got["T"][1].item() != -1.5


def test_a_streamed_sum_counts_the_steps_that_met_a_point():
    # the steps' 'any point' ORed across the loop: a row no step met is empty
    source = _run(STREAMED)
    assert "t_has = tl.maximum(t_has, tl.where(has_t, 1, 0))" in source


def test_a_sum_only_padding_masks_has_no_companion():
    assert "has_" not in _run(PLAIN)


def test_an_empty_zero_needs_no_companion_at_the_store():
    # the sum over no point is 0 already: the store skips the select, the count is dead code
    source = _run(EMPTY_ZERO)
    assert "has_" not in source and "_has" not in source


def test_a_union_adds_an_empty_sum_without_a_select():
    # Y's points make T's: S adds its 0 where it has none, and its count is dead code
    source = _run(UNION)
    assert "has_" not in source


# 0 / 0 (p <= 8) is an empty point: a row of them sums over no point (a tl.sum and a tl.dot)
NAN_ROWS = """
rank P = 16, M = 16, F = 16
input X[p, m], V[m, f]
output T[p] empty -1.5, U[p, f] empty -1.5

N[p, m] = max(p - 8, 0) * X[p, m] / max(p - 8, 0)
T[p] = sum[m] N[p, m]
U[p, f] = sum[m] N[p, m] * V[m, f]
"""


def test_a_sum_of_nan_points_only_is_empty():
    source = _run(NAN_ROWS)
    assert "tl.dot(" in source and "has_t = " in source and "has_u = " in source


# masks over both tl.dot operands' other axes: one existence would need a 3-D tile, so each
# operand's is taken (some m < p, some m < f; exact here, never an empty row that has points)
BOTH_OPERANDS = """
rank P = 16, M = 16, F = 16
input X[p, m], V[m, f]
output U[p, f] empty -1.5

A[p, m] = X[p, m] where m < p
B[m, f] = V[m, f] where m < f
U[p, f] = sum[m] A[p, m] * B[m, f]
"""


def test_a_dot_masked_on_both_operands_takes_each_operands_points():
    source = _run(BOTH_OPERANDS)
    assert "tl.dot(" in source and "has_u = " in source and "has_u_1 = " in source

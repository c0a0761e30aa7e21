"""Kernel programs of chunked recurrences (linear_causal_chunked's backward and smaller cascades):
a suffix sum's empty last step restored after a kernel boundary, a state phase whose sums do not
vary along a grid rank, and a recurrence's steps stored for a later kernel.

Triton's interpreter on the CPU, fp32, small ragged shapes (P = 7, C = 3: a partial last chunk),
against the float64 interpreter.
"""
import numpy as np
import pytest
from triton_lane import DEVICE, torch  # noqa: F401 (sets TRITON_INTERPRET first)

from backends.triton import compile_cascade
from backends.triton.program import Program, empty_points, restorable
from einsum_ir import evaluate, loads, random_inputs, resolve_sizes
from einsum_ir.printer import format_expr

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

CHUNKS = "rank P = 7, E = 4, C = 3\nrank M = P\nrank D = C\nrank N2 = N\nsplit P = N * C\n"


def _run_triton(cascade, sizes=None, **mapping):
    sizes = sizes or {}
    inputs = random_inputs(cascade, resolve_sizes(cascade, sizes), 0, np.float32)
    want = evaluate(cascade, {k: v.astype(np.float64) for k, v in inputs.items()}, sizes)
    fn = compile_cascade(cascade, **sizes, **mapping)
    got = fn(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()})
    for name, ref in want.items():  # fp32 sums: an error relative to the output's scale
        scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
        np.testing.assert_allclose(got[name].numpy(), ref, rtol=1e-4, atol=1e-5 * scale,
                                   err_msg=name)
    return fn


# A sum over chunks that does not vary along the key rank m, which the grid also spans (m and n
# are both grid ranks): its state phase used to split the chunks across programs and add the
# slices atomically, once per m (7x the sum).
SUM_ACROSS_A_GRID_RANK = CHUNKS + """input dZ[n, e], X[n, d, e]
output dK[m, e]
A[n, e] = sum[n2] dZ[n2, e] where n2 > n
T[n, d, e] = A[n, e] * X[n, d, e]
dK[m, e] = T[m / C, m % C, e]
"""


def test_a_state_sum_that_a_grid_rank_does_not_index_is_added_once():
    fn = _run_triton(loads(SUM_ACROSS_A_GRID_RANK, "grid_rank.ein"))
    assert not isinstance(fn.last, Program)  # one kernel program: the state phase, then dK


# The suffix sum of the running-sum rule (einsum_ir/autodiff): no chunk follows the last one,
# so A[N - 1] is empty; a kernel boundary would write it as 0. Its existence is a predicate over
# its own index once n2 is eliminated: n + 1 <= N2 - 1.
SUFFIX = CHUNKS + """input Z[n, e], V[m, e]
output Y[m, e]
A[n, e] = sum[n2] Z[n2, e] where n2 > n
Y[m, e] = max(A[m / C, e], V[m, e])
"""


def test_a_suffix_sums_empty_last_step_is_restored_after_a_boundary():
    cascade = loads(SUFFIX, "suffix.ein")
    sizes = resolve_sizes(cascade, {})
    holes = empty_points(cascade, sizes)
    assert "A" in holes
    assert format_expr(restorable(cascade, sizes, holes)["A"]) == "n + 1 <= N2 - 1"

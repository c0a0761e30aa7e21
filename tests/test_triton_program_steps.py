"""Kernel programs of chunked recurrences (linear_causal_chunked's backward and smaller cascades):
a suffix sum's empty last step restored after a kernel boundary, a state phase whose sums do not
vary along a grid rank, and a recurrence's steps stored for a later kernel.

Triton's interpreter on the CPU, fp32, small ragged shapes (P = 7, C = 3: a partial last chunk),
against the float64 interpreter.
"""
from pathlib import Path

import numpy as np
import pytest
from triton_lane import DEVICE, torch  # noqa: F401 (sets TRITON_INTERPRET first)

from backends.torch_op import native_op
from backends.triton import compile_cascade, torch_ref
from backends.triton.program import Program, empty_points, restorable
from einsum_ir import evaluate, load, loads, random_inputs, resolve_sizes
from einsum_ir.autodiff import gradient
from einsum_ir.errors import CascadeError
from einsum_ir.printer import format_expr
from test_triton_program import _run_triton

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

CHUNKS = "rank P = 7, E = 4, C = 3\nrank M = P\nrank D = C\nrank N2 = N\nsplit P = N * C\n"


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
    fn = _run_triton(loads(SUM_ACROSS_A_GRID_RANK, "grid_rank.ein"), {})
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


def test_an_intermediate_named_x_is_restorable_too():
    # the probe cascade that checks a predicate named its input X: a clash with the tensor
    cascade = loads(SUFFIX.replace("A[", "X["), "suffix_x.ein")
    sizes = resolve_sizes(cascade, {})
    assert "X" in restorable(cascade, sizes, empty_points(cascade, sizes))


# A chunked state read backwards in one kernel: the loop runs the recurrence forwards and the
# reader's chunks backwards (chunk N - 1 - it at step it). The chunk's rows were stored with the
# bound of p alone (n * C + c < P), so a block of c wider than C wrote the next chunk's rows too,
# which a later step (an earlier chunk) overwrote with its own values.
CHUNK_BACKWARDS = """rank P = 7, E = 4, F = 3, C = 3
rank M = P
rank D = C
split P = N * C
input K[m, e], V[m, f], Q[p, e]
output O[p, f]

KVC[n, e, f] = sum[d] K[n * C + d, e] * V[n * C + d, f]
S[0, e, f] = 0
S[n + 1, e, f] = S[n, e, f] + KVC[n, e, f]
XC[n, c, f] = sum[e] Q[n * C + c, e] * S[N - 1 - n, e, f]
O[p, f] = XC[p / C, p % C, f]
"""


def test_a_chunks_rows_are_stored_within_the_chunk():
    fn = _run_triton(loads(CHUNK_BACKWARDS, "chunk_backwards.ein"), {})
    assert not isinstance(fn.last, Program)


# ------------------------------------------------------------------ steps through memory

# A running sum read backwards (S[N - 1 - n]), after each step (S[n + 1]) and at its end: one
# kernel refuses (its loop has only the state at n and n + 1), and a kernel that reads the steps
# cannot run the recurrence itself. The first kernel runs it and stores its steps, in the three
# forms the reads take (before each step, after each step, the end); the second reads them.
REVERSED = """rank P = 5, N = 6, F = 3
input X[p, n, f]
output Y[p, n, f]

S[p, 0, f] = 0
S[p, n + 1, f] = S[p, n, f] + X[p, n, f]
Y[p, n, f] = S[p, N - 1 - n, f] * S[p, n + 1, f] + S[p, N, f]
"""


def test_one_kernel_refuses_a_recurrence_read_backwards():
    fn = compile_cascade(loads(REVERSED, "reversed.ein"))
    fn.multi = False
    with pytest.raises(CascadeError, match="cannot map onto its recurrence loop"):
        fn.source()


def test_a_recurrences_steps_pass_to_a_later_kernel():
    fn = _run_triton(loads(REVERSED, "reversed.ein"), {})
    first, second = fn.last.groups
    assert first.writes == ("S_steps", "S_next", "S_end")
    assert "S" in second.reads and {d.name for d in second.cascade.inputs} == set(first.writes)
    assert [st.tensor for st in second.steps] == ["S"]


def test_the_stored_forms_are_those_the_readers_take():
    from backends.gpu.steps import step_store

    cascade = loads(REVERSED.replace("Y[p, n, f] = S[p, N - 1 - n, f] * S[p, n + 1, f] + "
                                     "S[p, N, f]", "Y[p, n, f] = S[p, N, f] * X[p, n, f]"),
                    "final.ein")
    readers = [e for e in cascade.einsums if e.name != "S"]
    store = step_store(cascade, "S", readers)
    assert store.forms == (("end", "S_end"),)  # read at its end only: no step axis
    assert [d.axes for d in store.decls()] == [("p", "f")]
    bad = loads(REVERSED.replace("S[p, n + 1, f] + S[p, N, f]", "S[p, n + 1, f]")
                .replace("S[p, N - 1 - n, f]", "S[p, N - n, f]"), "shifted.ein")
    store = step_store(bad, "S", [e for e in bad.einsums if e.name != "S"])
    assert store.forms == (("next", "S_next"),)  # N - n and n + 1 are both in 1 .. N
    last = loads(REVERSED.replace("S[p, N - 1 - n, f]", "S[p, N - 1, f]"), "last.ein")
    store = step_store(last, "S", [e for e in last.einsums if e.name != "S"])
    assert dict(store.forms).keys() == {"steps", "next", "end"}  # N - 1: a step before N
    with pytest.raises(CascadeError, match="no stored form"):
        two = loads(REVERSED.replace("S[p, N - 1 - n, f]", "S[p, n / 2, f]"), "half.ein")
        step_store(two, "S", [e for e in two.einsums if e.name != "S"])


def test_a_recurrence_with_empty_points_does_not_pass():
    # rows p >= 3 of every step after the first are empty: stored steps would hold zeros there
    text = REVERSED.replace("+ X[p, n, f]\n", "+ X[p, n, f] where p < 3\n")
    assert "where p < 3" in text
    with pytest.raises(CascadeError) as info:
        compile_cascade(loads(text, "holes.ein")).source()
    # no cut passes S, so the single kernel's refusal stands
    assert "S is read at an index the Triton lowering cannot map" in info.value.render()


# Chunked: the state of linear attention over chunks of C = 3 positions (P = 7: the last chunk
# partial), read by the chunks at the chunk before each (S[n]) and backwards (S[N - 1 - n]): one
# kernel refuses; the later kernel reads steps 0 .. N - 1 only, so only those are stored.
CHUNKED = """rank P = 7, E = 4, F = 3, C = 3
rank M = P
rank D = C
split P = N * C
input K[m, e], V[m, f], Q[p, e]
output O[p, f]

KVC[n, e, f] = sum[d] K[n * C + d, e] * V[n * C + d, f]
S[0, e, f] = 0
S[n + 1, e, f] = S[n, e, f] + KVC[n, e, f]
XC[n, c, f] = sum[e] Q[n * C + c, e] * (S[N - 1 - n, e, f] + S[n, e, f])
O[p, f] = XC[p / C, p % C, f]
"""


def test_chunked_state_read_backwards_passes_its_steps_only():
    fn = _run_triton(loads(CHUNKED, "chunked.ein"), {})
    assert [g.writes for g in fn.last.groups] == [("S_steps",), ()]


def test_the_programs_module_stores_and_reads_the_steps():
    from backends.triton.api import load_module

    cascade = loads(REVERSED, "reversed.ein")
    fn = compile_cascade(cascade)
    source = fn.source()
    assert "S_steps = torch.zeros" not in source and "S_steps" in source
    inputs = random_inputs(cascade, resolve_sizes(cascade, {}), 1, np.float32)
    want = evaluate(cascade, {k: v.astype(np.float64) for k, v in inputs.items()}, {})
    got = load_module(source, cascade.name).forward(X=torch.from_numpy(inputs["X"]))
    np.testing.assert_allclose(got["Y"].numpy(), want["Y"], rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ linear_causal_chunked

LCC = Path(__file__).resolve().parent.parent / "examples" / "attention" / \
    "linear_causal_chunked.ein"
LCC_SIZES = dict(B=1, H=2, P=7, C=3, E=4, F=4)  # 3 chunks, the last one of 1 position


def test_the_chunked_gradient_runs_as_kernels_and_matches_float64():
    back = gradient(load(LCC)).backward
    fn = _run_triton(back, LCC_SIZES)
    assert isinstance(fn.last, Program)
    # the suffix sums of the running sums' rule pass through memory, their last chunk restored
    assert {"dS_after", "dZ_after"} & {t for g in fn.last.groups for t in g.writes}


def test_the_chunked_op_runs_its_backward_on_triton_and_matches_autograd():
    op = native_op(LCC, C=3)
    assert "backward: Triton kernels (the cascade lowers as" in repr(op)
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 2, 7, 4, generator=g).requires_grad_() for _ in range(3))
    out = op(q, k, v)
    ref = torch_ref.chunked_causal_linear_attention(q, k, v, C=3)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    seed = torch.randn_like(out)
    for a, b in zip(torch.autograd.grad(out, (q, k, v), seed),
                    torch.autograd.grad(ref, (q, k, v), seed), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert "backward: Triton kernels" in repr(op)  # the call's sizes lowered too

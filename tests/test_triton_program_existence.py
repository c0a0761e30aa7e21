"""Kernel programs carry an intermediate's existence through memory where no predicate over its
indices states it (backends.gpu.partition.StoredExistence): the writing kernel stores ``T_exists``
beside ``T`` and the reading one restores ``T = T_stored where T_exists > 0``, so a cut is
possible at any tensor whose empty points come from a reduction's mask or from the data."""
import numpy as np
import pytest
import triton_lane  # noqa: F401 (skips without torch/triton; sets TRITON_INTERPRET first)

from backends.triton import compile_cascade
from backends.triton.program import Program
from einsum_ir import evaluate, loads, random_inputs, resolve_sizes

CASES = {
    # T2[m] exists where some f >= M - 1 - m meets the mask of T1: a fact about T1's indices,
    # not T2's; T4 reads T2 at m and at M - 1 - m, which one kernel cannot
    "reduction_mask": """rank M = 11, E = 2, F = 5
input I1[m, e, f]
output T4[m]
T1[m, e, f] = elu(I1[m, e, f]) where m <= f
T2[m, e] = sum[f] T1[M - 1 - m, e, f] * T1[M - 1 - m, e, f]
T3[m] = sum[e] T2[m, e] * 0.125
T4[m] = tanh(T3[m] * T3[M - 1 - m]) + m * 0.25
""",
    # the data decides which rows of T3 exist (no predicate over indices can)
    "data_mask": """rank M = 11, E = 2, F = 5
input I1[m, e, f], V[m, f]
output T4[m] empty -1
T1[m, e, f] = I1[m, e, f] where V[m, f] > 0.8
T2[m, e] = sum[f] T1[M - 1 - m, e, f]
T3[m] = sum[e] T2[m, e]
T4[m] = T3[m] - T3[M - 1 - m]
""",
}


def _run(cascade, seed: int, user_sizes=None):
    """(the compiled cascade, the interpreter's outputs, the kernels' outputs) on fp32 inputs."""
    import torch

    fn = compile_cascade(cascade)
    sizes = resolve_sizes(cascade, {})
    inputs = random_inputs(cascade, sizes, seed, np.float64)
    want = evaluate(cascade, inputs, sizes if user_sizes is None else user_sizes)
    got = fn(**{k: torch.tensor(v, dtype=torch.float32) for k, v in inputs.items()})
    return fn, want, got


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_intermediate_whose_existence_only_memory_can_hold_is_cut_and_matches(name):

    cascade = loads(CASES[name], f"{name}.ein")
    fn, want, got = _run(cascade, 3)
    assert isinstance(fn.last, Program)
    flags = [w for g in fn.last.groups for w in g.writes if w.endswith("_exists")]
    assert flags  # some intermediate passes with its existence beside it
    source = fn.source()
    assert all(f"where {f}[" in source for f in flags)  # and its reader restores it
    assert "T4_exists" not in source  # an output keeps its declared empty value, no flag
    for out, ref in want.items():
        assert np.isnan(ref).sum() == 0
        np.testing.assert_allclose(got[out].numpy(), ref, rtol=1e-4, atol=1e-5)
    if name == "data_mask":  # some rows are empty, and they come back empty
        assert (want["T4"] == -1).any()


# T3 = T2 / T2 is 0 / 0 (an empty point) where T2 = relu(..) is 0: values make the emptiness,
# which no existence analysis sees; T4 reads T3 at [p / 2, M - 1 - m], so T3 passes through memory
NAN_MADE = """rank P = 6, M = 5, F = 2
input I1[p, m, f]
output T5[m, f] empty -1.5
T1[p, f] = max[m] I1[p, m, f]
T2[p, m, f] = relu(I1[p, m, f] - T1[p, f] + 0.5)
T3[p, m, f] = T2[p, m, f] / T2[p, m, f]
T4[p, m, f] = T3[p / 2, M - 1 - m, f]
T5[m, f] = sum[p] T4[p, m, f]
"""


def test_an_intermediate_an_operation_may_make_nan_in_stays_nan_in_memory():
    import math


    cascade = loads(NAN_MADE, "nan_made.ein")
    fn, want, got = _run(cascade, 3)
    assert isinstance(fn.last, Program)
    decls = {d.name: d for g in fn.last.groups for d in g.cascade.inputs + g.cascade.outputs}
    written = [t for g in fn.last.groups for t in g.writes]
    assert written and all(math.isnan(decls[t].empty) for t in written if t.startswith("T3"))
    assert decls["T5"].empty == -1.5  # an output keeps its declared empty value
    assert (want["T5"] == -1.5).any()  # some sums meet only NaN-made empty points
    np.testing.assert_allclose(got["T5"].numpy(), want["T5"], rtol=1e-4, atol=1e-5)


def test_infinities_that_meet_may_make_nan_and_a_read_output_carries_its_existence():
    """``inf + -inf`` in a running sum is NaN (an empty point) by the cascade's meaning: the
    analysis says so from the infinite literal, and an output a later kernel reads carries
    ``T_exists`` beside it (memory holds its declared empty value, which would read as a value)."""

    from backends.gpu.nans import may_be_infinite, may_make_nan
    from einsum_ir.ir import Access, Name

    from pathlib import Path

    text = Path("tests/harness/regressions/"
                "triton_inf_plus_ninf_output_read_by_a_later_kernel.ein").read_text()
    cascade = loads(text, "inf_meets.ein")
    assert may_be_infinite(cascade, Access("T3", (Name("e"), Name("f"), Name("m1"))))
    assert may_make_nan(cascade, "T10") and not may_make_nan(cascade, "T3")
    fn, want, got = _run(cascade, 0, {})
    assert isinstance(fn.last, Program)
    assert any(t.startswith("T10_exists") for g in fn.last.groups for t in g.writes)
    for name, ref in want.items():
        np.testing.assert_allclose(got[name].numpy(), ref, rtol=1e-5, atol=1e-6)


def test_softmax_is_not_thought_to_make_nan_before_its_division():
    """A divisor made of sizes (``sqrt(E)``) is a positive constant, and the max's -inf meets
    no other infinity in ``s - m``: the 3-pass softmax's scores, max, numerator and denominator
    stay ``empty 0`` in memory; the division by the denominator (0 / 0 of an empty row) may
    make a NaN."""
    from backends.gpu.nans import may_make_nan
    from einsum_ir import load

    cascade = load("examples/attention/mha_3pass.ein")
    assert {e.name: may_make_nan(cascade, e.name) for e in cascade.einsums} == {
        "QK": False, "GM": False, "SN": False, "SD": False, "A": True, "AV": True}

"""Multi-kernel lowering (backends/gpu/partition.py, reassociate.py, backends/triton/program.py):
cascades the single-kernel lowering refuses run as several kernel programs through global memory
and match the interpreter; gradients that fell back to the interpreter now run on Triton.

Triton's interpreter on the CPU, fp32, small ragged shapes (P != M, not powers of two).
"""
from pathlib import Path

import numpy as np
import pytest
from triton_lane import DEVICE, torch  # noqa: F401 (sets TRITON_INTERPRET first)

from backends.gpu.partition import Group, partition
from backends.gpu.reassociate import split_reductions
from backends.gpu.views import PermuteView
from backends.triton import compile_cascade
from backends.triton.program import Program, empty_points, restorable
from einsum_ir import evaluate, load, loads, random_inputs, resolve_sizes
from einsum_ir.autodiff import gradient
from einsum_ir.errors import CascadeError


pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
ROOT = Path(__file__).resolve().parent.parent
EX, CAT, DATA = ROOT / "examples" / "attention", ROOT / "tests" / "data" / "catalogue", \
    ROOT / "tests" / "data"

# Agent attention whose agents past NV attend to no key: AV is empty there, and the query side
# reads exp(AV), so an empty point written as 0 would add exp(0) = 1 where the interpreter adds
# nothing. The two softmaxes stream different ranks, so the cascade is cut, at AV or later.
MASKED_AGENTS = """
rank H = 2, P = 7, M = 9, E = 4, F = 3, NA = 5
param NV = 3
input  Q[h,p,e], K[h,m,e], V[h,m,f], Ag[h,na,e]
output O[h,p,f]

SA[h,na,m]  = sum[e] Ag[h,na,e] * K[h,m,e] / sqrt(E) where na < NV
NA1[h,na,m] = exp(SA[h,na,m] - (max[m] SA[h,na,m]))
AV[h,na,f]  = sum[m] NA1[h,na,m] * V[h,m,f] / (sum[m] NA1[h,na,m])
SQ[h,p,na]  = sum[e] Q[h,p,e] * Ag[h,na,e] / sqrt(E)
NQ[h,p,na]  = exp(SQ[h,p,na] - (max[na] SQ[h,p,na]))
O[h,p,f]    = sum[na] NQ[h,p,na] * exp(AV[h,na,f]) / (sum[na] NQ[h,p,na])
"""


def _reference(cascade, sizes, seed=0):
    inputs = random_inputs(cascade, resolve_sizes(cascade, sizes), seed, np.float32)
    want = evaluate(cascade, {k: v.astype(np.float64) for k, v in inputs.items()}, sizes)
    return inputs, want


def _run_triton(cascade, sizes, **mapping):
    inputs, want = _reference(cascade, sizes)
    fn = compile_cascade(cascade, **sizes, **mapping)
    got = fn(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()})
    for name, ref in want.items():  # fp32 sums: an error relative to the output's scale
        scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
        np.testing.assert_allclose(got[name].numpy(), ref, rtol=1e-4, atol=1e-5 * scale,
                                   err_msg=name)
    return fn


def _interpret_groups(groups, inputs, sizes):
    """The groups run one after the other by the interpreter, through their declared outputs
    (empty points as the declaration's value), as the kernels pass them through memory."""
    env = dict(inputs)
    for g in groups:
        ins = {d.name: env[g.source_of(d.name)] for d in g.cascade.inputs}
        env.update(evaluate(g.cascade, ins, sizes))
    return env


# ------------------------------------------------------------------ the partition, pure


def _cut_between_softmaxes(group: Group) -> None:
    """A stand-in lowering that refuses any group holding the agents' scores and the output."""
    names = {e.name for e in group.cascade.einsums}
    if "SA" in names and "O" in names:
        raise CascadeError("both softmaxes in one kernel")


def test_the_partition_restores_an_intermediates_empty_points():
    cascade = loads(MASKED_AGENTS)
    sizes = resolve_sizes(cascade, {})
    inputs, want = _reference(cascade, {})
    holes = empty_points(cascade, sizes)
    assert "AV" in holes
    restore = restorable(cascade, sizes, holes)
    assert "AV" in restore  # AV exists where na < NV: its definition's predicate
    groups = partition(cascade, _cut_between_softmaxes, restore)
    assert len(groups) == 2 and "AV" in groups[0].writes and "AV" in groups[1].reads
    assert "AV_stored" in {d.name for d in groups[1].cascade.inputs}
    got = _interpret_groups(groups, inputs, {})
    np.testing.assert_allclose(got["O"], want["O"], rtol=1e-5, atol=1e-6)
    # without the predicate the zeros written for the empty agents count: the test can fail
    lossy = _interpret_groups(partition(cascade, _cut_between_softmaxes), inputs, {})
    assert not np.allclose(lossy["O"], want["O"], rtol=1e-3, atol=1e-3)


def test_nested_reductions_are_exact():
    cascade = gradient(load(CAT / "D1_mha.ein")).backward
    nested = split_reductions(cascade)
    assert len(nested.einsums) > len(cascade.einsums)
    assert all(len(e.reduced) <= 1 for e in nested.einsums)
    inputs, want = _reference(cascade, {})
    got = evaluate(nested, {k: v.astype(np.float64) for k, v in inputs.items()}, {})
    for name, ref in want.items():
        np.testing.assert_allclose(got[name], ref, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ forward cascades on Triton


def test_a_sum_over_several_indices_nests_as_written_among_equals():
    # each of b, p, m inner keeps three indices: m (written last) goes innermost and b, which a
    # kernel maps to its grid, is summed last over dL[b, h] instead of first over every (p, m)
    cascade = loads("rank B = 2, H = 2, P = 3, M = 4\ninput A[b,h,p,m]\noutput D[h]\n"
                    "D[h] = sum[b, p, m] A[b,h,p,m] * (p - m)\n", "sum3.ein")
    assert [e.reduced for e in split_reductions(cascade).einsums] == [("m",), ("p",), ("b",)]


def test_agent_attention_runs_as_a_kernel_program_the_partition_found():
    fn = _run_triton(load(CAT / "H1_agent.ein"), {})  # one kernel refuses: two sequence ranks
    assert isinstance(fn.last, Program)
    n = len(fn.last.groups)
    source = fn.source()
    assert f"kernel program {n} of {n}" in source and source.count("@triton.jit") >= n


def test_masked_agents_cut_at_av_run_on_triton_kernels():
    """The partition's groups (cut at AV, which has empty points) as Triton kernels: AV goes
    through memory as AV_stored and its empty points come back by ``where na < NV``."""
    cascade = loads(MASKED_AGENTS)
    sizes = resolve_sizes(cascade, {})
    groups = partition(cascade, _cut_between_softmaxes,
                       restorable(cascade, sizes, empty_points(cascade, sizes)))
    inputs, want = _reference(cascade, {})
    env = {k: torch.from_numpy(v) for k, v in inputs.items()}
    for g in groups:
        fn = compile_cascade(g.cascade)
        env.update(fn(**{d.name: env[g.source_of(d.name)] for d in g.cascade.inputs}))
    np.testing.assert_allclose(env["O"].numpy(), want["O"], rtol=1e-4, atol=1e-4)


def test_agent_attention_with_masked_agents_matches_the_interpreter():
    # one kernel refuses to sum AV over its empty agents (backends/triton/empties.py): cut at AV
    _run_triton(loads(MASKED_AGENTS), {})


def test_chained_softmaxes_of_agent_attention_match_the_interpreter():
    _run_triton(load(DATA / "agent_attention.ein"), dict(P=10, M=13, N=5, E=8, F=8))


@pytest.mark.parametrize("name", ["M9_axial", "D6_mixture_of_heads"])
def test_cascades_that_read_an_intermediate_in_another_layout_run_through_a_view(name):
    fn = _run_triton(load(CAT / f"{name}.ein"), {})
    assert isinstance(fn.last, Program) and len(fn.last.groups) == 2
    views = [v for g in fn.last.groups for v in g.views]
    assert views and all(isinstance(v, PermuteView) for v in views)


FOUR_RANKS = """rank H = 2, P = 7, M = 9, E = 4, F = 3, G = 2
input  Q[h,p,e], K[h,m,e], V[h,m,f], U[h,m,g]
output O[h,p,e,f,g]
O[h,p,e,f,g] = max[m] Q[h,p,e] * K[h,m,e] * V[h,m,f] * U[h,m,g]
"""


def test_a_cascade_no_partition_lowers_is_refused_at_its_einsum():
    # O's max spans p, m, e, f, g in one Einsum: four tile ranks even with the rows on the grid
    # and 3-D tiles, and no cut helps (the same sum over e as its own Einsum is cut and lowers)
    # (R2_split_kv_lse, refused here before, lowers with 3-D tiles: tests/test_triton_tiles3d.py)
    fn = compile_cascade(loads(FOUR_RANKS, "four.ein"))
    with pytest.raises(CascadeError) as info:
        fn.source()
    text = info.value.render()
    assert "four.ein:4:" in text and "4-D tile" in text


# ------------------------------------------------------------------ gradient cascades on Triton

GRADIENTS = [  # (cascade file, sizes): the backward fell back to the interpreter before
    (EX / "linear.ein", dict(H=2, P=10, M=13, E=8, F=8)),
    (EX / "linear_relu.ein", dict(H=2, P=11, M=9, E=8, F=8)),
    (CAT / "L1_transnormer.ein", {}),
    (CAT / "L4_hedgehog.ein", {}),
    (CAT / "D1_mha.ein", {}),
    (CAT / "D3_alibi_causal.ein", {}),
    (CAT / "M1_sinks.ein", {}),
    (CAT / "M5_neighbourhood_2d.ein", {}),
    (CAT / "X1_causal_cross.ein", {}),
    (CAT / "H1_agent.ein", {}),
    (EX / "gqa.ein", dict(H=4, G=2, P=10, M=13, E=8, F=8)),  # head sums read through views
    (CAT / "D2_gqa.ein", {}),
    (EX / "cross_bias_mask.ein", dict(H=2, P=10, M=11, E=8, F=8)),  # the bias's head sum
    (EX / "decayed_linear.ein", dict(H=2, P=10, M=11, E=8, F=8)),  # dL = sum[b, p, m] ...
    (EX / "alibi.ein", dict(H=2, P=9, M=11, E=8, F=8)),  # dSlope = sum[b, p, m] ... (p - m)
    (EX / "alibi_masked_bias.ein", dict(H=2, P=9, M=11, E=8, F=8)),
]


@pytest.mark.parametrize("path,sizes", GRADIENTS, ids=[p.stem for p, _ in GRADIENTS])
def test_gradient_cascades_compile_and_match_the_interpreter(path, sizes):
    _run_triton(gradient(load(path)).backward, sizes)


def test_the_linear_gradient_splits_dq_from_dk_and_dv():
    fn = _run_triton(gradient(load(EX / "linear.ein")).backward, dict(H=2, P=10, M=13, E=8, F=8))
    outputs = [{d.name for d in g.cascade.outputs} for g in fn.last.groups]
    assert len(outputs) >= 2  # dQ reduces over keys, dK over queries: never one kernel
    assert all(not {"dQ", "dK"} <= o for o in outputs)
    assert fn.last.plan.describe().startswith(f"{len(outputs)} kernel programs")


def test_gqa_head_sums_read_the_partial_gradients_through_views():
    fn = compile_cascade(gradient(load(EX / "gqa.ein")).backward, H=4, G=2)
    fn.source(P=10, M=13, E=8, F=8)
    viewed = [v for g in fn.last.groups for v in g.views]
    assert {v.tensor for v in viewed} == {"dK_QK_at", "dV_AV_at"}
    assert all((v.outer, v.inner, v.size) == ("hk", "g2", "G") for v in viewed)


def test_the_gqa_op_runs_its_backward_on_triton_and_matches_autograd():
    from backends.torch_op import native_op
    from backends.triton import torch_ref

    op = native_op(EX / "gqa.ein", G=2)
    assert "backward: Triton kernels (the cascade lowers as" in repr(op)
    g = torch.Generator().manual_seed(3)
    q = torch.randn(1, 4, 10, 8, generator=g).requires_grad_()
    k, v = (torch.randn(1, 2, 13, 8, generator=g).requires_grad_() for _ in range(2))
    out, ref = op(q, k, v), torch_ref.softmax_attention(q, k, v, G=2)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    seed = torch.randn_like(out)
    for a, b in zip(torch.autograd.grad(out, (q, k, v), seed),
                    torch.autograd.grad(ref, (q, k, v), seed), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_a_gradient_differentiated_as_written_runs_as_a_program():
    # differentiated as written (not at its final values): reverse recurrences (dRD_rev, ...);
    # the cut passes recurrences' steps between kernels and the existence of intermediates
    # whose empty points no predicate over their indices states (T_exists), so it lowers
    fn = _run_triton(gradient(load(EX / "mha_1pass.ein"), save_lse=False).backward,
                     dict(P=10, M=40, E=8, F=8, M0=16))
    assert isinstance(fn.last, Program)
    assert any(w.endswith("_exists") for g in fn.last.groups for w in g.writes)


def test_a_program_runs_in_fp16_with_fp32_intermediates():
    cascade = gradient(load(EX / "gqa.ein")).backward
    sizes = dict(H=4, G=2, P=10, M=13, E=16, F=16)
    inputs = random_inputs(cascade, resolve_sizes(cascade, sizes), 0, np.float32)
    inputs["LSE"] = np.full_like(inputs["LSE"], 3.0)  # a plausible log-sum-exp: values O(1)
    want = evaluate(cascade, {k: v.astype(np.float64) for k, v in inputs.items()}, sizes)
    fn = compile_cascade(cascade, **sizes)
    got = fn(**{k: torch.from_numpy(v).half() for k, v in inputs.items()})
    assert isinstance(fn.last, Program)
    for name, ref in want.items():
        assert got[name].dtype == torch.float16
        np.testing.assert_allclose(got[name].float().numpy(), ref, rtol=1e-2, atol=1e-2)


def test_an_output_a_later_kernel_reads_is_handed_on():
    text = (CAT / "H1_agent.ein").read_text().replace("output O[h,p,f]",
                                                        "output AV[h,na,f], O[h,p,f]")
    fn = _run_triton(loads(text, "agent_av.ein"), {})
    assert any("AV" in g.reads for g in fn.last.groups)


# A softmax numerator read at another row: E[p / 2, m, f] needs the maximum S at p / 2, but the
# program of row p streams m and has finished only S[p, f]. The lowering used to evaluate S's own
# index inside the inlined E at the inlined binding too (p / 2 against p / 2), took S[p] and gave
# wrong values.
SHIFTED_ROW = """
rank P = 6, M = 5, F = 2
input X[p, m, f]
output Y[p, m, f]

S[p, f]    = max[m] X[p, m, f]
E[p, m, f] = exp(X[p, m, f] - S[p, f])
Y[p, m, f] = E[p / 2, M - 1 - m, f] + E[p, m, f]
"""


def test_a_finished_reduction_inlined_at_another_row_is_refused_by_one_kernel():
    cascade = loads(SHIFTED_ROW, "shifted.ein")
    single = compile_cascade(cascade)
    single.multi = False
    with pytest.raises(CascadeError, match="S is finished in a loop and read here at a shifted"):
        single(X=torch.rand(6, 5, 2))


def test_a_finished_reduction_inlined_at_another_row_runs_as_a_program():
    fn = _run_triton(loads(SHIFTED_ROW, "shifted.ein"), {})
    assert isinstance(fn.last, Program) and "E" in fn.last.groups[0].writes

"""Backward kernels of the online softmaxes (mha_1pass, mha_2pass), whose gradients as written
read every step of the forward recurrences (einsum_ir/autodiff/online.py, unsplit.py).

The gradient is taken of the final-value form (the running max's end is the row max, a rescaled
running sum's end the plain sum), so it saves the log-sum-exp and reads no step of any
recurrence: it lowers to Triton like the deferred form's. Triton's interpreter on the CPU, fp32,
ragged shapes (P = M = 13, E = F = 8, a partial last key tile), against the float64 interpreter
and eager autograd.
"""
from pathlib import Path

import numpy as np
import pytest
from triton_lane import DEVICE, torch  # noqa: F401 (sets TRITON_INTERPRET first)

from backends.triton import compile_cascade, torch_ref
from einsum_ir import evaluate, load, loads, random_inputs, resolve_sizes
from einsum_ir.autodiff import gradient
from einsum_ir.autodiff.online import collapse
from einsum_ir.ir import Role
from einsum_ir.verifier import analyze

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
EX = Path(__file__).resolve().parent.parent / "examples" / "attention"
ONLINE = ("mha_1pass", "mha_2pass")
SIZES = dict(B=1, H=2, P=13, M=13, E=8, F=8, M0=4)  # M1 = 4 tiles, the last one of 1 key


@pytest.mark.parametrize("name", ONLINE)
def test_the_gradient_reads_no_step_of_a_recurrence(name):
    result = gradient(load(EX / f"{name}.ein"))
    back = result.backward
    assert result.saved == ("LSE",)
    assert all(e.role is Role.DEF for e in back.einsums)
    assert all(len(e.reduced) <= 1 for e in back.einsums)  # over m, not over m1 and m0
    assert not {"RM", "RD", "RNV", "LM", "PRM"} & {a.tensor for e in back.einsums
                                                  for a in e.reads()}
    # the forward keeps its recurrences (one pass) and saves the LSE from their ends
    forward = result.forward
    assert sum(e.role is Role.UPDATE for e in forward.einsums) == \
        sum(e.role is Role.UPDATE for e in load(EX / f"{name}.ein").einsums)


@pytest.mark.parametrize("name", ONLINE)
def test_the_backward_runs_as_triton_kernels_and_matches_float64(name):
    back = gradient(load(EX / f"{name}.ein")).backward
    sizes = resolve_sizes(back, SIZES)
    inputs = random_inputs(back, sizes, 5, np.float32)
    # a consistent LSE: the forward's, at float64
    fwd = gradient(load(EX / f"{name}.ein")).forward
    inputs["LSE"] = evaluate(fwd, {k: inputs[k].astype(np.float64) for k in ("Q", "K", "V")},
                             SIZES)["LSE"].astype(np.float32)
    want = evaluate(back, {k: v.astype(np.float64) for k, v in inputs.items()}, SIZES)
    fn = compile_cascade(back, **SIZES)
    got = fn(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()})
    for grad in ("dQ", "dK", "dV"):
        scale = max(1.0, float(np.abs(want[grad]).max()))
        np.testing.assert_allclose(got[grad].numpy(), want[grad], rtol=1e-4, atol=1e-5 * scale,
                                   err_msg=grad)
    assert "@triton.jit" in fn.source(**SIZES)


@pytest.mark.parametrize("name", ONLINE)
def test_the_op_runs_both_directions_on_triton_and_matches_autograd(name):
    from backends.torch_op import native_op

    op = native_op(EX / f"{name}.ein", M0=4)
    text = repr(op)
    assert "forward: Triton kernels" in text and "backward: Triton kernels" in text
    g = torch.Generator().manual_seed(7)
    q, k, v = (torch.randn(1, 2, 13, 8, generator=g).requires_grad_() for _ in range(3))
    out, ref = op(q, k, v), torch_ref.softmax_attention(q, k, v)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    seed = torch.randn_like(out)
    for a, b in zip(torch.autograd.grad(out, (q, k, v), seed),
                    torch.autograd.grad(ref, (q, k, v), seed), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# The running max's history is an output: the final-value form would lose it, so the cascade is
# differentiated as written (reverse loops), and its gradient still checks.
HISTORY_READ = """
rank P = 3, M = 7, M0 = 3
split M = M1 * M0
input  S[p, m], V[p, m]
output Y[p], T[p, m1]

LM[p, m1]     = max[m0] S[p, m1 * M0 + m0]
RM[p, 0]      = -inf
RM[p, m1 + 1] = max(RM[p, m1], LM[p, m1])
SLN[p, m1, m0] = exp(S[p, m1 * M0 + m0] - RM[p, m1 + 1])
PRM[p, m1]    = exp(RM[p, m1] - RM[p, m1 + 1])
SPD[p, m1]    = PRM[p, m1] * RD[p, m1]
SLD[p, m1]    = sum[m0] SLN[p, m1, m0]
RD[p, 0]      = 0
RD[p, m1 + 1] = SPD[p, m1] + SLD[p, m1]
Y[p]          = RD[p, M1]
T[p, m1]      = RM[p, m1 + 1] * V[p, m1 * M0]
"""


def test_a_history_read_elsewhere_is_not_collapsed():
    cascade = loads(HISTORY_READ, "history.ein")
    assert collapse(cascade, analyze(cascade)) is None
    local = loads(HISTORY_READ.replace("RM[p, m1 + 1] * V", "LM[p, m1] * V"), "local.ein")
    assert collapse(local, analyze(local)) is None  # a tile's max is a step too
    final = loads(HISTORY_READ.replace("T[p, m1]      = RM[p, m1 + 1] * V[p, m1 * M0]",
                                       "T[p, m1] = RM[p, M1] * V[p, m1 * M0]"), "final.ein")
    assert collapse(final, analyze(final)) is not None  # the end alone: collapsed
    result = gradient(cascade)
    assert result.saved == ()
    assert any(e.role is not Role.DEF for e in result.backward.einsums)  # the reverse loops


def test_the_collapse_is_the_same_function():
    """The final-value form computes the online form's outputs (float64 interpreter)."""
    for name in ONLINE:
        cascade = load(EX / f"{name}.ein")
        flat = collapse(cascade, analyze(cascade)).cascade
        sizes = dict(SIZES, M=11, M0=3)
        ins = random_inputs(cascade, resolve_sizes(cascade, sizes), 2, np.float64)
        a, b = evaluate(cascade, ins, sizes), evaluate(flat, ins, sizes)
        np.testing.assert_allclose(b["AV"], a["AV"], rtol=1e-12, atol=1e-12)

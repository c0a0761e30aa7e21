"""Backward of the native ops (backends.torch_op) with FlexAttention's accuracy rule.

For the output and each gradient (dQ, dK, dV from a random dO): the mean error of our op in the
test's dtype against float64 eager autograd on the torch reference is at most FUDGE times the
error of eager autograd in the same dtype, plus a floor of 1e-4 of the golden mean (for when the
eager error is tiny). The examples are those whose gradient cascade compiles to Triton kernels;
each test also checks that the backward ran them (not the reference interpreter).

The ``gpu``-marked tests run at realistic shapes in bf16 (skipped without CUDA, and in the GPU
lane's dry run: Triton's interpreter does not support a bfloat16 tl.dot). The unmarked test runs
the same check once per example in float32 at tiny shapes, under Triton's interpreter on the CPU.
"""
import os
from pathlib import Path

import pytest
from triton_lane import DEVICE, torch  # noqa: F401 (sets TRITON_INTERPRET first without a GPU)

from backends.torch_op import native_op
from backends.triton import torch_ref

EX = Path(__file__).resolve().parent.parent / "examples" / "attention"
FUDGE = 2.0
ON_CPU = os.environ.get("CASCADE_GPU_TESTS_ON_CPU") == "1"  # the lane's dry run

# example -> (its parameters, the eager reference)
EXAMPLES = {
    "causal": ({}, lambda q, k, v: torch_ref.softmax_attention(q, k, v, kind="causal")),
    "mha_3pass": ({}, torch_ref.softmax_attention),
    "mha_2pass_deferred": ({}, torch_ref.softmax_attention),
    "sliding_window": ({"W": 256}, lambda q, k, v: torch_ref.softmax_attention(
        q, k, v, kind="sliding", W=256)),
    "softcap": ({"CAP": 20}, lambda q, k, v: torch_ref.softmax_attention(q, k, v, cap=20.0)),
}
# example -> (B, H, N, D) on a GPU: head dims 64 and 128, a ragged length, 4K for the window
GPU_SHAPES = {"causal": [(2, 8, 2048, 128), (1, 8, 999, 64)], "mha_3pass": [(2, 8, 1024, 64)],
              "mha_2pass_deferred": [(2, 8, 1024, 128)], "sliding_window": [(1, 8, 4096, 128)],
              "softcap": [(1, 8, 2048, 128)]}
CPU_SHAPE = (1, 2, 40, 16)
CPU_PARAMS = {"sliding_window": {"W": 8}}  # a window shorter than the tiny sequence


def _grads(fn, base, dout, dtype):
    xs = [b.to(dtype).requires_grad_() for b in base]
    out = fn(*xs)
    return [out.detach(), *torch.autograd.grad(out, xs, dout.to(out.dtype))]


def check_backward(name: str, shape: tuple, dtype, device: str, params=None) -> dict:
    """Asserts the rule for the output and the gradients; returns each one's two errors."""
    params = EXAMPLES[name][0] if params is None else params
    reference = EXAMPLES[name][1]
    if "W" in params:  # the reference's window follows the op's
        def reference(q, k, v, W=params["W"]):
            return torch_ref.softmax_attention(q, k, v, kind="sliding", W=W)
    op = native_op(EX / f"{name}.ein", **params)
    g = torch.Generator(device=device).manual_seed(0)
    base = [torch.randn(*shape, device=device, generator=g) for _ in range(3)]
    dout = torch.randn(*shape, device=device, generator=g)
    ours = _grads(op, base, dout, dtype)
    eager = _grads(reference, base, dout, dtype)
    golden = _grads(reference, base, dout, torch.float64)
    assert "backward: Triton kernels" in repr(op), repr(op)
    errors = {}
    for what, a, e, gold in zip(("AV", "dQ", "dK", "dV"), ours, eager, golden, strict=True):
        assert torch.isfinite(a).all(), what
        err_ours = (a.double() - gold).abs().mean().item()
        err_eager = (e.double() - gold).abs().mean().item()
        floor = 1e-4 * gold.abs().mean().item()
        assert err_ours <= FUDGE * err_eager + floor, (name, what, err_ours, err_eager, floor)
        errors[what] = (err_ours, err_eager)
    return errors


GPU_CASES = [(name, shape) for name, shapes in GPU_SHAPES.items() for shape in shapes]


@pytest.mark.gpu
@pytest.mark.skipif(ON_CPU or not torch.cuda.is_available(),
                    reason="bfloat16 on a CUDA GPU only (Triton's interpreter, the GPU lane's dry "
                           "run, does not support a bfloat16 tl.dot)")
@pytest.mark.parametrize("name,shape", GPU_CASES, ids=[f"{n}-{'x'.join(map(str, s))}"
                                                       for n, s in GPU_CASES])
def test_backward_in_bf16_at_realistic_shapes(name, shape):
    check_backward(name, shape, torch.bfloat16, "cuda")


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_rule_in_fp32_at_tiny_shapes(name):
    errors = check_backward(name, CPU_SHAPE, torch.float32, DEVICE, CPU_PARAMS.get(name))
    # fp32 against fp64 (about 1e-7 here): the check compared real errors, not zeros
    assert all(0 < ours < 1e-6 for ours, _ in errors.values()), errors

"""GPU lane of the Triton backend (marked ``gpu``; skipped without CUDA).

Realistic shapes, fp16/bf16/fp32, with FlexAttention's accuracy rule: the kernel's mean error
against a float64 golden result is at most a small multiple of the error of eager PyTorch in the
same dtype (plus a tiny floor for when eager is exact).
"""
import os

import pytest

torch = pytest.importorskip("torch")
# The GPU lane's dry run (bench/gpu_lane.py --dry-run) runs these tests on the CPU under
# TRITON_INTERPRET=1 with every sequence length divided by SHRINK, to catch a broken test early.
ON_CPU = os.environ.get("CASCADE_GPU_TESTS_ON_CPU") == "1"
DEVICE, SHRINK = ("cpu", 32) if ON_CPU else ("cuda", 1)
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not ON_CPU and not torch.cuda.is_available(),
                                 reason="needs a CUDA GPU")]

from backends.triton import compile_cascade  # noqa: E402
from backends.triton import torch_ref  # noqa: E402

FUDGE = 2.0
# Triton's interpreter multiplies the bit patterns of bfloat16 tl.dot operands (triton-lang/triton
# issue 11584), so the CPU mode checks float16 and float32 only.
DTYPES = [pytest.param(torch.bfloat16, marks=pytest.mark.skipif(
    ON_CPU, reason="Triton's interpreter does not support bfloat16 tl.dot")), torch.float16]


def _check(ours, eager, golden, dtype):
    golden = golden.double()
    err_ours = (ours.double() - golden).abs().mean().item()
    err_eager = (eager.double() - golden).abs().mean().item()
    assert torch.isfinite(ours).all()
    floor = 1e-4 * golden.abs().mean().item() + (1e-3 if dtype == torch.float32 else 0)
    assert err_ours <= FUDGE * err_eager + floor, (err_ours, err_eager)


def _qkv(B, H, P, M, E, dtype, HK=None, seed=0):
    P, M = -(-P // SHRINK), -(-M // SHRINK)
    g = torch.Generator(device=DEVICE).manual_seed(seed)
    q = torch.randn(B, H, P, E, device=DEVICE, generator=g).to(dtype)
    k = torch.randn(B, HK or H, M, E, device=DEVICE, generator=g).to(dtype)
    v = torch.randn(B, HK or H, M, E, device=DEVICE, generator=g).to(dtype)
    return q, k, v


@pytest.mark.parametrize("dtype", DTYPES + [torch.float32])
@pytest.mark.parametrize("E", [64, 128])
@pytest.mark.parametrize("name,kind,P,M", [("mha_3pass", "dense", 1024, 1024),
                                           ("mha_3pass", "dense", 1000, 1537),
                                           ("causal", "causal", 2048, 2048),
                                           ("causal", "causal", 999, 999)])
def test_softmax_dense_and_causal(name, kind, P, M, E, dtype):
    q, k, v = _qkv(2, 4, P, M, E, dtype)
    fn = compile_cascade(f"examples/attention/{name}.ein")
    ours = fn(Q=q, K=k, V=v)["AV"]
    eager = torch_ref.softmax_attention(q, k, v, kind=kind)
    golden = torch_ref.softmax_attention(q.double(), k.double(), v.double(), kind=kind)
    _check(ours, eager, golden, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("W", [256, 1024])
def test_sliding_window(W, dtype):
    q, k, v = _qkv(1, 8, 4096, 4096, 128, dtype)
    ours = compile_cascade("examples/attention/sliding_window.ein", W=W)(Q=q, K=k, V=v)["AV"]
    eager = torch_ref.softmax_attention(q, k, v, kind="sliding", W=W)
    golden = torch_ref.softmax_attention(q.double(), k.double(), v.double(), kind="sliding", W=W)
    _check(ours, eager, golden, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gqa_alibi_softcap(dtype):
    q, k, v = _qkv(1, 16, 2048, 2048, 128, dtype, HK=2)
    ours = compile_cascade("examples/attention/gqa.ein", G=8)(Q=q, K=k, V=v)["AV"]
    eager = torch_ref.softmax_attention(q, k, v, G=8)
    golden = torch_ref.softmax_attention(q.double(), k.double(), v.double(), G=8)
    _check(ours, eager, golden, dtype)
    q, k, v = _qkv(1, 8, 2048, 2048, 128, dtype)
    slope = torch.rand(8, device=DEVICE).to(dtype) * 0.1
    ours = compile_cascade("examples/attention/alibi.ein")(Q=q, K=k, V=v, Slope=slope)["AV"]
    eager = torch_ref.softmax_attention(q, k, v, slope=slope)
    golden = torch_ref.softmax_attention(q.double(), k.double(), v.double(), slope=slope.double())
    _check(ours, eager, golden, dtype)
    ours = compile_cascade("examples/attention/softcap.ein", CAP=20)(Q=q, K=k, V=v)["AV"]
    eager = torch_ref.softmax_attention(q, k, v, cap=20.0)
    golden = torch_ref.softmax_attention(q.double(), k.double(), v.double(), cap=20.0)
    _check(ours, eager, golden, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_attention(dtype):
    q, k, v = (x * 0.5 for x in _qkv(2, 4, 4096, 4096, 64, dtype))
    ours = compile_cascade("examples/attention/linear.ein")(Q=q, K=k, V=v)["AV"]
    golden = torch_ref.linear_attention(q.double(), k.double(), v.double())
    rel = ((ours.double() - golden).norm() / golden.norm()).item()
    assert rel < 0.01
    ours = compile_cascade("examples/attention/linear_causal_chunked.ein", C=64)(Q=q, K=k, V=v)["AV"]
    golden = torch_ref.chunked_causal_linear_attention(q.double(), k.double(), v.double(), 64)
    rel = ((ours.double() - golden).norm() / golden.norm()).item()
    assert rel < 0.01

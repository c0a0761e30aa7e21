"""The attention variants that the Triton backend got wrong before issue 11, as examples with
independent numpy references (written from the math, not through the IR).

For each example: the float64 interpreter matches the numpy reference, and the Triton kernel
(under ``TRITON_INTERPRET=1`` on the CPU) matches the interpreter in fp32 and fp16, element by
element. The inputs include what broke the kernels: rows whose normaliser is 0, fully masked rows,
-inf in a float mask, negative bases of pow, padded keys whose scores overflow fp16.
"""
import math

import numpy as np
import pytest

from triton_lane import DEVICE, torch  # noqa: E402 (sets TRITON_INTERPRET first)

from backends.triton import compile_cascade  # noqa: E402
from einsum_ir import evaluate, load, random_inputs, resolve_sizes  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
TOL = {torch.float32: 1e-4, torch.float16: 1e-2}  # atol and rtol, per element


def _pm(P, M):
    return np.arange(P)[:, None], np.arange(M)[None, :]


def _softmax_av(s, v, mask=None):
    """softmax over the last axis of the visible scores, times V; a row with no visible (or
    only -inf) score is 0."""
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    top = s.max(-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        e = np.exp(s - np.where(np.isfinite(top), top, 0.0))
    den = e.sum(-1, keepdims=True)
    a = np.divide(e, den, out=np.zeros_like(e), where=den > 0)
    return a @ v


def ref_linear_relu(Q, K, V):
    qf, kf = np.maximum(Q, 0), np.maximum(K, 0)
    num = qf @ (kf.swapaxes(-1, -2) @ V)
    den = (qf * kf.sum(-2, keepdims=True)).sum(-1, keepdims=True)
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def ref_decayed_linear(Q, K, V, L):
    P, M, E = Q.shape[-2], K.shape[-2], Q.shape[-1]
    p, m = _pm(P, M)
    decay = L[None, :, None, None] ** (p - m).astype(float)
    s = np.where(m <= p, (Q @ K.swapaxes(-1, -2)) / math.sqrt(E) * decay, 0.0)
    return s @ V


def ref_alibi_masked_bias(Q, K, V, Slope):
    P, M, E = Q.shape[-2], K.shape[-2], Q.shape[-1]
    p, m = _pm(P, M)
    s = (Q @ K.swapaxes(-1, -2)) / math.sqrt(E) - Slope[None, :, None, None] * (p - m)
    return _softmax_av(s, V, m <= p)


def ref_cross_bias_mask(Q, K, V, KB):
    s = (Q @ K.swapaxes(-1, -2)) / math.sqrt(Q.shape[-1]) + KB[:, None]
    return _softmax_av(s, V)


def ref_sliding_window_sinks(Q, K, V, W, S):
    p, m = _pm(Q.shape[-2], K.shape[-2])
    s = (Q @ K.swapaxes(-1, -2)) / math.sqrt(Q.shape[-1])
    return _softmax_av(s, V, (m <= p) & ((m < S) | (p - W < m)))


def ref_neighborhood_2d(Q, K, V, X, R):
    p, m = _pm(Q.shape[-2], K.shape[-2])
    near = (np.abs(p // X - m // X) <= R) & (np.abs(p % X - m % X) <= R)
    return _softmax_av((Q @ K.swapaxes(-1, -2)) / math.sqrt(Q.shape[-1]), V, near)


def ref_l2_attention(Q, K, V):
    d2 = ((Q[..., :, None, :] - K[..., None, :, :]) ** 2).sum(-1)
    return _softmax_av(-d2 / math.sqrt(Q.shape[-1]), V)


def ref_maxsim_window(Q, K, W):
    p, m = _pm(Q.shape[-2], K.shape[-2])
    s = np.where(np.abs(p - m) <= W, (Q @ K.swapaxes(-1, -2)) / math.sqrt(Q.shape[-1]), -np.inf)
    best = s.max(-1)
    return np.where(np.isfinite(best), best, 0.0)


def _relu_rows(x):  # rows of Q that relu zeroes: their normaliser is 0
    x["Q"][:, :, [2, 7]] = -np.abs(x["Q"][:, :, [2, 7]])


def _float_mask(x):
    kb = np.where(np.random.default_rng(5).random(x["KB"].shape) < 0.3, -np.inf, 0.0)
    kb[:, 4, :] = -np.inf  # a fully hidden row
    kb[:, 9, :16] = -np.inf  # a row whose first key block is hidden: running max -inf
    x["KB"] = kb


def _steep_slopes(x):  # the score grows with the distance: padded keys overflow fp16 unmasked
    x["Slope"] = np.array([-2.0, 0.5])


# example, sizes and parameters, mapping, what the inputs need, reference, its extra arguments
CASES = [
    ("linear_relu", dict(P=24, M=40, E=16, F=16), dict(block_c=16), _relu_rows,
     ref_linear_relu, ()),
    ("decayed_linear", dict(P=40, M=40, E=16, F=16), dict(block_r=16, block_c=16), None,
     ref_decayed_linear, ("L",)),
    ("alibi_masked_bias", dict(P=70, M=40, E=16, F=16), dict(block_r=32, block_c=32),
     _steep_slopes, ref_alibi_masked_bias, ("Slope",)),
    ("cross_bias_mask", dict(P=20, M=40, E=16, F=16), dict(block_r=16, block_c=16), _float_mask,
     ref_cross_bias_mask, ("KB",)),
    ("sliding_window_sinks", dict(P=50, M=50, E=16, F=16, W=8, S=3),
     dict(block_r=16, block_c=16), None, ref_sliding_window_sinks, ("W", "S")),
    ("neighborhood_2d", dict(P=48, M=48, E=16, F=16, X=8, R=1), dict(block_r=16, block_c=16),
     None, ref_neighborhood_2d, ("X", "R")),
    ("l2_attention", dict(P=40, M=50, E=16, F=16), dict(block_r=16, block_c=16), None,
     ref_l2_attention, ()),
    ("maxsim_window", dict(P=60, M=30, E=16, W=4), dict(block_r=16, block_c=16), None,
     ref_maxsim_window, ("W",)),
]
IDS = [c[0] for c in CASES]


def _inputs(name, sizes, prepare, dtype=torch.float64):
    cascade = load(f"examples/attention/{name}.ein")
    arrays = random_inputs(cascade, resolve_sizes(cascade, sizes), 0, domains=True)
    if prepare:
        prepare(arrays)
    # every side sees the same (rounded) inputs
    return cascade, {k: torch.tensor(v, dtype=dtype, device=DEVICE) for k, v in arrays.items()}


def _reference(ref, tensors, sizes, extra):
    args = [tensors[k].double().cpu().numpy() for k in ("Q", "K", "V") if k in tensors]
    args += [tensors[k].double().cpu().numpy() if k in tensors else sizes[k] for k in extra]
    return ref(*args)


@pytest.mark.parametrize("name,sizes,cfg,prepare,ref,extra", CASES, ids=IDS)
def test_interpreter_matches_the_numpy_reference(name, sizes, cfg, prepare, ref, extra):
    cascade, tensors = _inputs(name, sizes, prepare)
    got = evaluate(cascade, {k: t.numpy() for k, t in tensors.items()}, sizes)
    (out,) = got.values()
    want = _reference(ref, tensors, sizes, extra)
    np.testing.assert_allclose(out, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("name,sizes,cfg,prepare,ref,extra", CASES, ids=IDS)
def test_triton_kernel_matches_the_interpreter(name, sizes, cfg, prepare, ref, extra, dtype):
    cascade, tensors = _inputs(name, sizes, prepare, dtype)
    oracle = evaluate(cascade, {k: t.double().cpu().numpy() for k, t in tensors.items()}, sizes)
    params = {k: v for k, v in sizes.items() if k in extra}
    out = compile_cascade(f"examples/attention/{name}.ein", **cfg, **params)(**tensors)
    for key, value in out.items():
        got, want = value.double().cpu().numpy(), oracle[key]
        assert np.isfinite(got).all(), f"{name} {key}: NaN or inf in the kernel output"
        err = np.abs(got - want)
        bad = err > TOL[dtype] * (1 + np.abs(want))
        assert not bad.any(), f"{name} {key}: {bad.sum()} elements off, max error {err.max():.3e}"

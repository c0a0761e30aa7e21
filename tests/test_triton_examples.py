"""The Triton backend in the interpreter lane: every example, fp32 and fp16, against float64.

Runs on the CPU under ``TRITON_INTERPRET=1`` (set here before triton is imported when there is no
GPU; the Makefile exports it too). Shapes are small and ragged (non-powers of two, P != M) so that
partial tiles, masks and empty rows are exercised.
"""

import numpy as np
import pytest

from triton_lane import DEVICE, torch  # noqa: E402 (sets TRITON_INTERPRET first)

from backends.triton import compile_cascade  # noqa: E402
from einsum_ir import evaluate, load, random_inputs, resolve_sizes  # noqa: E402

# the interpreter evaluates both sides of tl.where, so guarded inf - inf still warns
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
TOL = {torch.float32: 1e-4, torch.float16: 1e-2}

# (example, sizes/params, mapping overrides)
CASES = [
    ("mha_3pass", dict(P=48, M=80), dict(block_c=32)),
    ("mha_2pass", dict(P=40, M=96, M0=32), {}),
    ("mha_2pass_deferred", dict(P=33, M=70), dict(block_c=32)),
    ("mha_1pass", dict(P=64, M=100, M0=32), {}),
    ("mha_1pass", dict(P=40, M=50, E=128, F=128, M0=32), {}),  # head dim 128
    ("mha_3pass", dict(P=50, M=45, E=48, F=40), dict(block_c=32)),  # head dims not powers of 2
    ("causal", dict(P=72, M=72), dict(block_r=32, block_c=32)),
    ("causal", dict(P=40, M=100), dict(block_c=32)),  # cross-attention P != M
    ("sliding_window", dict(P=100, M=100, W=20), dict(block_r=32, block_c=16)),
    ("sliding_window", dict(P=90, M=40, W=16), dict(block_r=32, block_c=16)),  # empty rows
    ("gqa", dict(H=4, G=2, P=40, M=56), dict(block_c=32)),
    ("gqa", dict(H=6, G=3, P=30, M=50, E=32, F=32), dict(block_c=32)),
    ("alibi", dict(P=60, M=60), dict(block_r=32, block_c=32)),
    ("softcap", dict(P=50, M=70), dict(block_c=32)),
    ("linear", dict(P=70, M=50), dict(block_c=32)),
    ("linear_causal_chunked", dict(P=100, C=32), {}),
]


def _run(name, sizes, cfg, dtype, seed=0):
    path = f"examples/attention/{name}.ein"
    cascade = load(path)
    full = resolve_sizes(cascade, sizes)
    inputs = random_inputs(cascade, full, seed, np.float64)
    tensors = {k: torch.tensor(v, dtype=dtype, device=DEVICE) for k, v in inputs.items()}
    # the oracle sees exactly the rounded inputs the kernel sees
    ref = evaluate(cascade, {k: t.double().cpu().numpy() for k, t in tensors.items()}, sizes)
    params = {k: v for k, v in sizes.items() if k in {d.name for d in cascade.sizes if not d.is_rank}
              or k in ("C", "M0")}
    fn = compile_cascade(path, **cfg, **params)
    out = fn(**tensors)
    return fn, out, ref


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("name,sizes,cfg", CASES,
                         ids=[f"{c[0]}-" + "-".join(f"{k}{v}" for k, v in c[1].items()) for c in CASES])
def test_example_matches_float64_interpreter(name, sizes, cfg, dtype):
    fn, out, ref = _run(name, sizes, cfg, dtype)
    for key, value in out.items():
        got = value.double().cpu().numpy()
        r = ref[key]
        assert got.shape == r.shape
        assert np.isfinite(got).all(), "NaN or inf in the kernel output"
        scale = max(1.0, np.abs(r).max())
        err = np.abs(got - r).max()
        assert err <= TOL[dtype] * scale, f"{name} {key}: max error {err:.3e}"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_fully_masked_rows_are_zero_not_nan():
    # keys 0..39, queries up to 89 with a 16-wide window: rows p >= 55 see no key at all
    fn, out, ref = _run("sliding_window", dict(P=90, M=40, W=16), dict(block_r=32, block_c=16),
                        torch.float32)
    av = out["AV"].cpu().numpy()
    assert np.isfinite(av).all()
    assert np.all(av[:, :, 55:, :] == 0)
    assert np.all(ref["AV"][:, :, 55:, :] == 0)


def test_softmax_variants_become_one_loop_after_the_rewrite():
    for name in ("mha_3pass", "mha_2pass", "mha_2pass_deferred", "causal", "sliding_window",
                 "gqa", "alibi", "softcap"):
        src = compile_cascade(f"examples/attention/{name}.ein").source()
        assert src.count("@triton.jit") == 1, name
        assert src.count("for it in range(") == 1, name
        assert "tl.dot(" in src and "tl.exp2(" in src, name


def test_without_the_rewrite_three_pass_lowers_to_three_loops():
    src = compile_cascade("examples/attention/mha_3pass.ein", rewrite=False).source()
    assert src.count("@triton.jit") == 1
    assert src.count("for it in range(") == 3

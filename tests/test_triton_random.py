"""Random sizes, windows and tiles: the masked kernels always agree with the interpreter."""

import numpy as np
import pytest

from triton_lane import DEVICE, torch  # noqa: E402 (sets TRITON_INTERPRET first)
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

from backends.triton import compile_cascade  # noqa: E402
from einsum_ir import evaluate, load, random_inputs, resolve_sizes  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
_COMPILED = {}


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(["sliding_window", "causal", "alibi"]),
       P=st.integers(1, 90), M=st.integers(1, 90), W=st.integers(1, 40),
       block_r=st.sampled_from([16, 32]), block_c=st.sampled_from([16, 32]))
def test_masked_kernels_match_the_interpreter(name, P, M, W, block_r, block_c):
    path = f"examples/attention/{name}.ein"
    cascade = load(path)
    params = {"W": W} if name == "sliding_window" else {}
    sizes = dict(P=P, M=M, E=16, F=16, **params)
    inputs = random_inputs(cascade, resolve_sizes(cascade, sizes), P * 100 + M, np.float64)
    ref = evaluate(cascade, inputs, sizes)["AV"]
    key = (name, W if params else None, block_r, block_c)
    if key not in _COMPILED:
        _COMPILED[key] = compile_cascade(path, block_r=block_r, block_c=block_c, **params)
    out = _COMPILED[key](**{k: torch.tensor(v, dtype=torch.float32, device=DEVICE)
                            for k, v in inputs.items()})["AV"].cpu().numpy()
    assert np.isfinite(out).all()
    assert np.abs(out - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())

"""The eager PyTorch references (used by the GPU tests and the benchmark) agree with the
reference interpreter on every example they stand for."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from backends.triton import torch_ref  # noqa: E402
from einsum_ir import evaluate, load, random_inputs, resolve_sizes  # noqa: E402

CASES = [("mha_3pass", dict(P=20, M=30), {}), ("causal", dict(P=20, M=20), dict(kind="causal")),
         ("sliding_window", dict(P=30, M=30, W=5), dict(kind="sliding", W=5)),
         ("gqa", dict(H=4, G=2, P=10, M=12), dict(G=2)), ("alibi", dict(P=16, M=16), "alibi"),
         ("softcap", dict(P=12, M=18), dict(cap=20.0)), ("linear", dict(P=20, M=30), "linear"),
         ("linear_causal_chunked", dict(P=40, C=16), "chunked")]


@pytest.mark.parametrize("name,sizes,how", CASES, ids=[c[0] for c in CASES])
def test_torch_reference_matches_interpreter(name, sizes, how):
    c = load(f"examples/attention/{name}.ein")
    full = resolve_sizes(c, dict(sizes, E=16, F=8))
    inputs = random_inputs(c, full, 1, np.float64)
    ref = evaluate(c, inputs, dict(sizes, E=16, F=8))["AV"]
    t = {k: torch.tensor(v) for k, v in inputs.items()}
    if how == "alibi":
        out = torch_ref.softmax_attention(t["Q"], t["K"], t["V"], slope=t["Slope"])
    elif how == "linear":
        out = torch_ref.linear_attention(t["Q"], t["K"], t["V"])
    elif how == "chunked":
        out = torch_ref.chunked_causal_linear_attention(t["Q"], t["K"], t["V"], 16)
    else:
        out = torch_ref.softmax_attention(t["Q"], t["K"], t["V"], **how)
    assert np.allclose(out.numpy(), ref, atol=1e-10)

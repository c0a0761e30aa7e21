"""Ranks defined by size expressions with ``min``/``max`` render as valid code in the kernel and
in the launcher (einsum_ir.size_exprs.to_code), and the kernels agree with the interpreter."""

import ast

import numpy as np
import pytest

from triton_lane import DEVICE, torch  # noqa: E402 (sets TRITON_INTERPRET first)

from backends.triton import compile_cascade  # noqa: E402
from einsum_ir import evaluate, loads, random_inputs, resolve_sizes  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

_TEXT = """rank I = 40, J = 24, K = min(I, J) + max(I, J) - 56
input  A[i], B[j]
output O[{out}], S[i]
S[i] = A[i] * 2
O[{out}] = B[j] * (k + 1)
"""


@pytest.mark.parametrize("out", ["k,j", "j,k"])
def test_min_max_ranks_render_and_run(out):
    cascade = loads(_TEXT.format(out=out))
    fn = compile_cascade(cascade)
    src = fn.source()
    ast.parse(src)
    assert "_derive(sizes, 'K', lambda s: ((min(s['I'], s['J']) + max(s['I'], s['J'])) - 56))" \
        in src
    if out == "k,j":  # K is not baked into the tile: the kernel spells its extent
        assert "(min(40, 24) + max(40, 24)) - 56" in src
    inputs = random_inputs(cascade, resolve_sizes(cascade, {}), 1, np.float64)
    ref = evaluate(cascade, inputs, {})["O"]
    got = fn(**{k: torch.tensor(v, dtype=torch.float32, device=DEVICE)
                for k, v in inputs.items()})["O"].double().cpu().numpy()
    assert got.shape == ref.shape == ((8, 24) if out == "k,j" else (24, 8))
    assert np.abs(got - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max())

"""Products under a unary minus (``-A * B``, ``A * -B``, ``-(A * B)``) keep their sign in the Triton
lowering, whether the sum becomes a ``tl.dot`` or an elementwise reduction."""

import numpy as np
import pytest

from triton_lane import DEVICE, torch  # noqa: E402 (sets TRITON_INTERPRET first)

from backends.triton import compile_cascade  # noqa: E402
from einsum_ir import evaluate, loads, random_inputs, resolve_sizes  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

_MATVEC = """rank I = 40, J = 24
input  A[i,j], B[j]
output O[i]
O[i] = sum[j] {body}
"""
_MATMUL = """rank I = 32, J = 48, K = 32
input  A[i,j], B[j,k]
output O[i,k]
O[i,k] = sum[j] {body}
"""


def _check(text: str, uses_dot: bool) -> None:
    cascade = loads(text)
    inputs = random_inputs(cascade, resolve_sizes(cascade, {}), 7, np.float64)
    ref = evaluate(cascade, inputs, {})["O"]
    fn = compile_cascade(cascade)
    assert ("tl.dot(" in fn.source()) == uses_dot
    out = fn(**{k: torch.tensor(v, dtype=torch.float32, device=DEVICE)
                for k, v in inputs.items()})["O"].double().cpu().numpy()
    assert np.abs(ref).max() > 0.1
    assert np.abs(out - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


@pytest.mark.parametrize("body", ["-A[i,j] * B[j]", "A[i,j] * -B[j]", "-(A[i,j] * B[j])",
                                  "-A[i,j] * -B[j]"])
def test_negated_matrix_vector_product_matches_the_interpreter(body):
    _check(_MATVEC.format(body=body), uses_dot=False)


@pytest.mark.parametrize("body", ["-A[i,j] * B[j,k]", "A[i,j] * -B[j,k]", "-(A[i,j] * B[j,k])",
                                  "-A[i,j] * -B[j,k]", "-(A[i,j] * B[j,k]) / 2"])
def test_negated_matrix_product_is_a_dot_and_matches_the_interpreter(body):
    _check(_MATMUL.format(body=body), uses_dot=True)

"""Silent wrong answers of the Triton backend (issue 11), each pinned against the interpreter.

Every case here gave NaN, zeros or a crash before its fix: pow of negative and zero bases, empty
rows and zero normalisers, reads past a rank's extent in a dot, cascades without inputs, ranks
that only size a derived rank, a recurrence's final value read from another kernel. Shapes are
tiny: the kernels run under ``TRITON_INTERPRET=1`` on the CPU.
"""
import numpy as np
import pytest

from triton_lane import DEVICE, torch  # noqa: E402 (sets TRITON_INTERPRET first)

from backends.triton import compile_cascade  # noqa: E402
from einsum_ir import evaluate, parse, resolve_sizes  # noqa: E402
from einsum_ir.errors import CascadeError  # noqa: E402
from einsum_ir.inputs import random_inputs  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
TOL = {torch.float32: 1e-4, torch.float16: 1e-2}


def _run(text: str, inputs: dict | None = None, dtype=torch.float32, sizes=None, **cfg):
    """(kernel outputs, interpreter outputs) of a cascade on the same (rounded) inputs."""
    cascade = parse(text, "case.ein")
    sizes = dict(sizes or {})
    full = resolve_sizes(cascade, sizes)
    arrays = random_inputs(cascade, full, 0, np.float64)
    arrays.update(inputs or {})
    tensors = {k: torch.tensor(v, dtype=dtype, device=DEVICE) for k, v in arrays.items()}
    ref = evaluate(cascade, {k: t.double().cpu().numpy() for k, t in tensors.items()}, sizes)
    out = compile_cascade(cascade, **cfg, **sizes)(**tensors)
    return {k: v.double().cpu().numpy() for k, v in out.items()}, ref


def _close(got: dict, ref: dict, dtype=torch.float32):
    assert set(got) == set(ref)
    for k in ref:
        assert np.isfinite(got[k]).all(), f"{k}: NaN or inf in the kernel output\n{got[k]}"
        scale = max(1.0, float(np.abs(ref[k]).max()))
        err = float(np.abs(got[k] - ref[k]).max())
        assert err <= TOL[dtype] * scale, f"{k}: max error {err:.3e}\n{got[k]}\n{ref[k]}"


# ------------------------------------------------------------------------------------ pow

POW_TENSOR = """
rank P = 3, E = 4
input X[p, e], Y[p, e]
output O[p, e]
O[p, e] = pow(X[p, e], Y[p, e])
"""


def test_pow_of_negative_and_zero_bases_with_tensor_exponents():
    x = np.array([[-2.0, -2.0, 0.0, 0.0], [-1.5, 3.0, -0.5, 0.0], [2.0, -3.0, 0.25, -4.0]])
    y = np.array([[3.0, 2.0, 2.0, 0.0], [-1.0, 0.5, 4.0, -2.0], [-2.0, 1.0, 1.5, 0.5]])
    got, ref = _run(POW_TENSOR, {"X": x, "Y": y})
    # numpy: a negative base with a fractional exponent is NaN, the interpreter's empty point (0)
    assert ref["O"][2, 3] == 0 and ref["O"][0, 0] == -8 and ref["O"][1, 3] == np.inf
    finite = np.isfinite(ref["O"])
    assert np.array_equal(np.isfinite(got["O"]), finite)
    np.testing.assert_allclose(got["O"][finite], ref["O"][finite], rtol=1e-5)


@pytest.mark.parametrize("n", [3, -1, 5, 2.5, 0])
def test_pow_with_constant_exponents(n):
    text = f"rank P = 2, E = 3\ninput X[p, e]\noutput O[p, e]\nO[p, e] = pow(X[p, e], {n})\n"
    x = np.array([[-2.0, -0.5, 1.5], [0.75, -1.25, 2.0]])
    got, ref = _run(text, {"X": x})
    finite = np.isfinite(ref["O"])
    np.testing.assert_allclose(got["O"][finite], ref["O"][finite], rtol=1e-5)
    assert (got["O"][~finite] == ref["O"][~finite]).all() or not (~finite).any()


DECAY = """
rank P = 40, M = 40, E = 16, F = 16
input Q[p, e], K[m, e], V[m, f], L[p]
output O[p, f]
S[p, m] = sum[e] Q[p, e] * K[m, e] where m <= p
A[p, m] = S[p, m] * pow(L[p], p - m)
O[p, f] = sum[m] A[p, m] * V[m, f]
"""


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_decay_with_negative_rates_is_not_nan(dtype):
    rates = np.linspace(-0.9, 0.9, 40)
    got, ref = _run(DECAY, {"L": rates}, dtype, block_r=16, block_c=16)
    _close(got, ref, dtype)

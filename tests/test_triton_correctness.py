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


# ------------------------------------------------------------- empty rows, zero normalisers

LINEAR_RELU = """
rank P = 20, M = 30, E = 16, F = 16
input Q[p, e], K[m, e], V[m, f]
output O[p, f]
QF[p, e] = relu(Q[p, e])
KF[m, e] = relu(K[m, e])
KV[e, f] = sum[m] KF[m, e] * V[m, f]
KS[e] = sum[m] KF[m, e]
NUM[p, f] = sum[e] QF[p, e] * KV[e, f]
DEN[p] = sum[e] QF[p, e] * KS[e]
O[p, f] = NUM[p, f] / DEN[p]
"""


def test_zero_normaliser_of_a_non_causal_linear_kernel_is_zero_not_nan():
    q = np.random.default_rng(1).standard_normal((20, 16))
    q[[2, 11]] = -np.abs(q[[2, 11]])  # relu zeroes these rows: DEN = NUM = 0
    got, ref = _run(LINEAR_RELU, {"Q": q}, block_c=16)
    assert (ref["O"][[2, 11]] == 0).all()
    _close(got, ref)


FLOAT_MASK = """
rank P = 20, M = 40, E = 16, F = 16
input Q[p, e], K[m, e], V[m, f], KB[p, m]
output O[p, f]
QK[p, m] = sum[e] Q[p, e] * K[m, e] / sqrt(E)
S[p, m] = QK[p, m] + KB[p, m]
GM[p] = max[m] S[p, m]
SN[p, m] = exp(S[p, m] - GM[p])
SD[p] = sum[m] SN[p, m]
A[p, m] = SN[p, m] / SD[p]
O[p, f] = sum[m] A[p, m] * V[m, f]
"""


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_value_masked_rows_with_minus_inf_running_max(dtype):
    kb = np.zeros((20, 40))
    kb[5, :] = -np.inf  # a fully masked row: 0, as the interpreter
    kb[9, :16] = -np.inf  # the first key block of this row is all -inf: the running max is -inf
    kb[12, 20:] = -np.inf
    got, ref = _run(FLOAT_MASK, {"KB": kb}, dtype, block_r=16, block_c=16)
    assert (ref["O"][5] == 0).all() and (ref["O"][9] != 0).all()
    _close(got, ref, dtype)


CROSS_WINDOW = """
rank P = 40, M = 20, E = 16, F = 16
input Q[p, e], K[m, e], V[m, f]
output O[p, f], G[p]
QK[p, m] = sum[e] Q[p, e] * K[m, e] where p - 4 < m and m <= p
GM[p] = max[m] QK[p, m]
SN[p, m] = exp(QK[p, m] - GM[p])
SD[p] = sum[m] SN[p, m]
O[p, f] = sum[m] SN[p, m] * V[m, f] / SD[p]
G[p] = max[m] QK[p, m]
"""


def test_rows_past_the_keys_are_empty():
    got, ref = _run(CROSS_WINDOW, block_r=16, block_c=16, rewrite=False)
    assert (ref["O"][24:] == 0).all() and (ref["G"][24:] == 0).all()
    _close(got, ref)


NAN_IS_EMPTY = """
rank P = 20, M = 24, F = 16
input A[p, m], B[m], V[m, f], X[p, f]
output S[p], D[p, f], U[p, m]
R[p, m] = A[p, m] / B[m]
S[p] = sum[m] R[p, m]
D[p, f] = sum[m] R[p, m] * V[m, f]
U[p, m] = R[p, m] + X[p, m % F]
"""


def test_a_nan_an_operation_makes_is_an_empty_point_in_sums_dots_and_unions():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((20, 24)), rng.uniform(0.5, 1.5, 24)
    a[:, [3, 17]], b[[3, 17]] = 0.0, 0.0  # 0 / 0: those points do not exist
    x = rng.standard_normal((20, 16))
    got, ref = _run(NAN_IS_EMPTY, {"A": a, "B": b, "X": x}, block_r=16, block_c=16)
    assert np.isfinite(ref["S"]).all() and (ref["S"] != 0).all()
    # the union keeps the side that exists: X where the quotient is empty
    np.testing.assert_allclose(ref["U"][:, [3, 17]], x[:, [3, 1]], rtol=1e-6)
    _close(got, ref)


def test_an_unmasked_max_keeps_a_minus_inf_row():
    # only a masked max marks its identity as "no point": a row of -inf inputs stays -inf
    text = "rank P = 20, M = 40\ninput X[p, m]\noutput O[p]\nO[p] = max[m] X[p, m]\n"
    x = np.random.default_rng(0).standard_normal((20, 40))
    x[3] = -np.inf
    got, ref = _run(text, {"X": x}, block_r=16, block_c=16)
    assert got["O"][3] == ref["O"][3] == -np.inf
    np.testing.assert_allclose(got["O"][np.isfinite(ref["O"])], ref["O"][np.isfinite(ref["O"])],
                               rtol=1e-6)


# ------------------------------------------------------------- reads past a rank's extent

ALIBI_BIASED = """
rank H = 2, P = 100, M = 40, E = 16, F = 16
input Q[h, p, e], K[h, m, e], V[h, m, f], Slope[h]
output O[h, p, f]
QK[h, p, m] = sum[e] Q[h, p, e] * K[h, m, e] / sqrt(E)
S[h, p, m] = QK[h, p, m] - Slope[h] * (p - m) where m <= p
GM[h, p] = max[m] S[h, p, m]
SN[h, p, m] = exp(S[h, p, m] - GM[h, p])
SD[h, p] = sum[m] SN[h, p, m]
A[h, p, m] = SN[h, p, m] / SD[h, p]
O[h, p, f] = sum[m] A[h, p, m] * V[h, m, f]
"""


def test_alibi_masked_on_the_biased_score_masks_padded_keys_in_fp16():
    # a negative slope grows the score with the distance: exp of the padded keys' scores
    # (m >= M, past the block) overflows fp16 unless the second dot masks them
    got, ref = _run(ALIBI_BIASED, {"Slope": np.array([-2.0, 0.5])}, torch.float16,
                    block_r=32, block_c=32)
    _close(got, ref, torch.float16)


def test_inlined_read_past_an_intermediates_extent_is_empty():
    text = """
rank P = 2, M = 5
input X[p, m]
output O[p]
A[p, m] = max(X[p, m + 1], 3)
B[p, m] = A[p, m + 1]
O[p] = sum[m] B[p, m]
"""
    got, ref = _run(text, {"X": np.zeros((2, 5))})
    np.testing.assert_array_equal(ref["O"], [12.0, 12.0])  # B at m = 4 reads A past M
    _close(got, ref)


def test_a_grid_index_read_past_its_extent_is_empty():
    # m is a grid index here (one program per m): X[m + 1] at m = M - 1 is past the end; the
    # load was unmasked (an out-of-bounds read) and softplus(0) filled the row
    text = """
rank M = 5, E = 3, F = 5
input X[m, e, f]
output O[m, e, f]
T[m, e, f] = softplus(min(softplus(X[m + 1, e, f]), X[m + 1, e, f]))
O[m, e, f] = T[m, e, f]
"""
    got, ref = _run(text)
    assert (ref["O"][4] == 0).all()
    _close(got, ref)


def test_a_union_of_two_masked_sides_exists_where_either_does():
    text = """
rank M = 6, E = 6, F = 5
input X[m, e, f]
output O[m, e, f]
T[m, e, f] = 0.5 - X[M - 1 - m, e, f] where m < e
O[m, e, f] = T[m, e, f] + T[m + 1, e, f] where f < m
"""
    got, ref = _run(text)
    _close(got, ref)


# ------------------------------------------------------------- a split's tail

def test_a_read_in_a_splits_tail_is_empty_not_padding():
    # T[m1, m0] has every (m1, m0); at m1 * M0 + m0 >= M the read is empty and the binary max
    # keeps 1.5, where the min over m1 reduces no point (empty: 0, not inf)
    text = """
rank M = 5, M0 = 4, E = 2
split M = M1 * M0
input X[m], Y[m, e]
output T[m1, m0], U[m0, e]
T[m1, m0] = max(X[m1 * M0 + m0], 1.5)
U[m0, e] = min[m1] Y[m1 * M0 + m0, e] where m1 >= 1
"""
    got, ref = _run(text)
    np.testing.assert_array_equal(ref["T"][1, 1:], [1.5] * 3)
    assert (ref["U"][1:] == 0).all()
    _close(got, ref)


def test_an_inlined_einsums_padding_is_an_empty_read_for_its_reader():
    # T11 is stored by a first kernel, then inlined at m + 1 (T11_stored[m, m1, e] where
    # m <= m1): the load's bound m + 1 < M is padding for T11 but, for T15 at m = M - 1, a read
    # past T11's extent (min keeps T1); every index m of a split rank was taken for padding
    text = """
rank P = 1, M = 2, E = 1, M0 = 1
split M = M1 * M0
input X[m, e]
output O[p, m1, m0, e]
T1[e, m1, m0] = sum[m] X[m, e]
T8[e, m1] = sum[m0] T1[e, m1, m0]
T11[m, m1, e] = T8[e, m1] where m <= m1
T15[m, m1, m0, e] = min(T11[m + 1, m1, e], T1[e, m1, m0])
O[p, m1, m0, e] = sum[m] T15[m, m1, m0, e]
"""
    got, ref = _run(text)
    _close(got, ref)


# ------------------------------------------------------------- crashes

def test_cascade_without_inputs_runs():
    text = """
rank M = 40, F = 3, M0 = 16
split M = M1 * M0
output O[f]
R[f, 0] = 1.5
R[f, m1 + 1] = R[f, m1] * 2
O[f] = R[f, M1]
"""
    got, ref = _run(text)
    np.testing.assert_allclose(ref["O"], [12.0] * 3)
    _close(got, ref)


def test_rank_only_inside_a_derived_rank_sizes_an_output():
    text = """
rank P = 6, M = 4, E = 3
rank R = P + M
input X[p, r], Y[p, e]
output O[m, e]
O[m, e] = sum[p] Y[p, e] * X[p, p - m + M]
"""
    got, ref = _run(text)
    _close(got, ref)


def test_recurrence_final_iterate_read_by_a_later_kernel():
    text = """
rank P = 5, M = 40, F = 3, M0 = 16
split M = M1 * M0
input X[m, f], Y[p, f]
output O[p, m1, m0]
L[f, m1] = max[m0] X[m1 * M0 + m0, f]
R[f, 0] = 0.0
R[f, m1 + 1] = max(R[f, m1], L[f, m1])
Z[p, f] = Y[p, f] * R[f, M1]
O[p, m1, m0] = sum[f] X[m1 * M0 + m0, f] * Z[p, f]
"""
    got, ref = _run(text)
    _close(got, ref)


def test_recurrence_step_read_by_a_later_kernel_is_refused_with_a_location():
    text = """rank P = 5, M = 40, F = 3, M0 = 16
split M = M1 * M0
input X[m, f], Y[p, f]
output O[p, m1]
L[f, m1] = max[m0] X[m1 * M0 + m0, f]
R[f, 0] = 0.0
R[f, m1 + 1] = max(R[f, m1], L[f, m1])
O[p, m1] = sum[f] Y[p, f] * R[f, m1]
"""
    try:
        got, ref = _run(text)
    except CascadeError as exc:
        assert exc.span is not None and "R" in exc.message
        assert "case.ein:" in str(exc)
    else:
        _close(got, ref)


WRITTEN_TILE = """
rank P = 20, M = 64, E = 16, F = 16, M0 = 16
split M = M1 * M0
input Q[p, e], K[m, e], V[m, f]
output O[p, f], ZF[f]
QK[p, m] = sum[e] Q[p, e] * K[m, e]
GM[p] = max[m] QK[p, m]
SN[p, m] = exp(QK[p, m] - GM[p])
SD[p] = sum[m] SN[p, m]
A[p, m] = SN[p, m] / SD[p]
O[p, f] = sum[m] A[p, m] * V[m, f]
C[f, m1] = sum[m0] V[m1 * M0 + m0, f]
Z[f, 0] = 0.0
Z[f, m1 + 1] = 0.5 * Z[f, m1] + C[f, m1]
ZF[f] = Z[f, M1]
"""


def test_a_tile_the_cascade_writes_is_kept_after_the_online_rewrite():
    # Z decays once per chunk of M0 keys: retiling M0 to the mapping's tile changes ZF
    got, ref = _run(WRITTEN_TILE, block_c=32)
    _close(got, ref)


# ------------------------------------------------------------- cascade run --inputs, --check

def _cli(*args):
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.getcwd(), TRITON_INTERPRET="1")
    return subprocess.run([sys.executable, "-m", "cascade_cli", "run", *args],
                          capture_output=True, text=True, env=env)


def test_run_takes_inputs_by_name_and_sizes_from_their_shapes(tmp_path):
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 2, 20, 16))
    q[0, 0, 3] = -np.abs(q[0, 0, 3])  # a zero normaliser: the interpreter's 0
    arrays = dict(Q=q, K=rng.standard_normal((1, 2, 30, 16)),
                  V=rng.standard_normal((1, 2, 30, 16)))
    path = tmp_path / "in.npz"
    np.savez(path, **arrays)
    r = _cli("examples/attention/linear_relu.ein", "--inputs", str(path), "--check", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    import json
    report = json.loads(r.stdout)
    assert report["ok"] and report["outputs"][0]["bad"] == 0
    assert report["outputs"][0]["size"] == 1 * 2 * 20 * 16  # P, M, E, F from the shapes


@pytest.mark.parametrize("arrays,message", [
    (dict(Q=(1, 2, 20, 16), K=(1, 2, 31, 16), V=(1, 2, 30, 16)), "rank M is 31 in K but 30 in V"),
    (dict(Q=(1, 2, 20, 16), K=(1, 2, 30, 16), V=(1, 2, 30, 16), X=(3,)), "X is not an input"),
    (dict(Q=(1, 2, 20), K=(1, 2, 30, 16), V=(1, 2, 30, 16)), "Q has 3 dimensions, expected 4"),
    (dict(Q=(1, 2, 20, 16), K=(1, 2, 30, 16)), "input V is missing"),
    (dict(Q="text", K=(1, 2, 30, 16), V=(1, 2, 30, 16)), "not real numbers"),
])
def test_run_refuses_wrong_inputs_with_a_clear_error(tmp_path, arrays, message):
    made = {k: np.full((1, 2, 20, 16), "a") if v == "text" else np.zeros(v)
            for k, v in arrays.items()}
    path = tmp_path / "in.npz"
    np.savez(path, **made)
    r = _cli("examples/attention/linear_relu.ein", "--inputs", str(path))
    assert r.returncode == 1 and message in r.stderr, r.stderr
    assert f"--inputs {path}: error:" in r.stderr and "Traceback" not in r.stderr


def test_default_inputs_come_from_the_domain_their_use_needs():
    from einsum_ir import load
    from einsum_ir.inputs import Domain, input_domains

    cascade = load("examples/attention/decayed_linear.ein")
    assert input_domains(cascade) == {"Q": Domain.REAL, "K": Domain.REAL, "V": Domain.REAL,
                                      "L": Domain.UNIT}
    rates = random_inputs(cascade, resolve_sizes(cascade, {}), 0, domains=True)["L"]
    assert ((rates > 0) & (rates <= 1)).all()
    text = ("rank P = 8\ninput X[p], Y[p], Z[p], U[p]\noutput O[p]\n"
            "O[p] = log(X[p]) + sqrt(Y[p]) / Z[p] + pow(U[p], 2)\n")
    assert list(input_domains(parse(text)).values()) == [Domain.UNIT, Domain.NONNEGATIVE,
                                                         Domain.AWAY_FROM_ZERO, Domain.REAL]


def test_check_tolerance_does_not_grow_with_the_largest_reference_value():
    from cascade_cli.commands.run_kernel import compare

    ref = np.array([1e6, 1.0, 0.0])
    got = np.array([1e6 + 50.0, 1.5, 0.0])  # 0.5 off on an element of size 1
    result = compare("O", got, ref, ref, 1e-4)
    assert not result["ok"] and result["bad"] == 1  # max(1, |ref|) scaling would pass it
    # the float32 computation's own error is allowed (twice over): a lossy cascade passes
    assert compare("O", got, ref, np.array([1e6, 1.3, 0.0]), 1e-4)["ok"]
    assert compare("O", np.array([np.inf]), np.array([np.inf]), np.array([np.inf]), 1e-4)["ok"]

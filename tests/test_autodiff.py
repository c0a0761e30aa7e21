"""einsum_ir.autodiff: gradient cascades against central finite differences (float64, the
interpreter) and against torch.autograd on the eager references; round trips; refusals."""
from pathlib import Path

import numpy as np
import pytest

from cascade_cli.main import main
from einsum_ir import evaluate, load, loads, parse, resolve_sizes
from einsum_ir.autodiff import gradient
from einsum_ir.errors import CascadeError
from einsum_ir.ir import Role
from einsum_ir.inputs import input_shapes
from einsum_ir.printer import format_cascade

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "attention"

# Small sizes, none a power of two where the example allows it.
SIZES = {
    "causal": dict(H=2, P=5, M=5, E=3, F=2),
    "mha_3pass": dict(H=2, P=5, M=6, E=3, F=2),
    "mha_2pass_deferred": dict(H=2, P=5, M=6, E=3, F=2),
    "gqa": dict(H=6, G=3, P=3, M=5, E=3, F=2),
    "sliding_window": dict(H=1, P=6, M=6, E=3, F=2, W=2),
    "softcap": dict(H=1, P=4, M=5, E=3, F=2, CAP=2),
    "alibi": dict(H=2, P=4, M=5, E=3, F=2),
    "linear": dict(H=2, P=4, M=5, E=3, F=2),
    "linear_causal_chunked": dict(H=1, P=7, C=3, E=3, F=2),  # 3 chunks, the last one partial
    "mha_2pass": dict(H=1, P=3, M=7, M0=3, E=3, F=2),  # 3 key tiles, the last one partial
    "mha_1pass": dict(H=1, P=3, M=7, M0=3, E=3, F=2),
    "linear_relu": dict(H=2, P=4, M=5, E=3, F=2),
    "decayed_linear": dict(H=2, P=4, M=5, E=3, F=2),
    "alibi_masked_bias": dict(H=2, P=4, M=5, E=3, F=2),
    "cross_bias_mask": dict(H=2, P=3, M=5, E=3, F=2),
    "sliding_window_sinks": dict(H=1, P=7, M=7, E=3, F=2, W=2, S=1),
    "neighborhood_2d": dict(H=1, P=9, M=9, E=3, F=2, X=3, R=1),
    "l2_attention": dict(H=2, P=4, M=5, E=3, F=2),
    "maxsim_window": dict(H=1, P=5, M=6, E=3, W=2),
}


def test_every_example_is_covered():
    assert {p.stem for p in EXAMPLES.glob("*.ein")} == set(SIZES)


def _problem(cascade, sizes, seed=1):
    rng = np.random.default_rng(seed)
    env = resolve_sizes(cascade, sizes)
    return rng, {k: rng.standard_normal(s) for k, s in input_shapes(cascade, env).items()}


def _backward(result, ins, sizes, rng):
    fwd = evaluate(result.forward, ins, sizes)
    seeds = {s: rng.standard_normal(fwd[o].shape) for o, s in result.seeds}
    grads = evaluate(result.backward, {**ins, **{k: fwd[k] for k in result.saved}, **seeds},
                     sizes)
    return fwd, seeds, grads


def _finite_differences(cascade, ins, sizes, result, seeds, h=1e-5):
    def loss(x):
        out = evaluate(cascade, x, sizes)
        return sum(float((out[o] * seeds[s]).sum()) for o, s in result.seeds)

    numeric = {}
    for x, _ in result.grads:
        num = np.zeros_like(ins[x])
        for idx in np.ndindex(ins[x].shape):
            up, down = ins[x].copy(), ins[x].copy()
            up[idx] += h
            down[idx] -= h
            num[idx] = (loss({**ins, x: up}) - loss({**ins, x: down})) / (2 * h)
        numeric[x] = num
    return numeric


def _fd_error(cascade, sizes, save_lse=True, wrt=None, seed=1):
    result = gradient(cascade, wrt, save_lse=save_lse)
    rng, ins = _problem(cascade, sizes, seed)
    _, seeds, grads = _backward(result, ins, sizes, rng)
    numeric = _finite_differences(cascade, ins, sizes, result, seeds)
    return max(float(np.abs(numeric[x] - grads[g]).max()) for x, g in result.grads)


@pytest.mark.parametrize("save_lse", [True, False], ids=["lse", "as-written"])
@pytest.mark.parametrize("name", sorted(SIZES))
def test_gradient_matches_finite_differences(name, save_lse):
    cascade = load(EXAMPLES / f"{name}.ein")
    assert _fd_error(cascade, SIZES[name], save_lse) < 1e-6


@pytest.mark.parametrize("name", sorted(SIZES))
def test_printed_gradient_cascades_parse_back_equal(name):
    result = gradient(load(EXAMPLES / f"{name}.ein"))
    for c in (result.backward, result.forward):
        assert parse(format_cascade(c), "<printed>") == c


@pytest.mark.parametrize("name", sorted(SIZES))
def test_softmax_saves_the_log_sum_exp(name):
    result = gradient(load(EXAMPLES / f"{name}.ein"))
    written = {e.name for e in result.backward.einsums}
    if name.startswith("linear") or name in ("decayed_linear", "maxsim_window"):
        assert result.saved == ()  # no softmax (linear, max-sim)
        return
    assert result.saved == ("LSE",)
    if name in ("mha_1pass", "mha_2pass"):  # online forms: differentiated at their final values
        assert not any(e.role is not Role.DEF for e in result.backward.einsums)
        assert not {"RM", "RD", "RNV"} & {a.tensor for e in result.backward.einsums
                                           for a in e.reads()}
        assert {"RM", "RD"} <= {a.tensor for e in result.forward.einsums if e.name == "LSE"
                                for a in e.reads()}
        return
    # the backward recomputes probabilities from the LSE; neither the max nor the sum is rebuilt
    assert "GM" not in written and "SD" not in written
    assert not any(a.tensor in ("GM", "SD") for e in result.backward.einsums for a in e.reads())
    assert "GM" in {e.name for e in gradient(load(EXAMPLES / f"{name}.ein"),
                                            save_lse=False).backward.einsums}


def _torch_reference(name, t, sizes):
    from backends.triton import torch_ref

    kind = {"causal": "causal", "sliding_window": "sliding"}.get(name, "dense")
    if name == "linear":
        return torch_ref.linear_attention(t["Q"], t["K"], t["V"])
    if name == "linear_causal_chunked":
        return torch_ref.chunked_causal_linear_attention(t["Q"], t["K"], t["V"], C=sizes["C"])
    return torch_ref.softmax_attention(
        t["Q"], t["K"], t["V"], kind=kind, W=sizes.get("W"), G=sizes.get("G", 1),
        slope=t.get("Slope"), cap=sizes.get("CAP"))


# The examples backends/triton/torch_ref.py has an eager PyTorch form of.
TORCH_REFERENCED = ("causal", "mha_3pass", "mha_2pass_deferred", "gqa", "sliding_window",
                    "softcap", "alibi", "linear", "linear_causal_chunked", "mha_2pass",
                    "mha_1pass")


@pytest.mark.parametrize("name", TORCH_REFERENCED)
def test_gradient_matches_torch_autograd(name):
    torch = pytest.importorskip("torch")
    cascade = load(EXAMPLES / f"{name}.ein")
    sizes = SIZES[name]
    result = gradient(cascade)
    rng, ins = _problem(cascade, sizes, seed=3)
    fwd, seeds, grads = _backward(result, ins, sizes, rng)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in ins.items()}
    out = _torch_reference(name, t, sizes)
    np.testing.assert_allclose(out.detach().numpy(), fwd["AV"], rtol=1e-10, atol=1e-12)
    out.backward(torch.tensor(seeds["dAV"]))
    for x, g in result.grads:
        np.testing.assert_allclose(grads[g], t[x].grad.numpy(), rtol=1e-9, atol=1e-11)


POINTWISE = """
rank I = 3, J = 4
input X[i, j], W[j]
output Y[i], Z[i, j]
U[i, j] = elu(X[i, j]) * tanh(W[j]) + sigmoid(X[i, j]) - silu(W[j]) / (1 + square(X[i, j]))
T[i, j] = softplus(U[i, j]) + gelu(X[i, j]) * log(1 + exp(W[j])) + sqrt(2 + abs(X[i, j]))
R[i, j] = pow(2 + relu(T[i, j]), W[j]) + recip(3 + X[i, j]) * max(T[i, j], 0.25) - min(U[i, j], W[j])
Y[i] = sum[j] R[i, j] * X[i, j]
Z[i, j] = R[i, j] - floor(X[i, j]) * -X[i, j]
"""


def test_element_wise_functions_match_finite_differences():
    assert _fd_error(loads(POINTWISE), {}) < 1e-6


MAXPOOL = """
rank I = 3, J = 5
input X[i, j], W[j]
output Y[i]
S[i, j] = X[i, j] * W[j]
Y[i] = max[j] S[i, j] + 2 * W[j] where j != 1
"""


def test_max_reduction_takes_the_arg_max():
    assert _fd_error(loads(MAXPOOL), {}) < 1e-6


def test_max_ties_share_the_gradient_equally():
    cascade = loads(MAXPOOL.replace("+ 2 * W[j] ", ""))
    result = gradient(cascade, ["X"])
    x = np.array([[1.0, 5.0, 3.0, 3.0, 0.0]] * 3)
    ins = {"X": x, "W": np.ones(5)}
    grads = evaluate(result.backward, {**ins, "dY": np.ones(3)})
    # j = 1 is masked; the max 3 is reached at j = 2 and j = 3
    np.testing.assert_allclose(grads["dX"], [[0, 0, 0.5, 0.5, 0]] * 3)


RUNNING_SUM = """
rank I = 3, N = 4
input X[i, n], W[i]
output Y[i], Z[i, n]
R[i, 0] = 0
R[i, n+1] = R[i, n] + X[i, n] * W[i]
Y[i] = R[i, N] * W[i]
Z[i, n] = exp(R[i, n])
"""


def test_a_running_sum_read_at_its_end_and_inside_gets_a_suffix_sum():
    cascade = loads(RUNNING_SUM)
    assert _fd_error(cascade, {}) < 1e-6
    text = format_cascade(gradient(cascade).backward)
    assert "rank N2 = N" in text and "where n2 > n" in text


@pytest.mark.parametrize("update", ["R[i, n+1] = R[i, n] * X[i, n] + W[i]",
                                    "R[i, n+1] = max(R[i, n], X[i, n]) * W[i] + R[i, n]"])
def test_general_recurrences_get_a_reverse_recurrence(update):
    cascade = loads(RUNNING_SUM.replace("R[i, n+1] = R[i, n] + X[i, n] * W[i]", update))
    assert _fd_error(cascade, {}) < 1e-6
    assert "N - 1 - n" in format_cascade(gradient(cascade).backward)


RUNNING_MAX = """
rank I = 3, N = 4
input X[i, n], W[i]
output Y[i]
XM[i, n] = X[i, n] * W[i] where n != 1
R[i, 0] = -inf
R[i, n+1] = max(R[i, n], XM[i, n])
Y[i] = R[i, N] * W[i]
"""


@pytest.mark.parametrize("seed", range(4))
def test_a_running_max_passes_the_gradient_through_a_missing_step(seed):
    # at n = 1 XM has no point: max(R, XM) is R there, and so is its derivative
    assert _fd_error(loads(RUNNING_MAX), {}, seed=seed) < 1e-6


TWO_STATES = """
rank I = 2, N = 3
input X[i, n]
output Y[i]
A[i, 0] = 0
B[i, 0] = 1
A[i, n+1] = A[i, n] + B[i, n] * X[i, n]
B[i, n+1] = B[i, n] * X[i, n] + A[i, n]
Y[i] = A[i, N] + B[i, N]
"""


@pytest.mark.parametrize("text, line, why", [
    (TWO_STATES, 8, "it shares its recurrence with B, a second state"),
    (RUNNING_SUM.replace("R[i, 0] = 0", "R[i, 0] = W[i]"), 5,
     "its initial value reads tensors"),
    (RUNNING_SUM.replace("exp(R[i, n])", "exp(R[i, n % 2])"), 8,
     "R is read at an index other than n, n+1 or the end N"),
])
def test_recurrences_out_of_reach_are_refused_with_a_located_error(text, line, why):
    with pytest.raises(CascadeError) as err:
        gradient(loads(text))
    assert err.value.span.line == line
    assert why in str(err.value)


def test_wrt_and_outputs_select_seeds_and_gradients():
    cascade = loads(POINTWISE)
    result = gradient(cascade, ["W"], ["Y"])
    assert result.seeds == (("Y", "dY"),) and result.grads == (("W", "dW"),)
    assert [d.name for d in result.backward.outputs] == ["dW"]
    assert _fd_error(cascade, {}, wrt=["W"]) < 1e-6


def test_an_input_no_output_depends_on_gets_a_zero_gradient():
    cascade = loads("rank I = 3\ninput X[i], W[i]\noutput Y[i]\nY[i] = exp(X[i])\n")
    result = gradient(cascade)
    grads = evaluate(result.backward, {"X": np.zeros(3), "W": np.ones(3), "dY": np.ones(3)})
    np.testing.assert_array_equal(grads["dW"], 0)
    np.testing.assert_allclose(grads["dX"], 1)


def test_unknown_names_are_errors():
    cascade = load(EXAMPLES / "causal.ein")
    with pytest.raises(CascadeError, match="QQ is not an input"):
        gradient(cascade, ["QQ"])
    with pytest.raises(CascadeError, match="A is not an output"):
        gradient(cascade, outputs=["A"])


def test_cli_grad_writes_a_cascade_that_checks(capsys, tmp_path):
    out, fwd = tmp_path / "g.ein", tmp_path / "f.ein"
    assert main(["grad", str(EXAMPLES / "gqa.ein"), "--wrt", "K,V", "-o", str(out),
                 "--forward", str(fwd)]) == 0
    back = load(out)
    assert [d.name for d in back.outputs] == ["dK", "dV"]
    assert "LSE" in [d.name for d in load(fwd).outputs]
    assert main(["passes", str(out)]) == 0  # a gradient cascade is analysable like any other
    capsys.readouterr()
    assert main(["grad", str(EXAMPLES / "mha_2pass.ein"), "--check", "--set", "P=9",
                 "--set", "M=20", "--set", "M0=8", "-o", str(out)]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("# check: directional derivatives") and float(line.split()[-1]) < 1e-6
    refused = tmp_path / "two_states.ein"
    refused.write_text(TWO_STATES)
    assert main(["grad", str(refused)]) == 1
    assert "two_states.ein:8:1: error: A: reverse-mode" in capsys.readouterr().err
    assert main(["grad", str(EXAMPLES / "causal.ein"), "--wrt", "X"]) == 1
    assert "X is not an input" in capsys.readouterr().err


SHIFTED = """
rank J = 5
rank I = J
input X[i, j], W[j, i]
output Y[i]
D[i] = X[i, i]
Y[i] = sum[j] X[i, j] * X[i, j + 1] + W[j, i] * D[i]
"""


def test_shifted_transposed_and_diagonal_reads():
    # X[i, j + 1] reads past the end at j = J - 1 (an empty point); X[i, i] scatters to a diagonal
    assert _fd_error(loads(SHIFTED), {}) < 1e-6


@pytest.mark.parametrize("name", ["causal", "mha_3pass", "sliding_window", "softcap"])
def test_the_online_softmax_rewrite_is_differentiable_too(name):
    # the 1-pass form carries a running max and rescaled sums over masked tiles (tile 3, M = 7)
    from einsum_ir.passes import rewrite_online_softmax

    rewritten = rewrite_online_softmax(load(EXAMPLES / f"{name}.ein"), tile_size=3).cascade
    sizes = dict(SIZES[name], M=SIZES[name]["P"] if name == "sliding_window" else 7)
    assert _fd_error(rewritten, sizes) < 1e-6

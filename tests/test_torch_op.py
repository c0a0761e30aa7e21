"""backends.torch_op: compiled cascades as native PyTorch ops (Triton's interpreter on CPU, fp32,
tiny shapes; the reference-interpreter path in float64 for gradcheck)."""
from pathlib import Path

import pytest
from triton_lane import DEVICE, torch  # noqa: F401 (sets TRITON_INTERPRET first)

from backends.torch_op import CascadeModule, native_op
from backends.triton import torch_ref
from einsum_ir.errors import CascadeError

EX = Path(__file__).resolve().parent.parent / "examples" / "attention"


def _qkv(*shape, dtype=torch.float32, seed=0, grad=True):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g, dtype=dtype).requires_grad_(grad) for _ in range(3)]


CASES = {  # example -> (shape of Q, K, V; torch reference; parameters)
    "causal": ((1, 2, 12, 8), lambda q, k, v: torch_ref.softmax_attention(q, k, v, kind="causal"), {}),
    "mha_3pass": ((1, 1, 10, 8), torch_ref.softmax_attention, {}),
    "softcap": ((1, 2, 9, 8), lambda q, k, v: torch_ref.softmax_attention(q, k, v, cap=2.0),
                {"CAP": 2}),
    "linear": ((1, 2, 11, 8), torch_ref.linear_attention, {}),
    "mha_1pass": ((1, 1, 40, 8), torch_ref.softmax_attention, {"M0": 16}),  # at its final values
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_match_eager_autograd(name):
    shape, reference, params = CASES[name]
    op = native_op(EX / f"{name}.ein", **params)
    q, k, v = _qkv(*shape)
    out = op(q, k, v)
    ref = reference(q, k, v)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    seed = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, k, v), seed)
    want = torch.autograd.grad(ref, (q, k, v), seed)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_the_repr_says_what_runs_each_direction():
    assert "backward: Triton kernels" in repr(native_op(EX / "causal.ein"))
    linear = repr(native_op(EX / "linear.ein"))
    assert "forward: Triton kernels" in linear  # dQ and dK/dV stream different ranks:
    assert "backward: Triton kernels (the cascade lowers as " in linear
    online = repr(native_op(EX / "mha_1pass.ein", M0=16))  # differentiated at its final values
    assert "backward: Triton kernels (the cascade lowers)" in online
    chunked = repr(native_op(EX / "linear_causal_chunked.ein"))  # suffix sums through memory
    assert "backward: Triton kernels (the cascade lowers as 6 kernel programs)" in chunked
    assert "reference interpreter" in repr(native_op(EX / "causal.ein", backend="reference"))


@pytest.mark.parametrize("name", ["causal", "gqa", "alibi"])
def test_gradcheck_on_the_double_precision_path(name):
    op = native_op(EX / f"{name}.ein", backend="reference", **({"G": 2} if name == "gqa" else {}))
    g = torch.Generator().manual_seed(1)
    heads = 4 if name == "gqa" else 2
    kv = 2 if name == "gqa" else 2
    args = [torch.randn(1, heads, 5, 3, generator=g, dtype=torch.float64),
            torch.randn(1, kv, 5, 3, generator=g, dtype=torch.float64),
            torch.randn(1, kv, 5, 2, generator=g, dtype=torch.float64)]
    if name == "alibi":
        args.append(torch.rand(heads, generator=g, dtype=torch.float64))
    args = [a.requires_grad_() for a in args]
    assert torch.autograd.gradcheck(op, tuple(args))


def test_inputs_by_position_and_by_name():
    op = native_op(EX / "causal.ein")
    q, k, v = _qkv(1, 1, 6, 4, grad=False)
    out = op(q, k, v)
    assert isinstance(out, torch.Tensor) and out.shape == (1, 1, 6, 4)
    torch.testing.assert_close(op(q, V=v, K=k), out)
    with pytest.raises(CascadeError, match="X is not an input"):
        op(q, k, X=v)
    with pytest.raises(CascadeError, match="given twice"):
        op(q, k, v, Q=q)
    with pytest.raises(CascadeError, match="missing input tensor V"):
        op(q, k)
    with pytest.raises(CascadeError, match="takes 3 inputs"):
        op(q, k, v, v)


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


def test_an_input_the_cascade_cannot_differentiate_is_named(tmp_path):
    path = tmp_path / "two_states.ein"
    path.write_text(TWO_STATES)
    op = native_op(path)
    x = torch.rand(2, 3)
    op(x)  # no gradient needed: the forward runs
    with pytest.raises(CascadeError, match="input X of two_states requires a gradient, which "
                                           "the op cannot provide: .*a second state"):
        op(x.requires_grad_())
    with torch.no_grad():
        op(x)
    only_q = native_op(EX / "causal.ein", wrt=["Q"])
    q, k, v = _qkv(1, 1, 6, 4)
    with pytest.raises(CascadeError, match="input K of causal requires a gradient.*not in wrt"):
        only_q(q, k, v)
    (gq,) = torch.autograd.grad(only_q(q, k.detach(), v.detach()).sum(), (q,))
    assert gq.shape == q.shape


class _Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(8, 8)
        self.causal = CascadeModule(EX / "causal.ein")
        self.linear = CascadeModule(EX / "linear.ein")

    def forward(self, x):
        a = self.causal(self.proj(x), x, x)
        return self.linear(a, x, V=a).sum()


def _compile_matches_eager(backend, monkeypatch, warm=True, length=10):
    import backends.triton.api as api

    model = _Model()
    x = torch.randn(1, 2, length, 8, requires_grad=True)
    if warm:
        model.causal.op.warm(x, x, x)
        model.linear.op.warm(x, x, x)

    def no_disk(*args, **kwargs):
        raise AssertionError("a kernel was generated or loaded after warm()")

    monkeypatch.setattr(api, "load_module", no_disk)
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    out = compiled(x)
    got = torch.autograd.grad(out, (x, model.proj.weight))
    eager = model(x)
    want = torch.autograd.grad(eager, (x, model.proj.weight))
    torch.testing.assert_close(out, eager)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


def test_torch_compile_fullgraph_of_a_model_with_two_cascades(monkeypatch):
    torch._dynamo.reset()
    _compile_matches_eager("aot_eager", monkeypatch)


def test_without_warm_the_kernels_are_generated_in_the_call(monkeypatch):
    torch._dynamo.reset()
    with pytest.raises(Exception, match="generated or loaded after warm"):
        _compile_matches_eager("aot_eager", monkeypatch, warm=False, length=7)


@pytest.mark.slow
def test_torch_compile_fullgraph_with_inductor(monkeypatch):
    torch._dynamo.reset()
    _compile_matches_eager("inductor", monkeypatch)  # about 50 s on 2 CPU cores (C++ codegen)


@pytest.mark.parametrize("backend", ["triton", "reference"])
def test_opcheck(backend):
    op = native_op(EX / "causal.ein", backend=backend)
    xs = _qkv(1, 2, 5, 4)
    torch.library.opcheck(op.forward_op, (xs,))
    outs = op.forward_op([x.detach() for x in xs])
    torch.library.opcheck(op.backward_op, ([x.detach() for x in xs] + outs[1:]
                                           + [torch.randn_like(outs[0])],))


TWO_OUTPUTS = """
rank I = 3, J = 4
input X[i, j], W[j]
output Y[i], Z[i, j]
S[i, j] = tanh(X[i, j]) * W[j]
Y[i] = sum[j] S[i, j] * X[i, j]
Z[i, j] = exp(S[i, j]) / (1 + W[j] * W[j])
"""


def test_several_outputs_come_back_as_a_tuple_and_both_seed_the_gradient():
    from einsum_ir import loads

    op = native_op(loads(TWO_OUTPUTS), backend="reference")
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    y, z = op(x, w)
    assert y.shape == (3,) and z.shape == (3, 4)
    assert torch.autograd.gradcheck(op, (x, w))
    # one output unused: its seed is zero
    (gx,) = torch.autograd.grad(op(x.t().contiguous().t(), W=w)[0].sum(), (x,))
    s = torch.tanh(x) * w
    (want,) = torch.autograd.grad((s * x).sum(), (x,))
    torch.testing.assert_close(gx, want)

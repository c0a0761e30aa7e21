"""Every example's backward on Triton: the gradient cascade (einsum_ir.autodiff) compiled to
Triton kernels (one kernel or a kernel program) and run in fp32 under the interpreter lane agrees
with the float64 reference interpreter on the same cascade, at the small sizes of
tests/test_autodiff.py (none a power of two where the example allows). The gradient cascades
themselves are checked against finite differences and torch.autograd in test_autodiff.py."""
import numpy as np
import pytest
from triton_lane import torch  # noqa: F401 (sets TRITON_INTERPRET first)

from backends.triton import compile_cascade
from einsum_ir import evaluate, load, resolve_sizes
from einsum_ir.autodiff import gradient
from einsum_ir.inputs import input_shapes
from test_autodiff import EXAMPLES, SIZES

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.mark.parametrize("name", sorted(SIZES))
def test_the_backward_kernels_match_the_interpreter(name):
    result = gradient(load(EXAMPLES / f"{name}.ein"))
    sizes = SIZES[name]
    rng = np.random.default_rng(2)
    env = resolve_sizes(result.forward, sizes)
    ins = {k: rng.standard_normal(s) for k, s in input_shapes(result.forward, env).items()}
    fwd = evaluate(result.forward, ins, sizes)
    feed = {**ins, **{k: fwd[k] for k in result.saved},
            **{s: rng.standard_normal(fwd[o].shape) for o, s in result.seeds}}
    feed = {d.name: feed[d.name] for d in result.backward.inputs}
    want = evaluate(result.backward, feed, sizes)
    fn = compile_cascade(result.backward, **sizes)
    got = fn(**{k: torch.tensor(v, dtype=torch.float32) for k, v in feed.items()})
    for grad, ref in want.items():  # fp32 sums: an error relative to the gradient's scale
        scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
        np.testing.assert_allclose(got[grad].numpy(), ref, rtol=1e-4, atol=2e-5 * scale,
                                   err_msg=f"{name}: {grad}")

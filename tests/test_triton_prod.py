"""The ``prod`` reducer on Triton: ``tl.reduce`` with a combine function the module defines once,
only where a kernel uses it; a streamed product accumulates by multiplying; a product over no
point is an empty point (the interpreter's), not the identity 1."""
import numpy as np
import pytest
import triton_lane  # noqa: F401 (skips without torch/triton; sets TRITON_INTERPRET first)

from backends.triton import compile_cascade
from backends.triton.program import Program
from einsum_ir import evaluate, loads, random_inputs, resolve_sizes

CASES = {
    # a whole row in one tile; rows p = 0 has no point (m < 3p): empty, stored as 0
    "masked": ("rank P = 40, M = 300\ninput X[p, m]\noutput T[p]\n"
               "T[p] = prod[m] X[p, m] where m < 3 * p\n"),
    # a row streamed in blocks: the accumulator multiplies the blocks' products
    "streamed": ("rank P = 70, M = 3000, E = 4\ninput X[p, e], K[m, e]\noutput T[p]\n"
                 "S[p, m] = sum[e] X[p, e] * K[m, e]\n"
                 "T[p] = prod[m] (1 + 0.001 * tanh(S[p, m])) where m <= 40 * p\n"),
    "empty_declared": ("rank P = 9, M = 13\ninput X[p, m]\noutput T[p] empty -2\n"
                       "T[p] = prod[m] (0.5 + X[p, m]) where m < p - 3\n"),
}


def _check(cascade, fn, sizes=None):
    import torch

    sizes = resolve_sizes(cascade, sizes or {})
    inputs = random_inputs(cascade, sizes, 0, np.float64)
    want = evaluate(cascade, inputs, sizes)
    got = fn(**{k: torch.tensor(v, dtype=torch.float32) for k, v in inputs.items()})
    for name, ref in want.items():
        np.testing.assert_allclose(got[name].numpy(), ref, rtol=2e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_product_matches_the_interpreter(name):
    cascade = loads(CASES[name], f"{name}.ein")
    fn = compile_cascade(cascade)
    source = fn.source()
    assert source.count("def _product(a, b):") == 1 and "tl.reduce(" in source
    if name == "streamed":
        assert "for it in range(" in source and "t_acc = t_acc * " in source
    _check(cascade, fn)


def test_a_kernel_program_defines_the_combine_function_once():
    # agent attention with a product in each of its two kernel programs
    text = """rank H = 2, P = 7, M = 9, E = 4, F = 3, NA = 2
input  Q[h,p,e], K[h,m,e], V[h,m,f], Ag[h,na,e]
output O[h,p,f]
SA[h,na,m]  = sum[e] Ag[h,na,e] * K[h,m,e] / sqrt(E)
NA1[h,na,m] = exp(SA[h,na,m] - (max[m] SA[h,na,m]))
AV[h,na,f]  = sum[m] NA1[h,na,m] * V[h,m,f] / (prod[m] (1 + 0.1 * NA1[h,na,m]))
SQ[h,p,na]  = sum[e] Q[h,p,e] * Ag[h,na,e] / sqrt(E)
NQ[h,p,na]  = exp(SQ[h,p,na] - (max[na] SQ[h,p,na]))
O[h,p,f]    = sum[na] NQ[h,p,na] * AV[h,na,f] / (prod[na] (1 + 0.1 * NQ[h,p,na]))
"""
    cascade = loads(text, "agent_prod.ein")
    fn = compile_cascade(cascade)
    _check(cascade, fn)
    assert isinstance(fn.last, Program) and len(fn.last.groups) >= 2
    source = fn.source()
    assert source.count("def _product(a, b):") == 1 and source.count("_product)") >= 2


def test_no_combine_function_where_no_kernel_multiplies():
    assert "_product" not in compile_cascade("examples/attention/causal.ein").source()

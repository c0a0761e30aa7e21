import glob

import numpy as np
import pytest

from einsum_ir import evaluate, load

EXAMPLES = sorted(glob.glob("examples/attention/*.ein"))


@pytest.mark.parametrize("path", EXAMPLES)
def test_examples_evaluate_finite(path):
    out = evaluate(load(path), sizes={"P": 64} if "linear_causal" in path else {"P": 64, "M": 48})
    for value in out.values():
        assert np.isfinite(value).all()

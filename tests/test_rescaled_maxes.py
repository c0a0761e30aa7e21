"""Which running maxes' step differences are only an online softmax's rescale exponent
(einsum_ir.autodiff.online.rescaled_maxes): there a kernel may take -inf - -inf as 0 (a factor
of 1 on a zero state); any other reader of the difference sees the interpreter's empty point."""
from pathlib import Path

import pytest

from einsum_ir import load, loads
from einsum_ir.autodiff.online import rescaled_maxes
from einsum_ir.printer import format_expr
from einsum_ir.verifier import analyze

EX = Path(__file__).resolve().parent.parent / "examples" / "attention"


def _maxes(cascade):
    return {t: format_expr(d) for t, d in rescaled_maxes(cascade, analyze(cascade).recurrences)
            .items()}


@pytest.mark.parametrize("name", ["mha_1pass", "mha_2pass"])
def test_the_online_softmax_rescale_is_proven(name):
    assert _maxes(load(EX / f"{name}.ein")) == {"RM": "RM[b, h, p, m1] - RM[b, h, p, m1 + 1]"}


def test_another_reader_of_the_factor_or_the_difference_is_not():
    text = (EX / "mha_1pass.ein").read_text()
    as_output = text.replace("output AV[b,h,p,f]", "output AV[b,h,p,f], PRM[b,h,p,m1]")
    assert _maxes(loads(as_output, "prm_out.ein")) == {}
    reread = text.replace("output AV[b,h,p,f]", "output AV[b,h,p,f], X[b,h,p,m1]") + \
        "X[b,h,p,m1] = exp(RM[b,h,p,m1] - RM[b,h,p,m1+1]) + 1\n"
    assert _maxes(loads(reread, "diff_read.ein")) == {}

"""Every mistake of issue 2 item 4 gets a located diagnostic: message, line and column."""
import pytest

from einsum_ir import CascadeError, load, loads

HEAD = """rank B = 1, P = 8, M = 8, E = 4, F = 4
input Q[b,p,e], K[b,m,e]
output S[b,p,m]
"""

CASES = [
    # (name, body lines after HEAD, message fragment, line, column)
    ("syntax", "S[b,p,m] = sum[e] Q[b,p,e] * K[b,m,e", "unexpected end of file", 4, 36),
    ("bad character", "S[b,p,m] = sum[e] Q[b,p,e] $ K[b,m,e]", "unexpected character '$'", 4, 28),
    ("unknown tensor", "S[b,p,m] = sum[e] Q[b,p,e] * X[b,m,e]", "unknown tensor 'X'", 4, 30),
    ("wrong arity", "S[b,p,m] = sum[e] Q[b,p] * K[b,m,e]", "Q has 3 indices, but 2 are given", 4, 19),
    ("no extent", "S[b,p,m] = sum[e] Q[b,p,e] * K[b,m,e] * z", "index z has no extent", 4, 41),
    ("inconsistent extents", "S[b,p,m] = sum[e] Q[b,m,e] * K[b,m,e]",
     "index m ranges over M, but axis 2 of Q has rank P", 4, 23),
    ("cycle", "T[b,p,m] = S[b,p,m] + 1\nS[b,p,m] = T[b,p,m] * 2", "dependency cycle: T -> S -> T", 4, 1),
    ("defined twice", "S[b,p,m] = sum[e] Q[b,p,e] * K[b,m,e]\nS[b,p,m] = 1", "tensor S is defined twice", 5, 1),
    ("recurrence without init", "R[b,p,m+1] = R[b,p,m] + 1\nS[b,p,m] = R[b,p,m]",
     "recurrence R has no initial value", 4, 1),
    ("unknown function", "S[b,p,m] = sum[e] foo(Q[b,p,e]) * K[b,m,e]", "unknown function 'foo'", 4, 19),
    ("reducer over unused index", "S[b,p,m] = sum[e,f] Q[b,p,e] * K[b,m,e]",
     "sum[f] reduces over f, which the expression does not use", 4, 1),
    ("output never defined", "T[b,p,m] = sum[e] Q[b,p,e] * K[b,m,e]", "output S is never defined", 3, 8),
    ("index neither kept nor reduced", "S[b,p,m] = max[m] Q[b,p,e] * K[b,m,e]",
     "index m is both kept in the output and reduced", 4, 1),
    ("nested reduction", "S[b,p,m] = exp(sum[e] Q[b,p,e] * K[b,m,e])", "unexpected 'Q'", 4, 23),
    ("assignment in predicate", "S[b,p,m] = sum[e] Q[b,p,e] * K[b,m,e] where m = p", "unexpected '='", 4, 47),
    # a predicate may compare tensor values (a data-dependent mask), of tensors that exist
    ("predicate reads an unknown tensor", "S[b,p,m] = sum[e] Q[b,p,e] * K[b,m,e] where Z[b,p,0] > 0",
     "unknown tensor 'Z'", 4, 45),
    ("input redefined", "Q[b,p,e] = 1\nS[b,p,m] = sum[e] Q[b,p,e] * K[b,m,e]",
     "Q is an input and cannot be defined here", 4, 1),
    ("function arity", "S[b,p,m] = sum[e] exp(Q[b,p,e], 2) * K[b,m,e]", "exp takes 1 argument(s), got 2", 4, 19),
]


@pytest.mark.parametrize("name,body,message,line,column", CASES, ids=[c[0] for c in CASES])
def test_located_error(name, body, message, line, column):
    with pytest.raises(CascadeError) as info:
        loads(HEAD + body + "\n", "bad.ein")
    err = info.value
    assert message in err.message
    assert err.span is not None
    assert (err.span.line, err.span.column) == (line, column)
    text = err.render()
    assert text.startswith(f"bad.ein:{line}:{column}: error: ")
    assert "^" in text  # the caret under the source line
    assert "hint: " in text


def test_missing_file():
    with pytest.raises(CascadeError, match="no such file"):
        load("does/not/exist.ein")


def test_hints_say_how_to_fix():
    with pytest.raises(CascadeError) as info:
        loads(HEAD + "S[b,p,m] = exp(sum[e] Q[b,p,e] * K[b,m,e])\n", "bad.ein")
    assert "whole right-hand side" in info.value.hint
    with pytest.raises(CascadeError) as info:
        loads(HEAD + "S[b,p,m] = sum[e] Q[b,p,e] * K[b,m,e\n", "bad.ein")
    assert "'[' is not closed" in info.value.hint


def test_bad_size_override():
    from einsum_ir import resolve_sizes

    cascade = loads(HEAD + "S[b,p,m] = sum[e] Q[b,p,e] * K[b,m,e]\n")
    with pytest.raises(CascadeError, match="no rank or parameter named 'X'"):
        resolve_sizes(cascade, {"X": 3})
    with pytest.raises(CascadeError, match="must be positive"):
        resolve_sizes(cascade, {"P": 0})


def test_split_outer_cannot_be_set():
    from einsum_ir import resolve_sizes

    cascade = load("examples/attention/mha_1pass.ein")
    with pytest.raises(CascadeError, match="derived from the split"):
        resolve_sizes(cascade, {"M1": 3})
    assert resolve_sizes(cascade, {"M": 100, "M0": 32})["M1"] == 4

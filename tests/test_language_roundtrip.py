"""Printing round-trips, and the parser never raises anything but CascadeError."""
import contextlib
import glob

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from einsum_ir import CascadeError, evaluate, format_cascade, load, parse, verify

EXAMPLES = sorted(glob.glob("examples/attention/*.ein"))


@pytest.mark.parametrize("path", EXAMPLES)
def test_print_parse_round_trip(path):
    cascade = load(path)
    text = format_cascade(cascade)
    again = parse(text, path)
    assert again == cascade
    assert format_cascade(again) == text  # printing is a fixed point
    verify(again)


def test_round_trip_keeps_meaning():
    cascade = load("examples/attention/sliding_window.ein")
    again = parse(format_cascade(cascade))
    sizes = {"P": 20, "M": 20, "W": 3}
    np.testing.assert_array_equal(evaluate(cascade, sizes=sizes)["AV"], evaluate(again, sizes=sizes)["AV"])


def test_round_trip_of_tricky_expressions():
    text = """rank P = 4, M = 4
param W = 2
input X[p,m]
output Y[p,m]
Y[p,m] = -(X[p,m] - (1 - X[p,m])) / (2 * X[p,m]) - -1e-3 * (p - m) + -inf * 0 where not (p - m > W or m > p) and abs(p - m) % 2 == 0
"""
    cascade = parse(text)
    assert parse(format_cascade(cascade)) == cascade


def test_spans_do_not_affect_equality():
    a = parse("rank P = 2\ninput X[p]\noutput Y[p]\nY[p] = X[p]\n", "a.ein")
    b = parse("rank P = 2\n\n\ninput X[p]\noutput Y[p]\n\n  Y[p]   =   X[p]\n", "b.ein")
    assert a == b
    assert a.einsums[0].span != b.einsums[0].span


def _mutations(text: str):
    lines = text.splitlines(keepends=True)
    return st.one_of(
        # delete a character range
        st.tuples(st.integers(0, len(text)), st.integers(0, 8)).map(lambda t: text[: t[0]] + text[t[0] + t[1]:]),
        # insert a random snippet
        st.tuples(st.integers(0, len(text)), st.sampled_from(
            ["[", "]", "(", ")", ",", "=", "sum[m]", "max(", " where ", "+1", "X[", "-inf", "\n", "#", "m1+1", "0.5.5", "@"]))
        .map(lambda t: text[: t[0]] + t[1] + text[t[0]:]),
        # truncate
        st.integers(0, len(text)).map(lambda n: text[:n]),
        # duplicate or delete a line
        st.integers(0, max(len(lines) - 1, 0)).map(lambda i: "".join(lines[: i + 1] + lines[i:])),
        st.integers(0, max(len(lines) - 1, 0)).map(lambda i: "".join(lines[:i] + lines[i + 1:])),
    )


@pytest.mark.parametrize("path", EXAMPLES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_files_raise_only_cascade_errors(path, data):
    with open(path) as fh:
        text = fh.read()
    mutated = data.draw(_mutations(text))
    try:
        cascade = parse(mutated, "mutated.ein")
        verify(cascade)
    except CascadeError as exc:
        rendered = exc.render()
        assert "error:" in rendered
        return
    # A mutation that still verifies must also evaluate (or fail with our error) at small sizes.
    sizes = {d.name: 3 for d in cascade.sizes if d.is_rank and d.name in ("B", "H", "P", "M", "E", "F")}
    with contextlib.suppress(CascadeError):
        evaluate(cascade, sizes=sizes)

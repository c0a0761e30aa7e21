"""The one pipeline: named passes in declared order, skipped passes with reasons, cached facts."""
from dataclasses import dataclass

import pytest

from einsum_ir import CascadeError, load, loads, parse_file
from einsum_ir.passes import OnlineSoftmax, PassSpec, Pipeline, digest, prepare, replay
from einsum_ir import verifier


def test_one_pass_pipeline_records_what_it_did():
    prepared = prepare(load("examples/attention/mha_3pass.ein"), tile_size=32)
    assert prepared.applied == (PassSpec("online-softmax", (("tile_size", 32),)),)
    assert prepared.describe() == "after online-softmax(tile_size=32)"
    assert prepared.cascade is not prepared.source
    assert prepared.facts.cascade == prepared.cascade


def test_skipped_pass_says_why():
    prepared = prepare(load("examples/attention/linear.ein"))
    assert prepared.applied == ()
    assert prepared.cascade is prepared.source
    (name, reason), = prepared.skipped
    assert name == "online-softmax" and "no softmax" in reason


def test_declared_order_is_checked():
    @dataclass(frozen=True)
    class NeedsSoftmax:
        name = "needs-softmax"
        requires = ("online-softmax",)

        def __call__(self, cascade):
            return cascade

    with pytest.raises(CascadeError, match="must run after online-softmax"):
        Pipeline("bad", (NeedsSoftmax(), OnlineSoftmax()))
    Pipeline("good", (OnlineSoftmax(), NeedsSoftmax()))


def test_digest_ignores_the_name_but_not_the_content():
    a = load("examples/attention/causal.ein")
    text = a.source
    assert digest(loads(text, "other.ein")) == digest(a)
    assert digest(loads(text.replace("m <= p", "m < p"))) != digest(a)


def test_replay_refuses_a_pipeline_that_does_not_apply():
    recorded = prepare(load("examples/attention/mha_3pass.ein")).applied
    assert replay(load("examples/attention/causal.ein"), "one-pass", recorded).changed
    with pytest.raises(CascadeError, match="does not apply to linear"):
        replay(load("examples/attention/linear.ein"), "one-pass", recorded)


def test_facts_are_computed_once_per_cascade():
    cascade = parse_file("examples/attention/sliding_window.ein")  # not verified yet
    verifier._FACTS.clear()  # the cache is keyed by equality: an earlier test may hold this value
    calls = []
    original = verifier._derive

    def counting(c):
        calls.append(1)
        return original(c)

    verifier._derive = counting
    try:
        for _ in range(5):
            assert prepare(cascade, "as-written").facts.cascade is cascade
    finally:
        verifier._derive = original
    assert len(calls) == 1


def test_run_pipeline_goes_through_pipeline_and_verifies_by_default():
    from einsum_ir.passes import run_pipeline

    @dataclass(frozen=True)
    class DropAll:
        """A broken pass: removes every Einsum, so the outputs are never defined."""

        name = "drop-all"

        def __call__(self, cascade):
            return cascade.replace_einsums(())

    cascade = load("examples/attention/mha_3pass.ein")
    with pytest.raises(CascadeError, match="never defined"):
        run_pipeline(cascade, [DropAll()])
    assert run_pipeline(cascade, [DropAll()], verify=False).einsums == ()
    prepared = Pipeline("p", (DropAll(),)).run(cascade, verify=False)
    assert prepared.applied == (PassSpec("drop-all"),)

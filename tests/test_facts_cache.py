"""The facts cache of ``einsum_ir.verifier.analyze`` is keyed by equality (plus name and source):
an equal cascade built again derives nothing new, and every consumer that relates Einsums to the
facts' recurrences gets the same answers for it as for the first copy."""

import pytest

from backends.gpu.mapping import predict, rank_mappings
from backends.gpu.arch import load_gpu_arch
from backends.gpu.plan import Config
from einsum_ir import analyze, load, resolve_sizes, verifier
from einsum_ir.parser import parse_file
from einsum_ir.passes import prepare


def _counting(monkeypatch):
    calls = []
    original = verifier._derive

    def counting(c):
        calls.append(c.name)
        return original(c)

    monkeypatch.setattr(verifier, "_derive", counting)
    return calls


def test_an_equal_cascade_shares_the_facts_but_keeps_its_own_object(monkeypatch):
    verifier._FACTS.clear()
    calls = _counting(monkeypatch)
    first = parse_file("examples/attention/mha_1pass.ein")
    second = parse_file("examples/attention/mha_1pass.ein")
    assert first == second and first is not second
    assert analyze(first).cascade is first
    facts = analyze(second)
    assert facts.cascade is second
    assert calls == [first.name]
    assert facts.recurrences == analyze(first).recurrences


def test_a_different_name_or_source_gets_its_own_facts(monkeypatch):
    verifier._FACTS.clear()
    calls = _counting(monkeypatch)
    cascade = parse_file("examples/attention/mha_1pass.ein")
    analyze(cascade)
    analyze(cascade.__class__(**{**cascade.__dict__, "name": "renamed"}))
    analyze(cascade.__class__(**{**cascade.__dict__, "source": "other text"}))
    assert len(calls) == 3


def test_the_cache_is_bounded(monkeypatch):
    verifier._FACTS.clear()
    monkeypatch.setattr(verifier, "_FACTS_LIMIT", 2)
    cascade = parse_file("examples/attention/mha_1pass.ein")
    for k in range(4):
        analyze(cascade.__class__(**{**cascade.__dict__, "name": f"c{k}"}))
    assert [key[1] for key in verifier._FACTS] == ["c2", "c3"]


@pytest.mark.parametrize("name", ["mha_1pass", "mha_2pass", "causal", "linear_causal_chunked"])
def test_gpu_predictions_of_equal_cascades_agree(name):
    """The GPU model relates loop Einsums to the facts' recurrences (an init is not a loop
    unit): the copy analysed second, whose facts come from the first, is priced the same."""
    path = f"examples/attention/{name}.ein"
    gpu = load_gpu_arch("h100")
    results = []
    for _ in range(2):
        prepared = prepare(load(path))
        sizes = resolve_sizes(prepared.cascade, dict(P=4096, M=4096))
        if name == "linear_causal_chunked":
            sizes = resolve_sizes(prepared.cascade, dict(P=4096))
        best = rank_mappings(prepared, sizes, dtype="float16")[0]
        one = predict(prepared, sizes, Config(64, 64, 4, 2), gpu, "float16")
        results.append((best.config, best.predicted_s, one.predicted_s, one.breakdown))
    assert results[0] == results[1]


def test_gpu_model_finds_the_inits_and_updates_of_a_copy_analysed_second():
    from backends.gpu.bounds import _targets
    from backends.gpu.mapping import _is_init
    from backends.gpu.plan import Lowering, lowering_sizes
    from backends.gpu.schedule import schedule
    from einsum_ir.ir import Role

    path = "examples/attention/mha_1pass.ein"
    first, second = prepare(load(path)), prepare(load(path))
    assert first.cascade is not second.cascade and first.cascade == second.cascade
    cfg = Config(64, 64, 4, 2)
    low = Lowering(second.cascade, lowering_sizes(second, dict(P=256, M=256), cfg.block_c), cfg,
                   second.facts)
    inits = [e for e in second.cascade.einsums if _is_init(low, e)]
    assert inits and all(e.role is Role.INIT for e in inits)
    assert len(inits) == len(second.facts.recurrences)
    loops = [loop for phase in schedule(low, cfg).phases.values() for loop in phase]
    updates = [e for loop in loops for e, _ in _targets(low, loop)
               if e.name in second.facts.recurrences]
    assert {e.name for e in updates} == set(second.facts.recurrences)

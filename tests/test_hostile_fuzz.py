"""A bounded fuzz campaign (issue 9): mutated example files through the command line, in-process.
Every run exits 0, or 1 with a located diagnostic and a hint; never 2 (an internal error).
The larger campaign is ``python bench/fuzz_inputs.py --count N``."""
import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "fuzz_inputs", Path(__file__).resolve().parents[1] / "bench" / "fuzz_inputs.py")
fuzz = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fuzz)


@pytest.mark.parametrize("commands,count,seed", [
    (("check",), 200, 11),
    (("eval", "work", "passes"), 30, 12),
])
def test_mutated_cascades_give_located_diagnostics(tmp_path, commands, count, seed):
    summary = fuzz.campaign(count, seed, commands, folder=str(tmp_path))
    assert summary["findings"] == 0, summary["details"][:3]
    assert set(summary["exit_codes"]) <= {"0", "1"}
    assert summary["exit_codes"].get("1", 0) > count // 2  # the mutants do reach the diagnostics


def test_classify_flags_what_the_campaign_must_catch():
    assert fuzz.classify(2, "cascade: internal error: RecursionError", "x.ein") == "exit 2"
    assert fuzz.classify(1, "error: oops\nhint: h", "x.ein") == "diagnostic without a location"
    assert fuzz.classify(1, "x.ein:1:2: error: oops", "x.ein") == "diagnostic without a hint"
    assert fuzz.classify(1, "x.ein:1:2: error: oops\nhint: h", "x.ein").startswith(
        "located diagnostic without the source line")
    assert fuzz.classify(1, "x.ein: error: oops\nhint: h", "x.ein") is None
    assert fuzz.classify(1, "x.ein:1:2: error: oops\n  a\n  ^\nhint: h", "x.ein") is None


def test_mutations_are_deterministic_and_varied():
    import random

    text = fuzz.EXAMPLES[0].read_text()
    first = [fuzz.mutate(text, random.Random(5)) for _ in range(1)]
    again = [fuzz.mutate(text, random.Random(5)) for _ in range(1)]
    assert first == again
    rng = random.Random(0)
    assert len({str(fuzz.mutate(text, rng)) for _ in range(50)}) > 45

"""The attention catalogue (tests/data/catalogue): every cascade parses, verifies, and its
interpreter result matches a numpy reference written from the catalogue's math (references.py)."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from einsum_ir import evaluate, load, resolve_sizes
from einsum_ir.inputs import input_shapes

FOLDER = Path(__file__).parent / "data" / "catalogue"


def _references():
    spec = importlib.util.spec_from_file_location("catalogue_references", FOLDER / "references.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REFS = _references()
IDS = sorted(p.stem for p in FOLDER.glob("*.ein"))
FAMILIES = {"D", "M", "S", "L", "H", "X"}


def make_inputs(name, cascade, sizes, seed=0):
    rng = np.random.default_rng(seed)
    shapes = input_shapes(cascade, sizes)
    if name in REFS.INPUTS:
        return REFS.INPUTS[name](rng, shapes)
    return {n: rng.standard_normal(sh) for n, sh in shapes.items()}


def test_every_cascade_has_a_reference_and_every_family_is_covered():
    assert set(IDS) == set(REFS.REFERENCES)
    assert {i[0] for i in IDS} >= FAMILIES
    assert len(IDS) >= 30


@pytest.mark.parametrize("name", IDS)
def test_interpreter_matches_reference(name):
    cascade = load(FOLDER / f"{name}.ein")
    sizes = resolve_sizes(cascade, {})
    inputs = make_inputs(name, cascade, sizes)
    got = evaluate(cascade, inputs)
    want = REFS.REFERENCES[name](inputs, sizes)
    assert set(got) == set(want)
    for out, value in want.items():
        assert got[out].shape == value.shape, out
        np.testing.assert_allclose(got[out], value, rtol=1e-9, atol=1e-11, err_msg=out)


@pytest.mark.parametrize("name", ["D5_hopfield", "M1_sinks", "S7_topk", "L9_gated_deltanet"])
def test_interpreter_matches_reference_at_other_sizes(name):
    """The cascades are not tied to their default sizes."""
    cascade = load(FOLDER / f"{name}.ein")
    override = {"D5_hopfield": {"T": 5, "M": 6}, "M1_sinks": {"P": 13, "W": 4, "S": 1},
                "S7_topk": {"M": 13, "TK": 5}, "L9_gated_deltanet": {"P": 11, "E": 3}}[name]
    sizes = resolve_sizes(cascade, override)
    inputs = make_inputs(name, cascade, sizes, seed=1)
    got = evaluate(cascade, inputs, override)
    for out, value in REFS.REFERENCES[name](inputs, sizes).items():
        np.testing.assert_allclose(got[out], value, rtol=1e-9, atol=1e-11, err_msg=out)

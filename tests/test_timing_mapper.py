"""The timing options (``units[i].timing``, ``levels[i].ports``) as the mapper sees them: its
vectorised evaluator must charge the fill/drain and weight-load cycles the model charges
(:func:`simulator.timing.einsum_fill`, one formula for both), so that it ranks candidates by the
cycles ``simulate`` then reports."""
import dataclasses

import numpy as np
import pytest

from mapper.evaluate import candidate_mapping
from mapper.search import _evaluate, forms_for, search
from mapper.select import rank
from simulator.arch import resolve_arch
from simulator.cost import simulate_problem
from simulator.timing import UnitTiming
from studies.fusemax.workloads import cascade
from test_fill_drain import gemm, systolic


def _predicted_and_simulated(arch, casc, sizes=None, sample: int = 0):
    """(the evaluator's cycles, simulate's cycles, spatial choice of the first unit) of every
    feasible candidate in the mapper's latency ranking (``sample``: the best ``sample`` and as
    many more evenly spread over the ranking)."""
    forms, _ = forms_for(casc, arch, sizes)
    pools, _, _ = _evaluate(forms, arch, (0.0,), 1.0, False, keep=None)
    names = [u.name for u in arch.units]
    rows = [(p, i) for p in pools for i in range(len(p.cycles))]
    lat = np.concatenate([p.cycles for p in pools])
    en = np.concatenate([p.energy for p in pools])
    order = [gi for gi in rank(lat, en, "latency") if np.isfinite(lat[gi])]
    if sample:
        order = order[:sample] + order[sample::max(1, (len(order) - sample) // sample)]
    out = []
    for gi in order:
        p, i = rows[gi]
        m = candidate_mapping(p.form, p.bindings[i], names, p.spatial, p.tiling, "pipelined", {})
        out.append((float(p.cycles[i]), simulate_problem(p.form.prob, arch, m).cycles,
                    p.spatial.get(names[0])))
    return out


@pytest.mark.parametrize("fill_drain", ["none", "per_group", "per_tile"])
@pytest.mark.parametrize("weight_load", ["exposed", "hidden"])
def test_every_candidate_is_predicted_as_simulated(fill_drain, weight_load):
    """Every candidate, not only the best: the evaluator's cycles are simulate's, exactly."""
    found = _predicted_and_simulated(systolic(8, 8, fill_drain, weight_load), gemm(64, 48, 40))
    assert len(found) > 10
    for predicted, simulated, _ in found:
        assert predicted == simulated


def test_per_tile_fills_change_the_winner():
    """A 64^3 GEMM on an 8 x 8 array: without fill and drain the weight-stationary mapping
    (K, M across the PEs) ties the output-stationary one and wins on energy; per tile it pays
    8 extra cycles to load the weights and 14 to fill and drain on every pass of 8 streamed
    values, the output-stationary mapping (M, N across, 64 values of K streamed) 14 per pass of
    64, so the output-stationary one must win, and simulate must agree with the prediction."""
    casc = gemm(64, 64, 64)
    steady = _predicted_and_simulated(systolic(8, 8, "none"), casc)
    assert steady[0][2] == ("K0", "M0") and steady[0][1] == 64 ** 3 / 64
    best = _predicted_and_simulated(systolic(8, 8, "per_tile"), casc)[0]
    assert best[2] == ("M0", "N0")
    assert best[0] == best[1] == 64 ** 3 / 64 + 14 * 64  # 64 folds of M x N, 14 cycles each
    result = search(casc, systolic(8, 8, "per_tile"), top=1, modes=("pipelined",), fusion="full")
    assert result.best[0][1].cycles == best[1]
    assert result.best[0][0].einsums["C"].spatial == ("M0", "N0")


@pytest.mark.parametrize("fill_drain", ["per_group", "per_tile"])
def test_attention_on_two_units_is_predicted_as_simulated(fill_drain):
    """The 1-pass attention cascade on FuseMax's 2D and 1D arrays (16 PEs a side) with fill and
    drain on both: bindings across units, recurrences whose bound the fills lengthen. The best
    candidates and a spread of the rest: predicted cycles are simulate's."""
    base = resolve_arch("fusemax", {"pe_dim": 16})
    arch = dataclasses.replace(base, units=tuple(
        dataclasses.replace(u, timing=UnitTiming(fill_drain)) for u in base.units))
    sizes = {"B": 1, "H": 2, "E": 16, "F": 16, "P": 64, "M": 128}
    found = _predicted_and_simulated(arch, cascade("mha_1pass"), sizes, sample=20)
    assert len(found) >= 40
    steady = _predicted_and_simulated(base, cascade("mha_1pass"), sizes, sample=1)[0]
    assert found[0][0] > steady[0]  # the fills are charged
    for predicted, simulated, _ in found:
        assert predicted == simulated

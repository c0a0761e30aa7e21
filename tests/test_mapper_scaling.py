"""The mapper's binding matrix stays bounded: two chained softmaxes (agent attention) and chains
of more than 32 Einsums map; pruning dominated bindings keeps the best mapping."""
from pathlib import Path

import numpy as np
import pytest

from cascade_cli.io import read_cascade
from einsum_ir.loading import load_resolved
from mapper import bindings as mb
from mapper import evaluate
from mapper.search import search
from simulator.arch import resolve_arch
from studies.fusemax.workloads import cascade

ROOT = Path(__file__).resolve().parent.parent
AGENT = ROOT / "tests" / "data" / "agent_attention.ein"


@pytest.fixture
def grids(monkeypatch):
    """Records (rows of the full grid, rows the mapper built) of every binding matrix."""
    seen = []
    original = evaluate.binding_matrix

    def recording(choices, costs, *args, **kwargs):
        rows = original(choices, costs, *args, **kwargs)
        seen.append((mb.grid_size(choices), rows.shape[0]))
        return rows

    monkeypatch.setattr(evaluate, "binding_matrix", recording)
    return seen


def _chain(n: int, size: int = 2):
    from einsum_ir.parser import parse

    lines = [f"rank P = {size}", "input X[p]", f"output T{n}[p]"]
    lines += [f"T{i}[p] = {'X' if i == 1 else f'T{i - 1}'}[p] + 1" for i in range(1, n + 1)]
    return parse("\n".join(lines) + "\n", "chain.ein")


def test_two_chained_softmaxes_map_with_bounded_bindings(grids):
    loaded = load_resolved(read_cascade(str(AGENT)), [])
    arch = resolve_arch("fusemax")
    r = search(loaded.cascade, arch, dict(loaded.overrides), top=1)
    # both softmaxes rewritten to one pass (24 Einsums) are mapped; which form wins is the
    # objective's business (with any-size spatial ranks and fusion search the as-written form can)
    assert r.best and "after online-softmax(tile_size=256)" in r.forms_tried
    full = max(g for g, _ in grids)
    assert full > mb.FULL_GRID  # the whole grid is past the full-grid limit: the beam is taken
    assert max(rows for _, rows in grids) <= max(mb.FULL_GRID, mb.BEAM * len(arch.units))


def test_more_than_32_einsums_map(grids):
    r = search(_chain(40), resolve_arch("fusemax"), {}, top=1)
    assert r.best and len(r.best[0][0].einsums) == 40
    assert max(g for g, _ in grids) == 2 ** 40
    assert max(rows for _, rows in grids) <= max(mb.FULL_GRID, mb.BEAM * 2)


def test_full_grid_has_no_column_limit():
    small = mb.full_grid([[0, 1], [2], [0, 1, 2]])
    assert small.tolist() == [[0, 2, 0], [0, 2, 1], [0, 2, 2], [1, 2, 0], [1, 2, 1], [1, 2, 2]]
    wide = mb.full_grid([[0]] * 38 + [[0, 1]] * 2)  # 40 columns: np.meshgrid refuses past 32
    assert wide.shape == (4, 40) and wide[:, -2:].tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]


def test_pruned_bindings_keep_the_best_mapping(monkeypatch):
    """With every Einsum allowed on both arrays (min_parallelism 0: 2^12 bindings), the pruned
    bindings find the mapping the full grid finds."""
    arch = resolve_arch("fusemax")
    sizes = {"B": 64, "H": 12, "E": 64, "F": 64, "P": 1024, "M": 1024}
    full = search(cascade("mha_1pass"), arch, sizes, top=1, min_parallelism=0)
    monkeypatch.setattr(evaluate, "binding_matrix",
                        lambda choices, costs: mb.binding_matrix(choices, costs, full_grid_rows=0))
    pruned = search(cascade("mha_1pass"), arch, sizes, top=1, min_parallelism=0)
    assert pruned.evaluated < full.evaluated
    assert pruned.best[0][1].cycles == full.best[0][1].cycles
    assert pruned.best[0][1].energy_pJ == pytest.approx(full.best[0][1].energy_pJ, rel=1e-12)


def test_dominated_partial_bindings_are_dropped():
    """Cycles equal energy here. Binding Einsums 0, 1 to units (1, 0) costs busy (1, 2) and energy
    3; (0, 1) costs busy (1, 3) and energy 4: dominated, it never ends a kept binding. The
    bindings best by the busiest unit and by energy are kept."""
    cyc = np.array([[1.0, 2.0], [1.0, 3.0], [5.0, 1.0]])
    costs = mb.BindingCosts(cyc, cyc.copy(), np.zeros_like(cyc), (), ())
    rows = mb.binding_matrix([[0, 1], [0, 1], [0, 1]], costs, full_grid_rows=0).tolist()
    grid = mb.full_grid([[0, 1]] * 3)
    busy = np.stack([np.where(grid == u, cyc[np.arange(3), grid], 0).sum(1) for u in (0, 1)], 1)
    energy = cyc[np.arange(3), grid].sum(1)
    assert grid[np.argmin(busy.max(1))].tolist() in rows
    assert grid[np.argmin(energy)].tolist() in rows
    assert not any(r[:2] == [0, 1] for r in rows) and len(rows) < len(grid)
    assert rows == sorted(rows)  # in the grid's order

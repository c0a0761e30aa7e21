"""The mapper's per-level search on specs with per-PE levels (mapper.levels, simulator.hierarchy):
per-level tile factors (imperfect ones included), keep or bypass per level and tensor, the PE's
walk reuse and its partial sums; two-level specs keep their space."""
import dataclasses
import re

import numpy as np
import pytest
import yaml

from einsum_ir import loads
from mapper.builders import single_group
from mapper.levels import split_sizes, with_level_splits
from mapper.search import search
from simulator.arch import arch_from_dict, resolve_arch
from simulator.cost import simulate
from simulator.counts import Infeasible
from simulator.mapping import LevelMap
from simulator.mapping_check import check_mapping
from simulator.mapping_load import mapping_from_dict
from simulator.problem import problem_for

from test_hierarchy import ROOT


def conv1x1(n=32, c=32, p=24, q=28):
    """A 1x1 convolution: the weights W and the input I are both reused inside a PE that walks
    the output channels N and the input channels C (P and Q across the 12 x 14 PEs)."""
    return loads(f"rank N = {n}, C = {c}, P = {p}, Q = {q}\ninput W[n,c], I[c,p,q]\n"
                 "output O[n,p,q]\nO[n,p,q] = sum[c] W[n,c] * I[c,p,q]\n")


GEMM = loads("rank M = 96, N = 112, K = 64\ninput A[m,k], B[k,n]\noutput C[m,n]\n"
             "C[m,n] = sum[k] A[m,k] * B[k,n]\n")


def _eyeriss_spad(spad_bytes=None):
    spec = yaml.safe_load((ROOT / "examples" / "archs" / "eyeriss_spad.yaml").read_text())
    if spad_bytes is not None:
        spec["levels"][2]["capacity"] = spad_bytes
    return arch_from_dict(spec, "eyeriss_spad.yaml")


def _with_keep(mapping, keep):
    g = mapping.groups[0]
    return dataclasses.replace(mapping, groups=(dataclasses.replace(
        g, levels={"spad": LevelMap(keep)}),))


def _best(cascade, arch, **kw):
    return search(cascade, arch, objective="energy", top=1, **kw).best[0]


def test_search_keeps_the_reused_input_in_the_scratchpad_where_it_fits_and_pays():
    """I's tile of one PE (C = 32 words) is used once per output channel the PE walks; the
    search splits N so the 16 partial sums fit the 24-word psum register file and keeps I in
    the scratchpad: 16 reads from the buffer per word become one fill and one scratchpad read
    per use. Bypassing the scratchpad on the same mapping costs 40% more energy."""
    arch = resolve_arch("eyeriss_spad")
    cascade = conv1x1()
    mapping, report = _best(cascade, arch)
    spad = report.groups[0].levels["spad"]
    assert spad.footprint == 32 * 2 and report.energy_breakdown["spad"] > 0
    assert mapping.tiles["N"] == {"N0": 16} and "N1" in mapping.groups[0].buffer_loops
    kept_i = simulate(cascade, arch, _with_keep(mapping, ("I",)))
    assert kept_i.energy_pJ == report.energy_pJ  # what it keeps is I
    bypass = simulate(cascade, arch, _with_keep(mapping, ()))
    assert bypass.energy_breakdown["GLB"] > 10 * report.energy_breakdown["GLB"]
    assert bypass.energy_pJ > 1.3 * report.energy_pJ
    assert bypass.cycles == report.cycles  # memory-bound either way


def test_bypass_wins_where_the_tile_does_not_fit_or_keeping_does_not_pay():
    """With 4-word scratchpads I's 32-word tile does not fit: keeping it is refused, and the
    search bypasses the level (splitting C to one channel a step, so each PE reuses one word
    of I from its operand register) at a higher energy than with the real scratchpads.
    An output-stationary GEMM reuses nothing inside a PE: keeping A and B only adds fills."""
    cascade = conv1x1()
    big_mapping, big = _best(cascade, resolve_arch("eyeriss_spad"))
    tiny = _eyeriss_spad(spad_bytes=8)
    with pytest.raises(Infeasible, match="keeps more in spad than one instance holds"):
        simulate(cascade, tiny, _with_keep(big_mapping, ("I",)))
    mapping, report = _best(cascade, tiny)
    assert report.groups[0].levels["spad"].footprint <= 8
    assert report.energy_pJ > big.energy_pJ
    gemm_mapping, gemm = _best(GEMM, resolve_arch("eyeriss_spad"))
    assert gemm.groups[0].levels["spad"].footprint == 0 and gemm.energy_breakdown["spad"] == 0
    assert simulate(GEMM, resolve_arch("eyeriss_spad"),
                    _with_keep(gemm_mapping, ("A", "B"))).energy_pJ > gemm.energy_pJ


@pytest.mark.parametrize("n", [37, 1000])
def test_imperfect_per_level_factors_never_lose_to_perfect_ones(n):
    """N output channels, 16 or fewer partial sums per PE: at N = 37 (prime) the only perfect
    factor is 1, the imperfect 19 x 2 (a ragged last tile of 18) is cheaper; at 1000 the best
    is the divisor 20 either way."""
    cascade, arch = conv1x1(n=n), resolve_arch("eyeriss_spad")
    _, imperfect = _best(cascade, arch)
    _, perfect = _best(cascade, arch, imperfect_factors=False)
    assert imperfect.energy_pJ <= perfect.energy_pJ
    if n == 37:
        assert imperfect.energy_pJ < perfect.energy_pJ
        assert imperfect.mapping.tiles["N"] == {"N0": 19}


def test_split_sizes_are_divisors_and_halvings_up_to_the_capacity():
    assert split_sizes(37, 236) == [19, 10, 5, 3, 2, 1]
    assert split_sizes(37, 236, imperfect=False) == [1]
    assert split_sizes(1000, 24) == [20, 16, 10, 8, 5, 4, 2, 1]
    assert set(split_sizes(1000, 24, imperfect=False)) <= set(split_sizes(1000, 24))


def test_two_level_specs_keep_their_space():
    """No per-PE level: no splits, and the walk reuse is free as before."""
    from mapper.search import forms_for
    from mapper.space import batch_ranks, spatial_options, tilings

    for name in ("fusemax", "eyeriss"):
        arch = resolve_arch(name)
        forms, _ = forms_for(conv1x1(), arch, {})
        form = forms[0]
        casc = form.prepared.cascade
        spatial, tile_sizes = spatial_options(casc, form.prob.sizes, arch)[0]
        found = tilings(casc, form.prob, form.keys, tile_sizes, batch_ranks(casc), (0.0,))
        assert with_level_splits(casc, form.prob, form.keys, arch, found, spatial) == [found]


def test_the_mappers_cost_of_split_tilings_is_the_models():
    """Candidates with a split walked rank and every keep choice: predicted latency and energy
    equal the re-simulation's exactly (infeasible ones are refused by the model too)."""
    from mapper.evaluate import candidate_mapping, evaluate_space
    from mapper.search import forms_for
    from mapper.space import batch_ranks, spatial_options, tilings
    from simulator.cost import simulate_problem

    arch = resolve_arch("eyeriss_spad")
    forms, _ = forms_for(conv1x1(n=20, c=16, p=12, q=14), arch, {})
    form = forms[0]
    casc, units, checked, infeasible, split = form.prepared.cascade, ["pe_array"], 0, 0, 0
    for spatial, tile_sizes in spatial_options(casc, form.prob.sizes, arch):
        found = tilings(casc, form.prob, form.keys, tile_sizes, batch_ranks(casc), (0.0,))
        for group in with_level_splits(casc, form.prob, form.keys, arch, found, spatial):
            for cand in evaluate_space(form, arch, spatial, group[::3], {}, 1.0)[::2]:
                m = candidate_mapping(form, cand.bindings[0], units, cand.spatial, cand.tiling,
                                      "pipelined", {})
                check_mapping(m, form.prob, arch)
                split += bool(cand.tiling.walked)
                try:
                    rep = simulate_problem(form.prob, arch, m)
                except Infeasible:
                    assert not np.isfinite(cand.cycles[0])
                    infeasible += 1
                    continue
                assert (rep.cycles, rep.energy_pJ) == (cand.cycles[0], cand.energy[0])
                checked += 1
    assert checked >= 10 and infeasible >= 1 and split >= 10


def test_walk_reuse_and_partial_sums_by_hand():
    """3 x 7 PEs with 64-byte scratchpads (32 words) and no register file: C[m,n] with M0 down
    the rows, N0 across the columns, K walked inside each PE and a second walked rank J that
    indexes only A: B[k,n]'s tile of one PE is K = 10 words used J = 4 times each."""
    from test_hierarchy import _spec

    cascade = loads("rank M = 3, N = 7, K = 10, J = 4\ninput A[m,k,j], B[k,n]\n"
                    "output C[m,n,j]\nC[m,n,j] = sum[k] A[m,k,j] * B[k,n]\n")
    spec = _spec()
    spec["units"][0]["register_file"] = {"words": 4, "read_pJ": 0, "write_pJ": 0}
    arch = arch_from_dict(spec, "three.yaml")
    m = single_group(["C"], {"C": "pe"}, {"pe": ["M0", "N0"]},
                     tiles={"M": {"M0": 3}, "N": {"N0": 7}}, loops=("M1",), buffer_loops=("N1",))
    bypass = simulate(cascade, arch, _with_keep(m, ()))
    # every use of B from the buffer: 10 x 4 per column, the 3 rows share a read; A: 3 x 10 x 4
    assert bypass.groups[0].glb_read == 7 * 10 * 4 + 3 * 10 * 4
    kept = simulate(cascade, arch, _with_keep(m, ("B",)))
    g = kept.groups[0]
    assert g.glb_read == 7 * 10 + 3 * 10 * 4  # B's fill: its 70 words once
    assert g.levels["spad"].write == 21 * 10 and g.levels["spad"].read == 21 * 10
    # the partial sums: C's 4 words (J) per PE fit 4 registers; with 3 they do not
    spec["units"][0]["register_file"]["words"] = 3
    with pytest.raises(Infeasible, match="partial sums"):
        simulate(cascade, arch_from_dict(spec, "three.yaml"), _with_keep(m, ()))


def test_a_walked_inner_part_is_a_valid_saved_mapping():
    """``K = K1 x K0`` with K1 a buffer loop and K0 walked loads and checks; an outer part that
    is neither a loop nor spread is still refused."""
    from test_hierarchy import _arch

    gemm = loads("rank M = 15, N = 21, K = 10\ninput A[m,k], B[k,n]\noutput C[m,n]\n"
                 "C[m,n] = sum[k] A[m,k] * B[k,n]\n")
    m = single_group(["C"], {"C": "pe"}, {"pe": ["M0", "N0"]},
                     tiles={"M": {"M0": 3}, "N": {"N0": 7}, "K": {"K0": 4}}, loops=("M1",),
                     buffer_loops=("N1", "K1"))
    back = mapping_from_dict(m.to_dict(), "m.yaml")
    prob = problem_for(gemm, {})
    check_mapping(back, prob, _arch())
    assert simulate(gemm, _arch(), back).cycles > 0
    data = m.to_dict()
    data["groups"][0]["buffer_loops"] = ["N1"]
    with pytest.raises(Exception, match=re.escape("tile part K1 of K is neither a loop")):
        check_mapping(mapping_from_dict(data, "m.yaml"), prob, _arch())

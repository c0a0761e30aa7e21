"""The FuseMax evaluation (the paper's attention and end-to-end results), run through the general cost model.

Each configuration is an (architecture spec, cascade, mapping) triple; the model knows nothing
about which configuration it evaluates. The mappings are the artifact's fixed choices:

* ``Unfused``: the 3-pass cascade as three kernels (QK, the softmax, AV), each its own group with
  its intermediate in DRAM, on FLAT's hardware (``unfused.yaml``).
* ``FLAT``: the 3-pass cascade fused in one software-pipelined group (QK and AV on the 2D array,
  the softmax on the 1D array); FLAT's own choices of granularity and spilling per length
  (as the FuseMax artifact configures FLAT): head granularity (all queries of a head resident) up to 4K, 256-query row
  tiles with the least spill that fits from 16K, and 1024-query row tiles with the score rows
  spilled to DRAM from 256K.
* ``+Cascade``: the 1-pass cascade on FLAT's hardware; QK and SLNV on the 2D array, the rest on
  the 1D array; pipelined.
* ``+Architecture``: the 1-pass cascade on FuseMax's hardware with FuseMax's binding, one tile at
  a time (``sequential``), the artifact's per-unit order (the running-denominator update of the
  previous tile first).
* ``FuseMax``: the same binding, software-pipelined across tiles.

P1 (resident 256-query tiles) is the largest power of two that fits the buffer (as in the FuseMax artifact).
End-to-end adds the layer's linear layers as GEMMs (compute-bound, one group each).
"""
from __future__ import annotations

import math

from simulator.arch import resolve_arch
from mapper.builders import multi_group, pow2_divisors, single_group

from simulator.cost import simulate
from simulator.counts import Infeasible
from .workloads import (MODELS, SEQ_LENS, attention_sizes, cascade, linear_sizes, seq_label)

CONFIGS = ("Unfused", "FLAT", "+Cascade", "+Architecture", "FuseMax")
ONE_PASS = ("QK", "LM", "RM", "SLN", "PRM", "SPD", "SLD", "RD", "SPNV", "SLNV", "RNV", "AV")
FUSEMAX_2D = ("QK", "LM", "SLN", "SLD", "SLNV")
CASCADE_2D = ("QK", "SLNV")
THREE_PASS = ("QK", "GM", "SN", "SD", "A", "AV")
ARCH_ORDER = {"2d": ["QK", "LM", "SLN", "SLD", "SLNV"],
              "1d": ["RD@prev", "AV", "RM", "PRM", "SPD", "SPNV", "RNV"]}


def _arch(name: str, overrides: dict | None = None):
    return resolve_arch(name, overrides)


def one_pass_mapping(binding_2d, pe: int, p1: int, mode: str = "pipelined", order=None,
                     inplace: bool = True):
    binding = {k: ("2d" if k in binding_2d else "1d") for k in ONE_PASS}
    return single_group(ONE_PASS, binding, {"2d": ["M0", "P0"], "1d": ["P0"]},
                        tiles={"P": {"P1": p1, "P0": pe}}, loops=("B", "H", "P2", "M1"),
                        buffer_loops=("P1",), mode=mode, order=order, sizes={"M0": pe},
                        name="attention", note="1-pass (mha_1pass.ein)", cascade="mha_1pass",
                        inplace=inplace)


def flat_mapping(seq: int, pe: int, rows: int, spill: float = 0.0, streamed=()):
    """FLAT: ``rows`` queries resident (all of them: head granularity), ``spill`` of the score
    rows in DRAM, ``streamed`` inputs not buffered (re-streamed from DRAM for every tile)."""
    binding = {"QK": "2d", "AV": "2d", "GM": "1d", "SN": "1d", "SD": "1d", "A": "1d"}
    p1 = max(1, rows // pe)
    spill_map = {"QK": spill, "SN": spill} if spill else {}
    return single_group(THREE_PASS, binding, {"2d": ["M0", "P0"], "1d": ["P0"]},
                        tiles={"P": {"P1": p1, "P0": pe}, "M": {"M0": pe}},
                        loops=("B", "H", "P2", "M1"), buffer_loops=("P1",), spill=spill_map,
                        keep={t: "DRAM" for t in streamed},
                        name="attention", note="3-pass (mha_3pass.ein)", cascade="mha_3pass")


# FLAT's own mapping choices for the cloud configuration (the artifact reads them from FLAT's search
# results, flat_validation.csv): query rows resident ("head" = all of them), and the inputs FLAT
# keeps off chip and re-streams per tile. From 256K the score rows live in DRAM and the GEMMs are
# weight-stationary (K and V re-streamed once per 1024-query tile, which the buffered reuse rule
# gives). Lengths between the study's points take the choice of the next shorter one.
FLAT_CHOICES = {
    "default": {1 << 10: ("head", ("Q", "K", "V")), 1 << 12: ("head", ("Q", "K", "V")),
                1 << 14: (1024, ("Q", "K", "V")), 1 << 16: (256, ("Q", "K", "V")),
                1 << 18: (1024, ()), 1 << 20: (1024, ())},
    "XLM": {1 << 10: ("head", ("Q", "K")), 1 << 12: ("head", ("Q", "K")),
            1 << 14: (1024, ("K", "V")), 1 << 16: (256, ("K", "V")),
            1 << 18: (1024, ()), 1 << 20: (1024, ())},
}


def flat_choice(model: str, seq: int):
    table = FLAT_CHOICES.get(model, FLAT_CHOICES["default"])
    key = max([n for n in table if n <= seq] or [min(table)])
    return table[key]


def unfused_mapping(pe: int, p1: int):
    tiles = {"P": {"P1": p1, "P0": pe}, "M": {"M0": pe}}
    return multi_group([
        dict(name="qk", einsums=("QK",), binding={"QK": "2d"}, spatial={"2d": ["M0", "P0"]},
             loops=("B", "H", "P2", "M1"), buffer_loops=("P1",)),
        dict(name="softmax", einsums=("GM", "SN", "SD", "A"),
             binding={k: "1d" for k in ("GM", "SN", "SD", "A")}, spatial={"1d": ["M0"]},
             loops=("B", "H", "P")),
        dict(name="av", einsums=("AV",), binding={"AV": "2d"}, spatial={"2d": ["M0", "P0"]},
             loops=("B", "H", "P2", "M1"), buffer_loops=("P1",)),
    ], tiles=tiles, note="3-pass (mha_3pass.ein), one kernel per stage", cascade="mha_3pass")


def linear_mapping(pe: int, p1: int, weights_resident: bool = True):
    """Each GEMM its own group; with ``weights_resident`` the whole weight matrix stays in the
    buffer (its column tiles are a buffer loop), else the column tiles are an off-chip loop."""
    groups = []
    for out, _red, rows in (("QP", "d", "N0"), ("KP", "d", "N0"), ("VP", "d", "N0"),
                           ("O", "n", "D0"), ("F1", "d", "S0"), ("F2", "s", "D0")):
        outer = rows[0] + "1"
        if weights_resident:
            loops, buffer_loops = ("B", "P2"), ("P1", outer)
        else:
            loops, buffer_loops = ("B", "P2", outer), ("P1",)
        groups.append(dict(name=out.lower(), einsums=(out,), binding={out: "2d"},
                           spatial={"2d": [rows, "P0"]}, loops=loops, buffer_loops=buffer_loops))
    tiles = {"P": {"P1": p1, "P0": pe}, "N": {"N0": pe}, "D": {"D0": pe}, "S": {"S0": pe}}
    return multi_group(groups, tiles=tiles, note="linear layers (GEMMs)", cascade="linear")


def _fit(build, cascade_obj, arch, sizes, candidates):
    last = None
    for p1 in candidates:
        mapping = build(p1)
        try:
            return mapping, simulate(cascade_obj, arch, mapping, sizes)
        except Infeasible as exc:
            last = exc
    raise last


def attention_point(model: str, seq: int, config: str, pe_dim: int | None = None,
                    arch_overrides: dict | None = None):
    """(mapping, report) of one configuration at one (model, length)."""
    sizes = attention_sizes(model, seq)
    overrides = dict(arch_overrides or {})
    if pe_dim is not None:
        overrides["pe_dim"] = pe_dim
    if config in ("+Architecture", "FuseMax"):
        arch = _arch("fusemax", overrides)
    elif config == "+Cascade":
        arch = _arch("cascade_ablation", overrides)
    elif config == "FLAT":
        arch = _arch("flat", overrides)
    else:
        arch = _arch("unfused", overrides)
    pe = arch.unit("1d").dims[0]
    tiles_p = max(1, seq // pe)
    if config == "FuseMax":
        return _fit(lambda p1: one_pass_mapping(FUSEMAX_2D, pe, p1), cascade("mha_1pass"), arch,
                    sizes, pow2_divisors(tiles_p))
    if config == "+Architecture":
        return _fit(lambda p1: one_pass_mapping(FUSEMAX_2D, pe, p1, "sequential", ARCH_ORDER),
                    cascade("mha_1pass"), arch, sizes, pow2_divisors(tiles_p))
    if config == "+Cascade":  # the artifact's buffer holds the QK and SLN rows separately
        return _fit(lambda p1: one_pass_mapping(CASCADE_2D, pe, p1, inplace=False),
                    cascade("mha_1pass"), arch, sizes, pow2_divisors(tiles_p))
    if config == "Unfused":
        return _fit(lambda p1: unfused_mapping(pe, p1), cascade("mha_3pass"), arch, sizes,
                    pow2_divisors(tiles_p))
    if config == "FLAT":
        c3 = cascade("mha_3pass")
        rows, streamed = flat_choice(model, seq)
        rows = seq if rows == "head" else min(rows, seq)
        if seq >= 1 << 18:  # score rows off chip
            m = flat_mapping(seq, pe, rows, spill=1.0, streamed=streamed)
            return m, simulate(c3, arch, m, sizes)
        # the least spill of the score rows (in 1/256 steps) that fits the buffer
        for k in range(257):
            m = flat_mapping(seq, pe, rows, spill=k / 256, streamed=streamed)
            try:
                return m, simulate(c3, arch, m, sizes)
            except Infeasible:
                continue
        raise Infeasible(f"FLAT mapping does not fit at {seq}")
    raise ValueError(config)


def linear_point(model: str, seq: int, config: str, pe_dim: int | None = None):
    arch_name = "fusemax" if config in ("+Architecture", "FuseMax") else "flat"
    overrides = {"pe_dim": pe_dim} if pe_dim else {}
    arch = _arch(arch_name, overrides)
    pe = arch.unit("1d").dims[0]
    cands = pow2_divisors(max(1, seq // pe))
    choices = [(p1, True) for p1 in cands] + [(p1, False) for p1 in cands]
    return _fit(lambda c: linear_mapping(pe, *c), cascade("linear"), arch,
                linear_sizes(model, seq), choices)


def _record(model, seq, config, scope, report, pe_dim=None):
    rec = {"model": model, "seq_len": seq, "config": config, "scope": scope,
           "latency_s": report.latency_s, "cycles": report.cycles, "energy_J": report.energy_J,
           "traffic_bytes": report.traffic_bytes,
           "util_2d": report.utilization.get("2d", 0.0), "util_1d": report.utilization.get("1d", 0.0),
           "area_mm2": report.area_mm2}
    if pe_dim is not None:
        rec["pe_dim"] = pe_dim
    return rec


def run_study(models=None, seq_lens=None, configs=CONFIGS, pe_dims=(16, 32, 64, 128, 256, 512),
              pareto_seq: int = 1 << 18, progress=None) -> list:
    models = list(models or MODELS)
    seq_lens = list(seq_lens or SEQ_LENS)
    records = []
    for model in models:
        for seq in seq_lens:
            lin = {}
            for config in configs:
                _, att = attention_point(model, seq, config)
                records.append(_record(model, seq, config, "attention", att))
                key = "fusemax" if config in ("+Architecture", "FuseMax") else "flat"
                if key not in lin:
                    lin[key] = linear_point(model, seq, config)[1]
                lr = lin[key]
                e2e = _record(model, seq, config, "end2end", att)
                e2e["latency_s"] = att.latency_s + lr.latency_s
                e2e["cycles"] = att.cycles + lr.cycles
                e2e["energy_J"] = att.energy_J + lr.energy_J
                e2e["traffic_bytes"] = att.traffic_bytes + lr.traffic_bytes
                busy2 = att.utilization.get("2d", 0) * att.cycles + lr.utilization.get("2d", 0) * lr.cycles
                busy1 = att.utilization.get("1d", 0) * att.cycles + lr.utilization.get("1d", 0) * lr.cycles
                e2e["util_2d"] = busy2 / e2e["cycles"]
                e2e["util_1d"] = busy1 / e2e["cycles"]
                records.append(e2e)
                if progress:
                    progress()
    if pareto_seq:
        for model in models:
            for pe in pe_dims:
                _, att = attention_point(model, pareto_seq, "FuseMax", pe_dim=pe)
                records.append(_record(model, pareto_seq, "FuseMax", "pareto", att, pe_dim=pe))
                if progress:
                    progress()
    return records


# ------------------------------------------------------------------------------ summaries


def _index(records, scope):
    return {(r["model"], r["seq_len"], r["config"]): r for r in records if r["scope"] == scope}


def mean_ratio(records, scope, num_config, den_config, key, invert=False):
    idx = _index(records, scope)
    vals = []
    for (model, seq, config), r in idx.items():
        if config != num_config or (model, seq, den_config) not in idx:
            continue
        a, b = r[key], idx[(model, seq, den_config)][key]
        vals.append(b / a if invert else a / b)
    if not vals:
        return float("nan"), float("nan")
    geo = math.exp(sum(math.log(v) for v in vals) / len(vals))
    return sum(vals) / len(vals), geo


def headline(records) -> dict:
    out = {}
    for scope in ("attention", "end2end"):
        sp, spg = mean_ratio(records, scope, "FuseMax", "FLAT", "latency_s", invert=True)
        en, eng = mean_ratio(records, scope, "FuseMax", "FLAT", "energy_J")
        out[scope] = {"speedup_vs_FLAT": sp, "speedup_vs_FLAT_geomean": spg,
                      "energy_vs_FLAT": en, "energy_vs_FLAT_geomean": eng}
    extra = {}
    for config in CONFIGS:
        extra[config] = {
            "speedup_vs_FLAT": mean_ratio(records, "attention", config, "FLAT", "latency_s", True)[0],
            "energy_vs_FLAT": mean_ratio(records, "attention", config, "FLAT", "energy_J")[0],
            "speedup_vs_Unfused": mean_ratio(records, "attention", config, "Unfused", "latency_s", True)[0],
        }
    out["configs_attention"] = extra
    return out


PAPER = {"attention": {"speedup_vs_FLAT": 6.72, "energy_vs_FLAT": 0.787},
         "end2end": {"speedup_vs_FLAT": 5.30, "energy_vs_FLAT": 0.833}}


def format_tables(records) -> str:
    lines = []
    for scope in ("attention", "end2end"):
        idx = _index(records, scope)
        models = sorted({k[0] for k in idx}, key=list(MODELS).index)
        seqs = sorted({k[1] for k in idx})
        configs = [c for c in CONFIGS if any(k[2] == c for k in idx)]
        lines.append(f"\n{scope}: speedup over Unfused (energy relative to Unfused)")
        head = f"{'model':6} {'seq':>5} " + " ".join(f"{c:>18}" for c in configs)
        lines.append(head)
        for model in models:
            for seq in seqs:
                base = idx.get((model, seq, "Unfused"))
                cells = []
                for c in configs:
                    r = idx.get((model, seq, c))
                    if r is None or base is None:
                        cells.append(f"{'-':>18}")
                        continue
                    cells.append(f"{base['latency_s'] / r['latency_s']:8.2f}x ({r['energy_J'] / base['energy_J']:5.3f})")
                lines.append(f"{model:6} {seq_label(seq):>5} " + " ".join(cells))
    idx = _index(records, "attention")
    lines.append("\nattention utilization of the 2D / 1D arrays")
    configs = [c for c in CONFIGS if any(k[2] == c for k in idx)]
    lines.append(f"{'model':6} {'seq':>5} " + " ".join(f"{c:>15}" for c in configs))
    for model in sorted({k[0] for k in idx}, key=list(MODELS).index):
        for seq in sorted({k[1] for k in idx}):
            cells = []
            for c in configs:
                r = idx.get((model, seq, c))
                cells.append(f"{r['util_2d']:7.3f}/{r['util_1d']:5.3f}" if r else f"{'-':>15}")
            lines.append(f"{model:6} {seq_label(seq):>5} " + " ".join(cells))
    pareto = [r for r in records if r["scope"] == "pareto"]
    if pareto:
        lines.append(f"\narea / latency at {seq_label(pareto[0]['seq_len'])} (FuseMax, pe_dim sweep)")
        lines.append(f"{'model':6} {'pe_dim':>6} {'area mm2':>10} {'latency s':>12}")
        for r in pareto:
            lines.append(f"{r['model']:6} {r['pe_dim']:>6} {r['area_mm2']:10.1f} {r['latency_s']:12.4g}")
    h = headline(records)
    lines.append("\nheadline (arithmetic mean of per-point ratios, FuseMax over FLAT; paper in brackets)")
    for scope in ("attention", "end2end"):
        if scope in h and not math.isnan(h[scope]["speedup_vs_FLAT"]):
            s = h[scope]
            lines.append(f"  {scope:9}: speedup {s['speedup_vs_FLAT']:.3f}x [{PAPER[scope]['speedup_vs_FLAT']}x], "
                         f"energy {s['energy_vs_FLAT']:.3f} [{PAPER[scope]['energy_vs_FLAT']}]"
                         f"  (geomeans {s['speedup_vs_FLAT_geomean']:.3f}x, {s['energy_vs_FLAT_geomean']:.3f})")
    return "\n".join(lines)

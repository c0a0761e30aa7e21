"""Peers side by side: SCALE-Sim 3.0.0 and ZigZag 3.x against Cascade, on the same case list.

Each peer runs in its own virtual environment, created on the first run (``bench/.venv-scalesim``
with ``numpy<2``; ``bench/.venv-zigzag`` on Python 3.12), through a small driver that imports
nothing of Cascade (``bench/peers_scalesim.py``, ``bench/peers_zigzag.py``); a peer that cannot be
installed is recorded as skipped with the reason. The cases are GEMMs x arrays x dataflows
(output-, weight-, input-stationary) and a chain (one attention head without softmax, S = Q K^T
then O = S V, layer after layer); Cascade runs them with ``fill_drain: none``, ``per_group`` and
``per_tile`` (``bench/peers_cascade.py``). Writes ``bench/results/peers.json`` and ``peers.md``.

    python bench/peers.py            # from the repository root, the project's Python
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import peers_cascade  # noqa: E402
import peers_report  # noqa: E402
import peers_scalesim  # noqa: E402
import peers_zigzag  # noqa: E402

RESULTS = ROOT / "bench" / "results"
GEMMS = [(20, 12, 7), (9, 30, 13), (64, 64, 64), (100, 3, 37), (128, 96, 200), (256, 768, 64)]
ARRAYS = [(8, 8), (16, 16), (4, 8), (32, 16)]
DATAFLOWS = ("os", "ws", "is")
CHAIN = {"P": 256, "M": 256, "E": 64, "F": 64}  # one attention head: QK (P x M x E), AV (P x F x M)
CHAIN_ARRAYS = [(16, 16), (32, 32)]
FILL_DRAIN = ("none", "per_group", "per_tile")
SKIPPED = {
    "stream": "skipped: stream-dse 2.1.1 installs and imports on Python 3.12 (tried by hand), but its inputs "
              "(a multi-core hardware graph with an off-chip core, ONNX or YAML workload with layer "
              "stacks for the fused/unfused chain, per-core mappings) are not generated yet; its "
              "solver modules (stream/opt/solver, stream/allocation) reference gurobipy, a "
              "licensed solver",
    "accelforge": "skipped: accelforge 1.0.467 installs and imports on Python 3.12 (with "
                  "islpy-barvinok wheels, no separate binaries), but its architecture, workload "
                  "and mapping inputs are not generated yet"}


def cases() -> list:
    out = [{"kind": "gemm", "dataflow": df, "rows": r, "cols": c, "layers": [g]}
           for g in GEMMS for (r, c) in ARRAYS for df in DATAFLOWS]
    p, m, e, f = CHAIN["P"], CHAIN["M"], CHAIN["E"], CHAIN["F"]
    out += [{"kind": "chain", "dataflow": df, "rows": r, "cols": c,
             "layers": [(p, m, e), (p, f, m)]} for (r, c) in CHAIN_ARRAYS for df in DATAFLOWS]
    return out


def cascade_row(case: dict) -> dict:
    runs = {fd: peers_cascade.run(case["layers"], case["rows"], case["cols"], case["dataflow"], fd)
            for fd in FILL_DRAIN}
    return {"cycles": {fd: r[0] for fd, r in runs.items()}, "energy_pJ": runs["none"][1],
            "energy_breakdown_pJ": runs["none"][2]}


def scalesim_row(case: dict, ours: dict, layer_cycles: list) -> dict:
    total = sum(layer_cycles)
    return {"cycles": total, "layers": layer_cycles,
            "per_tile_minus": ours["cycles"]["per_tile"] - total,
            "ratio_over": {fd: total / v for fd, v in ours["cycles"].items()}}


def zigzag_row(ours: dict, layers: list) -> dict:
    """ZigZag's layers summed: cycles from its latency-best mapping, energy (its MAC energy + its
    words moved x 1 pJ, untruncated) from its energy-best one."""
    errors = [x["error"] for x in layers if "error" in x]
    if errors:
        return {"error": errors[0]}
    tkeys = ("cycles", "ideal", "stall", "onload", "offload")
    ekeys = ("energy", "mac_energy", "words")
    tot = {**{k: sum(x["latency"][k] for x in layers) for k in tkeys},
           **{k: sum(x["energy"][k] for x in layers) for k in ekeys}}
    energy = tot["mac_energy"] + tot["words"] * peers_cascade.WORD_PJ
    cyc = ours["cycles"]
    return {**tot, "energy_untruncated": energy, "layers": layers,
            "ratio_ideal_over_none": tot["ideal"] / cyc["none"],
            "ratio_cycles_over_per_group": tot["cycles"] / cyc["per_group"],
            "ratio_energy_over": energy / ours["energy_pJ"],
            "ratio_mac_energy_over": tot["mac_energy"] / ours["energy_breakdown_pJ"]["compute"]}


def gmean(xs: list) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def summary(rows: list) -> dict:
    out = {"cases": len(rows)}
    ss = [r["scalesim"] for r in rows if "scalesim" in r]
    if ss:
        out["scalesim"] = {
            "cases": len(ss),
            "per_tile_equals_scalesim_plus_one_per_layer": all(
                s["per_tile_minus"] == len(r["layers"]) for r, s in zip(rows, ss, strict=True)),
            "geomean_ratio_over": {fd: gmean([s["ratio_over"][fd] for s in ss])
                                   for fd in FILL_DRAIN}}
    zz = [r["zigzag"] for r in rows if "zigzag" in r and "error" not in r["zigzag"]]
    if zz:
        keys = ("ratio_ideal_over_none", "ratio_cycles_over_per_group", "ratio_energy_over",
                "ratio_mac_energy_over")
        out["zigzag"] = {"cases": len(zz),
                         "errors": sum(1 for r in rows if "error" in r.get("zigzag", {})),
                         "geomean": {k: gmean([z[k] for z in zz]) for k in keys},
                         "min": {k: min(z[k] for z in zz) for k in keys},
                         "max": {k: max(z[k] for z in zz) for k in keys}}
    return out


def compare(todo: list, scalesim: list | None, zigzag: list | None) -> list:
    rows = []
    for i, case in enumerate(todo):
        ours = cascade_row(case)
        row = {**case, "cascade": ours}
        if scalesim is not None:
            row["scalesim"] = scalesim_row(case, ours, scalesim[i])
        if zigzag is not None:
            row["zigzag"] = zigzag_row(ours, zigzag[i])
        rows.append(row)
    return rows


def main() -> int:
    todo = cases()
    status, measured = {}, {}
    for name, mod in (("scalesim", peers_scalesim), ("zigzag", peers_zigzag)):
        python, why = mod.ensure()
        status[name] = why or "ran " + " ".join(mod.REQUIREMENTS)
        measured[name] = mod.run(python, todo) if python is not None else None
    status.update(SKIPPED)
    rows = compare(todo, measured["scalesim"], measured["zigzag"])
    result = {"status": status, "summary": summary(rows), "rows": rows,
              "cascade_chain_fusion": peers_cascade.chain_fusion()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "peers.json").write_text(json.dumps(result, indent=1) + "\n")
    text = peers_report.markdown(result)
    (RESULTS / "peers.md").write_text(text)
    print(text.split("\n| ")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())

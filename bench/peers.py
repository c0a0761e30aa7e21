"""Peers side by side: SCALE-Sim 3.0.0, ZigZag 3.x, AccelForge 1.0.467 and Stream 2.1.1 against
Cascade, on the same case list.

Each peer runs in its own virtual environment, created on the first run (``bench/.venv-scalesim``
with ``numpy<2``; ``bench/.venv-zigzag`` on Python 3.12), through a small driver that imports
nothing of Cascade (``bench/peers_scalesim.py``, ``bench/peers_zigzag.py``); a peer that cannot be
installed is recorded as skipped with the reason. AccelForge (``bench/.venv-accelforge``, Python
3.12, ``bench/peers_accelforge.py``) runs the cases on ``ACCELFORGE_ARRAYS`` (its mapper takes
tens of seconds a case), the ``EXTRA`` cases (GEMM 1024^3, one BERT-base head's Q K^T) and the
chain as dependent Einsums, unfused and with fusion searched. The cases are GEMMs x arrays x dataflows
(output-, weight-, input-stationary) and a chain (one attention head without softmax, S = Q K^T
then O = S V, layer after layer); Cascade runs them with ``fill_drain: none``, ``per_group`` and
``per_tile`` (``bench/peers_cascade.py``). Stream 2.1.1 (``bench/.venv-stream``, Python 3.12,
``bench/peers_stream.py``) runs the chain layer by layer, fused and with its own cut, and two
GEMMs, beside ``cascade map --fusion none|searched``. Writes ``bench/results/peers.json`` and ``peers.md``.

    python bench/peers.py                            # from the repository root, the project's Python
    python bench/peers.py --reuse scalesim zigzag stream  # take those peers' results from peers.json
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import peers_accelforge  # noqa: E402
import peers_cascade  # noqa: E402
import peers_report  # noqa: E402
import peers_scalesim  # noqa: E402
import peers_stream  # noqa: E402
import peers_zigzag  # noqa: E402

RESULTS = ROOT / "bench" / "results"
GEMMS = [(20, 12, 7), (9, 30, 13), (64, 64, 64), (100, 3, 37), (128, 96, 200), (256, 768, 64)]
ARRAYS = [(8, 8), (16, 16), (4, 8), (32, 16)]
DATAFLOWS = ("os", "ws", "is")
CHAIN = {"P": 256, "M": 256, "E": 64, "F": 64}  # one attention head: QK (P x M x E), AV (P x F x M)
CHAIN_ARRAYS = [(16, 16), (32, 32)]
FILL_DRAIN = ("none", "per_group", "per_tile")
ACCELFORGE_ARRAYS = [(16, 16), (8, 8), (32, 16)]
EXTRA = [("gemm", (1024, 1024, 1024)), ("qk", (512, 512, 64))]  # qk: BERT-base, one head, S = Q K^T
EXTRA_ARRAYS = [(16, 16)]
SKIPPED: dict = {}  # peer -> why it is not run (every peer runs now)
PEERS = {"scalesim": peers_scalesim, "zigzag": peers_zigzag, "accelforge": peers_accelforge}


def cases() -> list:
    out = [{"kind": "gemm", "dataflow": df, "rows": r, "cols": c, "layers": [g]}
           for g in GEMMS for (r, c) in ARRAYS for df in DATAFLOWS]
    p, m, e, f = CHAIN["P"], CHAIN["M"], CHAIN["E"], CHAIN["F"]
    out += [{"kind": "chain", "dataflow": df, "rows": r, "cols": c,
             "layers": [(p, m, e), (p, f, m)]} for (r, c) in CHAIN_ARRAYS for df in DATAFLOWS]
    return out


def extra_cases() -> list:
    """Cascade and AccelForge only (SCALE-Sim and ZigZag take minutes on a 1024^3 GEMM)."""
    return [{"kind": kind, "dataflow": df, "rows": r, "cols": c, "layers": [g]}
            for kind, g in EXTRA for (r, c) in EXTRA_ARRAYS for df in DATAFLOWS]


def fusion_cases() -> dict:
    """The chain as dependent Einsums (S an intermediate) on the 16 x 16 array of
    ``bench/peers_cases/sa16x16.yaml``, the dataflow the mapper's, unfused and fusion searched."""
    p, m, e, f = CHAIN["P"], CHAIN["M"], CHAIN["E"], CHAIN["F"]
    return {fusion: {"kind": "chain", "dataflow": None, "rows": 16, "cols": 16, "chain": True,
                     "fusion": fusion, "layers": [(p, m, e), (p, f, m)]}
            for fusion in ("none", "searched")}


def runs_on(peer: str, case: dict) -> bool:
    if case.get("chain"):  # the dependent chain: AccelForge alone
        return peer == "accelforge"
    if peer == "accelforge":
        return (case["rows"], case["cols"]) in ACCELFORGE_ARRAYS or case in extra_cases()
    return case not in extra_cases()


def case_key(case: dict) -> str:
    return json.dumps([case["kind"], case["dataflow"], case["rows"], case["cols"],
                       [list(x) for x in case["layers"]], case.get("fusion")])


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


def accelforge_row(ours: dict, raw: dict, zigzag: dict | None = None) -> dict:
    """AccelForge's latency-best mapping's cycles and energy-best mapping's energy and words
    against Cascade's (``fill_drain: none``: AccelForge charges no array fill or drain)."""
    if "error" in raw:
        return {"error": raw["error"]}
    lat, en = raw["latency"], raw["energy"]
    parts = ours["energy_breakdown_pJ"]
    row = {"cycles": lat["cycles"], "energy": en["energy"], "dram_words": en["dram_words"],
           "glb_words": en["glb_words"], "pareto": raw["pareto"], "raw": raw,
           "ratio_cycles_over_none": lat["cycles"] / ours["cycles"]["none"],
           "ratio_energy_over": en["energy"] / ours["energy_pJ"],
           "ratio_mac_energy_over": en["macs"] * peers_cascade.MAC_PJ / parts["compute"],
           "ratio_dram_words_over": en["dram_words"] * peers_cascade.WORD_PJ / parts["DRAM"]}
    if zigzag and "error" not in zigzag:
        row["ratio_energy_over_zigzag"] = en["energy"] / zigzag["energy_untruncated"]
    return row


def gmean(xs: list) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def summary(rows: list) -> dict:
    out = {"cases": len(rows)}
    ss = [r["scalesim"] for r in rows if "scalesim" in r]
    if ss:
        out["scalesim"] = {
            "cases": len(ss),
            "per_tile_equals_scalesim_plus_one_per_layer": all(
                r["scalesim"]["per_tile_minus"] == len(r["layers"]) for r in rows if "scalesim" in r),
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
    af = [r["accelforge"] for r in rows if "accelforge" in r and "error" not in r["accelforge"]]
    if af:
        keys = ("ratio_cycles_over_none", "ratio_energy_over", "ratio_mac_energy_over",
                "ratio_dram_words_over", "ratio_energy_over_zigzag")
        stats = {k: [a[k] for a in af if k in a] for k in keys}
        out["accelforge"] = {
            "cases": len(af), "errors": sum(1 for r in rows if "error" in r.get("accelforge", {})),
            "cycles_equal_none": sum(1 for a in af  # Cascade's cycles carry float rounding
                                     if math.isclose(a["ratio_cycles_over_none"], 1.0, rel_tol=1e-9)),
            "geomean": {k: gmean(v) for k, v in stats.items() if v},
            "min": {k: min(v) for k, v in stats.items() if v},
            "max": {k: max(v) for k, v in stats.items() if v}}
    return out


def compare(todo: list, scalesim: list | None, zigzag: list | None,
            accelforge: list | None = None) -> list:
    """Cascade's row for every case beside each peer's; a peer's list is aligned with ``todo``,
    None where the peer did not run the case."""
    rows = []
    for i, case in enumerate(todo):
        ours = cascade_row(case)
        row = {**case, "cascade": ours}
        if scalesim is not None and scalesim[i] is not None:
            row["scalesim"] = scalesim_row(case, ours, scalesim[i])
        if zigzag is not None and zigzag[i] is not None:
            row["zigzag"] = zigzag_row(ours, zigzag[i])
        if accelforge is not None and accelforge[i] is not None:
            row["accelforge"] = accelforge_row(ours, accelforge[i], row.get("zigzag"))
        rows.append(row)
    return rows


def _stored(peer: str, old: dict) -> dict:
    """A previous peers.json's raw results of ``peer``, by case key."""
    out = {}
    for row in old.get("rows", []):
        got = row.get(peer)
        if got is None:
            continue
        if "error" in got:
            out[case_key(row)] = [got] if peer == "zigzag" else got
        else:
            out[case_key(row)] = got["layers"] if peer in ("scalesim", "zigzag") else got["raw"]
    for case_raw in old.get("accelforge_chain_fusion", {}).values() if peer == "accelforge" else ():
        out[case_key(case_raw["case"])] = case_raw["raw"]
    return out


def measure(peer: str, todo: list, reuse: dict | None) -> tuple:
    """(status, results aligned with ``todo``, None where not run); results in ``reuse`` (by
    case key) are taken, the peer runs the rest."""
    mod = PEERS[peer]
    wanted = [c for c in todo if runs_on(peer, c)]
    reuse = reuse or {}
    missing = [c for c in wanted if case_key(c) not in reuse]
    status = "ran " + " ".join(mod.REQUIREMENTS)
    got = dict(reuse)
    if missing:
        python, why = mod.ensure()
        if python is None:
            return why, None
        got.update(zip(map(case_key, missing), mod.run(python, missing), strict=True))
    return status, [got.get(case_key(c)) if c in wanted else None for c in todo]


def chain_fusion(measured: list | None) -> dict:
    cases = fusion_cases()
    if measured is None:
        return {}
    return {k: {"case": c, "raw": r} for (k, c), r in zip(cases.items(), measured, strict=True)}


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reuse", nargs="*", default=[], choices=sorted([*PEERS, "stream"]),
                    help="take these peers' results from bench/results/peers.json where present")
    args = ap.parse_args(argv)
    old = json.loads((RESULTS / "peers.json").read_text()) if args.reuse else {}
    todo = cases() + extra_cases()
    fusion = list(fusion_cases().values())
    status, measured = {}, {}
    for name in PEERS:
        reuse = _stored(name, old) if name in args.reuse else None
        status[name], measured[name] = measure(name, todo + fusion if name == "accelforge" else todo,
                                               reuse)
    status["stream"], stream_rows = peers_stream.measure(
        old.get("stream") if "stream" in args.reuse else None)
    status.update(SKIPPED)
    af = measured["accelforge"]
    rows = compare(todo, measured["scalesim"], measured["zigzag"], af and af[:len(todo)])
    peers_stream.zigzag_reference(stream_rows, rows)
    result = {"status": status, "summary": summary(rows), "rows": rows,
              "cascade_chain_fusion": peers_cascade.chain_fusion(),
              "cascade_chain_fusion_latency": peers_cascade.chain_fusion("latency"),
              "accelforge_chain_fusion": chain_fusion(af and af[len(todo):]),
              "stream": {"rows": stream_rows}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "peers.json").write_text(json.dumps(result, indent=1) + "\n")
    text = peers_report.markdown(result)
    (RESULTS / "peers.md").write_text(text)
    print(text.split("\n| ")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())

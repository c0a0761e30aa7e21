"""Stream 2.1.1 (PyPI ``stream-dse``, KU Leuven's layer-fused multi-core DSE built on ZigZag) in its
own Python 3.12 virtual environment, ``bench/.venv-stream``.

The inputs are generated from the case: one accelerator of two cores (``accelerator``): core 0 is
the ZigZag array of ``bench/peers_zigzag.py`` without its DRAM (free per-PE registers, a buffer;
1 pJ per MAC and per 16-bit word), core 1 the off-chip core holding that DRAM (1 pJ a word), one
link between them as wide as the memories' ports and free (Stream charges a transfer the source
port's read and the target port's write per bit, which are the DRAM and buffer words Cascade
counts). The workload is ONNX (``graph``: the case's MatMuls; the chain ``S = Q K^T, O = S V`` with
``S`` an intermediate). Fusion is Stream's ``fusion_cut_points``: ``none`` cuts after every layer,
``fused`` none at all, ``stream`` leaves the cut to Stream's mapping generator. Stream's ZigZag
searches each tile's spatial and temporal mapping and its MILP the allocation; the driver records
its cycles (the latency it optimises), its energy and the off-chip words it moves.

Cascade's side (``cascade_side``) is ``cascade map --fusion none|searched`` on the same chain and
array (``--objective energy`` and ``latency``). The driver runs inside the venv and imports
nothing of Cascade.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from peer_venv import PYTHON312, ensure_venv, find_python, ready, run_driver, venv_python

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv-stream"
REQUIREMENTS = ("stream-dse==2.1.1", "six")  # six: imported by its zigzag-dse 3.9.1, not declared
CUTS = {"none": "per-layer", "fused": [], "stream": None}  # Stream's fusion_cut_points option
CHAIN = {"P": 256, "M": 256, "E": 64, "F": 64}
SOLVE_S = 120  # each allocation MILP's time limit


def cases() -> list:
    """The chain on the fusion arrays of the peers bench, and two single GEMMs (64^3, BERT's Q K^T)."""
    p, m, e, f = CHAIN["P"], CHAIN["M"], CHAIN["E"], CHAIN["F"]
    out = [{"kind": "chain", "rows": r, "cols": c, "layers": [(p, m, e), (p, f, m)]}
           for r, c in ((16, 16), (32, 32))]
    out += [{"kind": "gemm", "rows": 16, "cols": 16, "layers": [g]}
            for g in ((64, 64, 64), (512, 512, 64))]
    return out


def accelerator(rows: int, cols: int) -> dict:
    """The two-core accelerator: the ZigZag array (its memories below DRAM) and the off-chip core."""
    import peers_zigzag
    hw = peers_zigzag.hardware(rows, cols)
    dram = hw["memories"].pop("dram")
    array = {**hw, "name": "array", "type": "zigzag.compute"}
    offchip = {"name": "offchip", "type": "zigzag.offchip", "memories": {"dram": dram},
               "operational_array": {"unit_energy": 0, "unit_area": 0, "dimensions": ["D1", "D2"],
                                     "sizes": [0, 0]}}
    width = dram["ports"][0]["bandwidth_max"]
    return {"name": hw["name"], "cores": {0: array, 1: offchip}, "offchip_core_id": 1,
            "unit_energy_cost": 0,
            "core_connectivity": [{"type": "link", "cores": [0, 1], "bandwidth": width,
                                   "unit_energy_cost": 0}]}


def graph(case: dict) -> dict:
    """The case's MatMuls as plain data: ``inputs`` and ``outputs`` {tensor: shape}, ``nodes``
    [(name, (a, b), out)]. Node names differ from tensor names: Stream names its graph edges after
    the tensors, and a node named like one is overwritten."""
    if case["kind"] == "chain":
        (p, m, e), (p2, f, m2) = case["layers"]
        if (p, m) != (p2, m2):
            raise ValueError(f"chain layers {case['layers']}: S = Q K^T is P x M, O = S V reads it")
        return {"inputs": {"Q": [p, e], "Kt": [e, m], "V": [m, f]}, "outputs": {"O": [p, f]},
                "nodes": [("QK", ("Q", "Kt"), "S"), ("AV", ("S", "V"), "O")]}
    if len(case["layers"]) != 1:
        raise ValueError(f"a gemm case has one layer, not {len(case['layers'])}")
    (m, n, k), = case["layers"]
    return {"inputs": {"A0": [m, k], "B0": [k, n]}, "outputs": {"C0": [m, n]},
            "nodes": [("MM", ("A0", "B0"), "C0")]}  # Cascade's names (peers_cascade.cascade_text)


def cascade_text(case: dict) -> str:
    """The case as a Cascade cascade: the chain with ``S`` an intermediate, or one GEMM."""
    import peers_cascade
    if case["kind"] == "chain":
        (p, m, e), (_, f, _) = case["layers"]
        return peers_cascade.chain_text(p, m, e, f)
    return peers_cascade.cascade_text(case["layers"])


def cascade_arch(rows: int, cols: int) -> dict:
    """``bench/peers_cases/sa16x16.yaml`` at ``rows x cols``."""
    import peers_cascade
    return {"name": f"sa{rows}x{cols}", "clock_hz": 1, "word_bytes": peers_cascade.WORD_BYTES,
            "actions": {"mac": peers_cascade.MAC_PJ},
            "units": [{"name": "array", "dims": [rows, cols],
                       "ops": {"mac": {"cycles": 1, "actions": {"mac": 1}}},
                       "timing": {"fill_drain": "per_group"}}],
            "levels": [{"name": "DRAM", "bandwidth": 1e15, "access_bytes": 2,
                        "read_pJ": peers_cascade.WORD_PJ, "write_pJ": peers_cascade.WORD_PJ},
                       {"name": "GLB", "capacity": 2 ** 40, "access_bytes": 2,
                        "read_pJ": peers_cascade.WORD_PJ, "write_pJ": peers_cascade.WORD_PJ}]}


def cascade_side(case: dict) -> dict:
    """``cascade map`` on the case (``--fusion none`` and, on a chain, ``searched``; objectives
    ``energy`` and ``latency``): {fusion: {objective: cycles, energy, off-chip words, groups}}."""
    import os
    import subprocess

    import peers_cascade
    import yaml
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        ein, arch = Path(tmp) / "case.ein", Path(tmp) / "arch.yaml"
        ein.write_text(cascade_text(case))
        arch.write_text(yaml.safe_dump(cascade_arch(case["rows"], case["cols"])))
        for fusion in ("none", "searched") if case["kind"] == "chain" else ("none",):
            for objective in ("energy", "latency"):
                cmd = [sys.executable, "-m", "cascade_cli.main", "map", str(ein), "--arch",
                       str(arch), "--fusion", fusion, "--objective", objective, "--top", "1",
                       "--json"]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT,
                                      env={**os.environ, "PYTHONPATH": str(ROOT)})
                best = json.loads(proc.stdout)["best"][0]
                out.setdefault(fusion, {})[objective] = {
                    "cycles": best["cycles"], "energy_pJ": best["energy_J"] * 1e12,
                    "offchip_words": best["traffic_bytes"] / peers_cascade.WORD_BYTES,
                    "groups": [g["einsums"] for g in best["mapping"]["groups"]]}
    return out


def macs(case: dict) -> int:
    return sum(m * n * k for m, n, k in case["layers"])


def terms(energy_pj: float, offchip_words: float, case: dict) -> dict:
    """An energy split as every model here charges it: MACs, DRAM words (1 pJ each) and the rest,
    the buffer (its reads and writes, the words arriving from DRAM included)."""
    import peers_cascade
    mac = macs(case) * peers_cascade.MAC_PJ
    dram = offchip_words * peers_cascade.WORD_PJ
    return {"mac": mac, "dram": dram, "buffer": energy_pj - mac - dram}


def _side(stream: dict, ours: dict, case: dict) -> dict:
    """Stream's record of one cut beside Cascade's best mappings of the matching fusion."""
    e, lat = ours["energy"], ours["latency"]
    st = terms(stream["energy"], stream["offchip_words"], case)
    ca = terms(e["energy_pJ"], e["offchip_words"], case)
    return {"stream_terms": st, "cascade_terms": ca,
            "ratio_cycles_over_latency_best": stream["cycles"] / lat["cycles"],
            "ratio_energy_over_energy_best": stream["energy"] / e["energy_pJ"],
            "ratio_energy_over_latency_best": stream["energy"] / lat["energy_pJ"],
            "ratio_offchip_words_over": stream["offchip_words"] / e["offchip_words"],
            "ratio_buffer_over": st["buffer"] / ca["buffer"]}


def compare(case: dict, raw: dict, ours: dict) -> dict:
    """Stream's cuts against Cascade's: ``none`` with ``none``, ``fused`` and Stream's own cut
    with ``searched``; which cut each chose and how many off-chip words it saves."""
    row = {**case, "raw": raw, "cascade": ours}
    pairs = {"none": "none", "fused": "searched", "stream": "searched"}
    for cut, fusion in pairs.items():
        got = raw.get(cut)
        if got is None or fusion not in ours:
            continue
        row[cut] = {"error": got["error"]} if "error" in got else _side(got, ours[fusion], case)
    if "stream" in row and "error" not in row["stream"]:
        out = {name: tensor for name, _, tensor in graph(case)["nodes"]}  # a node's Einsum
        row["stream_cut"] = [[out[n] for n in g] for g in raw["stream"]["groups"]]
        row["cascade_cut"] = ours["searched"]["energy"]["groups"]
        row["same_cut"] = row["stream_cut"] == row["cascade_cut"]
        ran = {cut: rec for cut, rec in raw.items() if "error" not in rec}
        # what Stream's select_mapping keeps among the cuts tried: the fewest cycles
        row["stream_fastest"] = min(ran, key=lambda cut: (ran[cut]["cycles"], cut != "stream"))
    return row


def case_key(case: dict) -> str:
    return json.dumps([case["kind"], case["rows"], case["cols"], [list(x) for x in case["layers"]]])


def zigzag_reference(stream_rows: list, rows: list) -> None:
    """Adds to each Stream row ZigZag's own energy of its latency-best mappings (the bench's
    ZigZag run) with the unrolling Stream's ZigZag picks here, M and K over the array (the
    input-stationary case), where the ZigZag run has the case."""
    def shape(r):
        return [r["kind"], r["rows"], r["cols"], [list(x) for x in r["layers"]]]
    for row in stream_rows:
        z = next((r["zigzag"] for r in rows if r.get("dataflow") == "is" and "zigzag" in r
                  and "error" not in r["zigzag"] and shape(r) == shape(row)), None)
        if z is not None:
            row["zigzag_is_latency_best_pJ"] = sum(x["latency"]["energy"] for x in z["layers"])


def measure(stored: dict | None = None) -> tuple:
    """(status, compared rows): Stream's raw results in ``stored`` (a previous peers.json's
    ``stream`` entry) are taken, the venv runs the rest; Cascade's side is run every time."""
    todo = cases()
    got = {case_key(r): r["raw"] for r in (stored or {}).get("rows", [])}
    missing = [c for c in todo if case_key(c) not in got]
    if missing:
        python, why = ensure()
        if python is None:
            return why, []
        got.update(zip(map(case_key, missing), run(python, missing), strict=True))
    return "ran " + " ".join(REQUIREMENTS), [compare(c, got[case_key(c)], cascade_side(c))
                                             for c in todo]


# ------------------------------------------------------------------ inside the Stream venv


def _onnx(spec: dict, path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper
    value = lambda name, shape: helper.make_tensor_value_info(  # noqa: E731
        name, TensorProto.FLOAT16, shape)
    nodes = [helper.make_node("MatMul", list(ins), [out], name=name)
             for name, ins, out in spec["nodes"]]
    g = helper.make_graph(nodes, "case", [value(n, s) for n, s in spec["inputs"].items()],
                          [value(n, s) for n, s in spec["outputs"].items()])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(onnx.shape_inference.infer_shapes(model), str(path))


def _offchip_words(accesses: dict, core_id: int) -> float:
    """Words read and written at the off-chip core: Stream counts accesses of its port's width."""
    core = next(c for c in accesses["cores"] if c["core_id"] == core_id)
    return (core["read"] * core["read_bandwidth"] + core["write"] * core["write_bandwidth"]) / 16


def _tiles(ctx) -> dict:
    """Per node of the last group: ZigZag's cost of one tile on the array (energy, its buffer
    energy per operand, the spatial unrolling it chose)."""
    lut = ctx.get("cost_lut")
    return {node.name: {"energy": float(c.energy_total), "cycles": float(c.latency_total),
                        "mac_energy": float(getattr(c.cme, "mac_energy", 0.0)),
                        "mem_energy": {str(op): float(sum(v))
                                       for op, v in c.mem_energy_breakdown.items()},
                        "spatial": str(getattr(c.mapping, "spatial_mapping", ""))}
            for node in lut.get_nodes() for core in lut.get_cores(node)
            for c in (lut.get_cost(node, core),) if core.id == 0}


def _record(est) -> dict:
    """Stream's estimate summed over its fused groups: cycles, energy (its cores' and its
    transfers'), off-chip words, the groups, the tiling and ZigZag's cost of one tile."""
    ctx = est.context
    allocs, accesses = ctx.get("group_allocations"), ctx.get("group_memory_accesses")
    energy = [allocs[g]["performance"]["energy"] for g in sorted(allocs)]
    iterations = [e["total_pj"] / e["per_iteration_pj"] if e["per_iteration_pj"] else 0.0
                  for e in energy]
    per_run = [(e["node_pj_per_iteration"] * i, e["transfer_pj_per_iteration"] * i)
               for e, i in zip(energy, iterations, strict=True)]
    return {"cycles": float(est.cycles), "group_cycles": [float(x) for x in est.group_cycles],
            "groups": [[n.name for n in w.get_computation_nodes()] for w in ctx.get("sub_workloads")],
            "energy": sum(e["total_pj"] for e in energy),
            "node_energy": sum(n for n, _ in per_run),
            "transfer_energy": sum(t for _, t in per_run), "iterations": iterations,
            "offchip_words": sum(_offchip_words(accesses[g], 1) for g in sorted(accesses)),
            "status": [allocs[g]["solve"]["status"] for g in sorted(allocs)],
            "splits": {str(k): v for k, v in ctx.get("fusion_splits").items()},
            "tiles": _tiles(ctx)}


def _run_case(case: dict, work: Path) -> dict:
    import contextlib
    import io

    import yaml
    from stream.api import SolveOptions, evaluate_mapping
    (work / "hw.yaml").write_text(yaml.safe_dump(accelerator(case["rows"], case["cols"]),
                                                 sort_keys=False))
    _onnx(graph(case), work / "wl.onnx")
    cuts = CUTS if case["kind"] == "chain" else {"none": CUTS["none"]}
    out = {}
    for name, cut in cuts.items():
        opts = SolveOptions(artifacts=False, time_limit_s=SOLVE_S,
                            stage_options={} if cut is None else {"fusion_cut_points": cut})
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                est = evaluate_mapping(str(work / "hw.yaml"), str(work / "wl.onnx"),
                                       str(work / name), options=opts)
            out[name] = _record(est)
        except Exception as e:  # noqa: BLE001 -- a peer's failure is recorded, not fatal
            out[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
    return out


def driver(cases_file: str) -> None:
    """Prints ``[{cut: record or {"error": ...}} per case]`` as JSON."""
    import logging
    import shutil
    logging.disable(logging.WARNING)
    out = []
    for case in json.loads(Path(cases_file).read_text()):
        work = Path(tempfile.mkdtemp(prefix="stream-"))
        out.append(_run_case(case, work))
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))


# ------------------------------------------------------------------ in the project's Python


def find_python312() -> str | None:
    return find_python(PYTHON312)


def ensure() -> tuple:
    """(the venv's python, "") or (None, why Stream is skipped)."""
    probe = "import stream.api"
    if ready(VENV, probe):
        return venv_python(VENV), ""
    base = find_python312()
    if base is None:
        return None, "skipped: needs Python >= 3.12 (none found: %s)" % ", ".join(PYTHON312)
    return ensure_venv(VENV, base, REQUIREMENTS, probe, "stream-dse")


def run(python, todo: list) -> list:
    return run_driver(python, __file__, todo, 3600)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--driver":
        driver(sys.argv[2])

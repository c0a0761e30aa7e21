"""Cascade's side of the peers bench: the GEMM cascades, the spec and the mapping each peer case
gets (``bench/peers.py``).

A case's layers run one after another, one fusion group each (unfused): each layer's inputs come
from DRAM and its output goes back to DRAM, as ZigZag (one layer at a time) and SCALE-Sim
(layer after layer) run them. The spec charges 1 pJ per MAC and 1 pJ per 2-byte word read or
written at DRAM and at the buffer, the same per-action energies the ZigZag inputs declare.
"""
from __future__ import annotations

from pathlib import Path

CASES_DIR = Path(__file__).resolve().parent / "peers_cases"
MAC_PJ = 1.0      # per MAC, every peer
WORD_PJ = 1.0     # per 2-byte word read or written, DRAM and buffer, every peer
WORD_BYTES = 2

# SCALE-Sim's and ZigZag's (rows, cols) of the array for each dataflow, as GEMM ranks
# (A[m,k] B[k,n] -> C[m,n])
SPATIAL = {"os": ("M", "N"), "ws": ("K", "N"), "is": ("K", "M")}


def arch(rows: int, cols: int, fill_drain: str):
    from simulator.arch import arch_from_dict
    return arch_from_dict({
        "name": f"sa{rows}x{cols}", "clock_hz": 1, "word_bytes": WORD_BYTES,
        "actions": {"mac": MAC_PJ},
        "units": [{"name": "array", "dims": [rows, cols],
                   "ops": {"mac": {"cycles": 1, "actions": {"mac": 1}}},
                   "timing": {"fill_drain": fill_drain}}],
        "levels": [{"name": "DRAM", "bandwidth": 1e15, "access_bytes": WORD_BYTES,
                    "read_pJ": WORD_PJ, "write_pJ": WORD_PJ},
                   {"name": "GLB", "capacity": 2 ** 40, "access_bytes": WORD_BYTES,
                    "read_pJ": WORD_PJ, "write_pJ": WORD_PJ}]}, "peers")


def cascade_text(layers: list) -> str:
    """Independent GEMMs ``C_i[m,n] = sum[k] A_i[m,k] B_i[k,n]`` as one cascade (a chain's
    intermediate is written off-chip by one group and read back by the next, so unfused it costs
    what an independent input of the same shape costs)."""
    ranks = ", ".join(f"M{i} = {m}, N{i} = {n}, K{i} = {k}" for i, (m, n, k) in enumerate(layers))
    inputs = ", ".join(f"A{i}[m{i},k{i}], B{i}[k{i},n{i}]" for i in range(len(layers)))
    outputs = ", ".join(f"C{i}[m{i},n{i}]" for i in range(len(layers)))
    body = "\n".join(f"C{i}[m{i},n{i}] = sum[k{i}] A{i}[m{i},k{i}] * B{i}[k{i},n{i}]"
                     for i in range(len(layers)))
    return f"rank {ranks}\ninput {inputs}\noutput {outputs}\n{body}\n"


def chain_text(p: int, m: int, e: int, f: int) -> str:
    """The attention-head chain without softmax, S = Q K^T then O = S V, as a dependent cascade
    (``bench/peers_cases/chain_qk_av.ein`` is this text at the bench's sizes)."""
    return (f"# one attention head without the softmax: S = Q K^T, then O = S V\n"
            f"rank P = {p}, M = {m}, E = {e}, F = {f}\n"
            "input Q[p,e], K[m,e], V[m,f]\noutput O[p,f]\n"
            "S[p,m] = sum[e] Q[p,e] * K[m,e]\nO[p,f] = sum[m] S[p,m] * V[m,f]\n")


def run(layers: list, rows: int, cols: int, dataflow: str, fill_drain: str) -> tuple:
    """(cycles, energy pJ, energy breakdown pJ) of the layers run one after another."""
    from einsum_ir import loads
    from mapper.builders import multi_group
    from simulator.cost import simulate
    groups = [dict(name=f"l{i}", einsums=(f"C{i}",), binding={f"C{i}": "array"},
                   spatial={"array": [f"{r}{i}" for r in SPATIAL[dataflow]]})
              for i in range(len(layers))]
    rep = simulate(loads(cascade_text(layers)), arch(rows, cols, fill_drain), multi_group(groups))
    return rep.cycles, rep.energy_pJ, dict(rep.energy_breakdown)


def chain_fusion(objective: str = "energy") -> dict:
    """``cascade map --fusion none|searched`` on the chain (``bench/peers_cases``): the mapper's
    best unfused and best searched-cut mapping, cycles, energy and off-chip words."""
    import json
    import os
    import subprocess
    import sys
    root = CASES_DIR.parent.parent
    out = {}
    for fusion in ("none", "searched"):
        cmd = [sys.executable, "-m", "cascade_cli.main", "map", str(CASES_DIR / "chain_qk_av.ein"),
               "--arch", str(CASES_DIR / "sa16x16.yaml"), "--fusion", fusion,
               "--objective", objective, "--top", "1", "--json"]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=root,
                              env={**os.environ, "PYTHONPATH": str(root)})
        best = json.loads(proc.stdout)["best"][0]
        out[fusion] = {"cycles": best["cycles"], "energy_pJ": best["energy_J"] * 1e12,
                       "offchip_words": best["traffic_bytes"] / WORD_BYTES,
                       "groups": [g["einsums"] for g in best["mapping"]["groups"]]}
    return out

"""The markdown of ``bench/results/peers.md`` from the result ``bench/peers.py`` writes (no peer
needed: the tests feed it canned peer outputs)."""
from __future__ import annotations

EXPLAIN = """
## Where the models differ (measured above; Cascade is not tuned to match)

* **SCALE-Sim cycles.** Cascade's `per_tile` is SCALE-Sim's count plus one per layer in every
  case: SCALE-Sim prints the 0-based index of the cycle of the last output write. `none` is the
  steady state alone (no skew), `per_group` one fill and drain per layer.
* **ZigZag ideal cycles** (`ideal_temporal_cycle`) equal Cascade's `none` where the dataflow's
  spread ranks fill the array or the folding is the same; they differ where a rank is smaller than
  the array dimension: ZigZag's mapping here unrolls `min(rank, dim)` and LOMA orders the temporal
  loops, Cascade folds ragged tiles at the unit's full size.
* **ZigZag total cycles** (`latency_total2`) = ideal + stalls + on-loading + off-loading. Its
  on-/off-loading is the time to bring the first tile into the lowest memories and write the last
  one out, at the ports' bandwidth (here 256 words a cycle): a per-layer memory fill/drain, not the
  array's operand skew that Cascade's `per_group` charges (`(R - 1) + (C - 1)` per Einsum).
  So `ZigZag / per_group` is below 1 where the skew exceeds ZigZag's on-loading (small layers,
  large arrays) and near 1 on large layers, where both are a small share of the total.
* **Energy.** The MAC term matches exactly (same count, 1 pJ each: `ZigZag MAC / Cascade MAC` is
  1.0000 in every case). The memory terms differ: ZigZag routes every operand through the buffer
  and re-reads it from there for every fold it is used in (an input is read `M K x ceil(N /
  cols)` times under output-stationary, broadcast along the other array dimension), and writes
  outputs to the buffer before DRAM; Cascade counts one buffer read per word per tile of the
  group's loops (the array re-uses a tile across its folds), writes data from off-chip into the
  buffer, and sends outputs from the array to DRAM directly (rule R2). DRAM words agree (each
  input read once, each output written once, when everything fits). ZigZag's own total is
  truncated to whole `bandwidth_max` accesses; the ratio uses its untruncated word count
  (`words`, from the same access formula) at 1 pJ a word.
"""


def _scalesim(result: dict) -> list:
    s = result["summary"].get("scalesim")
    if not s:
        return []
    lines = [f"SCALE-Sim: {s['cases']} cases; Cascade per_tile = SCALE-Sim + 1 per layer in every "
             f"case: {s['per_tile_equals_scalesim_plus_one_per_layer']}; geomean SCALE-Sim / "
             "Cascade: " + ", ".join(f"{k} {v:.4f}" for k, v in s["geomean_ratio_over"].items()),
             ""]
    return lines


def _zigzag(result: dict) -> list:
    z = result["summary"].get("zigzag")
    if not z:
        return []
    fmt = ", ".join(f"{k.removeprefix('ratio_')} {z['geomean'][k]:.4f} "
                    f"[{z['min'][k]:.4f}, {z['max'][k]:.4f}]" for k in z["geomean"])
    return [f"ZigZag: {z['cases']} cases ({z['errors']} failed); geomean [min, max] of "
            f"ZigZag / Cascade: {fmt}", ""]


def _table(rows: list) -> list:
    head = ("| kind | df | array | layers (M,N,K) | SCALE-Sim | none | per_group | per_tile | "
            "ZigZag ideal | ZigZag | ZigZag / per_group | ZigZag pJ | Cascade pJ | ZigZag / "
            "Cascade energy |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in rows:
        c, s, z = r["cascade"], r.get("scalesim", {}), r.get("zigzag", {})
        zz = (["error"] * 5 if "error" in z else
              [f"{z['ideal']:.0f}", f"{z['cycles']:.0f}",
               f"{z['ratio_cycles_over_per_group']:.3f}", f"{z['energy_untruncated']:.0f}"]
              if z else ["-"] * 4)
        zz = zz[:4]
        ratio = f"{z['ratio_energy_over']:.4f}" if z and "error" not in z else "-"
        lines.append(
            f"| {r['kind']} | {r['dataflow']} | {r['rows']}x{r['cols']} | "
            f"{' '.join(str(tuple(x)) for x in r['layers'])} | {s.get('cycles', '-')} | "
            f"{c['cycles']['none']:.0f} | {c['cycles']['per_group']:.0f} | "
            f"{c['cycles']['per_tile']:.0f} | {' | '.join(zz)} | {c['energy_pJ']:.0f} | {ratio} |")
    return lines


def markdown(result: dict) -> str:
    lines = ["# Peers: SCALE-Sim 3.0.0 and ZigZag 3.x vs Cascade", "",
             "`python bench/peers.py`; Cascade energies with `fill_drain: none` (fill and drain "
             "change cycles only). 1 pJ per MAC and per 16-bit word at the buffer and DRAM in "
             "every model.", ""]
    lines += [f"* {name}: {why}" for name, why in result["status"].items()] + [""]
    lines += _scalesim(result) + _zigzag(result)
    lines += _table(result["rows"]) + [EXPLAIN]
    return "\n".join(lines)

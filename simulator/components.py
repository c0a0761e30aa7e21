"""Component models: the per-access energy and the area of an on-chip buffer from what it is.

A buffer level that declares its ``capacity`` and port width (``access_bytes``) but no
``read_pJ``/``write_pJ``/``area_um2`` takes them from :func:`sram_cost`, so a spec that changes its
buffer's size changes its energy and area with it (a 16 MiB buffer's 4096-bit row costs about half
of a 32 MiB buffer's).

The data (``sram_cacti_45nm.csv`` beside this module) are CACTI's values at 45 nm for a global
buffer with one read/write port, one bank and a 4096-bit port, at capacities from 256 KiB to
64 MiB: the numbers the FuseMax artifact's Accelergy CACTI plug-in produces for the buffers its
designs declare. CACTI's output is not a clean power law in the capacity (bank and mat
organisation changes between sizes), so the model keeps the table and interpolates:

* in the capacity: piecewise power law between neighbouring rows (linear in log-energy against
  log-capacity); outside the table the end segments are extended, a rough estimate: declare the
  energies of a buffer far outside 256 KiB..64 MiB;
* in the port width: energy per access proportional to the width (the table's energy per bit of a
  row; a narrower port senses and drives fewer bit lines); the area does not depend on it.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

TABLE = Path(__file__).with_name("sram_cacti_45nm.csv")
SOURCE = "CACTI 45 nm SRAM table (1 port, 1 bank), interpolated in log-capacity, scaled by width"


@dataclass(frozen=True)
class SramRow:
    capacity_bytes: float
    width_bits: int
    read_pJ: float
    write_pJ: float
    area_um2: float


@dataclass(frozen=True)
class SramCost:
    """Energy of one access of the port (read, write) and the area of the array."""

    read_pJ: float
    write_pJ: float
    area_um2: float


@lru_cache(maxsize=1)
def sram_table() -> tuple[SramRow, ...]:
    """The table's rows by increasing capacity."""
    lines = [ln for ln in TABLE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    rows = [SramRow(float(r["capacity_bytes"]), int(r["width_bits"]), float(r["read_pJ"]),
                    float(r["write_pJ"]), float(r["area_mm2"]) * 1e6)
            for r in csv.DictReader(lines)]
    return tuple(sorted(rows, key=lambda r: r.capacity_bytes))


def _power_law(x: float, x0: float, y0: float, x1: float, y1: float) -> float:
    slope = math.log(y1 / y0) / math.log(x1 / x0)
    return y0 * (x / x0) ** slope


def sram_cost(capacity_bytes: float, width_bits: float) -> SramCost:
    """Per-access energies (pJ) and area (um^2) of a buffer of ``capacity_bytes`` whose port
    moves ``width_bits`` per access."""
    rows = sram_table()
    i = 1
    while i < len(rows) - 1 and rows[i].capacity_bytes < capacity_bytes:
        i += 1
    lo, hi = rows[i - 1], rows[i]

    def at(field: str, row: SramRow) -> float:
        value = getattr(row, field)
        return value * width_bits / row.width_bits if field != "area_um2" else value

    return SramCost(*(_power_law(capacity_bytes, lo.capacity_bytes, at(f, lo), hi.capacity_bytes,
                                 at(f, hi)) for f in ("read_pJ", "write_pJ", "area_um2")))

"""The memory levels of an imported Timeloop design (a mixin of the importer's builder).

The outermost storage is the off-chip level, the storages outside every fan-out the buffer and
the shared levels inside it, the storages inside a fan-out levels local to a unit (one per PE or
one per row; a ``!Parallel`` branch of them is one level). See :mod:`simulator.timeloop_import`.
"""
from __future__ import annotations

import math

from einsum_ir.spec_fields import Quantity

from .timeloop_tree import Leaf

WIDTH_BITS = Quantity(1, 2 ** 23, "bits")
WORDS = Quantity(1, 2 ** 60, "words")
KB = Quantity(0, 2 ** 50, "KiB", positive=True)
WORDS_PER_CYCLE = Quantity(0, 2 ** 30, "words/cycle", positive=True)
READ, WRITE = ("read",), ("write", "update", "fill")


class LevelBuilder:
    """Level building of :class:`simulator.timeloop_import._Builder` (``self.r``: the tree
    reader, ``self.ert``: the energy table, ``self.notes``, ``self.clock_hz``, ``self.word_bits``)."""

    def _access_bytes(self, leaf: Leaf) -> int:
        width = self.r.leaf_number(leaf, "width", WIDTH_BITS) or self.r.leaf_number(
            leaf, "memory_width", WIDTH_BITS)
        if width is None:
            block = self.r.leaf_number(leaf, "block_size", WORDS) or 1
            width = block * (self._bits(leaf) or self.word_bits)
        if width % 8:
            self.notes.append(f"{leaf.name}: an access of {width:g} bits counted as "
                              f"{math.ceil(width / 8)} bytes")
        return max(1, math.ceil(width / 8))

    def _bandwidth(self, leaf: Leaf) -> float | None:
        """Bytes per second from words per cycle (``shared_bandwidth``, else ``read_bandwidth``)."""
        for key in ("shared_bandwidth", "read_bandwidth"):
            words = self.r.leaf_number(leaf, key, WORDS_PER_CYCLE)
            if words is not None:
                written = self.r.leaf_number(leaf, "write_bandwidth", WORDS_PER_CYCLE)
                if key == "read_bandwidth" and written not in (None, words):
                    self.notes.append(f"{leaf.name}: one bandwidth for reads and writes "
                                      "(read_bandwidth)")
                return _whole(words * (self._bits(leaf) or self.word_bits) / 8 * self.clock_hz)
        return None

    def _energies(self, leaf: Leaf) -> tuple:
        return (self.ert.energy(self.r, leaf.name, leaf.path, READ),
                self.ert.energy(self.r, leaf.name, leaf.path, WRITE))

    def _offchip(self, leaf: Leaf) -> dict:
        if leaf.instances != 1:
            raise self.r.err(f"{leaf.path}.spatial", f"the outermost storage {leaf.name!r} (the "
                             f"off-chip level) has {leaf.instances} instances",
                             hint="Cascade models one off-chip memory outside every fan-out")
        access = self._access_bytes(leaf)
        bandwidth = self._bandwidth(leaf)
        if bandwidth is None:
            bandwidth = _whole(access * self.clock_hz)
            self.notes.append(f"{leaf.name}: no shared_bandwidth/read_bandwidth: one {access}-byte "
                              f"access per cycle ({bandwidth / 2**30:.3g} GiB/s)")
        read, write = self._energies(leaf)
        return {"name": leaf.name, "bandwidth": bandwidth, "access_bytes": access,
                "read_pJ": read, "write_pJ": write}

    def _capacity(self, leaf: Leaf) -> float:
        """Bytes: depth x width, entries x datawidth, or sizeKB."""
        a = self.r.leaf_number
        depth = a(leaf, "depth", WORDS) or a(leaf, "memory_depth", WORDS)
        width = a(leaf, "width", WIDTH_BITS) or a(leaf, "memory_width", WIDTH_BITS)
        entries = a(leaf, "entries", WORDS)
        size_kb = a(leaf, "sizeKB", KB)
        if depth is not None and width is not None:
            bits = depth * width
        elif entries is not None:
            bits = entries * (self._bits(leaf) or self.word_bits)
        elif size_kb is not None:
            bits = size_kb * 1024 * 8
        else:
            raise self.r.err(f"{leaf.path}.attributes.depth", "missing required field (an on-chip "
                             "storage needs depth and width, entries, or sizeKB)")
        if math.isinf(bits):
            raise self.r.err(f"{leaf.path}.attributes", f"{leaf.name} is on chip but unbounded (INF)",
                             hint="only the outermost storage (DRAM) may be unbounded")
        return bits // 8 if float(bits).is_integer() and bits % 8 == 0 else bits / 8

    def _buffer(self, leaf: Leaf, first: bool = True) -> dict:
        level = {"name": leaf.name, "capacity": self._capacity(leaf),
                 "access_bytes": self._access_bytes(leaf)}
        if first or leaf.name in self.ert.actions:
            level["read_pJ"], level["write_pJ"] = self._energies(leaf)
        else:
            self.notes.append(f"{leaf.name}: no ERT table: energies and area from its capacity "
                              "and width (Cascade's 45 nm SRAM table)")
        level.update(self._ports([leaf], leaf.name))
        return level

    def _ports(self, leaves: list, name: str) -> dict:
        """``ports`` and ``port_bytes`` of an on-chip level from its storages' Timeloop bandwidth
        (words per cycle per instance, :mod:`simulator.timing`'s ports are per instance too):
        ``shared_bandwidth`` is one port; ``read_bandwidth`` and ``write_bandwidth`` are pooled
        (the model's ports serve reads and writes alike), as two ports where they are equal; the
        storages of one ``!Parallel`` branch add theirs. Nothing where a storage declares none."""
        rates = []
        for leaf in leaves:
            got = {k: self.r.leaf_number(leaf, k, WORDS_PER_CYCLE)
                   for k in ("shared_bandwidth", "read_bandwidth", "write_bandwidth")}
            word = (self._bits(leaf) or self.word_bits) / 8
            if got["shared_bandwidth"] is not None:
                rates.append((1, got["shared_bandwidth"] * word))
            elif got["read_bandwidth"] is not None or got["write_bandwidth"] is not None:
                rw = [w for w in (got["read_bandwidth"], got["write_bandwidth"]) if w is not None]
                self.notes.append(f"{leaf.name}: " + (
                    f"{rw[0]:g} words/cycle for reads and writes together" if len(rw) == 1 else
                    f"read_bandwidth and write_bandwidth ({rw[0]:g} and {rw[1]:g} words/cycle) "
                    "pooled: reads and writes share the ports"))
                rates.append((2, rw[0] * word) if len(rw) == 2 and rw[0] == rw[1]
                             else (1, sum(rw) * word))
            else:
                return {}
        ports = sum(p for p, _ in rates)
        per_port = sum(p * b for p, b in rates) / ports
        port_bytes = max(1, math.ceil(per_port))
        if port_bytes != per_port:
            self.notes.append(f"{name}: {per_port:g} bytes per port and cycle rounded up to "
                              f"{port_bytes} (port_bytes is whole bytes)")
        return {"ports": ports, "port_bytes": port_bytes}

    def _local_levels(self, unit: Leaf, spads: list) -> tuple:
        """(levels, storages left to fold) of the per-PE and per-row storages feeding ``unit``."""
        x, y = unit.mesh
        placed, folded = [], []
        for s in spads:
            if s.instances == x * y:
                placed.append(("pe", s))
            elif x > 1 and y > 1 and s.mesh == (1, y):
                placed.append(("row", s))
            else:
                folded.append(s)
        placed.sort(key=lambda p: p[0] == "pe")  # rows outside PEs; stable: tree order
        groups: list = []
        for per, s in placed:
            if groups and s.parallel and groups[-1][0] == per and groups[-1][1][-1].parallel == s.parallel:
                groups[-1][1].append(s)
            else:
                groups.append((per, [s]))
        return [self._local_level(unit, per, members) for per, members in groups], folded

    def _local_level(self, unit: Leaf, per: str, members: list) -> dict:
        name = "+".join(s.name for s in members)
        level = {"name": name, "per": per, "unit": unit.name,
                 "capacity": _whole(sum(self._capacity(s) for s in members)),
                 "access_bytes": max(self._access_bytes(s) for s in members)}
        tabled = [s for s in members if s.name in self.ert.actions]
        if tabled:
            level["read_pJ"] = max(self._energies(s)[0] for s in tabled)
            level["write_pJ"] = max(self._energies(s)[1] for s in tabled)
        else:
            self.notes.append(f"{name}: no ERT table: energies and area from its capacity and "
                              "width (Cascade's 45 nm SRAM table)")
        level.update(self._ports(members, name))
        count = unit.instances if per == "pe" else unit.mesh[1]
        together = (" (one !Parallel branch: one level, capacities added, the largest energy per "
                    "access)" if len(members) > 1 else "")
        self.notes.append(f"{name}: a level per {'PE' if per == 'pe' else 'row'} of {unit.name} "
                          f"({count} instances){together}")
        return level


def _whole(x: float):
    """An integral float as an int (so a written spec reads 200000000, not 200000000.0)."""
    return int(x) if float(x).is_integer() and abs(x) < 2 ** 63 else x

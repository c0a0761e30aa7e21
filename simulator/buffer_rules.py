"""Which reads and writes of a fusion group reach the on-chip buffer (two general counting rules).

:func:`simulator.counts.buffer_terms` gives the words each tensor the buffer keeps moves if every
access went through the buffer. Two rules take out the accesses that do not:

* **R1, registers first.** A consumer on the producer's unit, in the producer's pass, takes the
  producer's current value from the PE registers it was just written to, not from the buffer (a
  softmax denominator summing the numerators as they are produced). Reads of an earlier iterate
  (``RM[m1]`` in ``RM[m1+1] = max(RM[m1], ...)``) and of a recurrence's final iterate come from
  the buffer, where the running values of all resident tiles live. Consumers on one unit that read
  the same words in the same pass share one fetch.
* **R2, off-chip writes leave from the array.** Off-chip outputs and spilled intermediates go
  from the array to off-chip memory directly: no buffer write of the spilled part and no read to
  drain it. Data coming from off-chip (inputs, spills read back) are written into the buffer.

A *pass* is counted over the group's loops: an Einsum that iterates a looped variable and
consumes (directly, or through Einsums that do not iterate it) a full reduction over that
variable runs in the next pass. Reductions over ranks spread across the PEs or walked inside one
tile (``M0``) are done within a pass.

The functions take a consumer's unit as a name or as an array of unit indices (one per binding,
for the mapper's vectorised evaluator), so the model and the mapper count alike.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .counts import buffer_terms, tensor_vars, tile_words
from .loops import Loops
from .mapping import Group
from .problem import Problem


@dataclass(frozen=True)
class ConsumerRead:
    """One Einsum's reads of one buffered tensor."""

    consumer: str
    words: float
    pass_index: int
    current: bool  # reads the producer's current value (not an earlier or the final iterate)
    carried: bool  # reads an earlier iterate


def group_passes(prob: Problem, loops: Loops, group: Group) -> dict:
    """Einsum -> the pass (1, 2, ...) it runs in within the group."""
    looped = {loops.var(n) for n in group.loops + group.buffer_loops}
    keys = group.einsums
    producer = {prob.infos[k].einsum.name: k for k in keys}
    passes: dict = {}
    pending: dict = {}  # Einsum -> looped variables fully reduced upstream in its pass
    for k in keys:
        info = prob.infos[k]
        level, carry = 1, set()
        for t in info.reads:
            x = producer.get(t)
            if x is None or x == k or x not in passes:
                continue
            reduced = pending[x] | (set(prob.infos[x].reduced) & looped)
            rec = prob.recurrences.get(t)
            if t in info.final and rec is not None and rec[1] in looped:
                reduced.add(rec[1])
            if reduced & set(info.vars):
                cand, up = passes[x] + 1, set()
            else:
                cand, up = passes[x], reduced
            if cand > level:
                level, carry = cand, set(up)
            elif cand == level:
                carry |= up
        passes[k], pending[k] = level, carry
    return passes


def consumer_reads(prob: Problem, loops: Loops, group: Group, t: str, passes: dict,
                   inner: tuple = ()) -> tuple:
    """The reads of tensor ``t`` by the group's Einsums, in program order; ``inner``: the loops
    of the levels inside the buffer (each of their iterations reads its tile)."""
    all_loops = group.loops + group.buffer_loops + inner
    tile = tile_words(prob, loops, tensor_vars(prob, t, group.einsums), all_loops)
    out = []
    for k in group.einsums:
        info = prob.infos[k]
        if t not in info.reads:
            continue
        carried = bool(info.carried.get(t))
        current = not carried and t not in info.final and info.einsum.name != t
        out.append(ConsumerRead(k, loops.iterations(info, all_loops) * tile * info.density,
                                passes[k], current, carried))
    return tuple(out)


def buffer_read_words(reads: tuple, producer: str | None, unit_of, passes: dict):
    """Words the buffer delivers for ``reads`` (R1); ``unit_of``: Einsum -> unit (names, or
    arrays of unit indices with one entry per binding)."""
    total = 0.0
    for r, pays in zip(reads, paid_reads(reads, producer, unit_of, passes), strict=True):
        total = total + r.words * np.where(pays, 1.0, 0.0)
    return total


def paid_reads(reads: tuple, producer: str | None, unit_of, passes: dict) -> list:
    """Per read of ``reads``, whether the buffer delivers it (R1): false where the consumer takes
    the producer's registers or shares an earlier consumer's fetch (booleans or arrays)."""
    paid = []
    for i, r in enumerate(reads):
        unit = unit_of[r.consumer]
        free = False
        if producer is not None and r.current and r.pass_index == passes[producer]:
            free = np.equal(unit, unit_of[producer])
        for j in range(i):
            e = reads[j]
            if e.pass_index == r.pass_index and e.carried == r.carried and e.words >= r.words:
                free = np.logical_or(free, np.logical_and(paid[j], np.equal(unit, unit_of[e.consumer])))
        paid.append(np.logical_not(free))
    return paid


def buffered_tensor(prob: Problem, loops: Loops, group: Group, t: str, produced: bool, wb: int,
                    passes: dict, inner: tuple = ()):
    """(bytes held, consumer reads, words written) of a tensor the buffer keeps, with R2: the
    spilled part of an intermediate is written to off-chip memory, not to the buffer."""
    footprint, _, writes = buffer_terms(prob, loops, group, t, produced, wb)
    writes *= 1 - group.spill.get(t, 0.0)
    return footprint, consumer_reads(prob, loops, group, t, passes, inner), writes


def fill_words(traffic, wb: int) -> float:
    """Words written into the buffer from off-chip (R2: nothing is drained through it)."""
    return (traffic.dram_read - traffic.bypass) / wb

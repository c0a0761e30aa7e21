"""Loop names of a mapping: cascade ranks (``B``, ``M1``) and tile parts (``P2``, ``P1``, ``P0``)."""
from __future__ import annotations

import math

from einsum_ir.errors import CascadeError

from .mapping import Mapping, outer_part
from .problem import Problem


class Loops:
    """Extents and index variables of the loop names of one mapping on one problem.

    Built once per mapping; the per-name lookups are memoised (they depend on nothing else).
    """

    def __init__(self, prob: Problem, mapping: Mapping):
        self.prob = prob
        self.parts: dict = {}  # part name -> (rank, size)
        for rank, parts in mapping.tiles.items():
            if rank not in prob.sizes:
                raise CascadeError(f"mapping: tiles.{rank}: the cascade has no rank {rank}")
            inner = math.prod(parts.values())
            self.parts[outer_part(rank, parts)] = (rank, math.ceil(prob.sizes[rank] / inner))
            for part, size in parts.items():
                self.parts[part] = (rank, size)
        self._var: dict = {}
        self._iters: dict = {}

    def iterations(self, info, loop_names: tuple) -> int:
        """Tiles an Einsum runs: the product of the loops over its iteration space."""
        key = (info.key, loop_names)
        n = self._iters.get(key)
        if n is None:
            n = 1
            for name in loop_names:
                if self.var(name) in info.vars:
                    n *= self.extent(name)
            self._iters[key] = n
        return n

    def extent(self, name: str) -> int:
        if name in self.parts:
            return self.parts[name][1]
        if name in self.prob.sizes:
            return self.prob.sizes[name]
        raise CascadeError(f"mapping: no rank or tile part named {name!r}",
                           hint="loops name cascade ranks (B, M1) or tile parts declared under tiles:")

    def var(self, name: str) -> str:
        v = self._var.get(name)
        if v is None:
            v = self.parts[name][0].lower() if name in self.parts else name.lower()
            self._var[name] = v
        return v

    def known(self, name: str) -> bool:
        """Whether ``name`` is a rank of the problem or a tile part of the mapping."""
        return name in self.parts or name in self.prob.sizes

    def product(self, names) -> int:
        n = 1
        for name in names:
            n *= self.extent(name)
        return n

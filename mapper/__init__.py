"""Architecture and mapping models for spatial accelerators, and the mapspace the mapper searches.

* :mod:`mapper.arch`: architecture specs (YAML, validated with path-addressed errors, variables
  overridable with ``--arch-set``).
* :mod:`mapper.mapping`: mappings (binding, spatial ranks, tiling, loops, fusion groups, pipelining).
* :mod:`mapper.builders`: assembling mappings from a few decisions.
* :mod:`mapper.space`: the mapspace, objectives, the Pareto front.

The cost model lives in :mod:`simulator` (dependencies point einsum_ir <- mapper <- simulator).
"""
from .arch import Arch, load_arch, resolve_arch
from .mapping import EinsumMap, Group, Mapping, load_mapping, mapping_from_dict

__all__ = ["Arch", "EinsumMap", "Group", "Mapping", "load_arch", "load_mapping",
           "mapping_from_dict", "resolve_arch"]

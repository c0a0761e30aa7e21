"""The accelerator mapper: the mapspace and the search over it, above the cost model.

* :mod:`mapper.builders`: assembling mappings from a few decisions.
* :mod:`mapper.space`: the mapspace, objectives, the Pareto front.

Architecture specs and the mapping format live in :mod:`simulator` (:mod:`simulator.arch`,
:mod:`simulator.mapping`): the cost model reads them. Dependencies point
einsum_ir <- simulator <- mapper.
"""

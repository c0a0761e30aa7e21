"""The FuseMax evaluation (Nayak et al., MICRO 2024) reproduced with the general cost model.

* :mod:`studies.fusemax.workloads`: the models and sequence lengths of the evaluation.
* :mod:`studies.fusemax.study`: the configurations (architecture, cascade, fixed mapping), the
  records and the headline ratios; ``cascade reproduce fusemax`` runs it.
* :mod:`studies.fusemax.plots`: figures like the paper's.
"""

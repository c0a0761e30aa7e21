"""The generality harness: random well-formed cascades, run through both back ends.

``strategy`` draws cascades (hypothesis) from ``context`` (sizes, tensors, affine reads),
``builders`` (maps, contractions, reductions, softmaxes, recurrences), ``exprs`` (element-wise
expressions), ``masks`` (predicates) and ``intervals`` (value bounds that keep them well
conditioned). ``targets`` is the one adapter that calls the Triton backend and the accelerator
simulator; ``outcomes`` types what each call gives, ``compare`` and ``invariants`` judge it,
``runner`` runs one case on every target, ``minimize`` shrinks a failing case and
``regressions`` reads the reproducer files kept under ``regressions/``.
"""

"""The generality harness: random well-formed cascades, run through both back ends.

``strategy`` draws cascades (hypothesis), ``targets`` is the one adapter that calls the Triton
backend and the accelerator simulator, ``outcomes`` types what each call gives, ``invariants``
checks a simulator report, ``runner`` classifies one cascade on every target and
``regressions`` reads the reproducer files kept under ``regressions/``.
"""

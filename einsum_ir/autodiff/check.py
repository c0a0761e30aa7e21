"""Checks a gradient cascade against central differences of its forward cascade (float64).

``directional_error`` compares ``<grad, d>`` with ``(L(x + h d) - L(x - h d)) / 2h`` for a few
random directions ``d`` over every differentiated input at once, where ``L = sum(seed * output)``:
two forward evaluations per direction, so it runs at any size the interpreter can evaluate.
"""
from __future__ import annotations

import numpy as np

from ..inputs import input_shapes
from ..interpreter import evaluate
from ..sizes import resolve_sizes
from .reverse import Gradient


def gradient_problem(cascade, result: Gradient, sizes=None, seed: int = 0):
    """Random inputs and seeds, and the gradients the backward cascade computes for them."""
    rng = np.random.default_rng(seed)
    env = resolve_sizes(cascade, sizes)
    inputs = {k: rng.standard_normal(s) for k, s in input_shapes(cascade, env).items()}
    forward = evaluate(result.forward, inputs, sizes)
    seeds = {s: rng.standard_normal(forward[o].shape) for o, s in result.seeds}
    grads = evaluate(result.backward, {**inputs, **{k: forward[k] for k in result.saved},
                                       **seeds}, sizes)
    return rng, inputs, seeds, grads


def directional_error(cascade, result: Gradient, sizes=None, *, seed: int = 0,
                      directions: int = 3, h: float = 1e-5) -> float:
    """The largest difference between the backward cascade's directional derivative and the
    central difference, relative to the larger of the two (1 where both are tiny: absolute)."""
    rng, inputs, seeds, grads = gradient_problem(cascade, result, sizes, seed)

    def loss(x) -> float:
        out = evaluate(cascade, x, sizes)
        return sum(float((out[o] * seeds[s]).sum()) for o, s in result.seeds)

    worst = 0.0
    for _ in range(directions):
        step = {x: rng.standard_normal(inputs[x].shape) for x, _ in result.grads}
        exact = sum(float((grads[g] * step[x]).sum()) for x, g in result.grads)
        up = {**inputs, **{x: inputs[x] + h * step[x] for x in step}}
        down = {**inputs, **{x: inputs[x] - h * step[x] for x in step}}
        numeric = (loss(up) - loss(down)) / (2 * h)
        worst = max(worst, abs(exact - numeric) / max(1.0, abs(exact), abs(numeric)))
    return worst

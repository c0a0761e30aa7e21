"""Forward+backward measurement of one attention case, shared by bench/attention_gpu.py and the
GPU lane's ``backward`` step.

Ours is the cascade as a native PyTorch op (``backends.torch_op.native_op``: the forward kernel,
which also saves the log-sum-exp, and the gradient cascade's kernels behind ``register_autograd``).
The baselines are SDPA (flash, and cuDNN and memory-efficient where present) on dense and causal,
FlexAttention (``torch.compile``-d, with a block mask for the masked variants) on the softmax
variants, and eager PyTorch autograd: the materialised softmax, or for linear attention the
PyTorch implementation (chunked for the causal form, ``torch_ref``).

For each implementation, on fresh caches: the first forward and first backward call (wall clock,
synchronised), then warm times of the forward (autograd recording), the backward alone
(``retain_graph``, the forward outside the timed region) and forward+backward. The backward's
compile time is its first call minus a warm call. A backward that runs in the reference
interpreter (numpy, on the host) is timed by one wall-clock call (Triton's ``do_bench`` would call
it dozens of times), and only up to ``HOST_BACKWARD_MAX`` elements per input.

Record keys: ``<impl>_ms`` is the backward time (so the lane's schema keys mean the backward in a
backward record), ``<impl>_fwd_ms``, ``<impl>_fwdbwd_ms``, ``<impl>_first_fwd_s``,
``<impl>_first_bwd_s``, ``<impl>_bwd_compile_s``; ``ratios`` and ``targets`` come from
gpu_lane_results.backward_ratios / target_verdicts.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpu_lane_measure import Bench, case_inputs, eager_softmax, flex_call, linear_reference, sdpa_calls
from gpu_lane_results import backward_kind, backward_ratios, target_verdicts

INTERPRETER = "reference interpreter"  # how the op's repr names its numpy engine
# Above this many elements per input (B x H x N x D) a backward that runs in the reference
# interpreter is not timed: at the GPU grid's sizes one call takes tens of seconds of numpy.
HOST_BACKWARD_MAX = 1 << 22


@dataclass(frozen=True)
class Contender:
    """One implementation of a case: ``forward()`` records an autograd graph over ``inputs``."""

    key: str  # the record's prefix: ours, sdpa, sdpa_cudnn, sdpa_efficient, flex, eager
    forward: Callable[[], Any]
    inputs: tuple


def baselines(case, tensors, slope, bench: Bench, eager_max: int) -> list[Contender]:
    """The baselines that apply to a case (see the module's docstring)."""
    q, k, v = tensors["Q"], tensors["K"], tensors["V"]
    kind, inputs = backward_kind(case["variant"]), (tensors["Q"], tensors["K"], tensors["V"])
    if kind in ("linear", "linear_causal"):
        ref = linear_reference(case)
        return [Contender("eager", lambda: ref(q, k, v), inputs)]
    out = [Contender(key[:-3], call, inputs) for key, call in sdpa_calls(case, q, k, v, bench).items()]
    if bench.flex is not None:
        out.append(Contender("flex", flex_call(case, q, k, v, slope, bench), inputs))
    if case["seq_len"] <= eager_max:
        out.append(Contender("eager", lambda: eager_softmax(case, q, k, v, slope), inputs))
    return out


def measure(rec: dict, c: Contender, bench: Bench, pick_timer: Callable | None = None) -> None:
    """Fills ``rec`` with ``c``'s first-call and warm times (see the module's docstring); an
    implementation that fails leaves ``<key>_ms`` None and its error under ``baseline_errors``.
    ``pick_timer()``, asked after the first calls, may return a timer to use instead of the
    bench's."""
    import torch

    def backward(out, grad):
        return torch.autograd.grad(out, c.inputs, grad, retain_graph=True)

    try:
        start = time.perf_counter()
        out = c.forward()
        bench.sync()
        rec[f"{c.key}_first_fwd_s"] = time.perf_counter() - start
        grad = torch.randn_like(out)
        start = time.perf_counter()
        backward(out, grad)
        bench.sync()
        rec[f"{c.key}_first_bwd_s"] = time.perf_counter() - start
        timer = (pick_timer() if pick_timer else None) or bench.timer
        rec[f"{c.key}_fwd_ms"] = timer(c.forward)
        rec[f"{c.key}_ms"] = timer(lambda: backward(out, grad))
        rec[f"{c.key}_fwdbwd_ms"] = timer(lambda: torch.autograd.grad(c.forward(), c.inputs, grad))
        rec[f"{c.key}_bwd_compile_s"] = max(0.0, rec[f"{c.key}_first_bwd_s"] - rec[f"{c.key}_ms"] / 1e3)
    except Exception as exc:  # missing here (FlexAttention's backward on the CPU), out of memory
        rec[f"{c.key}_ms"] = None
        rec.setdefault("baseline_errors", {})[f"{c.key}_ms"] = f"{type(exc).__name__}: {exc}"[:300]
        if bench.device == "cuda":
            torch.cuda.empty_cache()


def wall_clock(bench: Bench) -> Callable[[Callable], float]:
    """The host timer for ours when its backward runs in the reference interpreter: one
    synchronised wall-clock call."""
    def timer(fn) -> float:
        start = time.perf_counter()
        fn()
        bench.sync()
        return (time.perf_counter() - start) * 1e3
    return timer


def backward_case(case: dict, dtype_name: str, eager_max: int, make_op: Callable[[], Any],
                  bench: Bench, device_name: str) -> dict:
    """One backward record: ours (the native op ``make_op()`` builds) and the baselines."""
    import torch

    tensors, slope = case_inputs(case, getattr(torch, dtype_name), bench.device, requires_grad=True)
    rec = dict(variant=case["variant"], seq_len=case["seq_len"], head_dim=case["head_dim"],
               dtype=dtype_name, batch=case["B"], heads=case["H"], device=device_name,
               ours_ms=None, predicted_ms=None, ours_tflops=None)
    try:
        start = time.perf_counter()
        op = make_op()
        rec["ours_op_s"] = time.perf_counter() - start  # the gradient cascade's derivation, lowering
    except Exception as exc:
        rec["error"] = f"{type(exc).__name__}: {exc}"[:300]
    else:
        _measure_ours(rec, op, tensors, bench)
    for c in baselines(case, tensors, slope, bench, eager_max):
        measure(rec, c, bench)
    rec["ratios"] = backward_ratios(rec)
    rec["targets"] = [v.__dict__ for v in target_verdicts(rec)]
    return rec


def _measure_ours(rec: dict, op, tensors: dict, bench: Bench) -> None:
    q, k, v = tensors["Q"], tensors["K"], tensors["V"]
    elements = q.numel()
    if _on_host(op) and elements > HOST_BACKWARD_MAX:
        rec["ours_backward_engine"] = _backward_engine(op)
        rec["ours_note"] = (f"not timed: the backward runs on the host, {elements} elements per "
                            f"input (timed up to {HOST_BACKWARD_MAX})")
        return
    ours = Contender("ours", lambda: op(q, k, v), (q, k, v))
    # the engine is known after the first call (a lowering refused at these sizes falls back)
    measure(rec, ours, bench, lambda: wall_clock(bench) if _on_host(op) else None)
    rec["ours_backward_engine"] = _backward_engine(op)
    errors = rec.get("baseline_errors", {})
    if errors.get("ours_ms"):  # ours failing is the record's error, not a baseline's
        rec["error"] = errors.pop("ours_ms")
        if not errors:
            rec.pop("baseline_errors")


def _backward_engine(op) -> str:
    text = repr(op)
    if "backward: " not in text:
        return text
    engine = text.split("backward: ", 1)[1]
    return engine[:-1] if engine.endswith(")") else engine  # the repr's own closing parenthesis


def _on_host(op) -> bool:
    return INTERPRETER in _backward_engine(op)


def summary_line(rec: dict) -> str:
    """One console line of a backward record."""
    def f(x):
        return "-" if x is None else f"{x:.3f}"
    return (f"{rec['variant']:>14} N={rec['seq_len']:>6} D={rec['head_dim']:>3} backward: ours "
            f"{f(rec.get('ours_ms'))} ms (fwd+bwd {f(rec.get('ours_fwdbwd_ms'))}, compile "
            f"{f(rec.get('ours_bwd_compile_s'))} s) | sdpa {f(rec.get('sdpa_ms'))} | flex "
            f"{f(rec.get('flex_ms'))} | pytorch {f(rec.get('eager_ms'))}"
            + (f" | error {rec['error']}" if rec.get("error") else "")
            + (f" | {rec['ours_note']}" if rec.get("ours_note") else ""))

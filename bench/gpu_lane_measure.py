"""Measurement of one attention case: our kernel, torch SDPA, FlexAttention and eager PyTorch.

Shared by bench/attention_gpu.py (the stand-alone benchmark) and bench/gpu_lane.py (the timed GPU
lane). Everything here takes a ``Bench``, which says where the tensors live and how to time: CUDA
events on a GPU, a wall clock on the CPU (the lane's dry run, under TRITON_INTERPRET=1). A
baseline that fails leaves its time at None and its error text under ``baseline_errors``.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

EAGER_CAP = 20.0  # the soft-cap of softcap.ein (CAP=20)


@dataclass(frozen=True)
class Bench:
    """Where the tensors live and how a call is timed."""

    device: str  # "cuda", or "cpu" in the dry run
    timer: Callable[[Callable], float]  # milliseconds per call
    sync: Callable[[], None]
    sdpa_backend: Any  # torch.nn.attention.SDPBackend, or None
    sdpa_kernel: Any
    flex: Any  # compiled flex_attention, or None
    create_block_mask: Any
    flex_backend: str  # the torch.compile backend of FlexAttention ("inductor" on a GPU)


def gpu_timer(fn) -> float:
    import torch
    try:
        from triton.testing import do_bench
        return float(do_bench(fn, warmup=25, rep=100))
    except Exception:  # fall back to CUDA events
        for _ in range(5):
            fn()
        torch.cuda.synchronize()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(20):
            fn()
        e.record()
        torch.cuda.synchronize()
        return s.elapsed_time(e) / 20


def cpu_timer(fn, reps: int = 1) -> float:
    """Wall-clock milliseconds per call on the CPU (the dry run: proves the path, not the speed;
    the interpreter is slow, so one call after the first)."""
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps * 1e3


def make_bench(device: str = "cuda", flex_backend: str = "inductor") -> Bench:
    """The optional baselines: SDPA backend selection and compiled FlexAttention (None where
    this torch lacks them)."""
    import torch

    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        SDPBackend = sdpa_kernel = None
    _raise_recompile_limits(torch)
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        flex = torch.compile(flex_attention, dynamic=False, backend=flex_backend)
    except Exception:
        flex = create_block_mask = None
    cuda = device == "cuda"
    return Bench(device, gpu_timer if cuda else cpu_timer,
                 torch.cuda.synchronize if cuda else (lambda: None), SDPBackend, sdpa_kernel, flex,
                 create_block_mask, flex_backend)


def _raise_recompile_limits(torch) -> None:
    """Every case is a new shape (dynamic=False) and new mask closures: past dynamo's default
    limit of 8 recompilations FlexAttention would silently fall back to its unfused form."""
    config = getattr(getattr(torch, "_dynamo", None), "config", None)
    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit",
                 "accumulated_cache_size_limit"):
        if config is not None and hasattr(config, name):
            setattr(config, name, max(int(getattr(config, name)), 1024))


def timed(rec: dict, key: str, fn, bench: Bench) -> None:
    """rec[key] = milliseconds per call, or None with the error text under baseline_errors."""
    try:
        rec[key] = bench.timer(fn)
    except Exception as exc:  # a baseline that is missing here or runs out of memory
        rec[key] = None
        rec.setdefault("baseline_errors", {})[key] = f"{type(exc).__name__}: {exc}"[:300]
        if bench.device == "cuda":
            import torch
            torch.cuda.empty_cache()


def case_inputs(case, dtype, device: str, requires_grad: bool = False):
    """Seeded inputs of a case by tensor name, and the ALiBi slopes (None for other variants)."""
    import torch

    v, n, d, b, h = case["variant"], case["seq_len"], case["head_dim"], case["B"], case["H"]
    hk = h // case.get("G", 1)
    g = torch.Generator(device=device).manual_seed(0)
    q = torch.randn(b, h, n, d, device=device, dtype=dtype, generator=g)
    k = torch.randn(b, hk, n, d, device=device, dtype=dtype, generator=g)
    vv = torch.randn(b, hk, n, d, device=device, dtype=dtype, generator=g)
    tensors = dict(Q=q, K=k, V=vv)
    slope = None
    if v == "alibi":
        slope = torch.tensor([2 ** (-8 * (i + 1) / h) for i in range(h)], device=device,
                             dtype=dtype)
        tensors["Slope"] = slope
    if v.startswith("linear"):
        for t in ("Q", "K"):
            tensors[t] = tensors[t] * 0.5
    if requires_grad:
        for t in ("Q", "K", "V"):
            tensors[t] = tensors[t].detach().requires_grad_(True)
    return tensors, slope


def mask_kind(variant: str) -> str:
    if variant in ("causal", "alibi"):
        return "causal"
    return "sliding" if variant.startswith("sliding") else "dense"


def time_ours(rec, fn, tensors, bench: Bench) -> None:
    """Our kernel's first call (generation + JIT), its time and the cost model's prediction."""
    try:
        start = time.perf_counter()
        fn(**tensors)
        bench.sync()
        rec["ours_first_call_s"] = time.perf_counter() - start
        rec["ours_ms"] = bench.timer(lambda: fn(**tensors))
        rec["predicted_ms"] = fn.last_plan.predicted_s * 1e3 if fn.last_plan else None
        rec["mapping"] = fn.last_plan.describe().splitlines()[0] if fn.last_plan else None
    except Exception as exc:
        rec["ours_ms"] = None
        rec["error"] = f"{type(exc).__name__}: {exc}"[:300]


def linear_reference(case):
    from backends.triton import torch_ref

    if case["variant"] == "linear":
        return torch_ref.linear_attention
    return lambda a, b_, c: torch_ref.chunked_causal_linear_attention(a, b_, c, case["C"])


def eager_softmax(case, q, k, v, slope):
    from backends.triton import torch_ref

    variant = case["variant"]
    kind = mask_kind(variant)
    return torch_ref.softmax_attention(
        q, k, v, kind=kind if variant != "alibi" else "dense", W=case.get("W"),
        G=case.get("G", 1), slope=slope, cap=EAGER_CAP if variant == "softcap" else None)


def sdpa_calls(case, q, k, v, bench: Bench) -> dict:
    """The SDPA baselines that apply to a case, by record key (flash, cuDNN, memory-efficient)."""
    import torch.nn.functional as F

    variant = case["variant"]
    if bench.sdpa_backend is None or variant not in ("dense", "causal", "gqa8"):
        return {}
    if variant == "gqa8":  # the backend SDPA picks for grouped heads
        return {"sdpa_ms": lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True)}
    causal = variant == "causal"
    out = {}
    for key, name in (("sdpa_ms", "FLASH_ATTENTION"), ("sdpa_cudnn_ms", "CUDNN_ATTENTION"),
                      ("sdpa_efficient_ms", "EFFICIENT_ATTENTION")):
        backend = getattr(bench.sdpa_backend, name, None)
        if backend is None:
            continue

        def call(backend=backend):
            with bench.sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        out[key] = call
    return out


def flex_call(case, q, k, v, slope, bench: Bench):
    """FlexAttention for a case: a block mask for causal and sliding windows, a score_mod for
    ALiBi and the soft-cap."""
    import torch

    variant, n, kind, W = case["variant"], q.shape[2], mask_kind(case["variant"]), case.get("W")
    mask_mod = score_mod = None
    if kind == "causal":
        def mask_mod(b_, h_, qi, ki):
            return qi >= ki
    elif kind == "sliding":
        def mask_mod(b_, h_, qi, ki):
            return (qi - W < ki) & (ki <= qi)
    if variant == "alibi":
        def score_mod(s, b_, h_, qi, ki):
            return s - slope[h_] * (qi - ki)
    elif variant == "softcap":
        def score_mod(s, b_, h_, qi, ki):
            return EAGER_CAP * torch.tanh(s / EAGER_CAP)
    block_mask = (bench.create_block_mask(mask_mod, None, None, n, n, device=bench.device)
                  if mask_mod else None)
    gqa = variant == "gqa8"
    return lambda: bench.flex(q, k, v, score_mod=score_mod, block_mask=block_mask, enable_gqa=gqa)


def softmax_baselines(rec, case, eager_max, tensors, slope, bench: Bench) -> None:
    q, k, vv = tensors["Q"], tensors["K"], tensors["V"]
    for key, call in sdpa_calls(case, q, k, vv, bench).items():
        timed(rec, key, call, bench)
    if bench.flex is not None:
        try:
            call = flex_call(case, q, k, vv, slope, bench)
            start = time.perf_counter()
            call()
            bench.sync()
            rec["flex_first_call_s"] = time.perf_counter() - start
            rec["flex_backend"] = bench.flex_backend
        except Exception as exc:
            rec["flex_ms"] = None
            rec.setdefault("baseline_errors", {})["flex_ms"] = f"{type(exc).__name__}: {exc}"[:300]
        else:
            timed(rec, "flex_ms", call, bench)
    if case["seq_len"] <= eager_max:
        timed(rec, "eager_ms", lambda: eager_softmax(case, q, k, vv, slope), bench)


def agreement(rec, case, fn, tensors, slope, check_max: int = 4096) -> None:
    """The largest difference of our output from a float32 eager reference (up to ``check_max``
    tokens for softmax variants: the reference materialises the scores)."""
    q, k, vv = tensors["Q"], tensors["K"], tensors["V"]
    mine = fn(**tensors)["AV"].float()
    if case["variant"].startswith("linear"):
        other = linear_reference(case)(q.float(), k.float(), vv.float())
    elif case["seq_len"] <= check_max:
        other = eager_softmax(case, q.float(), k.float(), vv.float(),
                              None if slope is None else slope.float())
    else:
        return
    rec["max_abs_diff_vs_fp32_eager"] = (mine - other.float()).abs().max().item()


@contextlib.contextmanager
def fresh_caches():
    """Empty on-disk caches for the block (ours, Triton's, Inductor's), so that first calls
    measure code generation and JIT compilation; the environment is restored after."""
    names = ("CASCADE_CACHE", "TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR")
    saved = {k: os.environ.get(k) for k in names}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CASCADE_CACHE"] = tmp
        os.environ["TRITON_CACHE_DIR"] = os.path.join(tmp, "triton")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(tmp, "inductor")
        try:
            yield tmp
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def compile_times(arch, dtype, bench: Bench, device_name, seq_len=4096, head_dim=128,
                  heads=16) -> dict:
    """First-call time (code generation + Triton JIT, empty caches) of our causal kernel vs
    FlexAttention's (dynamo reset, fresh inductor cache)."""
    import torch

    from backends.triton import compile_cascade
    from einsum_ir.resources import BuiltinKind, builtin_dir

    rec = dict(variant="compile_time", seq_len=seq_len, head_dim=head_dim,
               dtype=str(dtype).replace("torch.", ""), device=device_name)
    q = torch.randn(1, heads, seq_len, head_dim, device=bench.device, dtype=dtype)
    with fresh_caches():
        start = time.perf_counter()
        fn = compile_cascade(builtin_dir(BuiltinKind.CASCADE) / "causal.ein", arch=arch)
        fn(Q=q, K=q, V=q)
        bench.sync()
        rec["ours_first_call_s"] = time.perf_counter() - start
        if bench.flex is not None:
            torch._dynamo.reset()
            start = time.perf_counter()
            bm = bench.create_block_mask(lambda b, h, qi, ki: qi >= ki, None, None, seq_len,
                                         seq_len, device=bench.device)
            bench.flex(q, q, q, block_mask=bm)
            bench.sync()
            rec["flex_first_call_s"] = time.perf_counter() - start
            rec["flex_backend"] = bench.flex_backend
    return rec

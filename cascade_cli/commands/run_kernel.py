"""``cascade run FILE --target triton [--inputs IN.npz] [--check]``: compile, run, compare.

Runs on a GPU if there is one (else under Triton's interpreter, ``TRITON_INTERPRET=1``, on the
CPU) and compares every output with the float64 reference interpreter on the same (rounded)
inputs. Inputs come from ``--inputs`` (an ``.npz`` of arrays named by input tensor; the shapes
give the plain ranks not set with ``--set``) or are drawn from the domain each input's use needs
(decay rates raised to a power in (0, 1], see einsum_ir.inputs).

The check is per element and does not grow with the largest value (FlexAttention's rule, in the
form of ``numpy.isclose``)::

    |out - ref64| <= atol + rtol * |ref64| + FACTOR * |ref32 - ref64|

``atol`` and ``rtol`` are fixed by the kernel's dtype (``--tol`` sets both); the last term allows
a small multiple of the error the same computation makes in float32 (the interpreter in float32
against float64), so a cascade that loses precision by itself is not blamed on the kernel.
"""
from __future__ import annotations

import json
import os
import sys
import time

from einsum_ir.errors import CascadeError

MISMATCH = 3  # the exit status of `run --check` when the kernel and the reference differ
TOLERANCE = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 4e-2}  # atol and rtol
FACTOR = 2.0  # x the float32 computation's own error


def add_run_options(p) -> None:
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--inputs", metavar="IN.npz",
                   help="input arrays by tensor name (numpy.savez); their shapes give the ranks "
                        "not set with --set (default: random inputs from each input's domain)")
    p.add_argument("--check", action="store_true",
                   help="exit with status 3 when an element's error exceeds the tolerance")
    p.add_argument("--tol", type=float, default=None,
                   help="atol and rtol of the per-element check |out - ref| <= atol + rtol * "
                        "|ref| + 2 |ref32 - ref| (default by dtype: 1e-4 fp32, 1e-2 fp16)")


def load_for_run(args):
    """(cascade, --set values and the ranks --inputs gives, sizes, input arrays or None)."""
    from einsum_ir.inputs import sizes_from_arrays
    from einsum_ir.loading import load_resolved

    from ..io import read_cascade, read_npz
    from ..options import parse_assignments

    parsed = read_cascade(args.file)
    arrays, extra = None, []
    if args.inputs:
        arrays = read_npz("--inputs", args.inputs)
        given = parse_assignments(args.set)
        shaped = sizes_from_arrays(parsed, arrays, f"--inputs {args.inputs}", given)
        extra = [f"{k}={v}" for k, v in shaped.items()]
    loaded = load_resolved(parsed, list(args.set) + extra)
    return loaded.cascade, dict(loaded.overrides), dict(loaded.sizes), arrays


def _inputs(args, cascade, sizes, arrays):
    import numpy as np

    from einsum_ir.inputs import checked_inputs, random_inputs

    if arrays is None:
        return random_inputs(cascade, sizes, args.seed, np.float64, domains=True)
    return checked_inputs(cascade, sizes, arrays, f"--inputs {args.inputs}")


def _interpreting(dtype: str) -> bool:
    """Whether there is no GPU (then Triton's interpreter runs the kernels on the CPU)."""
    if "triton" not in sys.modules and not os.environ.get("TRITON_INTERPRET"):
        import importlib.util  # decided before triton is imported: it reads the flag then
        if importlib.util.find_spec("torch") is None:
            raise CascadeError("the Triton backend needs torch and triton",
                               hint="pip install -e '.[gpu]'")
    try:
        import torch
    except ImportError:
        raise CascadeError("the Triton backend needs torch and triton",
                           hint="pip install -e '.[gpu]'") from None
    if torch.cuda.is_available():
        return False
    os.environ["TRITON_INTERPRET"] = "1"
    if dtype == "bfloat16":
        raise CascadeError("bfloat16 cannot be checked without a GPU: Triton's interpreter "
                           "computes bfloat16 tl.dot wrongly",
                           hint="use --dtype float16 or float32, or run on a GPU")
    return True


def run_run(args, overrides: dict) -> int:
    cascade, sets, sizes, arrays = load_for_run(args)
    gpu = not _interpreting(args.dtype)
    import warnings
    warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"triton\..*")
    import numpy as np
    import torch

    from backends.triton.api import compile_cascade
    from einsum_ir import evaluate

    fn = compile_cascade(cascade, rewrite=not args.no_rewrite, arch=args.arch, **overrides,
                         **sets)
    inputs = _inputs(args, cascade, sizes, arrays)
    device = "cuda" if gpu else "cpu"
    tensors = {k: torch.tensor(v, dtype=getattr(torch, args.dtype), device=device)
               for k, v in inputs.items()}
    t0 = time.perf_counter()
    out = fn(**tensors)
    if gpu:
        torch.cuda.synchronize()
    first = time.perf_counter() - t0
    rounded = {k: np.asarray(t.double().cpu().numpy()) for k, t in tensors.items()}
    with np.errstate(all="ignore"):
        ref = evaluate(cascade, rounded, sets)
        ref32 = evaluate(cascade, rounded, sets, dtype=np.float32)
    where = "GPU " + torch.cuda.get_device_name() if gpu else "CPU (TRITON_INTERPRET=1)"
    ms = _time_gpu(lambda: fn(**tensors)) if gpu else None
    tol = args.tol if args.tol is not None else TOLERANCE[args.dtype]
    results = [compare(name, value.double().cpu().numpy(), ref[name], ref32[name], tol)
               for name, value in out.items()]
    _report(args, fn.last_plan, where, first, ms, results)
    if not all(r["ok"] for r in results) and args.check:
        print(f"{args.file}: error: the Triton kernel does not match the reference interpreter",
              file=sys.stderr)
        return MISMATCH
    return 0


def _report(args, plan, where, first, ms, results) -> None:
    if args.json:
        print(json.dumps({"file": args.file, "device": where, "dtype": args.dtype,
                          "inputs": args.inputs, "first_call_s": first, "measured_ms": ms,
                          "predicted_ms": plan.predicted_s * 1e3 if plan is not None else None,
                          "outputs": results, "ok": all(r["ok"] for r in results)}, indent=2))
        return
    print(f"{args.file}: ran on {where}, {args.dtype}, first call {first:.2f} s")
    if plan is not None:
        print("  " + plan.describe().replace("\n", "\n  "))
    if ms is not None:
        print(f"  measured {ms:.4f} ms per call (predicted {plan.predicted_s * 1e3:.4f} ms)")
    for r in results:
        print(f"  {r['name']}: max |error| {r['max_error']:.3e}, {r['bad']} of {r['size']} "
              f"elements past |error| <= {r['tolerance']:.0e} * (1 + |ref|) + "
              f"{FACTOR:g} |ref32 - ref|{'' if r['finite'] else ', NOT FINITE'} -> "
              f"{'ok' if r['ok'] else 'MISMATCH'}")


def compare(name: str, got, ref, ref32, tol: float) -> dict:
    """One output against the float64 reference, element by element (see the module doc)."""
    import numpy as np

    with np.errstate(all="ignore"):
        same = (got == ref) | (np.isnan(got) & np.isnan(ref))  # equal infinities too
        err = np.where(same, 0.0, np.abs(got - ref))
        allowed = tol + tol * np.abs(ref) + FACTOR * np.nan_to_num(np.abs(ref32 - ref), nan=0.0)
    bad = ~(err <= allowed)
    finite = bool(np.isfinite(got).all() or not (np.isfinite(got) != np.isfinite(ref)).any())
    return {"name": name, "max_error": float(err.max()) if err.size else 0.0, "tolerance": tol,
            "bad": int(bad.sum()), "size": int(got.size), "finite": finite,
            "ok": finite and not bad.any()}


def _time_gpu(fn, reps: int = 20) -> float:
    import torch

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps

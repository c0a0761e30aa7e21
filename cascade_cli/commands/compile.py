"""``cascade compile FILE --target triton -o kernel.py`` and ``cascade run FILE --target triton --check``.

``compile`` writes a standalone Python module (the generated Triton kernels plus a
``forward(config=None, /, **tensors) -> dict`` launcher) whose header names the cascade and the
mapping the GPU cost model chose. ``run`` compiles, runs on a GPU if there is one (else under Triton's interpreter,
``TRITON_INTERPRET=1``, on the CPU), compares with the float64 reference interpreter and prints the
max error; ``--check`` makes a mismatch exit with status 3.
"""
from __future__ import annotations

import json
import os
import sys
import time

from einsum_ir.errors import CascadeError

from ..io import read_cascade, write_output
from ..options import add_file_argument, add_json_option, add_set_option

MISMATCH = 3  # the exit status of `run --check` when the kernel and the reference differ
TOLERANCE = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 4e-2}  # x max(1, max |reference|)


def _common(p) -> None:
    add_file_argument(p)
    p.add_argument("--target", choices=("triton",), default="triton",
                   help="code generator (default: triton)")
    add_set_option(p)
    p.add_argument("--arch", default=None, metavar="NAME|YAML",
                   help="GPU target for the cost model: h100 (default), h200, a100 or a YAML file")
    p.add_argument("--block-r", type=int, default=None, help="row tile (queries per program)")
    p.add_argument("--block-c", type=int, default=None,
                   help="column tile (keys per loop step, or the chunk size)")
    p.add_argument("--num-warps", type=int, default=None)
    p.add_argument("--num-stages", type=int, default=None)
    p.add_argument("--no-rewrite", action="store_true",
                   help="lower 3-pass softmax as written (several loops) instead of rewriting it "
                        "to the 1-pass form first")


def register(sub) -> None:
    p = sub.add_parser("compile", help="generate a Triton kernel module from a cascade")
    _common(p)
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="bfloat16",
                   help="input dtype the mapping is chosen for (default bfloat16)")
    p.add_argument("--check-spills", action="store_true",
                   help="compile the best candidate mappings ahead of time for the target (no GPU "
                        "needed) and take the fastest predicted one that spills no registers")
    p.add_argument("-o", "--output", metavar="KERNEL.py",
                   help="where to write the module (default: standard output)")
    p.set_defaults(func=run_compile)

    p = sub.add_parser("run", help="compile and run a cascade, compared with the reference")
    _common(p)
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check", action="store_true",
                   help="exit with status 3 when the error exceeds the tolerance")
    p.add_argument("--tol", type=float, default=None,
                   help="tolerance on max |out - ref| / max(1, max |ref|) (default by dtype)")
    add_json_option(p)
    p.set_defaults(func=run_run)


def _overrides(args) -> dict:
    out = {}
    for key in ("block_r", "block_c", "num_warps", "num_stages"):
        v = getattr(args, key)
        if v is not None:
            if v <= 0:
                raise CascadeError(f"--{key.replace('_', '-')} must be positive, got {v}")
            out[key] = v
    return out


def _load(args):
    from einsum_ir.loading import load_resolved

    loaded = load_resolved(read_cascade(args.file), args.set)
    return loaded.cascade, dict(loaded.overrides), dict(loaded.sizes)


def run_compile(args) -> int:
    from backends.triton.api import choose_checked, generate_for, mapping_note, prepare_for

    cascade, sets, sizes = _load(args)
    overrides = _overrides(args)
    prepared = prepare_for(cascade, rewrite=not args.no_rewrite, block_c=overrides.get("block_c"))
    plan = choose_checked(prepared, sizes, dtype=args.dtype, arch=args.arch, overrides=overrides,
                          check_spills=args.check_spills, user_params=sets)
    gen = generate_for(prepared, sizes, plan.config, user_params=sets,
                       mapping_note=mapping_note(prepared, plan.describe()))
    if args.output:
        write_output("-o", args.output, gen.source)
        print(f"wrote {args.output}: {gen.source.count('@triton.jit')} kernel(s); "
              f"{plan.describe().splitlines()[-1]}", file=sys.stderr)
    else:
        sys.stdout.write(gen.source)
    return 0


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        raise CascadeError("the Triton backend needs torch and triton",
                           hint="pip install -e '.[gpu]'") from None
    return torch.cuda.is_available()


def run_run(args) -> int:
    cascade, sets, sizes = _load(args)
    if "triton" not in sys.modules and not os.environ.get("TRITON_INTERPRET"):
        # decided before triton is imported: the interpreter flag is read at import/jit time
        import importlib.util
        if importlib.util.find_spec("torch") is None:
            raise CascadeError("the Triton backend needs torch and triton",
                               hint="pip install -e '.[gpu]'")
    gpu = _has_cuda()
    import warnings
    warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"triton\..*")
    if not gpu:
        os.environ["TRITON_INTERPRET"] = "1"
        if args.dtype == "bfloat16":
            raise CascadeError("bfloat16 cannot be checked without a GPU: Triton's interpreter "
                               "computes bfloat16 tl.dot wrongly",
                               hint="use --dtype float16 or float32, or run on a GPU")
    import numpy as np
    import torch

    from backends.triton.api import compile_cascade
    from einsum_ir import evaluate, random_inputs

    fn = compile_cascade(cascade, rewrite=not args.no_rewrite, arch=args.arch,
                         **_overrides(args), **sets)
    inputs = random_inputs(cascade, sizes, args.seed, np.float64)
    dtype = getattr(torch, args.dtype)
    device = "cuda" if gpu else "cpu"
    tensors = {k: torch.tensor(v, dtype=dtype, device=device) for k, v in inputs.items()}
    t0 = time.perf_counter()
    out = fn(**tensors)
    if gpu:
        torch.cuda.synchronize()
    first = time.perf_counter() - t0
    ref = evaluate(cascade, {k: np.asarray(t.double().cpu().numpy()) for k, t in tensors.items()},
                   sets)
    plan = fn.last_plan
    where = "GPU " + torch.cuda.get_device_name() if gpu else "CPU (TRITON_INTERPRET=1)"
    ms = _time_gpu(lambda: fn(**tensors)) if gpu else None
    tol = args.tol if args.tol is not None else TOLERANCE[args.dtype]
    results = [_compare(name, value.double().cpu().numpy(), ref[name], tol)
               for name, value in out.items()]
    ok = all(r["ok"] for r in results)
    if args.json:
        print(json.dumps({"file": args.file, "device": where, "dtype": args.dtype,
                          "first_call_s": first, "measured_ms": ms,
                          "predicted_ms": plan.predicted_s * 1e3 if plan is not None else None,
                          "outputs": results, "ok": ok}, indent=2))
    else:
        print(f"{args.file}: ran on {where}, {args.dtype}, first call {first:.2f} s")
        if plan is not None:
            print("  " + plan.describe().replace("\n", "\n  "))
        if ms is not None:
            print(f"  measured {ms:.4f} ms per call (predicted {plan.predicted_s * 1e3:.4f} ms)")
        for r in results:
            print(f"  {r['name']}: max |error| {r['max_error']:.3e} (tolerance {r['tolerance']:.1e})"
                  f"{'' if r['finite'] else ', NOT FINITE'} -> {'ok' if r['ok'] else 'MISMATCH'}")
    if not ok and args.check:
        print(f"{args.file}: error: the Triton kernel does not match the reference interpreter",
              file=sys.stderr)
        return MISMATCH
    return 0


def _compare(name: str, got, ref, tol: float) -> dict:
    """One output against the reference: max |error| within tol x max(1, max |ref|)."""
    import numpy as np

    err = float(np.abs(got - ref).max()) if ref.size else 0.0
    scale = max(1.0, float(np.abs(ref).max()) if ref.size else 1.0)
    finite = bool(np.isfinite(got).all())
    return {"name": name, "max_error": err, "tolerance": tol * scale, "finite": finite,
            "ok": finite and err <= tol * scale}


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

"""``cascade eval FILE [--out OUT.npz] [--json]``: run the reference interpreter."""
from __future__ import annotations

import json

from einsum_ir.errors import CascadeError

from ..io import load_cascade, read_npz, write_npz
from ..options import (add_file_argument, add_json_option, add_set_option, non_negative_int,
                       parse_assignments)


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a cascade with the reference interpreter")
    add_file_argument(p)
    add_set_option(p)
    p.add_argument("--inputs", metavar="IN.npz", help="input arrays by tensor name (default: random)")
    p.add_argument("--seed", type=non_negative_int, default=0,
                   help="seed of the random inputs (default 0)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--out", metavar="OUT.npz",
                   help="also write the outputs (and the inputs used), by tensor name, to exactly "
                        "this .npz file")
    add_json_option(p)
    p.set_defaults(func=run)


def _inputs(args, cascade, analysis, sizes, dtype):
    from einsum_ir import random_inputs

    if not args.inputs:
        return random_inputs(cascade, sizes, args.seed, dtype)
    inputs = read_npz("--inputs", args.inputs)
    # Files written by `cascade eval` hold outputs too: those are ignored, other names are typos.
    unknown = sorted(set(inputs) - set(analysis.shapes))
    if unknown:
        raise CascadeError(f"{unknown[0]} is not an input of {args.file}",
                           hint="inputs: " + ", ".join(d.name for d in cascade.inputs),
                           file=f"--inputs {args.inputs}")
    return {k: v for k, v in inputs.items() if cascade.input(k)}


def _summary(name: str, value) -> dict:
    import numpy as np

    finite = value[np.isfinite(value)]
    return {"name": name, "shape": list(value.shape),
            "mean": float(value.mean()) if value.size else None,
            "max_abs": float(np.abs(finite).max()) if finite.size else None,
            "finite": bool(finite.size == value.size)}


def run(args) -> int:
    import numpy as np

    from einsum_ir import evaluate
    from einsum_ir.budget import check_budget

    if args.out and not args.out.endswith(".npz"):
        write_npz("--out", args.out, {})  # refuses the name before any work
    cascade, analysis, sizes = load_cascade(args)
    dtype = np.dtype(args.dtype)
    check_budget(analysis, sizes, dtype.itemsize)
    inputs = _inputs(args, cascade, analysis, sizes, dtype)
    outputs = evaluate(cascade, inputs, parse_assignments(args.set), dtype=dtype,
                       analysis=analysis)
    if args.out:
        write_npz("--out", args.out, {**{k: np.asarray(v) for k, v in inputs.items()}, **outputs})
    summaries = [_summary(name, value) for name, value in outputs.items()]
    if args.json:
        print(json.dumps({"file": args.file, "sizes": sizes, "dtype": args.dtype,
                          "outputs": summaries, "wrote": args.out}, indent=2))
        return 0
    for s in summaries:
        mean = "n/a" if s["mean"] is None else f"{s['mean']:.6g}"
        big = 0 if s["max_abs"] is None else s["max_abs"]
        print(f"{s['name']}: shape {tuple(s['shape'])}, mean {mean}, max |x| {big:.6g}"
              + ("" if s["finite"] else " (some values are not finite)"))
    if args.out:
        print(f"wrote {args.out}")
    return 0

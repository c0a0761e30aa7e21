"""``cascade eval FILE --out OUT.npz``: run the reference interpreter."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from einsum_ir import analyze, evaluate, parse_file, random_inputs, resolve_sizes
from einsum_ir.errors import CascadeError

from ..options import add_set_option, parse_assignments


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a cascade with the reference interpreter")
    p.add_argument("file")
    add_set_option(p)
    p.add_argument("--inputs", metavar="IN.npz", help="input arrays by tensor name (default: random)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--out", metavar="OUT.npz", required=True,
                   help="where to write the outputs (and the inputs used), by tensor name")
    p.set_defaults(func=run)


def load_inputs(path: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise CascadeError(f"no such file: {path}", hint="--inputs takes an .npz file") from None
    except (OSError, ValueError) as exc:
        raise CascadeError(f"cannot read {path} as .npz: {exc}") from None


def run(args) -> int:
    cascade = parse_file(args.file)
    analysis = analyze(cascade)
    overrides = parse_assignments(args.set)
    sizes = resolve_sizes(cascade, overrides)
    dtype = np.dtype(args.dtype)
    if args.inputs:
        inputs = load_inputs(args.inputs)
        # Files written by `cascade eval` hold outputs too: those are ignored, other names are typos.
        unknown = sorted(set(inputs) - set(analysis.shapes))
        inputs = {k: v for k, v in inputs.items() if cascade.input(k)}
        if unknown:
            raise CascadeError(f"{args.inputs}: {unknown[0]} is not an input of {args.file}",
                               hint="inputs: " + ", ".join(d.name for d in cascade.inputs))
    else:
        inputs = random_inputs(cascade, sizes, args.seed, dtype)
    outputs = evaluate(cascade, inputs, overrides, dtype=dtype, analysis=analysis)
    out_path = Path(args.out)
    if out_path.parent and not out_path.parent.exists():
        raise CascadeError(f"--out {args.out}: directory {out_path.parent} does not exist")
    np.savez(out_path, **{**{k: np.asarray(v) for k, v in inputs.items()}, **outputs})
    for name, value in outputs.items():
        print(f"{name}: shape {tuple(value.shape)}, mean {value.mean():.6g}, "
              f"max |x| {np.abs(value).max() if value.size else 0:.6g}")
    print(f"wrote {out_path}")
    return 0

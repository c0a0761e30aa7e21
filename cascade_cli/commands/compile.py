"""``cascade compile FILE --target triton -o kernel.py`` and ``cascade run FILE --target triton --check``.

``compile`` writes a standalone Python module (the generated Triton kernels plus a
``forward(config=None, /, **tensors) -> dict`` launcher) whose header names the cascade and the
mapping the GPU cost model chose; a cascade one kernel program cannot hold is written as its
kernel program (every group's kernels, one ``forward()`` launching them in order). ``run`` (run_kernel.py) compiles, runs on a GPU if there is one
(else under Triton's interpreter, ``TRITON_INTERPRET=1``, on the CPU) and compares every element
with the float64 reference interpreter; ``--check`` makes a mismatch exit with status 3.
"""
from __future__ import annotations

import sys

from einsum_ir.errors import CascadeError

from ..io import read_cascade, write_output
from ..options import add_file_argument, add_json_option, add_set_option
from .run_kernel import add_run_options, run_run



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
    add_run_options(p)
    add_json_option(p)
    p.set_defaults(func=lambda args: run_run(args, _overrides(args)))


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
    try:
        plan = choose_checked(prepared, sizes, dtype=args.dtype, arch=args.arch,
                              overrides=overrides, check_spills=args.check_spills,
                              user_params=sets)
        gen = generate_for(prepared, sizes, plan.config, user_params=sets,
                           mapping_note=mapping_note(prepared, plan.describe()))
        source, summary = gen.source, plan.describe().splitlines()[-1]
    except CascadeError as refusal:  # several kernels, where one kernel program refuses
        source, summary = _program_source(args, cascade, sets, sizes, overrides, refusal)
    if args.output:
        write_output("-o", args.output, source)
        print(f"wrote {args.output}: {source.count('@triton.jit')} kernel(s); {summary}",
              file=sys.stderr)
    else:
        sys.stdout.write(source)
    return 0


def _program_source(args, cascade, sets, sizes, overrides, refusal) -> tuple[str, str]:
    """The kernel program's module, mapped for the GPU (not the interpreter), and its summary;
    where no kernel program lowers, the last resorts ``compile_cascade`` takes (rows on the grid,
    3-D tiles)."""
    from backends.triton.api import CompiledCascade

    fn = CompiledCascade(cascade, sets, overrides, not args.no_rewrite, args.arch,
                         args.check_spills, interpret=False)
    try:
        program = fn.program(sizes, args.dtype, refusal)
    except CascadeError:
        gen, _ = fn.kernel(sizes, args.dtype)
        return gen.source, fn.last_plan.describe().splitlines()[0]
    return program.source, program.plan.describe().splitlines()[0]

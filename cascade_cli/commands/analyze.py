"""``cascade passes``, ``cascade work``, ``cascade footprint`` and ``cascade rewrite``."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from einsum_ir import analyze, format_cascade, parse, resolve_sizes
from einsum_ir.dtypes import DTYPE_BYTES, dtype_bytes
from einsum_ir.errors import CascadeError
from einsum_ir.ir import Num
from einsum_ir.passes import REGISTRY, run_named_pass

from ..io import load_cascade, output_errors, read_cascade
from ..data_options import add_density_option, apply_densities, count_lines
from ..options import add_file_argument, add_set_option, parse_assignments

_DTYPES = sorted(DTYPE_BYTES)


def register(sub) -> None:
    p = sub.add_parser("passes", help="count the passes over the streamed rank (FuseMax's bound)")
    add_file_argument(p)
    p.add_argument("--rank", metavar="R", help="the streamed rank (default: the rank the softmax "
                   "reduces over; after a split, its outer rank)")
    add_set_option(p)
    p.add_argument("--dtype", choices=_DTYPES, default="float16",
                   help="element type for the cost of extra passes (default float16)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_passes)

    p = sub.add_parser("work", help="count operations per class (exact under masks)")
    add_file_argument(p)
    add_set_option(p)
    add_density_option(p)
    p.add_argument("--inputs", metavar="IN.npz", help="input arrays by tensor name: decide "
                   "data-dependent masks and gathers on these values (exact counts)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_work)

    p = sub.add_parser("footprint", help="bytes of every tensor and the live set along the cascade")
    add_file_argument(p)
    add_set_option(p)
    p.add_argument("--dtype", choices=_DTYPES, default="float16")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_footprint)

    p = sub.add_parser("rewrite", help="apply a rewrite pass and print (or write) the cascade")
    add_file_argument(p)
    p.add_argument("--pass", dest="pass_name", required=True, choices=sorted(REGISTRY),
                   help="the pass to apply")
    p.add_argument("--rank", metavar="R", help="online-softmax: only the softmax over rank R")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", default=[],
                   help="a size of the result (repeatable): the tile size of a new split (M0=32) "
                        "or a new default for a declared rank or parameter")
    p.add_argument("-o", "--output", metavar="OUT.ein", help="write the result here (default: "
                   "print it)")
    p.add_argument("--check", action="store_true", help="interpret before and after on random "
                   "inputs and print the largest difference")
    p.set_defaults(func=run_rewrite)


_load = load_cascade


def _bytes(n: int) -> str:
    for unit, scale in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n} B"


# ---------------------------------------------------------------------- passes


def run_passes(args) -> int:
    from einsum_ir.analysis.passcount import count_passes

    cascade, analysis, sizes = _load(args)
    report = count_passes(cascade, args.rank, sizes, dtype_bytes=dtype_bytes(args.dtype),
                          analysis=analysis)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return 0
    print(f"{cascade.name}: {report.passes} pass{'es' if report.passes != 1 else ''} over "
          f"{report.rank}")
    for k in range(1, report.passes + 1):
        members = [name for name, p in report.per_einsum.items() if p == k]
        print(f"  pass {k}: {' '.join(members)}")
    streamed = [n for n, it in report.iterates.items() if not it]
    if streamed:
        print(f"  (not iterating {report.rank}: {' '.join(streamed)})")
    for cost in report.costs:
        them = "it" if len(cost.crossing) == 1 else "them"
        print(f"  pass {cost.index} needs {', '.join(cost.crossing)} from pass {cost.index - 1} or "
              f"earlier: keep {them} on chip ({_bytes(cost.keep_bytes_per_row)} per row, "
              f"{_bytes(cost.keep_bytes)} in all at {args.dtype}; grows with "
              f"{report.sequence_rank}) or recompute {them}, re-reading "
              f"{', '.join(cost.reread) or 'nothing'} ({_bytes(cost.reread_bytes)} more traffic "
              f"per pass, grows with {report.sequence_rank})")
    for note in report.notes:
        print(f"  note: {note}")
    return 0


# ---------------------------------------------------------------------- work


def run_work(args) -> int:
    from einsum_ir.analysis.opclasses import OP_CLASSES
    from einsum_ir.analysis.work import count_work
    from einsum_ir.analysis.region_sample import CONFIDENCE

    cascade, analysis, sizes = _load(args)
    if args.density:
        cascade = apply_densities(cascade, args.density)
        analysis = analyze(cascade)
        sizes = {**resolve_sizes(cascade, {}), **sizes}  # the densities' parameters too
    inputs = _work_inputs(args, cascade) if args.inputs else None
    report = count_work(cascade, sizes, analysis=analysis, inputs=inputs)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return 0
    used = [op for op in OP_CLASSES if report.total[op]]
    rows = [["einsum", "points", *used]]
    for key, counts in report.per_einsum.items():
        rows.append([key, f"{report.points.get(key, 0):,}", *(f"{counts[op]:,}" for op in used)])
    rows.append(["total", "", *(f"{report.total[op]:,}" for op in used)])
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    print(f"{cascade.name}: work at " + ", ".join(f"{n}={sizes[n]}" for n in cascade.rank_names()
                                                  + tuple(d.name for d in cascade.sizes
                                                          if not d.is_rank)))
    for k, row in enumerate(rows):
        if k == len(rows) - 1:
            print("  " + "  ".join("-" * w for w in widths))
        print("  " + "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths, strict=True))))
    if report.symbolic:
        print("closed forms:")
        for key, forms in report.symbolic.items():
            text = ", ".join(f"{op} = {forms[op]}" for op in OP_CLASSES if forms[op] != 0)
            print(f"  {key}: {text or 'no operations'}")
    missing = [k for k in report.per_einsum if not report.symbolic or k not in report.symbolic]
    missing = [k for k in missing if k not in report.bounded
               and report.kinds.get(k, "exact") == "exact"]  # the others: said below
    if missing:
        print(f"exact counts only (masked or ragged at these sizes): {' '.join(missing)}")
    if report.bounded:
        bounds = ", ".join(f"{k} +-{b:,}" for k, b in report.bounded.items())
        print(f"sampled counts (exact counting costs too much; bounds hold with probability "
              f"{CONFIDENCE}): {bounds}")
    for line in count_lines(report.kinds, report.upper, report.notes, report.points):
        print(line)
    return 0


def _work_inputs(args, cascade) -> dict:
    from ..io import read_npz

    inputs = read_npz("--inputs", args.inputs)
    missing = [d.name for d in cascade.inputs if d.name not in inputs]
    if missing:
        raise CascadeError(f"{args.inputs} has no array {missing[0]}",
                           hint="inputs: " + ", ".join(d.name for d in cascade.inputs),
                           file=f"--inputs {args.inputs}")
    return {k: v for k, v in inputs.items() if cascade.input(k)}


# ---------------------------------------------------------------------- footprint


def run_footprint(args) -> int:
    from einsum_ir.analysis.footprint import footprint

    cascade, analysis, sizes = _load(args)
    fp = footprint(cascade, sizes, args.dtype, analysis=analysis)
    if args.json:
        print(json.dumps(fp.to_json(), indent=2))
        return 0
    print(f"{cascade.name}: tensors at {args.dtype} ({fp.dtype_bytes} B per element)")
    width = max(len(t) for t in fp.tensor_bytes)
    for name, n in fp.tensor_bytes.items():
        print(f"  {name.ljust(width)}  {_bytes(n):>10}")
    print("live set along the evaluation order:")
    for step in fp.steps:
        mark = "  <- peak" if step.index == fp.peak_step else ""
        print(f"  {step.index:>3} {' '.join(step.einsums):<16} {_bytes(step.bytes):>10}  "
              f"{' '.join(step.live)}{mark}")
    return 0


# ---------------------------------------------------------------------- rewrite


def run_rewrite(args) -> int:
    cascade = read_cascade(args.file)
    analyze(cascade)
    assignments = parse_assignments(args.set)
    declared = {d.name for d in cascade.sizes}
    new_sizes = {k: v for k, v in assignments.items() if k not in declared}
    options = {}
    if args.pass_name == "online-softmax":
        if len(new_sizes) > 1:
            raise CascadeError(f"--set {', '.join(new_sizes)}: only one new size (the tile size) "
                               f"can be given", hint="declared sizes: " + ", ".join(sorted(declared)))
        options["tile_rank"] = args.rank
        if new_sizes:
            options["tile_size"] = next(iter(new_sizes.values()))
        else:
            split_inner = {s.inner for s in cascade.splits}
            tiles = {k: v for k, v in assignments.items() if k in split_inner}
            if tiles:
                options["tile_size"] = next(iter(tiles.values()))
    elif new_sizes:
        name = next(iter(new_sizes))
        raise CascadeError(f"--set {name}: no rank or parameter named {name!r}",
                           hint="declared sizes: " + ", ".join(sorted(declared)))
    elif args.rank:
        raise CascadeError("--rank is an option of --pass online-softmax only",
                           hint="drop --rank, or use --pass online-softmax")
    try:
        result = run_named_pass(cascade, args.pass_name, None, **options)
    except CascadeError as exc:
        if exc.span is None and exc.file is None:
            exc.file = args.file
        raise
    for name in new_sizes:
        if result.size_decl(name) is None:
            inner = [s.inner for s in result.splits if s not in cascade.splits]
            raise CascadeError(f"--set {name}: the rewritten cascade has no rank {name}",
                               hint=f"its new tile rank is {inner[0]}" if inner else None)
    defaults = {k: v for k, v in assignments.items() if k in declared or k in new_sizes}
    result = replace(result, sizes=tuple(
        replace(d, default=Num(defaults[d.name])) if d.name in defaults else d
        for d in result.sizes))
    text = format_cascade(result)
    check = parse(text, args.output or "<rewrite>")
    analyze(check)
    if args.check:
        _check(cascade, check, assignments)
    if args.output:
        out = Path(args.output)
        with output_errors("-o", out):
            out.write_text(f"# {args.file} after --pass {args.pass_name}\n" + text)
        print(f"wrote {out}")
    else:
        print(text, end="")
    return 0


def _check(before, after, assignments) -> None:
    import numpy as np

    from einsum_ir import evaluate

    sizes = {k: v for k, v in assignments.items() if before.size_decl(k) is not None}
    env = resolve_sizes(before, sizes)
    small = {d.name: min(env[d.name], 48) for d in before.sizes
             if d.is_rank and isinstance(d.default, Num) and d.name not in sizes}
    try:
        env_small = resolve_sizes(before, {**small, **sizes})
    except CascadeError:
        small, env_small = {}, env
    inputs = {name: np.random.default_rng(0).standard_normal(
        tuple(env_small[r] for r in before.input(name).ranks)) for name in
        (d.name for d in before.inputs)}
    a = evaluate(before, inputs, {**small, **sizes})
    after_sizes = {k: v for k, v in {**small, **sizes}.items() if after.size_decl(k) is not None}
    b = evaluate(after, inputs, after_sizes)
    diff = max(float(np.max(np.abs(a[k] - b[k]))) if a[k].size else 0.0 for k in a)
    shown = ", ".join(f"{k}={v}" for k, v in env_small.items() if before.size_decl(k) is not None)
    print(f"# check: max |before - after| = {diff:.3g} on random inputs at {shown}",
          flush=True)
    if not diff <= 1e-9 * max(1.0, max(float(np.max(np.abs(v))) for v in a.values())):
        raise CascadeError(f"the rewrite changed the result (max difference {diff:.3g})",
                           hint="please report this with the cascade file")


# ---------------------------------------------------------------------- demo


def demo_section(folder) -> None:
    """The analyses and the rewrite on the built-in examples (for ``cascade demo``)."""
    from einsum_ir import load
    import numpy as np

    from einsum_ir import evaluate
    from einsum_ir.analysis import count_passes, count_work
    from einsum_ir.passes import rewrite_online_softmax

    folder = Path(folder)
    print("\n== analyses: passes over the key rank (FuseMax's bound) " + "=" * 19)
    for name in ("mha_3pass", "mha_2pass", "mha_2pass_deferred", "mha_1pass", "causal",
                 "sliding_window"):
        report = count_passes(load(folder / f"{name}.ein"))
        print(f"  {name + '.ein':24} {report.passes} pass{'es' if report.passes > 1 else '  '} "
              f"over {report.rank}")
    print("\n== work: exact under masks (P = M = 1024) " + "=" * 33)
    dense = None
    for name, extra in (("mha_3pass", {}), ("causal", {}), ("sliding_window", {"W": 128})):
        report = count_work(load(folder / f"{name}.ein"), {"P": 1024, "M": 1024, **extra})
        dense = dense or report.total["mac"]
        print(f"  {name + '.ein':24} {report.total['mac']:>13,} MACs  {report.total['exp']:>11,} "
              f"exps  ({report.total['mac'] / dense:.3f} of dense)")
    print("\n== the online-softmax rewrite: 3-pass -> 1-pass, same result " + "=" * 14)
    for name in ("mha_3pass", "causal", "sliding_window", "gqa"):
        cascade = load(folder / f"{name}.ein")
        result = rewrite_online_softmax(cascade, tile_size=48)
        sizes = {"P": 100, "M": 100}
        env = resolve_sizes(cascade, sizes)
        rng = np.random.default_rng(0)
        inputs = {d.name: rng.standard_normal(tuple(env[r] for r in d.ranks))
                  for d in cascade.inputs}
        before = evaluate(cascade, inputs, sizes)
        after = evaluate(result.cascade, inputs, sizes)
        diff = max(float(np.max(np.abs(before[k] - after[k]))) for k in before)
        print(f"  {name + '.ein':24} {count_passes(cascade).passes} -> "
              f"{count_passes(result.cascade).passes} pass, M0 = 48 (ragged at M = 100), "
              f"max |before - after| = {diff:.1e}")

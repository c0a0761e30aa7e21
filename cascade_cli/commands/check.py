"""``cascade check FILE`` and ``cascade show FILE [--json]``."""
from __future__ import annotations

import json

from einsum_ir.printer import format_einsum, format_expr

from ..io import load_cascade, read_cascade
from ..options import add_file_argument, add_json_option, add_set_option, parse_assignments


def register(sub) -> None:
    p = sub.add_parser("check", help="validate a cascade file and print a short summary")
    add_file_argument(p)
    add_set_option(p)
    add_json_option(p)
    p.set_defaults(func=run_check)

    p = sub.add_parser("show", help="print a cascade's tensors, ranks and Einsums")
    add_file_argument(p)
    add_set_option(p)
    add_json_option(p)
    p.add_argument("--after", metavar="PASS", help="show the cascade after a rewrite pass")
    p.set_defaults(func=run_show)




def run_check(args) -> int:
    cascade, analysis, sizes = load_cascade(args)
    recurrent = sorted(analysis.recurrences)
    if args.json:
        print(json.dumps({"file": args.file, "ok": True, "einsums": len(cascade.einsums),
                          "inputs": [d.name for d in cascade.inputs],
                          "outputs": [d.name for d in cascade.outputs],
                          "recurrences": recurrent, "sizes": sizes}, indent=2))
        return 0
    print(f"{args.file}: ok: {len(cascade.einsums)} Einsums, inputs "
          f"{', '.join(d.name for d in cascade.inputs)}, outputs "
          f"{', '.join(d.name for d in cascade.outputs)}"
          + (f", recurrences {', '.join(recurrent)}" if recurrent else ""))
    return 0


def describe(cascade, analysis, sizes) -> dict:
    def shape(name):
        return [{"rank": a.rank, "extent": sizes[a.rank] + a.extra} for a in analysis.shapes[name]]

    return {
        "name": cascade.name,
        "inputs": [d.name for d in cascade.inputs],
        "outputs": [d.name for d in cascade.outputs],
        "ranks": {name: sizes[name] for name in cascade.rank_names()},
        "params": {d.name: sizes[d.name] for d in cascade.sizes if not d.is_rank},
        "splits": [{"rank": s.rank, "outer": s.outer, "inner": s.inner} for s in cascade.splits],
        "tensors": {name: shape(name) for name in analysis.shapes},
        "einsums": [{
            "output": e.name,
            "text": format_einsum(e),
            "iteration_space": list(e.iteration_space),
            "reducer": e.reducer,
            "reduced": list(e.reduced),
            "where": format_expr(e.where) if e.where is not None else None,
            "reads": sorted({a.tensor for a in e.reads()}),
        } for e in cascade.einsums],
        "recurrences": {t: {"var": r.var, "axis": r.axis} for t, r in analysis.recurrences.items()},
    }


def run_show(args) -> int:
    if not args.after:
        cascade, analysis, sizes = load_cascade(args)
    else:
        from einsum_ir import analyze, resolve_sizes
        from einsum_ir.passes import run_named_pass

        # --set may name ranks the pass creates (the tile rank M0 of online-softmax): those
        # apply to the rewritten cascade only.
        cascade = read_cascade(args.file)
        analyze(cascade)
        overrides = parse_assignments(args.set)
        known = set(cascade.rank_names()) | {d.name for d in cascade.sizes}
        sizes = resolve_sizes(cascade, {k: v for k, v in overrides.items() if k in known})
        cascade = run_named_pass(cascade, args.after, sizes)
        analysis = analyze(cascade)
        sizes = resolve_sizes(cascade, overrides)
    info = describe(cascade, analysis, sizes)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"cascade {info['name']}")
    print("ranks:  " + ", ".join(f"{k}={v}" for k, v in info["ranks"].items()))
    if info["params"]:
        print("params: " + ", ".join(f"{k}={v}" for k, v in info["params"].items()))
    for s in info["splits"]:
        print(f"split:  {s['rank']} = {s['outer']} x {s['inner']}")
    print("tensors:")
    for name, axes in info["tensors"].items():
        kind = "input " if name in info["inputs"] else "output" if name in info["outputs"] else "      "
        dims = ", ".join(f"{a['rank']}{'+1' if a['extent'] != sizes[a['rank']] else ''}={a['extent']}"
                         for a in axes)
        print(f"  {kind} {name}[{dims}]")
    print("einsums:")
    for e in info["einsums"]:
        print(f"  {e['text']}")
    return 0

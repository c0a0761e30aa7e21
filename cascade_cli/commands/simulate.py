"""``cascade simulate FILE --arch A.yaml`` and ``cascade map FILE --arch A.yaml``.

``simulate`` estimates latency, energy, traffic, area and utilization of a cascade on a spatial
accelerator with a given mapping (``--mapping``) or with the best one the mapper finds. ``map``
runs the mapper and prints (or saves) the best mappings and the latency/energy Pareto front.
"""
from __future__ import annotations

import json

from einsum_ir.errors import CascadeError
from einsum_ir.resources import BuiltinKind, builtin_names

from ..data_options import add_density_option, apply_densities, count_lines
from ..io import output_errors, read_cascade
from ..options import add_file_argument, add_set_option


def _add_arch(p) -> None:
    p.add_argument("--arch", required=True, metavar="A.yaml",
                   help="architecture spec (a path, or a built-in name: "
                        + ", ".join(builtin_names(BuiltinKind.ARCH)) + ")")
    p.add_argument("--arch-set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a variable of the architecture spec (repeatable), e.g. pe_dim=128")


def register(sub) -> None:
    p = sub.add_parser("simulate", help="estimate latency/energy/area of a cascade on an accelerator")
    add_file_argument(p)
    _add_arch(p)
    p.add_argument("--mapping", metavar="M.yaml", help="a saved mapping (default: search for one)")
    add_set_option(p)
    p.add_argument("--objective", choices=("latency", "energy", "edp"), default="latency",
                   help="what the mapper optimises when no --mapping is given (default latency)")
    add_density_option(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_simulate)

    p = sub.add_parser("map", help="search mappings of a cascade onto an accelerator")
    add_file_argument(p)
    _add_arch(p)
    add_set_option(p)
    p.add_argument("--objective", choices=("latency", "energy", "edp"), default="latency")
    p.add_argument("--top", type=int, default=3, metavar="K", help="how many mappings to show")
    p.add_argument("--save", metavar="M.yaml", help="write the best mapping here")
    p.add_argument("--min-parallelism", type=float, default=1.0, metavar="F",
                   help="bind an Einsum to a unit only if it keeps this fraction of its PEs busy "
                        "(default 1.0; 0 lets low-parallelism Einsums share a large array)")
    p.add_argument("--fusion", choices=("searched", "full", "none"), default="searched",
                   help="where to cut the cascade into fusion groups: searched (default: the "
                        "mapper chooses the cut points), full (one group), none (cut wherever "
                        "it may be cut; a recurrence stays in one group)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_density_option(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_map)


def _load(args):
    from simulator.arch import parse_arch_sets, resolve_arch

    from einsum_ir.loading import load_resolved

    loaded = load_resolved(read_cascade(args.file), args.set)  # unknown or derived names are errors
    arch = resolve_arch(args.arch, parse_arch_sets(args.arch_set))
    return apply_densities(loaded.cascade, args.density), dict(loaded.overrides), arch


def _data_lines(cascade, sizes) -> list[str]:
    """How the data-dependent points the report costs were counted (docs/analysis.md)."""
    from simulator.problem import problem_for

    prob = problem_for(cascade, sizes)
    if not prob.data_kinds:
        return []
    points = {k: i.points for k, i in prob.infos.items()}
    lines = count_lines(prob.data_kinds, prob.data_upper, prob.data_notes, points)
    if prob.gathered:
        lines.append("gathers: " + ", ".join(prob.gathered) + " fetched row by row as the "
                     "gather names them (once per use; a tile fetches at most the whole tensor)")
    return lines


def run_simulate(args) -> int:
    from mapper.search import search
    from simulator.mapping_check import simulate_saved
    from simulator.mapping_load import load_mapping

    cascade, sizes, arch = _load(args)
    searched = None
    if args.mapping:
        mapping = load_mapping(args.mapping)
        report = simulate_saved(cascade, arch, mapping, sizes)
    else:
        searched = search(cascade, arch, sizes, objective=args.objective, top=1)
        mapping, report = searched.best[0]
    if args.json:
        out = report.to_json()
        out["searched"] = searched is not None
        if searched is not None:
            out["mapper"] = {"evaluated": searched.evaluated, "seconds": searched.seconds,
                             "forms_tried": searched.forms_tried}
        print(json.dumps(out, indent=2))
        return 0
    print(report)
    for line in _data_lines(cascade, sizes):
        print(line)
    if searched is not None:
        print(f"mapping (found by the mapper: {searched.evaluated:,} mappings in "
              f"{searched.seconds:.2f} s; forms tried: {', '.join(searched.forms_tried)}):")
    else:
        print("mapping:")
    print("  " + mapping.describe().replace("\n", "\n  "))
    return 0


def run_map(args) -> int:
    from mapper.search import search

    cascade, sizes, arch = _load(args)
    if args.top < 1:
        raise CascadeError("--top must be at least 1")
    result = search(cascade, arch, sizes, objective=args.objective, top=args.top,
                    progress=not args.no_progress and not args.json,
                    min_parallelism=args.min_parallelism, fusion=args.fusion)
    if args.save:
        with output_errors("--save", args.save):
            result.best[0][0].save(args.save)
    if args.json:
        print(json.dumps({
            "objective": args.objective, "fusion": args.fusion, "form": result.form, "forms_tried": result.forms_tried,
            "evaluated": result.evaluated, "feasible": result.feasible, "seconds": result.seconds,
            "mappings_per_s": result.rate,
            "pareto_front": [{"latency_s": a, "energy_J": b} for a, b in result.front],
            "best": [{"latency_s": r.latency_s, "cycles": r.cycles, "energy_J": r.energy_J,
                      "sizes": r.sizes,
                      "traffic_bytes": r.traffic_bytes, "utilization": r.utilization,
                      "pe_utilization": r.pe_utilization, "mapping": m.to_dict()} for m, r in result.best],
            "saved": args.save}, indent=2))
        return 0
    print(f"{result.evaluated:,} mappings evaluated ({result.feasible:,} fit) in {result.seconds:.2f} s "
          f"({result.rate:,.0f}/s); forms tried: {', '.join(result.forms_tried)}")
    for i, (m, r) in enumerate(result.best, 1):
        print(f"#{i}: latency {r.latency_s:.6g} s ({r.cycles:,.0f} cycles), energy {r.energy_J:.6g} J, "
              f"traffic {r.traffic_bytes:,.0f} B, util " +
              ", ".join(f"{u} {v:.3f}" for u, v in r.utilization.items()) + " (busy), PE util " +
              ", ".join(f"{u} {v:.3f}" for u, v in r.pe_utilization.items()) + f"; form: {m.form}; "
              f"{len(m.groups)} group{'s' if len(m.groups) > 1 else ''}")
        print("    " + m.describe().replace("\n", "\n    "))
    print("Pareto front (latency s, energy J): " +
          ", ".join(f"({a:.4g}, {b:.4g})" for a, b in result.front[:8]) +
          (" ..." if len(result.front) > 8 else ""))
    if args.save:
        print(f"saved the best mapping to {args.save}")
    return 0

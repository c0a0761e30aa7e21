"""``cascade import-arch IN.yaml [-o OUT.yaml]``: a Timeloop v0.4 design as a Cascade spec.

Reads a Timeloop v0.4 architecture (``!Container``/``!Component`` tree) with its Accelergy ERT
(an ``ERT:`` section, or ``--ert``) and optional ART, checks the result like any spec, and writes
the native spec (``examples/archs/*.yaml`` form) with what was folded, dropped or assumed as a
comment header; the same notes go to standard error as warnings. ``cascade simulate --arch
IN.yaml`` imports the same way on the fly.
"""
from __future__ import annotations

import sys

from ..io import write_output


def register(sub) -> None:
    p = sub.add_parser("import-arch", help="import a Timeloop v0.4 / Accelergy design as an "
                       "accelerator spec")
    p.add_argument("spec", metavar="IN.yaml", help="Timeloop v0.4 architecture (architecture: "
                   "{version: 0.4, nodes: [...]}), with an ERT: section or --ert")
    p.add_argument("-o", "--out", metavar="OUT.yaml",
                   help="write the Cascade spec here (default: standard output)")
    p.add_argument("--ert", metavar="ERT.yaml", help="Accelergy's energy table (ERT: ...), if "
                   "not in IN.yaml")
    p.add_argument("--art", metavar="ART.yaml", help="Accelergy's area table (ART: ...), if not "
                   "in IN.yaml")
    p.add_argument("--arch-set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a numeric Timeloop variable (repeatable)")
    p.set_defaults(func=run)


def run(args) -> int:
    from simulator.arch import arch_from_dict, parse_arch_sets
    from simulator.timeloop_import import import_timeloop_file, spec_yaml

    imported = import_timeloop_file(args.spec, ert=args.ert, art=args.art,
                                    overrides=parse_arch_sets(args.arch_set))
    arch = arch_from_dict(imported.spec, args.spec)  # refused here, not when simulated later
    for note in imported.notes:
        print(f"warning: {note}", file=sys.stderr)
    text = spec_yaml(imported, args.spec)
    if not args.out:
        sys.stdout.write(text)
        return 0
    write_output("--out", args.out, text)
    units = ", ".join(f"{u.name} {'x'.join(map(str, u.dims))}" for u in arch.units)
    levels = ", ".join(lv.name + (f" {lv.capacity / 1024:g} KiB" if lv.capacity else "")
                       for lv in arch.levels)
    print(f"wrote {args.out}: {arch.name}, units {units}; levels {levels}; "
          f"{arch.clock_hz / 1e6:g} MHz; {len(imported.notes)} warnings")
    return 0

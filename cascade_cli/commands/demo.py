"""``cascade demo``: the main job on the built-in examples (what ``make demo`` runs)."""
from __future__ import annotations

import contextlib
from pathlib import Path

from einsum_ir import load
from einsum_ir.printer import format_einsum
from einsum_ir.resources import BuiltinKind, builtin_dir

EXAMPLES = builtin_dir(BuiltinKind.CASCADE)


def register(sub) -> None:
    p = sub.add_parser("demo", help="a tour of the compiler on the built-in attention examples")
    p.add_argument("--examples", default=str(EXAMPLES), help="folder of .ein examples")
    p.set_defaults(func=run)


def _title(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 74 - len(text)))


def language_section(folder: Path) -> None:
    import numpy as np

    from einsum_ir import analyze, evaluate, random_inputs, resolve_sizes

    _title("1. the language: check and show the 3-pass and 1-pass softmax cascades")
    for name in ("mha_3pass", "mha_1pass"):
        path = folder / f"{name}.ein"
        cascade = load(path)
        analysis = analyze(cascade)
        sizes = resolve_sizes(cascade)
        print(f"\n{path.name}: {len(cascade.einsums)} Einsums, ranks "
              + ", ".join(f"{r}={sizes[r]}" for r in cascade.rank_names())
              + (f", recurrences {', '.join(sorted(analysis.recurrences))}" if analysis.recurrences else ""))
        for einsum in cascade.einsums:
            print("   " + format_einsum(einsum))

    _title("2. the reference interpreter: both forms on the same random inputs")
    three = load(folder / "mha_3pass.ein")
    one = load(folder / "mha_1pass.ein")
    for sets in ({}, {"P": 300, "M": 200, "M0": 48}):
        sizes = resolve_sizes(three, {k: v for k, v in sets.items() if k != "M0"})
        inputs = random_inputs(three, sizes, seed=0)
        a = evaluate(three, inputs, {k: v for k, v in sets.items() if k != "M0"})["AV"]
        b = evaluate(one, inputs, sets)["AV"]
        label = ", ".join(f"{k}={v}" for k, v in sets.items()) or "defaults"
        print(f"  {label:>22}: AV {tuple(a.shape)}, max |3-pass - 1-pass| = {np.abs(a - b).max():.2e}")

    _title("3. every example evaluates")
    for path in sorted(folder.glob("*.ein")):
        cascade = load(path)
        out = evaluate(cascade)
        for name, value in out.items():
            print(f"  {path.name:28} {name}{list(value.shape)}  mean {value.mean():+.5f}  "
                  f"finite {bool(np.isfinite(value).all())}")


def analyses_section(folder: Path) -> None:
    from .analyze import demo_section

    demo_section(folder)


def _run(argv: list[str]) -> None:
    from ..main import main

    print("\n$ cascade " + " ".join(argv))
    code = main(argv)
    if code:
        raise SystemExit(code)


def accelerator_section(folder: Path) -> None:
    _title("4. the spatial accelerator: FuseMax's cascade on FuseMax, mapped by the mapper")
    bert_1k = ["--set", "B=64", "--set", "H=12", "--set", "P=1K", "--set", "M=1K"]
    _run(["simulate", str(folder / "mha_1pass.ein"), "--arch", "fusemax", *bert_1k, "--set", "M0=256"])
    _title("5. one line each: 3-pass on FLAT vs FuseMax, dense vs causal (mapper's best mappings)")
    from simulator.arch import resolve_arch
    from mapper.search import search

    bert = {"B": 64, "H": 12}
    for file, arch, tokens in (("mha_3pass", "flat", 1024), ("mha_3pass", "fusemax", 1024),
                               ("mha_3pass", "fusemax", 16384), ("causal", "fusemax", 16384)):
        cascade = load(folder / f"{file}.ein")
        sizes = {**bert, "P": tokens, "M": tokens}
        mapping, report = search(cascade, resolve_arch(arch, {}), sizes, objective="latency").best[0]
        print(f"  {file + '.ein':15} on {arch:8} BERT {tokens // 1024:>2}K: {report.latency_s * 1e3:9.3f} ms, "
              f"{report.energy_J:7.2f} J, util 2d {report.utilization.get('2d', 0):.3f}  "
              f"[{report.form or 'as written'}]")


def gpu_section(folder: Path) -> None:
    _title("6. GPU kernels: the causal 3-pass cascade as one fused Triton kernel")
    print("(no GPU here: Triton's interpreter runs the generated kernel on the CPU)")
    _run(["run", str(folder / "causal.ein"), "--target", "triton", "--set", "P=96", "--set", "M=96",
          "--set", "E=32", "--set", "F=32", "--dtype", "float16", "--check"])
    _run(["run", str(folder / "sliding_window.ein"), "--target", "triton", "--set", "P=100",
          "--set", "M=100", "--set", "W=24", "--set", "E=32", "--set", "F=32", "--check"])


SECTIONS = [language_section, analyses_section, accelerator_section, gpu_section]


def run(args) -> int:
    folder = Path(args.examples)
    with contextlib.suppress(ValueError):  # shorter command lines in the transcript
        folder = folder.resolve().relative_to(Path.cwd())
    for section in SECTIONS:
        section(folder)
    print()
    return 0

"""``cascade demo``: the main job on the built-in examples (what ``make demo`` runs)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from einsum_ir import analyze, evaluate, load, random_inputs, resolve_sizes
from einsum_ir.printer import format_einsum

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "attention"


def register(sub) -> None:
    p = sub.add_parser("demo", help="a tour of the compiler on the built-in attention examples")
    p.add_argument("--examples", default=str(EXAMPLES), help="folder of .ein examples")
    p.set_defaults(func=run)


def _title(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 74 - len(text)))


def language_section(folder: Path) -> None:
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


SECTIONS = [language_section, analyses_section]


def run(args) -> int:
    folder = Path(args.examples)
    for section in SECTIONS:
        section(folder)
    print()
    return 0

"""Fuzz campaign over the language front end and the command line: mutated cascade files.

    python bench/fuzz_inputs.py --count 2000 [--seed 0] [--commands check,show,eval,passes,work]

Each mutant is an example from examples/attention/ with one to three mutations (delete, insert,
duplicate or swap tokens, random bytes, control characters, huge numbers, deep nesting, keywords),
run in-process through ``cascade_cli.main.main`` for every command. A run passes when it exits 0,
or exits 1 with a located diagnostic (``FILE:LINE:COL: error:`` with the source line and a caret,
or ``FILE: error:``) and a hint.
Exit 2 (an internal error), a diagnostic without location or hint, or a run over 30 s is a finding.
The summary (counts per exit code, findings with the input that caused them) goes to
bench/results/fuzz_inputs.json. tests/test_hostile_fuzz.py runs a bounded campaign in `make test`.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples" / "attention").glob("*.ein"))
COMMANDS = ("check", "show", "eval", "passes", "work")
# Small evaluations: the fuzz is about the front end, not about the interpreter's speed.
EXTRA = {"eval": ["--max-memory", "64M"], "work": ["--max-memory", "64M"],
         "passes": ["--max-memory", "64M"], "show": [], "check": []}
TIME_LIMIT_S = 30

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|<=|>=|==|!=|\s+|.",
                    re.S)
KEYWORDS = ("rank", "param", "split", "input", "output", "sum", "max", "min", "prod", "where",
            "not", "and", "or", "inf", "exp", "log", "sqrt", "lambda", "None", "class")
PUNCTUATION = ("[", "]", "(", ")", ",", "=", "+", "-", "*", "/", "%", "<", "<=", "==", "!=",
               "\n", "#", "\\\n", ".", ":", ";")
CONTROL = ("\x00", "\x0b", "\x0c", "\r", "\t", "\u2028", "\u2029", "\x85", "\ufeff", "\x1b[31m")
# Well-formed but hostile index expressions and predicates: reach the interpreter and analyses.
HOSTILE_INDEX = ("m % 0", "m / 0", "p + 9223372036854775807", "-m", "m * 4611686018427387904",
                 "m / (p - p)", "p - 9223372036854775807 - 9", "abs(-9223372036854775807 - 1)",
                 "2.5", "1e400", "M * M * M * M")
HOSTILE_WHERE = (" where p + 9223372036854775807 > m", " where m % 0 == 0", " where 1e400 > p",
                 " where p * 4611686018427387904 * 4 > 0", " where not p", " where m <= p or m",
                 " where p / (m - m) < 1")
HUGE = ("9" * 5000, "1e400", "4611686018427387904", "9223372036854775807", "-9223372036854775808",
        "0", "-1", "1e-400", "0.5", "2 * 9223372036854775807", "1K")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _pool(tokens: list[str], rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.35:
        return rng.choice(KEYWORDS)
    if kind < 0.7:
        return rng.choice(PUNCTUATION)
    if kind < 0.85:
        return rng.choice([t for t in tokens if t.strip()] or ["x"])
    return rng.choice(HUGE)


def _deep(rng: random.Random) -> str:
    depth = rng.choice((150, 199, 201, 400, 1000))
    atom = rng.choice(("Q[b,h,p,e]", "p", "1", "QK[b,h,p,m]"))
    shape = rng.randrange(4)
    if shape == 0:
        return "-" * depth + atom
    if shape == 1:
        return " + ".join([atom] * depth)
    if shape == 2:
        return "exp(" * depth + atom + ")" * depth
    return "(" * depth + atom + ")" * depth


def mutate(text: str, rng: random.Random) -> str | bytes:
    """One mutant of ``text``: a str, or bytes when the mutation is not valid UTF-8."""
    tokens = _tokens(text)
    raw: bytes | None = None
    # A third of the mutants stay well-formed, so that they reach the interpreter and analyses.
    semantic = rng.random() < 0.35
    for _ in range(rng.randint(1, 3)):
        op = rng.choice((6, 9, 10)) if semantic else rng.randrange(12)
        k = rng.randrange(len(tokens)) if tokens else 0
        if op == 0 and tokens:
            del tokens[k]
        elif op == 1:
            tokens.insert(k, _pool(tokens, rng))
        elif op == 2 and tokens:
            tokens.insert(k, tokens[k])
        elif op == 3 and len(tokens) > 1:
            j = rng.randrange(len(tokens))
            tokens[k], tokens[j] = tokens[j], tokens[k]
        elif op == 4:
            raw = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 5:
            tokens.insert(k, rng.choice(CONTROL))
        elif op == 6:
            numbers = [i for i, t in enumerate(tokens) if t[:1].isdigit()]
            tokens[rng.choice(numbers) if numbers else k:][:1] = [rng.choice(HUGE)]
        elif op == 7:
            tokens.insert(k, _deep(rng))
        elif op == 8:
            tokens[k:k + 1] = [rng.choice(KEYWORDS)]
        elif op == 9:
            _hostile_index(tokens, rng)
        elif op == 10:
            ends = [i for i, t in enumerate(tokens) if "\n" in t and i > 0 and "=" in "".join(
                tokens[max(0, i - 30):i])]
            tokens.insert(rng.choice(ends) if ends else len(tokens), rng.choice(HOSTILE_WHERE))
        else:
            names = [i for i, t in enumerate(tokens) if t[:1].isalpha()]
            if names:
                tokens[rng.choice(names)] = rng.choice(KEYWORDS + ("X", "q", "M0", "_"))
    result = "".join(tokens)
    if raw is None:
        return result
    data = result.encode("utf-8")
    at = rng.randrange(len(data) + 1)
    return data[:at] + raw + data[at:]


def _hostile_index(tokens: list[str], rng: random.Random) -> None:
    """Replaces one index variable inside brackets by a hostile index expression."""
    depth, spots = 0, []
    for i, token in enumerate(tokens):
        depth += token == "["
        depth -= token == "]"
        if depth > 0 and token[:1].islower():
            spots.append(i)
    if spots:
        tokens[rng.choice(spots)] = rng.choice(HOSTILE_INDEX)


_LOCATED = re.compile(r"^(?P<where>.+?)(?::\d+:\d+)?: error: ")


def classify(code: int, err: str, path: str) -> str | None:
    """None when the run behaved; else what is wrong with it."""
    if code == 0:
        return None
    if code != 1:
        return f"exit {code}"
    first = err.splitlines()[0] if err else ""
    match = _LOCATED.match(first)
    if not match or match.group("where") not in (path, "<stdin>") and not match.group(
            "where").startswith("-"):
        return "diagnostic without a location"
    if "\nhint: " not in err:
        return "diagnostic without a hint"
    lines = err.splitlines()
    if re.match(r".+:\d+:\d+: error: ", first) and not (
            len(lines) > 2 and lines[1].startswith("  ") and "^" in lines[2]):
        return "located diagnostic without the source line and caret"
    return None


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def run_one(command: str, path: str, limit_s: float = TIME_LIMIT_S) -> tuple[int, str, float]:
    """Runs ``cascade COMMAND PATH`` in-process: (exit code, stderr, seconds); exit -1 = timeout."""
    from cascade_cli.main import main

    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    use_alarm = hasattr(signal, "SIGALRM")
    if use_alarm:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, limit_s)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([command, path, *EXTRA.get(command, [])])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 2
    except _Timeout:
        code = -1
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    return code, err.getvalue(), time.perf_counter() - start


def campaign(count: int, seed: int, commands=COMMANDS, folder: str | None = None) -> dict:
    """Runs ``count`` mutants through ``commands``; returns the summary."""
    rng = random.Random(seed)
    sources = [p.read_text() for p in EXAMPLES]
    exits: dict[str, int] = {}
    findings = []
    slowest = (0.0, None)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        for i in range(count):
            mutant = mutate(rng.choice(sources), rng)
            path = str(Path(tmp) / f"m{i}.ein")
            Path(path).write_bytes(mutant if isinstance(mutant, bytes) else mutant.encode())
            for command in commands:
                code, err, seconds = run_one(command, path)
                exits[str(code)] = exits.get(str(code), 0) + 1
                if seconds > slowest[0]:
                    slowest = (seconds, f"{command} m{i}")
                problem = classify(code, err, path) if code != -1 else "over 30 s"
                if problem:
                    shown = mutant if isinstance(mutant, str) else mutant.decode("utf-8", "replace")
                    findings.append({"mutant": i, "command": command, "problem": problem,
                                     "stderr": err[-600:], "input": shown[:4000]})
    return {"count": count, "seed": seed, "commands": list(commands), "runs": count * len(commands),
            "exit_codes": dict(sorted(exits.items())), "findings": len(findings),
            "slowest_s": round(slowest[0], 3), "slowest_run": slowest[1],
            "details": findings[:50]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="mutants (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--commands", default=",".join(COMMANDS))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "fuzz_inputs.json"))
    args = parser.parse_args(argv)
    sys.setrecursionlimit(1000)  # the default: a deep-input bug must show up here too
    start = time.perf_counter()
    summary = campaign(args.count, args.seed, tuple(args.commands.split(",")))
    summary["seconds"] = round(time.perf_counter() - start, 1)
    summary["command"] = "python bench/fuzz_inputs.py " + " ".join(argv or sys.argv[1:])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "details"}, indent=1))
    for finding in summary["details"][:10]:
        print(f"\n{finding['command']} mutant {finding['mutant']}: {finding['problem']}\n"
              f"{finding['stderr']}")
    return 1 if summary["findings"] else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())

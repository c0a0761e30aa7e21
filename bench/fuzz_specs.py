"""Fuzz the spec loaders: mutated accelerator architectures, GPU targets and mapping files.

Every bad spec must be refused with a CascadeError that names the file and the field (or the line
and column for YAML errors); an accepted spec must hold only finite numbers. Anything else (another
exception, a run over ``--timeout`` seconds) is a finding. Mutations are deterministic per seed:

* field mutations of the built-in specs (delete a field, wrong types, negative/zero/huge/inf/nan
  values, strings, lists, nested garbage, hostile expressions, unknown fields), loaded in process;
* file mutations (truncation, control characters, alias bombs, deep nesting, duplicate keys, huge
  integers, not-a-mapping top level, a directory, a binary file) run through the command line:
  ``cascade simulate --arch F``, ``cascade compile --arch F`` and ``cascade simulate --mapping F``.

    python bench/fuzz_specs.py --count 400       # writes bench/results/fuzz_specs.json

``tests/test_hostile_specs.py`` runs a small bounded campaign of the field mutations.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import io
import json
import math
import random
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from einsum_ir.errors import CascadeError  # noqa: E402
from einsum_ir.yaml_io import parse_yaml  # noqa: E402

ARCHS = ROOT / "examples" / "archs"
GPU_DIR = ROOT / "examples" / "gpus"


def _spec_file(name: str):
    """A built-in accelerator spec or GPU target by name."""
    return (GPU_DIR if (GPU_DIR / f"{name}.yaml").exists() else ARCHS) / f"{name}.yaml"
ACCEL = ["fusemax", "flat", "unfused", "edge", "cascade_ablation"]
GPUS = ["h100", "h200", "a100"]

BAD_VALUES = [-1, 0, -0.0, 0.5, 1e-300, 10 ** 30, 2 ** 200, math.inf, -math.inf, math.nan, True,
              None, "", "abc", "9**9**9", "log2(0)", "max()", "min(1, 2, x)", "10**400", "1/0",
              "(-8) ** 0.5", "0 ** -1", "__import__('os').system('true')", "log2(1, 2)",
              "2 ** 2 ** 2 ** 2 ** 2", "1e400", "-" * 400 + "1", "(" * 300 + "1" + ")" * 300,
              "9" * 5000, [], [1, 2, 3], {}, {"x": {"y": [1, {"z": None}]}}, "a" * 3000,
              [[[[[[]]]]]], "pe_dim ** pe_dim", "ceil(0.5) * floor(-0.5)", "nan", ".inf"]


def _paths(node, path=()):
    """Every (path, value) in a nested dict/list, containers included."""
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, path + (i,))


def _parent(data, path):
    for key in path[:-1]:
        data = data[key]
    return data


def mutate_fields(data: dict, rng: random.Random) -> tuple[dict, str]:
    """One field-level mutation of a spec dict; returns the new dict and what was done."""
    data = copy.deepcopy(data)
    paths = [p for p, _ in _paths(data) if p]
    path = rng.choice(paths)
    parent, key = _parent(data, path), path[-1]
    op = rng.choice(["value", "value", "value", "delete", "unknown", "wrap", "rename"])
    if op == "delete":
        del parent[key]
    elif op == "unknown" and isinstance(parent, dict):
        parent["bogus_" + str(rng.randrange(100))] = rng.choice(BAD_VALUES)
    elif op == "wrap":
        parent[key] = [parent[key]] if rng.random() < 0.5 else {"value": parent[key]}
    elif op == "rename" and isinstance(parent, dict):
        parent[str(key) + "x"] = parent.pop(key)
    else:
        op = "value"
        parent[key] = copy.deepcopy(rng.choice(BAD_VALUES))
    return data, f"{op} {'.'.join(map(str, path))}"


BOMB = "bomb: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"b{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 9))


def mutate_text(text: str, rng: random.Random) -> tuple[str | bytes, str]:
    """One file-level mutation of a spec's YAML text."""
    lines = text.splitlines(keepends=True)
    cut = rng.randrange(len(text) + 1)
    choices = {
        "truncate": lambda: text[:cut],
        "control": lambda: text[:cut] + rng.choice("\x00\x0b\x0c\x1b\u2028\ufeff\t") + text[cut:],
        "bomb_in_description": lambda: _description_bomb(text),
        "alias_bomb": lambda: BOMB + text,
        "alias_cycle": lambda: "loop: &c [*c]\n" + text,
        "deep": lambda: text + "extra: " + "[" * 500 + "]" * 500 + "\n",
        "duplicate": lambda: text + rng.choice(lines),
        "huge_int": lambda: re.sub(r"\b\d+\b", "9" * 5000, text, count=1),
        "top_list": lambda: "- " + text.replace("\n", "\n  "),
        "top_scalar": lambda: rng.choice(["42\n", "just text\n", "", "~\n", "...\n"]),
        "swap_lines": lambda: "".join(rng.sample(lines, len(lines))),
        "binary": lambda: bytes(rng.randrange(256) for _ in range(200)),
        "tabs": lambda: text.replace("  ", "\t", 3),
        "python_tag": lambda: text + "evil: !!python/object/apply:os.system ['true']\n",
        "huge_file": lambda: text + "#" * (2 << 20),
    }
    name = rng.choice(sorted(choices))
    return choices[name](), name


def _description_bomb(text: str) -> str:
    """A billion laughs as the free-text ``description`` (replacing the file's own)."""
    kept = "".join(ln for ln in text.splitlines(keepends=True) if not ln.startswith("description:"))
    return "description:\n  " + BOMB.replace("\n", "\n  ").rstrip() + "\n" + kept


def located(exc: CascadeError, file: str, *, field: bool = False) -> bool:
    """The diagnostic starts with the file, then a line and column or (``field``: required) the
    path of a field, e.g. ``x.yaml: levels[1].bandwidth: ...`` or ``x.yaml:3:7: error: ...``."""
    first = exc.render().splitlines()[0]
    name = re.escape(file)
    if re.match(rf"^(error: )?\S*{name}: \S[^:]*: ", first):
        return True
    if re.match(rf"^\S*{name}:\d+:\d+: error: ", first):
        return True
    return not field and bool(re.match(rf"^(error: )?\S*{name}: ", first))


def _finite(node) -> bool:
    return all(not isinstance(v, float) or math.isfinite(v) for _, v in _paths(node))


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def outcome(load, file: str, timeout: float = 30.0, *, field: bool = False) -> tuple[str, str]:
    """``accepted``, ``rejected`` (located), ``unlocated``, ``internal`` or ``hang``, and a detail."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        result = load()
        if not _finite(result):
            return "internal", "accepted a non-finite value"
        return "accepted", ""
    except CascadeError as exc:
        located_ = located(exc, file, field=field)
        return ("rejected" if located_ else "unlocated"), exc.render().splitlines()[0][:200]
    except _Timeout:
        return "hang", f"over {timeout} s"
    except Exception as exc:  # noqa: BLE001 - the finding this script looks for
        return "internal", f"{type(exc).__name__}: {exc}"[:200]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@functools.lru_cache(maxsize=None)
def builtin(name: str) -> dict:
    """A built-in spec's data (callers mutate deep copies)."""
    return parse_yaml(_spec_file(name).read_text(), f"{name}.yaml")


def field_cases(count: int, seed: int):
    """(kind, name, description, loader) for ``count`` field mutations of accelerator and GPU specs."""
    from backends.gpu.arch import parse_gpu_arch
    from simulator.arch import Arch, arch_from_dict

    rng = random.Random(seed)
    for _ in range(count):
        name = rng.choice(ACCEL + GPUS)
        data, what = mutate_fields(builtin(name), rng)
        if name in GPUS:
            yield "gpu", name, what, lambda d=data: _as_dict(parse_gpu_arch(d, "x.yaml"))
        else:
            yield "arch", name, what, lambda d=data: Arch.to_json(arch_from_dict(d, "x.yaml"))


def _as_dict(gpu) -> dict:
    return dict(gpu.__dict__)


def _cli(argv: list) -> int:
    """Runs the command in process; an internal error (exit 2) is raised as a finding."""
    from cascade_cli.main import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(argv)
    text = err.getvalue().strip()
    if rc not in (0, 1) or "internal error" in text:
        raise RuntimeError(f"exit {rc}: " + (text.splitlines()[0] if text else ""))
    return rc


def _load_file(kind: str, path: Path):
    """The spec loader the command will use, in process (so rejections can be checked)."""
    if kind == "gpu":
        from backends.gpu.arch import load_gpu_arch
        return _as_dict(load_gpu_arch(path))
    if kind == "mapping":
        from simulator.mapping_load import load_mapping
        return load_mapping(path).to_dict()
    from simulator.arch import load_arch
    return load_arch(path).to_json()


SMALL = ["--set", "P=64", "--set", "M=64"]


def file_cases(count: int, seed: int, folder: Path):
    """``count`` file mutations through the command line (arch, GPU and mapping files)."""
    rng = random.Random(seed + 1)
    mapping = _base_mapping(folder)
    for i in range(count):
        kind = rng.choice(["arch", "gpu", "mapping"])
        name = rng.choice({"arch": ACCEL, "gpu": GPUS, "mapping": ["mapping"]}[kind])
        text = mapping if kind == "mapping" else _spec_file(name).read_text()
        if rng.random() < 0.4:
            data, what = mutate_fields(parse_yaml(text, "x"), rng)
            body = json.dumps(data, default=str) if rng.random() < 0.5 else _yaml(data)
            what = "fields: " + what
        else:
            body, what = mutate_text(text, rng)
        path = folder / f"case{i}_{name}.yaml"
        if isinstance(body, bytes):
            path.write_bytes(body)
        else:
            path.write_text(body, encoding="utf-8", errors="surrogatepass")
        yield kind, name, what, path, _argv(kind, path)
    for kind in ("arch", "gpu", "mapping"):  # a directory where a file is expected
        path = folder / f"dir_{kind}"
        path.mkdir(exist_ok=True)
        yield kind, "directory", "directory", path, _argv(kind, path)


def _argv(kind: str, path: Path) -> list:
    if kind == "gpu":
        return ["compile", "examples/attention/causal.ein", "--arch", str(path), *SMALL,
                "-o", str(path.with_suffix(".py"))]
    if kind == "mapping":
        return ["simulate", "examples/attention/mha_1pass.ein", "--arch", "fusemax", *SMALL,
                "--set", "M0=16", "--mapping", str(path)]
    return ["simulate", "examples/attention/mha_1pass.ein", "--arch", str(path), *SMALL,
            "--set", "M0=16"]


def _yaml(data) -> str:
    import yaml

    try:
        return yaml.safe_dump(data, sort_keys=False)
    except (yaml.YAMLError, ValueError, RecursionError):
        return json.dumps(data, default=str)


def _base_mapping(folder: Path) -> str:
    path = folder / "base_mapping.yaml"
    _cli(["map", "examples/attention/mha_1pass.ein", "--arch", "fusemax", *SMALL, "--set", "M0=16",
          "--save", str(path), "--no-progress"])
    return path.read_text()


def run(count: int, seed: int, timeout: float) -> dict:
    summary: dict = {"count": count, "seed": seed, "by_kind": {}, "findings": []}
    start = time.perf_counter()

    def record(kind, name, what, result, detail, seconds, layer):
        row = summary["by_kind"].setdefault(f"{layer}:{kind}", {})
        row[result] = row.get(result, 0) + 1
        summary["slowest_s"] = max(summary.get("slowest_s", 0.0), seconds)
        if result in ("internal", "hang", "unlocated"):
            summary["findings"].append({"layer": layer, "kind": kind, "spec": name, "mutation": what,
                                        "result": result, "detail": detail})

    for kind, name, what, load in field_cases(count // 2, seed):
        t = time.perf_counter()
        result, detail = outcome(load, "x.yaml", timeout, field=True)
        record(kind, name, what, result, detail, time.perf_counter() - t, "fields")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, name, what, path, argv in file_cases(count - count // 2, seed, Path(tmp)):
            t = time.perf_counter()
            result, detail = outcome(lambda k=kind, p=path: _load_file(k, p), path.name, timeout)
            if result == "accepted":  # the spec loads: the command must still not fail internally
                result, detail = outcome(lambda a=argv: _cli(a), path.name, timeout)
                result = "accepted" if result in ("accepted", "rejected", "unlocated") else result
            record(kind, name, what, result, detail, time.perf_counter() - t, "cli")
    totals: dict = {}
    for row in summary["by_kind"].values():
        for k, v in row.items():
            totals[k] = totals.get(k, 0) + v
    summary["totals"] = totals
    summary["seconds"] = round(time.perf_counter() - start, 2)
    summary["slowest_s"] = round(summary.get("slowest_s", 0.0), 3)
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=400, help="mutated specs in all (half field, half file)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds before a case is a hang")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "fuzz_specs.json"))
    args = ap.parse_args(argv)
    summary = run(args.count, args.seed, args.timeout)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: summary[k] for k in ("totals", "by_kind", "seconds", "slowest_s")}, indent=1))
    for f in summary["findings"][:30]:
        print(f"{f['result']:9} {f['layer']}:{f['kind']} {f['spec']} [{f['mutation']}] {f['detail']}")
    print(f"wrote {args.out}")
    return 1 if summary["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())

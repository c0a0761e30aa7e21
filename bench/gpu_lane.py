"""The GPU lane: the measurements a lent GPU is for, most valuable first, inside a time budget.

    make gpu                                           # on a GPU machine: PYTHONPATH=. python3 ...
    PYTHONPATH=. python3 bench/gpu_lane.py --budget 300
    PYTHONPATH=. python3 bench/gpu_lane.py --dry-run   # the CPU rehearsal (part of make test)

Steps, in order, each in its own process under its own timeout: the ``gpu``-marked correctness
tests (FlexAttention's accuracy rule at realistic shapes); the forward benchmark of every variant
against SDPA, FlexAttention and eager PyTorch, with the cost model's prediction beside each time;
forward+backward of our native ops (backends.torch_op) against SDPA's flash, FlexAttention's and
PyTorch's backward, with the backward's compile time (bench/gpu_lane_backward.py); the first-call
compile time; the ahead-of-time compile of every benchmarked
kernel for sm_90 and sm_80. A step or a case that will not fit in what is left of ``--budget`` is
skipped and recorded so. Results are rewritten after every record, in
``<out>/<device>-<date>.json`` and ``.md``: a hang or a crash keeps what was measured (the case in
flight is recorded as ``timeout`` or ``crashed`` and the step resumes after it).

Needs only the GPU machine's preinstalled torch and triton: the pure-Python packages the source
tree needs beyond them (lark; pytest for the tests) come from the wheels in bench/wheels/.
``--dry-run`` runs every step on the CPU at tiny shapes under TRITON_INTERPRET=1.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as _dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from gpu_lane_results import Results, results_stem, timing_record  # noqa: E402
from gpu_lane_steps import RESTART_RC  # noqa: E402

STEP_ORDER = ("correctness", "forward", "backward", "compile", "aot")
# (estimate, the least worth starting, the step's own timeout) in seconds; None: what is left
# after the estimates of the steps still to come (so the forward grid cannot crowd out the
# backward table). GPU numbers are for an H100/H200 with 16 cores; every record has its wall_s
# to recalibrate.
GPU_PLAN = {"correctness": (160, 10, 300), "forward": (270, 10, None), "backward": (120, 25, 200),
            "compile": (40, 40, 120), "aot": (30, 10, 90)}
DRY_PLAN = {"correctness": (30, 2, 120), "forward": (30, 2, 120), "backward": (30, 2, 120),
            "compile": (10, 5, 60), "aot": (60, 4, 180)}
PROBLEMS = ("failed", "crashed", "timeout")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                   help="total wall time (default 480 on a GPU, 300 for --dry-run)")
    p.add_argument("--dry-run", action="store_true",
                   help="every step on the CPU at tiny shapes (TRITON_INTERPRET=1); no GPU needed")
    p.add_argument("--steps", default=",".join(STEP_ORDER),
                   help="comma-separated subset of: " + ", ".join(STEP_ORDER))
    p.add_argument("--aot-scope", choices=("all", "representative"), default=None,
                   help="kernels of the aot step: every benchmarked one (the default on a GPU "
                        "machine), or one per cascade file for H200 and A100 (the default of "
                        "--dry-run: all of them take about 90 s on two loaded cores)")
    p.add_argument("--out", default=None,
                   help="results folder (default bench/results; a temporary folder for --dry-run)")
    p.add_argument("--item-timeout", type=float, default=None,
                   help="seconds one test or case may take before it is killed (default 150; 90 dry)")
    p.add_argument("--list", action="store_true",
                   help="print the steps with their estimates and the forward cases, run nothing")
    p.add_argument("--resume", action="store_true",
                   help="keep today's results file and run only what it does not record yet")
    # the child side: one step, run by the lane in its own process
    p.add_argument("--step", help=argparse.SUPPRESS)
    p.add_argument("--results", help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    p.add_argument("--progress", help=argparse.SUPPRESS)
    p.add_argument("--device", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    unknown = set(args.steps.split(",")) - set(STEP_ORDER)
    if unknown:
        p.error(f"--steps: unknown step {sorted(unknown)[0]!r}; the steps are " + ", ".join(STEP_ORDER))
    return args


def wheel_paths() -> list[str]:
    return sorted(str(w) for w in (HERE / "wheels").glob("*.whl"))


def lane_env(dry_run: bool, step: str) -> dict:
    """The environment of a step: the source tree and the vendored wheels first on the path (a
    pure-Python wheel is importable as a zip), pytest's plugin autoload off (only the lane's),
    and Triton's interpreter in the dry run (not for the ahead-of-time compile, which needs the
    real compiler)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), *wheel_paths()]
                                        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("TRITON_INTERPRET", None)
    if dry_run and step != "aot":
        env["TRITON_INTERPRET"] = "1"
    return env


def _kill(proc) -> None:
    """Ends the step's process and the workers it started (its own process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_child(cmd, env, deadline: float, item_timeout: float, progress: Path):
    """Runs one step's process, echoing its output; kills it past the deadline or when one item
    runs past ``item_timeout``. Returns (exit code, None | "timeout" | "item timeout", tail)."""
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    tail: collections.deque = collections.deque(maxlen=40)

    def echo():
        for line in proc.stdout:
            tail.append(line.rstrip())
            print(line, end="", flush=True)
    reader = threading.Thread(target=echo, daemon=True)
    reader.start()
    why = None
    try:
        while proc.poll() is None:
            time.sleep(0.2)
            if time.time() > deadline:
                why = "timeout"
            elif (started := _progress(progress).get("started")) and time.time() - started > item_timeout:
                why = "item timeout"
            if why:
                _kill(proc)
    except BaseException:
        _kill(proc)
        raise
    reader.join(timeout=5)
    return proc.returncode, why, "\n".join(tail)


def _progress(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def probe(dry_run: bool) -> dict:
    """The machine, from a child process with the lane's environment (which also proves that the
    source tree and its vendored dependencies import)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--step", "probe"]
    r = subprocess.run(cmd, env=lane_env(dry_run, "probe"), cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    if r.returncode != 0:
        return {"error": (r.stdout + r.stderr)[-3000:], "device": "unknown"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_step(step, args, results: Results, lane_deadline: float, plan: dict) -> dict:
    """One step: started if its least useful time fits, restarted after the item that hung or
    crashed it (that item recorded), until it completes or its own timeout passes."""
    estimate, least, own = plan[step]
    start = time.time()
    left = lane_deadline - start
    if left < least:
        return dict(status="skipped: budget", error=f"needs at least {least} s, {left:.0f} s left "
                    f"(about {estimate} s in all)")
    wanted = args.steps.split(",")
    reserve = sum(plan[s][0] for s in STEP_ORDER[STEP_ORDER.index(step) + 1:] if s in wanted)
    deadline = start + (max(least, left - reserve) if own is None else min(left, own))
    item_timeout = args.item_timeout or (90 if args.dry_run else 150)
    progress = results.path.with_suffix(f".{step}.progress")
    progress.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--step", step, "--results",
           str(results.path), "--deadline", str(deadline), "--progress", str(progress),
           "--device", results.read()["meta"]["device"], "--aot-scope", args.aot_scope]
    cmd += ["--dry-run"] if args.dry_run else []
    status, error, attempts = "ok", None, 0
    while attempts < 5:  # each restart resumes after the item that hung or crashed
        attempts += 1
        rc, why, tail = run_child(cmd, lane_env(args.dry_run, step), deadline + 15, item_timeout,
                                  progress)
        if rc == 0 and why is None:
            break
        if rc == RESTART_RC and why is None:  # asked for a fresh process; its items are recorded
            continue
        flight = _progress(progress)
        progress.unlink(missing_ok=True)
        kind = "timeout" if why else "crashed"
        if flight.get("item"):  # the item in flight: recorded, and the step goes on after it
            flight.pop("started", None)
            rec = timing_record(flight) if "variant" in flight else flight
            results.append(dict(rec, status=kind, error=(f"{why} (exit {rc})" if why else
                                                         f"exit {rc}") + ": " + tail[-1500:]))
        if why == "timeout" or not flight.get("item"):
            status, error = ("timeout" if why else "failed"), f"exit {rc}: {tail[-1500:]}"
            break
    return dict(status=status, error=error, wall_s=time.time() - start, attempts=attempts)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.step:
        return child_main(args)
    start = time.time()
    args.aot_scope = args.aot_scope or ("representative" if args.dry_run else "all")
    args.budget = args.budget if args.budget is not None else (300.0 if args.dry_run else 480.0)
    if args.list:
        return list_plan(args)
    out = args.out or (os.path.join(tempfile.gettempdir(), "cascade-gpu-lane") if args.dry_run
                       else str(ROOT / "bench" / "results"))
    machine = probe(args.dry_run)
    if "error" not in machine and not args.dry_run and not machine["cuda"]:
        print("bench/gpu_lane.py: no CUDA GPU found. The lane measures kernels on a GPU; run it on "
              "a GPU machine (`make gpu`), or rehearse it here with --dry-run.", file=sys.stderr)
        return 2
    device = machine["device"] + (" dry run" if args.dry_run else "")
    results = Results(results_stem(out, device).with_suffix(".json"))
    if not (args.resume and results.path.exists()):
        results.start(dict(machine, device=device, date=_dt.date.today().isoformat(),
                           budget_s=args.budget, dry_run=args.dry_run, steps=args.steps))
    print(f"GPU lane on {device}: budget {args.budget:.0f} s, results in {results.path}", flush=True)
    if "error" in machine:
        results.append(dict(step="lane", item="probe", status="failed", error=machine["error"]))
        results.write_markdown()
        print(machine["error"], file=sys.stderr)
        return 1
    return _run_steps(args, results, start)


def _run_steps(args, results: Results, start: float) -> int:
    plan = DRY_PLAN if args.dry_run else GPU_PLAN
    wanted = args.steps.split(",")
    try:
        for step in (s for s in STEP_ORDER if s in wanted):
            print(f"== {step} ({start + args.budget - time.time():.0f} s left)", flush=True)
            # the last item may overrun its step's deadline by the kill's grace (15 s)
            rec = run_step(step, args, results, start + args.budget - 15, plan)
            results.append(dict(rec, step="lane", item=step))
            print(f"== {step}: {rec['status']} in {rec.get('wall_s', 0):.1f} s", flush=True)
            results.write_markdown()
    finally:
        results.update_meta(wall_s=time.time() - start)
        md = results.write_markdown()
        print(f"wrote {results.path} and {md}")
    problems = [r for r in results.records() if r.get("status") in PROBLEMS]
    for r in problems:
        print(f"problem: {r['step']} {r['item']}: {r['status']}", file=sys.stderr)
    return 1 if problems else 0


def list_plan(args) -> int:
    from gpu_lane_steps import DRY_SHAPES, GPU_SHAPES, case_id, lane_cases

    plan = DRY_PLAN if args.dry_run else GPU_PLAN
    for step in (s for s in STEP_ORDER if s in args.steps.split(",")):
        estimate, least, own = plan[step]
        print(f"{step}: about {estimate} s (starts with {least} s left; timeout "
              f"{'what is left' if own is None else f'{own} s'})")
    cases = lane_cases(DRY_SHAPES if args.dry_run else GPU_SHAPES)
    print(f"forward cases ({len(cases)}): " + ", ".join(case_id(c) for c in cases))
    print(f"budget {args.budget:.0f} s; estimates add up to "
          f"{sum(plan[s][0] for s in STEP_ORDER if s in args.steps.split(',')):.0f} s")
    return 0


def child_main(args) -> int:
    """One step in this process (started by the lane)."""
    from gpu_lane_steps import STEPS, StepContext
    from gpu_lane_steps import probe as probe_machine

    if args.step == "probe":
        print(json.dumps(probe_machine()))
        return 0
    from backends.gpu.arch import detect_arch_name

    ctx = StepContext(args.step, Results(Path(args.results)), args.deadline, Path(args.progress),
                      args.dry_run, args.device, detect_arch_name(args.device), args.aot_scope)
    return STEPS[args.step](ctx)


if __name__ == "__main__":
    sys.exit(main())

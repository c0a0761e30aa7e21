"""The steps of the GPU lane, each run in its own process by bench/gpu_lane.py.

A step is a list of items (a test, a case, a kernel), each with an estimated cost. Before an item
the step writes it to the progress file (so the lane can record it if the process hangs or dies)
and checks the step's deadline: an item that would not fit is recorded as ``skipped: budget``.
An item already recorded (by an earlier attempt of the same step) is not run again.
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gpu_lane_results import Results, timing_record

ROOT = Path(__file__).resolve().parents[1]
FORWARD_ORDER = ("causal", "dense", "gqa8", "sliding1024", "alibi", "softcap", "linear",
                 "linear_causal")
BACKWARD_VARIANTS = ("causal", "dense", "sliding1024", "linear", "linear_causal")
BACKWARD_ESTIMATE_S = {"causal": 35.0, "dense": 35.0, "sliding1024": 35.0, "linear": 15.0,
                       "linear_causal": 30.0}
GPU_TEST_FILES = ("test_gpu_triton.py", "test_gpu_backward.py")
RESTART_RC = 75  # the step asks to be restarted in a fresh process (a lost CUDA context)


@dataclass(frozen=True)
class Shapes:
    """The lane's grid: the real one for a GPU, a tiny one for the dry run on the CPU."""

    shapes: tuple  # (sequence length, head dim) pairs, the most valuable first
    tokens: int  # batch x sequence
    hidden: int  # heads x head dim
    eager_max: int
    check_max: int
    compile_case: tuple  # (seq_len, head_dim, heads) of the compile-time measurement


GPU_SHAPES = Shapes(((4096, 128), (4096, 64), (16384, 128), (16384, 64)), 16384, 2048, 4096,
                    4096, (4096, 128, 16))
# both sequence lengths and both head dims, not all four pairs (the interpreter is slow)
DRY_SHAPES = Shapes(((64, 32), (128, 16)), 64, 64, 128, 128, (64, 32, 2))


@dataclass(frozen=True)
class Item:
    """One unit of a step: its id, estimated seconds, the schema fields of its record, and the
    measurement (returns the record's fields)."""

    item: str
    estimate_s: float
    base: dict
    run: Callable[[], dict] = field(compare=False)


@dataclass(frozen=True)
class StepContext:
    step: str
    results: Results
    deadline: float  # epoch seconds
    progress: Path
    dry_run: bool
    device: str
    arch: str
    aot_scope: str

    @property
    def shapes(self) -> Shapes:
        return DRY_SHAPES if self.dry_run else GPU_SHAPES

    @property
    def dtype(self) -> str:
        """bfloat16 on a GPU; float16 in the dry run (Triton's interpreter does not support a
        bfloat16 tl.dot: it multiplies the bit patterns)."""
        return "float16" if self.dry_run else "bfloat16"


def lane_cases(shapes: Shapes) -> list[dict]:
    """Every variant at every shape of the grid, the most valuable first: the shorter sequence
    and the larger head dim (the common training shape) before the others."""
    out = []
    for n, d in shapes.shapes:
        b, h = max(1, shapes.tokens // n), max(1, shapes.hidden // d)
        for v in FORWARD_ORDER:
            case = dict(variant=v, seq_len=n, head_dim=d, B=b, H=h)
            if v == "gqa8":
                case["G"] = 8 if h % 8 == 0 else 2
            elif v.startswith("sliding"):
                case["W"] = 1024 if n > 1024 else n // 4
            elif v == "linear_causal":
                case["C"] = 64 if n >= 1024 else 16
            out.append(case)
    return out


def case_id(case: dict) -> str:
    return f"{case['variant']}-N{case['seq_len']}-D{case['head_dim']}"


def case_base(case: dict, ctx: StepContext, dtype: str) -> dict:
    return timing_record(dict(variant=case["variant"], seq_len=case["seq_len"],
                              head_dim=case["head_dim"], dtype=dtype, device=ctx.device,
                              batch=case["B"], heads=case["H"]))


def run_items(ctx: StepContext, items: list[Item]) -> int:
    """Runs the items not yet recorded, in order, each against the deadline."""
    done = ctx.results.done_items(ctx.step)
    for it in items:
        if it.item in done:
            continue
        head = dict(it.base, step=ctx.step, item=it.item, estimate_s=it.estimate_s)
        left = ctx.deadline - time.time()
        if it.estimate_s > left:
            ctx.results.append(dict(head, status="skipped: budget",
                                    error=f"needs about {it.estimate_s:.0f} s, {max(left, 0):.0f} s left"))
            print(f"[{ctx.step}] {it.item}: skipped (budget)", flush=True)
            continue
        ctx.progress.write_text(json.dumps(dict(head, started=time.time())))
        start = time.time()
        try:
            _injected_fault(ctx.step, it.item)
            rec = {**head, **it.run()}
        except Exception as exc:  # the item failed; the step goes on with the next one
            rec = dict(head, error=f"{type(exc).__name__}: {exc}"[:500])
        rec.setdefault("status", "failed" if rec.get("error") else "ok")
        rec["wall_s"] = time.time() - start
        ctx.results.append(rec)
        ctx.progress.unlink(missing_ok=True)
        print(f"[{ctx.step}] {it.item}: {rec['status']} in {rec['wall_s']:.1f} s"
              + (f" ({rec['error']})" if rec.get("error") else ""), flush=True)
        if _poisoned(rec):  # every later CUDA call of this process would fail the same way
            print(f"[{ctx.step}] the CUDA context is lost: restarting the step", flush=True)
            return RESTART_RC
        _free_gpu_memory(ctx)
    return 0


def _poisoned(rec: dict) -> bool:
    text = " ".join(str(v) for v in [rec.get("error"), *(rec.get("baseline_errors") or {}).values()])
    return any(s in text for s in ("illegal memory access", "unspecified launch failure",
                                   "CUDA error: misaligned address", "device-side assert"))


def _free_gpu_memory(ctx: StepContext) -> None:
    if not ctx.dry_run:
        import torch
        torch.cuda.empty_cache()


def _injected_fault(step: str, item: str) -> None:
    """CASCADE_LANE_FAULTS="step/item=crash,step/item=hang": the process dies or hangs at that
    item, as a kernel that kills the CUDA context or never returns would (the lane's recovery
    is tested with it on the CPU)."""
    faults = dict(f.split("=", 1) for f in os.environ.get("CASCADE_LANE_FAULTS", "").split(",") if "=" in f)
    fault = faults.get(f"{step}/{item}")
    if fault == "crash":
        os._exit(70)
    if fault == "hang":
        time.sleep(3600)


# ------------------------------------------------------------------------------------ steps


def probe() -> dict:
    """What this machine has: versions, the device, and whether the source tree imports."""
    import torch
    import triton

    import backends.triton  # noqa: F401  (lark, the parser and the backend import)

    import lark
    import pytest

    cuda = torch.cuda.is_available()
    return dict(python=sys.version.split()[0], torch=torch.__version__, triton=triton.__version__,
                lark=f"{lark.__version__} ({lark.__file__})",
                pytest=f"{pytest.__version__} ({pytest.__file__})",
                cuda=cuda, device=torch.cuda.get_device_name() if cuda else "cpu",
                capability=list(torch.cuda.get_device_capability()) if cuda else None,
                interpret=os.environ.get("TRITON_INTERPRET", ""))


def _bench(ctx: StepContext):
    from gpu_lane_measure import make_bench

    # the dry run traces FlexAttention (dynamo, AOT autograd) without inductor's code generation
    return make_bench("cpu" if ctx.dry_run else "cuda", "aot_eager" if ctx.dry_run else "inductor")


def forward(ctx: StepContext) -> int:
    import attention_gpu as ag

    bench, ours = _bench(ctx), ag.OurKernels(ctx.arch)
    estimate = 2.0 if ctx.dry_run else None
    items = []
    for case in lane_cases(ctx.shapes):
        est = estimate or (4.0 if case["variant"].startswith("linear") else
                           9.0 if case["seq_len"] <= 4096 else 12.0)

        def run(case=case):
            return ag.run_case(case, ctx.dtype, ctx.shapes.eager_max, ctx.device, ours(case),
                               bench, ctx.shapes.check_max)
        items.append(Item(case_id(case), est, case_base(case, ctx, ctx.dtype), run))
    return run_items(ctx, items)


def backward(ctx: StepContext) -> int:
    """Forward+backward of our native ops against SDPA's, FlexAttention's and PyTorch's
    backward, at the grid's first shape, on fresh caches (the backward's compile time)."""
    import attention_gpu as ag
    from gpu_lane_backward import backward_case
    from gpu_lane_measure import fresh_caches

    bench, ours = _bench(ctx), ag.OurOps()
    items = []
    for case in lane_cases(ctx.shapes):
        if case["variant"] not in BACKWARD_VARIANTS or (case["seq_len"], case["head_dim"]) != \
                ctx.shapes.shapes[0]:
            continue

        def run(case=case):
            return backward_case(case, ctx.dtype, ctx.shapes.eager_max, lambda: ours(case), bench,
                                 ctx.device)
        # FlexAttention compiles a forward and a backward kernel per case (tens of seconds with
        # Inductor); ours of linear attention runs its backward in numpy on the host
        items.append(Item(case_id(case), 2.0 if ctx.dry_run else BACKWARD_ESTIMATE_S[case["variant"]],
                          case_base(case, ctx, ctx.dtype), run))
    with fresh_caches():
        return run_items(ctx, items)


def compile_step(ctx: StepContext) -> int:
    import torch

    from gpu_lane_measure import compile_times

    n, d, h = ctx.shapes.compile_case
    case = dict(variant="compile_time", seq_len=n, head_dim=d, B=1, H=h)

    def run():
        return compile_times(ctx.arch, getattr(torch, ctx.dtype), _bench(ctx), ctx.device, n, d, h)
    return run_items(ctx, [Item(f"causal-N{n}-D{d}", 5.0 if ctx.dry_run else 40.0,
                                case_base(case, ctx, ctx.dtype), run)])


def correctness(ctx: StepContext) -> int:
    import pytest
    from gpu_lane_pytest import LanePlugin

    if ctx.dry_run:  # the gpu tests' tiny-shape CPU mode (see tests/test_gpu_triton.py)
        os.environ["CASCADE_GPU_TESTS_ON_CPU"] = "1"
    plugin = LanePlugin(ctx.results, ctx.progress, ctx.deadline, 1.0 if ctx.dry_run else 4.0)
    files = [str(ROOT / "tests" / name) for name in GPU_TEST_FILES]
    rc = pytest.main([*files, "-m", "gpu", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT)],
                     plugins=[plugin])
    ctx.progress.unlink(missing_ok=True)
    return 0 if rc in (0, 1, 5) else int(rc)  # failed tests are records, not a failed step


def aot(ctx: StepContext) -> int:
    from gpu_lane_aot import run_aot

    return run_aot(ctx, lane_cases(GPU_SHAPES))


STEPS = {"correctness": correctness, "forward": forward, "backward": backward,
         "compile": compile_step, "aot": aot}

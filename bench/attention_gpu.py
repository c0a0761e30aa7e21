"""GPU benchmark of the Triton kernels generated from the example cascades.

    PYTHONPATH=. python bench/attention_gpu.py            # the full grid (tens of minutes)
    PYTHONPATH=. python bench/attention_gpu.py --quick    # a few shapes
    PYTHONPATH=. python bench/attention_gpu.py --dry-run  # list the cases; needs no GPU
    PYTHONPATH=. python bench/attention_gpu.py --smoke    # the plumbing on the CPU (seconds)

For each case it times our kernel (the one ``compile_cascade`` builds from
``examples/attention/*.ein``, the same code path the interpreter-lane tests run), torch SDPA (its
flash, cuDNN and memory-efficient backends where present), FlexAttention (``torch.compile``-d,
with a block mask) and eager PyTorch, and reports TFLOP/s (4·B·H·P·M·D, exact under the mask)
next to the GPU cost model's predicted time. It also measures the first-call compile time against
FlexAttention's.

``--passes backward`` (on by default) times forward+backward of our native ops
(``backends.torch_op``: the forward kernel and the gradient cascade's kernels under autograd) against
SDPA's flash backward and FlexAttention's backward on dense, causal and sliding windows, and against
the PyTorch implementation's autograd (chunked for causal) on linear attention, with the backward's
compile time (first call minus a warm call); see bench/gpu_lane_backward.py. The issue's targets
(backward >= 0.9x SDPA flash on dense and causal, >= 1.0x FlexAttention on masked variants, linear
>= PyTorch) are reported, not asserted. Results go to ``bench/results/<device>-<date>.json`` (one
record per case and pass) and a markdown table of ratios next to it.

``--smoke`` runs the same code on the CPU under TRITON_INTERPRET=1: one tiny shape, float32, both
passes, FlexAttention traced with ``aot_eager`` (its backward does not run on the CPU: recorded as
a baseline error), results in a temporary folder unless ``--out``. It checks the plumbing, not the
speed. On a lent GPU with little device time, run the GPU lane
instead (``make gpu``, bench/gpu_lane.py): the same measurements in order of value, inside a budget.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the lane's modules next to this file

from gpu_lane_backward import backward_case, summary_line  # noqa: E402
from gpu_lane_measure import (agreement, case_inputs, compile_times, fresh_caches,  # noqa: E402
                              linear_reference, make_bench, softmax_baselines, time_ours, timed)
from gpu_lane_results import backward_kind, backward_table, forward_table, results_stem  # noqa: E402

from einsum_ir.resources import BuiltinKind, builtin_dir  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EX = builtin_dir(BuiltinKind.CASCADE)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a few small shapes only")
    p.add_argument("--dry-run", action="store_true", help="list the cases and exit (no GPU needed)")
    p.add_argument("--predict", action="store_true",
                   help="only the GPU cost model's predictions for every case (no GPU needed); "
                        "writes bench/results/predicted-<arch>.md")
    p.add_argument("--smoke", action="store_true",
                   help="the plumbing on the CPU: TRITON_INTERPRET=1, one tiny shape, float32")
    p.add_argument("--passes", default="forward,backward",
                   help="comma-separated subset of: forward, backward")
    p.add_argument("--variants", default=None,
                   help="default: dense,causal,sliding,gqa,alibi,softcap,linear,compile "
                        "(with --smoke: dense,causal,sliding,linear); "
                        "a comma-separated subset of: dense, causal, sliding, gqa, alibi, "
                        "softcap, linear (with linear_causal), compile")
    p.add_argument("--seq-lens", default="1024,2048,4096,8192,16384")
    p.add_argument("--head-dims", default="64,128")
    p.add_argument("--dtype", default=None, choices=("bfloat16", "float16", "float32"),
                   help="default bfloat16 (float32 with --smoke)")
    p.add_argument("--tokens", type=int, default=16384, help="batch x sequence (default 16K)")
    p.add_argument("--eager-max", type=int, default=8192,
                   help="skip eager PyTorch above this sequence length (memory)")
    p.add_argument("--out", default=None,
                   help="results folder (default bench/results; a temporary folder for --smoke)")
    p.add_argument("--arch", default=None, help="GPU target for the cost model (default: detect)")
    p.add_argument("--check-spills", action="store_true",
                   help="let the mapping reject tile configurations whose kernels spill registers")
    args = p.parse_args(argv)
    args.variants = args.variants or (SMOKE_VARIANTS if args.smoke else FULL_VARIANTS)
    args.dtype = args.dtype or ("float32" if args.smoke else "bfloat16")
    args.out = args.out or (os.path.join(tempfile.gettempdir(), "cascade-attention-smoke")
                            if args.smoke else str(ROOT / "bench" / "results"))
    unknown = set(args.passes.split(",")) - {"forward", "backward"}
    if unknown:
        p.error(f"--passes: unknown pass {sorted(unknown)[0]!r}; the passes are forward, backward")
    return args


@dataclass(frozen=True)
class Grid:
    """The sizes of the case grid besides the sequence lengths and head dims of the options."""

    hidden: int  # heads x head dim of dense, causal, GQA, ALiBi and soft-cap
    windows: tuple  # sliding-window widths, at the sequence lengths >= window_min_seq
    window_min_seq: int
    window_heads: int
    window_dim: int
    linear_heads: int
    linear_dim: int
    chunk: int  # the chunk of chunked causal linear attention


FULL = Grid(2048, (256, 1024), 4096, 16, 128, 16, 64, 64)  # hidden 2048 as in FlashAttention-3
SMOKE = Grid(32, (16,), 64, 2, 16, 2, 16, 16)
FULL_VARIANTS = "dense,causal,sliding,gqa,alibi,softcap,linear,compile"
SMOKE_VARIANTS = "dense,causal,sliding,linear"


def cases(args):
    grid = SMOKE if args.smoke else FULL
    seqs = [64] if args.smoke else [int(s) for s in args.seq_lens.split(",")]
    dims = [16] if args.smoke else [int(d) for d in args.head_dims.split(",")]
    tokens = 64 if args.smoke else args.tokens
    if args.quick:
        seqs, dims = [s for s in seqs if s <= 4096][:2] or seqs[:1], dims
    want = set(args.variants.split(","))
    out = []
    for d in dims:
        heads = max(1, grid.hidden // d)
        for n in seqs:
            b = max(1, tokens // n)
            for v in ("dense", "causal"):
                if v in want:
                    out.append(dict(variant=v, seq_len=n, head_dim=d, B=b, H=heads))
            if "alibi" in want:
                out.append(dict(variant="alibi", seq_len=n, head_dim=d, B=b, H=heads))
            if "softcap" in want:
                out.append(dict(variant="softcap", seq_len=n, head_dim=d, B=b, H=heads))
            if "gqa" in want and heads % 8 == 0:
                out.append(dict(variant="gqa8", seq_len=n, head_dim=d, B=b, H=heads, G=8))
    for w in grid.windows:
        if "sliding" in want:
            for n in [s for s in seqs if s >= grid.window_min_seq] or seqs[-1:]:
                out.append(dict(variant=f"sliding{w}", seq_len=n, head_dim=grid.window_dim, B=1,
                                H=grid.window_heads, W=w))
    if "linear" in want:
        for n in seqs:
            b = max(1, tokens // n)
            out.append(dict(variant="linear", seq_len=n, head_dim=grid.linear_dim, B=b,
                            H=grid.linear_heads))
            out.append(dict(variant="linear_causal", seq_len=n, head_dim=grid.linear_dim, B=b,
                            H=grid.linear_heads, C=grid.chunk))
    return out


def flops(case) -> float:
    b, h, n, d = case["B"], case["H"], case["seq_len"], case["head_dim"]
    v = case["variant"]
    if v in ("causal", "alibi"):
        pairs = n * (n + 1) / 2
    elif v.startswith("sliding"):
        w = case["W"]
        pairs = sum(min(w, p + 1) for p in range(n))
    elif v == "linear":
        return 2 * 2 * b * h * n * d * d  # state and query products
    elif v == "linear_causal":
        c = case["C"]
        return 2 * b * h * n * d * d * 2 + 2 * 2 * b * h * n * c * d
    else:
        pairs = n * n
    return 4 * b * h * pairs * d


def main(argv=None) -> int:
    args = parse_args(argv)
    todo = cases(args)
    if args.dry_run:
        for c in todo:
            print(json.dumps(c))
        print(f"{len(todo)} cases")
        return 0
    if args.predict:
        return predict_only(args, todo)
    if args.smoke:  # before anything imports triton: it reads TRITON_INTERPRET at import
        os.environ["TRITON_INTERPRET"] = "1"
    try:
        import torch
    except ImportError:
        print("bench/attention_gpu.py: torch is not installed; this benchmark needs torch, triton "
              "and a CUDA GPU", file=sys.stderr)
        return 2
    if not args.smoke and not torch.cuda.is_available():
        print("bench/attention_gpu.py: no CUDA GPU found. This benchmark times kernels on a GPU; "
              "run it on a GPU machine with `PYTHONPATH=. python bench/attention_gpu.py`. "
              "(Without a GPU, `--smoke` runs the benchmark's plumbing on the CPU, and the same "
              "kernels are checked under TRITON_INTERPRET=1 by tests/test_triton_*.py.)",
              file=sys.stderr)
        return 2
    return run(args, todo)


def _case_file(case):
    v = case["variant"]
    return {
        "dense": ("mha_3pass", {}), "causal": ("causal", {}), "alibi": ("alibi", {}),
        "softcap": ("softcap", {"CAP": 20}), "gqa8": ("gqa", {"G": case.get("G", 8)}),
        "linear": ("linear", {}), "linear_causal": ("linear_causal_chunked", {"C": case.get("C", 64)}),
    }.get(v) or ("sliding_window", {"W": case.get("W")})


def case_sizes(case, cascade) -> dict:
    """The rank sizes and parameters of a case's cascade (what its tensors' shapes imply)."""
    file, params = _case_file(case)
    sizes = dict(B=case["B"], H=case["H"], P=case["seq_len"], E=case["head_dim"],
                 F=case["head_dim"], **params)
    if "M" in {d.name for d in cascade.sizes} and file != "linear_causal_chunked":
        sizes["M"] = case["seq_len"]
    if file == "gqa":
        sizes["HK"] = case["H"] // case["G"]
    return sizes


def predict_only(args, todo) -> int:
    """The cost model's predicted time and TFLOP/s of every case: no GPU, no measurement."""
    from backends.gpu.mapping import choose_mapping
    from einsum_ir import load, resolve_sizes
    from einsum_ir.passes import prepare

    arch = args.arch or "h100"
    rows = ["| variant | N | D | B x H | mapping (block_r, block_c, warps, stages) | predicted ms | "
            "predicted TFLOP/s |", "|---|---|---|---|---|---|---|"]
    for case in todo:
        file, _ = _case_file(case)
        cascade = load(EX / f"{file}.ein")
        full = resolve_sizes(cascade, case_sizes(case, cascade))
        m = choose_mapping(prepare(cascade), full, dtype=args.dtype, arch=arch)
        cfg = m.config
        tflops = flops(case) / m.predicted_s / 1e12
        rows.append(f"| {case['variant']} | {case['seq_len']} | {case['head_dim']} | "
                    f"{case['B']} x {case['H']} | {cfg.block_r}, {cfg.block_c}, {cfg.num_warps}, "
                    f"{cfg.num_stages} | {m.predicted_s * 1e3:.3f} | {tflops:.0f} |")
        print(rows[-1], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"predicted-{arch}.md"
    path.write_text(f"# Predicted by the GPU cost model for {arch} ({args.dtype})\n\n"
                    "Not measurements: the model's prediction for the mapping it chooses. "
                    "Compare with the measured results the benchmark writes on a GPU.\n\n"
                    + "\n".join(rows) + "\n")
    print(f"wrote {path}")
    return 0


# ----------------------------------------------------------------------------------- running


class OurKernels:
    """Our compiled cascade of each case, compiled once per (file, parameters)."""

    def __init__(self, arch, check_spills=False):
        self.arch, self.check_spills, self._compiled = arch, check_spills, {}

    def __call__(self, case):
        from backends.triton import compile_cascade

        file, params = _case_file(case)
        key = (file, tuple(sorted(params.items())))
        if key not in self._compiled:
            self._compiled[key] = compile_cascade(EX / f"{file}.ein", arch=self.arch,
                                                  check_spills=self.check_spills, **params)
        return self._compiled[key]


class OurOps:
    """Our native op (backends.torch_op: forward and gradient kernels under autograd) of each
    case, made once per (file, parameters)."""

    def __init__(self):
        self._ops = {}

    def __call__(self, case):
        from backends.torch_op import native_op

        file, params = _case_file(case)
        key = (file, tuple(sorted(params.items())))
        if key not in self._ops:
            self._ops[key] = native_op(EX / f"{file}.ein", **params)
        return self._ops[key]


def run(args, todo) -> int:
    import torch

    from backends.gpu.arch import detect_arch_name

    if args.smoke:
        device, arch = "cpu smoke", args.arch or "h100"
        bench = make_bench("cpu", "aot_eager")  # FlexAttention traced, not compiled by Inductor
    else:
        device = torch.cuda.get_device_name()
        arch, bench = args.arch or detect_arch_name(device), make_bench("cuda")
    passes = args.passes.split(",")
    records = []
    if "forward" in passes:
        ours = OurKernels(arch, args.check_spills)
        for case in todo:
            records.append(run_case(case, args.dtype, args.eager_max, device, ours(case), bench))
            print(_line(records[-1]), flush=True)
            _free(bench)
        if "compile" in args.variants.split(","):
            records.append(compile_times(arch, getattr(torch, args.dtype), bench, device))
            print(_line(records[-1]), flush=True)
    if "backward" in passes:
        records += run_backward(args, todo, device, bench)
    return _write(records, device, args)


def run_backward(args, todo, device, bench) -> list[dict]:
    """The forward+backward records of the cases with a backward baseline, on fresh caches."""
    ops, out = OurOps(), []
    with fresh_caches():
        for case in (c for c in todo if backward_kind(c["variant"])):
            rec = backward_case(case, args.dtype, args.eager_max, lambda case=case: ops(case),
                                bench, device)
            out.append(dict(rec, **{"pass": "backward"}))
            print(summary_line(out[-1]), flush=True)
            _free(bench)
    return out


def _free(bench) -> None:
    if bench.device == "cuda":  # the case's inputs are freed with its frame
        import torch
        torch.cuda.empty_cache()


def run_case(case, dtype_name, eager_max, device, fn, bench, check_max=4096) -> dict:
    """One record: our kernel's time and prediction, the baselines' times, the agreement."""
    import torch

    v, n = case["variant"], case["seq_len"]
    tensors, slope = case_inputs(case, getattr(torch, dtype_name), bench.device)
    rec = dict(variant=v, seq_len=n, head_dim=case["head_dim"], dtype=dtype_name,
               batch=case["B"], heads=case["H"], device=device)
    time_ours(rec, fn, tensors, bench)
    rec["ours_tflops"] = flops(case) / (rec["ours_ms"] * 1e-3) / 1e12 if rec.get("ours_ms") else None
    if not v.startswith("linear"):
        softmax_baselines(rec, case, eager_max, tensors, slope, bench)
    elif n <= eager_max or v == "linear":
        ref = linear_reference(case)
        timed(rec, "eager_ms", lambda: ref(tensors["Q"], tensors["K"], tensors["V"]), bench)
    # agreement with a float32 reference on this very case (bf16 noise is about 1e-2)
    try:
        if rec.get("ours_ms") is not None:
            agreement(rec, case, fn, tensors, slope, check_max)
    except Exception as exc:  # out of memory for the fp32 reference: skip the check
        rec["check_error"] = f"{type(exc).__name__}: {exc}"[:300]
    return rec


def _f(x):
    return "-" if x is None else f"{x:.3f}"


def _line(rec):
    f = _f
    if rec["variant"] == "compile_time":
        return (f"compile time: ours {f(rec.get('ours_first_call_s'))} s, "
                f"FlexAttention {f(rec.get('flex_first_call_s'))} s")
    return (f"{rec['variant']:>14} N={rec['seq_len']:>6} D={rec['head_dim']:>3}: ours "
            f"{f(rec.get('ours_ms'))} ms ({f(rec.get('ours_tflops'))} TFLOP/s, predicted "
            f"{f(rec.get('predicted_ms'))} ms) | sdpa {f(rec.get('sdpa_ms'))} | flex "
            f"{f(rec.get('flex_ms'))} | eager {f(rec.get('eager_ms'))}"
            + (f" | max diff {rec['max_abs_diff_vs_fp32_eager']:.2e}"
               if rec.get("max_abs_diff_vs_fp32_eager") is not None else "")
            + (f" | error {rec['error']}" if rec.get("error") else ""))


def _write(records, device, args) -> int:
    stem = results_stem(args.out, device)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(records, indent=1))
    forward = [r for r in records if r.get("pass") != "backward"]
    backward = [r for r in records if r.get("pass") == "backward"]
    lines = []
    if forward:
        lines += ["## Forward", "", *forward_table(forward)]
    ct = next((r for r in records if r["variant"] == "compile_time"), None)
    if ct:
        lines.append("")
        lines.append(f"First call (generation + JIT) of the causal kernel: ours "
                     f"{ct.get('ours_first_call_s', float('nan')):.2f} s, FlexAttention "
                     f"{ct.get('flex_first_call_s', float('nan')):.2f} s.")
    if forward:
        lines += ["", "Ratios are baseline time / our time (above 1 means we are faster)."]
    if backward:
        lines += ["", "## Backward (dQ, dK, dV from dO) and forward+backward", "",
                  *backward_table(backward)]
    head = f"# Attention on {device} ({args.dtype})\n\n" + (
        "SMOKE RUN on the CPU (TRITON_INTERPRET=1, tiny shapes): the times check the plumbing, "
        "not the speed.\n\n" if args.smoke else "")
    stem.with_suffix(".md").write_text(head + "\n".join(lines) + "\n")
    print(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

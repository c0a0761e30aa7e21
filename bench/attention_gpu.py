"""GPU benchmark of the Triton kernels generated from the example cascades.

    PYTHONPATH=. python bench/attention_gpu.py            # the full grid (tens of minutes)
    PYTHONPATH=. python bench/attention_gpu.py --quick    # a few shapes, a smoke run
    PYTHONPATH=. python bench/attention_gpu.py --dry-run  # list the cases; needs no GPU

For each case it times our kernel (the one ``compile_cascade`` builds from
``examples/attention/*.ein``, the same code path the interpreter-lane tests run), torch SDPA (its
flash, cuDNN and memory-efficient backends where present), FlexAttention (``torch.compile``-d,
with a block mask) and eager PyTorch, and reports TFLOP/s (4·B·H·P·M·D, exact under the mask)
next to the GPU cost model's predicted time. It also measures the first-call compile time against
FlexAttention's. Results go to ``bench/results/<device>-<date>.json`` (one record per case) and a
markdown table of ratios next to it.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from einsum_ir.resources import BuiltinKind, builtin_dir

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
    p.add_argument("--variants", default="dense,causal,sliding,gqa,alibi,softcap,linear,compile",
                   help="comma-separated subset of: dense, causal, sliding, gqa, alibi, softcap, "
                        "linear, compile")
    p.add_argument("--seq-lens", default="1024,2048,4096,8192,16384")
    p.add_argument("--head-dims", default="64,128")
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16"))
    p.add_argument("--tokens", type=int, default=16384, help="batch x sequence (default 16K)")
    p.add_argument("--eager-max", type=int, default=8192,
                   help="skip eager PyTorch above this sequence length (memory)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    p.add_argument("--arch", default=None, help="GPU target for the cost model (default: detect)")
    p.add_argument("--check-spills", action="store_true",
                   help="let the mapping reject tile configurations whose kernels spill registers")
    return p.parse_args(argv)


def cases(args):
    seqs = [int(s) for s in args.seq_lens.split(",")]
    dims = [int(d) for d in args.head_dims.split(",")]
    if args.quick:
        seqs, dims = [s for s in seqs if s <= 4096][:2] or seqs[:1], dims
    want = set(args.variants.split(","))
    out = []
    for d in dims:
        heads = 2048 // d  # hidden size 2048, as in the FlashAttention-3 figures
        for n in seqs:
            b = max(1, args.tokens // n)
            for v in ("dense", "causal"):
                if v in want:
                    out.append(dict(variant=v, seq_len=n, head_dim=d, B=b, H=heads))
            if "alibi" in want:
                out.append(dict(variant="alibi", seq_len=n, head_dim=d, B=b, H=heads))
            if "softcap" in want:
                out.append(dict(variant="softcap", seq_len=n, head_dim=d, B=b, H=heads))
            if "gqa" in want and heads % 8 == 0:
                out.append(dict(variant="gqa8", seq_len=n, head_dim=d, B=b, H=heads, G=8))
    for w in (256, 1024):
        if "sliding" in want:
            for n in [s for s in seqs if s >= 4096] or seqs[-1:]:
                out.append(dict(variant=f"sliding{w}", seq_len=n, head_dim=128, B=1, H=16, W=w))
    if "linear" in want:
        for n in seqs:
            out.append(dict(variant="linear", seq_len=n, head_dim=64, B=max(1, args.tokens // n),
                            H=16))
            out.append(dict(variant="linear_causal", seq_len=n, head_dim=64,
                            B=max(1, args.tokens // n), H=16, C=64))
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
    try:
        import torch
    except ImportError:
        print("bench/attention_gpu.py: torch is not installed; this benchmark needs torch, triton "
              "and a CUDA GPU", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("bench/attention_gpu.py: no CUDA GPU found. This benchmark times kernels on a GPU; "
              "run it on a GPU machine with `PYTHONPATH=. python bench/attention_gpu.py`. "
              "(Without a GPU, the same kernels are checked under TRITON_INTERPRET=1 by "
              "tests/test_triton_*.py.)", file=sys.stderr)
        return 2
    return run(args, todo)


def _case_file(case):
    v = case["variant"]
    return {
        "dense": ("mha_3pass", {}), "causal": ("causal", {}), "alibi": ("alibi", {}),
        "softcap": ("softcap", {"CAP": 20}), "gqa8": ("gqa", {"G": 8}),
        "linear": ("linear", {}), "linear_causal": ("linear_causal_chunked", {"C": case.get("C", 64)}),
    }.get(v) or ("sliding_window", {"W": case.get("W")})


def predict_only(args, todo) -> int:
    """The cost model's predicted time and TFLOP/s of every case: no GPU, no measurement."""
    from backends.gpu.mapping import choose_mapping
    from einsum_ir import load, resolve_sizes
    from einsum_ir.passes import prepare

    arch = args.arch or "h100"
    rows = ["| variant | N | D | B x H | mapping (block_r, block_c, warps, stages) | predicted ms | "
            "predicted TFLOP/s |", "|---|---|---|---|---|---|---|"]
    for case in todo:
        file, params = _case_file(case)
        cascade = load(EX / f"{file}.ein")
        sizes = dict(B=case["B"], H=case["H"], P=case["seq_len"], E=case["head_dim"],
                     F=case["head_dim"], **params)
        if "M" in {d.name for d in cascade.sizes} and file != "linear_causal_chunked":
            sizes["M"] = case["seq_len"]
        if file == "gqa":
            sizes["HK"] = case["H"] // case["G"]
        full = resolve_sizes(cascade, sizes)
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


# ----------------------------------------------------------------------------------- timing


def bench_ms(fn) -> float:
    import torch
    try:
        from triton.testing import do_bench
        return float(do_bench(fn, warmup=25, rep=100))
    except Exception:  # fall back to CUDA events
        for _ in range(5):
            fn()
        torch.cuda.synchronize()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(20):
            fn()
        e.record()
        torch.cuda.synchronize()
        return s.elapsed_time(e) / 20


def _try(fn):
    import torch
    try:
        return bench_ms(fn)
    except Exception as exc:  # a baseline that is missing or runs out of memory
        torch.cuda.empty_cache()
        return None if not os.environ.get("BENCH_DEBUG") else print("  baseline failed:", exc)


def run(args, todo) -> int:
    import torch

    from backends.gpu.arch import detect_arch_name
    from backends.triton import compile_cascade

    device = torch.cuda.get_device_name()
    arch = args.arch or detect_arch_name(device)
    dtype = getattr(torch, args.dtype)
    libs = _baseline_libraries(torch)
    records = []
    compiled = {}

    def ours_for(case):
        file, params = _case_file(case)
        key = (file, tuple(sorted(params.items())))
        if key not in compiled:
            compiled[key] = compile_cascade(EX / f"{file}.ein", arch=arch,
                                            check_spills=args.check_spills, **params)
        return compiled[key]

    for case in todo:
        rec = _run_case(case, args, dtype, device, ours_for(case), libs)
        records.append(rec)
        print(_line(rec), flush=True)
        torch.cuda.empty_cache()  # the case's inputs are freed with its frame
    if "compile" in args.variants.split(","):
        records.append(_compile_times(arch, dtype, libs.flex, libs.create_block_mask, device))
        print(_line(records[-1]), flush=True)
    return _write(records, device, args)


def _baseline_libraries(torch) -> SimpleNamespace:
    """The optional baselines: SDPA backend selection and compiled FlexAttention (None where
    this torch lacks them)."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        SDPBackend = sdpa_kernel = None
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        flex = torch.compile(flex_attention, dynamic=False)
    except Exception:
        flex = create_block_mask = None
    return SimpleNamespace(SDPBackend=SDPBackend, sdpa_kernel=sdpa_kernel, flex=flex,
                           create_block_mask=create_block_mask)


def _case_inputs(case, dtype):
    """Seeded inputs of a case by tensor name, and the ALiBi slopes (None for other variants)."""
    import torch

    v, n, d, b, h = case["variant"], case["seq_len"], case["head_dim"], case["B"], case["H"]
    hk = h // case.get("G", 1)
    g = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(b, h, n, d, device="cuda", dtype=dtype, generator=g)
    k = torch.randn(b, hk, n, d, device="cuda", dtype=dtype, generator=g)
    vv = torch.randn(b, hk, n, d, device="cuda", dtype=dtype, generator=g)
    tensors = dict(Q=q, K=k, V=vv)
    slope = None
    if v == "alibi":
        slope = torch.tensor([2 ** (-8 * (i + 1) / h) for i in range(h)], device="cuda",
                             dtype=dtype)
        tensors["Slope"] = slope
    if v.startswith("linear"):
        for t in ("Q", "K"):
            tensors[t] = tensors[t] * 0.5
    return tensors, slope


def _run_case(case, args, dtype, device, fn, libs) -> dict:
    """One record: our kernel's time and prediction, the baselines' times, the agreement."""
    v, n = case["variant"], case["seq_len"]
    tensors, slope = _case_inputs(case, dtype)
    rec = dict(variant=v, seq_len=n, head_dim=case["head_dim"], dtype=args.dtype,
               batch=case["B"], heads=case["H"], device=device)
    _time_ours(rec, fn, tensors)
    rec["ours_tflops"] = flops(case) / (rec["ours_ms"] * 1e-3) / 1e12 if rec.get("ours_ms") else None
    kind = {"causal": "causal", "alibi": "causal"}.get(v, "sliding" if v.startswith("sliding")
                                                       else "dense")
    if not v.startswith("linear"):
        _softmax_baselines(rec, case, args, tensors, slope, kind, libs)
    elif n <= args.eager_max or v == "linear":
        ref = _linear_reference(case)
        rec["eager_ms"] = _try(lambda: ref(tensors["Q"], tensors["K"], tensors["V"]))
    # agreement with a baseline on this very case (bf16 noise is about 1e-2)
    try:
        if rec.get("ours_ms") is not None:
            _agreement(rec, case, fn, tensors, slope, kind)
    except Exception as exc:  # out of memory for the fp32 reference: skip the check
        rec["check_error"] = f"{type(exc).__name__}"
    return rec


def _time_ours(rec, fn, tensors) -> None:
    import torch

    try:
        fn(**tensors)
        torch.cuda.synchronize()
        rec["ours_ms"] = bench_ms(lambda: fn(**tensors))
        rec["predicted_ms"] = fn.last_plan.predicted_s * 1e3 if fn.last_plan else None
        rec["mapping"] = fn.last_plan.describe().splitlines()[0] if fn.last_plan else None
    except Exception as exc:
        rec["ours_ms"] = None
        rec["error"] = f"{type(exc).__name__}: {exc}"[:300]


def _linear_reference(case):
    from backends.triton import torch_ref

    if case["variant"] == "linear":
        return torch_ref.linear_attention
    return lambda a, b_, c: torch_ref.chunked_causal_linear_attention(a, b_, c, case["C"])


def _softmax_baselines(rec, case, args, tensors, slope, kind, libs) -> None:
    import torch.nn.functional as F

    from backends.triton import torch_ref

    v, n, W = case["variant"], case["seq_len"], case.get("W")
    q, k, vv = tensors["Q"], tensors["K"], tensors["V"]
    is_causal = kind == "causal"
    if libs.SDPBackend is not None and v in ("dense", "causal"):
        for name, be in (("sdpa_ms", libs.SDPBackend.FLASH_ATTENTION),
                         ("sdpa_cudnn_ms", getattr(libs.SDPBackend, "CUDNN_ATTENTION", None)),
                         ("sdpa_efficient_ms", libs.SDPBackend.EFFICIENT_ATTENTION)):
            if be is None:
                continue

            def sd(be=be):
                with libs.sdpa_kernel(be):
                    return F.scaled_dot_product_attention(q, k, vv, is_causal=is_causal)
            rec[name] = _try(sd)
    elif v == "gqa8":
        rec["sdpa_ms"] = _try(lambda: F.scaled_dot_product_attention(q, k, vv, enable_gqa=True))
    if libs.flex is not None:
        rec["flex_ms"] = _try(_flex_call(libs.flex, libs.create_block_mask, q, k, vv, v, kind, W,
                                         slope, case))
    if n <= args.eager_max:
        rec["eager_ms"] = _try(lambda: torch_ref.softmax_attention(
            q, k, vv, kind=kind if v != "alibi" else "dense", W=W, G=case.get("G", 1),
            slope=slope, cap=20.0 if v == "softcap" else None))


def _agreement(rec, case, fn, tensors, slope, kind) -> None:
    """The largest difference of our output from a float32 eager reference (up to 4K tokens for
    softmax variants)."""
    from backends.triton import torch_ref

    v = case["variant"]
    q, k, vv = tensors["Q"], tensors["K"], tensors["V"]
    mine = fn(**tensors)["AV"].float()
    if v.startswith("linear"):
        other = _linear_reference(case)(q.float(), k.float(), vv.float())
    elif case["seq_len"] <= 4096:
        other = torch_ref.softmax_attention(
            q.float(), k.float(), vv.float(), kind=kind if v != "alibi" else "dense",
            W=case.get("W"), G=case.get("G", 1), slope=None if slope is None else slope.float(),
            cap=20.0 if v == "softcap" else None)
    else:
        return
    rec["max_abs_diff_vs_fp32_eager"] = (mine - other.float()).abs().max().item()


def _flex_call(flex, create_block_mask, q, k, v, variant, kind, W, slope, case):
    n = q.shape[2]
    mask_mod = score_mod = None
    if kind == "causal":
        def mask_mod(b_, h_, qi, ki):
            return qi >= ki
    elif kind == "sliding":
        def mask_mod(b_, h_, qi, ki):
            return (qi - W < ki) & (ki <= qi)
    if variant == "alibi":
        def score_mod(s, b_, h_, qi, ki):
            return s - slope[h_] * (qi - ki)
    elif variant == "softcap":
        def score_mod(s, b_, h_, qi, ki):
            return 20.0 * torch_tanh(s / 20.0)
    block_mask = create_block_mask(mask_mod, None, None, n, n, device="cuda") if mask_mod else None
    gqa = variant == "gqa8"
    return lambda: flex(q, k, v, score_mod=score_mod, block_mask=block_mask, enable_gqa=gqa)


def torch_tanh(x):
    import torch
    return torch.tanh(x)


def _compile_times(arch, dtype, flex, create_block_mask, device):
    """First-call time (code generation + Triton JIT) of our causal kernel vs FlexAttention's."""
    import torch

    from backends.triton import compile_cascade

    rec = dict(variant="compile_time", seq_len=4096, head_dim=128, dtype=str(dtype)[6:],
               device=device)
    q = torch.randn(1, 16, 4096, 128, device="cuda", dtype=dtype)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CASCADE_CACHE"] = tmp
        os.environ["TRITON_CACHE_DIR"] = os.path.join(tmp, "triton")
        t0 = time.perf_counter()
        fn = compile_cascade(EX / "causal.ein", arch=arch)
        fn(Q=q, K=q, V=q)
        torch.cuda.synchronize()
        rec["ours_first_call_s"] = time.perf_counter() - t0
        if flex is not None:
            torch._dynamo.reset()
            t0 = time.perf_counter()
            bm = create_block_mask(lambda b, h, qi, ki: qi >= ki, None, None, 4096, 4096,
                                   device="cuda")
            flex(q, q, q, block_mask=bm)
            torch.cuda.synchronize()
            rec["flex_first_call_s"] = time.perf_counter() - t0
    return rec


def _line(rec):
    def f(x):
        return "-" if x is None else f"{x:.3f}"
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
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    slug = "".join(ch if ch.isalnum() else "-" for ch in device).strip("-").lower()
    stem = out / f"{slug}-{_dt.date.today().isoformat()}"
    stem.with_suffix(".json").write_text(json.dumps(records, indent=1))
    lines = ["| variant | N | D | ours ms | TFLOP/s | predicted ms | vs SDPA flash | vs cuDNN | "
             "vs Flex | vs eager |", "|---|---|---|---|---|---|---|---|---|---|"]

    def ratio(rec, key):
        a, b = rec.get(key), rec.get("ours_ms")
        return f"{a / b:.2f}x" if a and b else "-"

    for r in records:
        if r["variant"] == "compile_time":
            continue
        def f(x):
            return "-" if x is None else f"{x:.3f}"
        lines.append(f"| {r['variant']} | {r['seq_len']} | {r['head_dim']} | {f(r.get('ours_ms'))} "
                     f"| {f(r.get('ours_tflops'))} | {f(r.get('predicted_ms'))} | "
                     f"{ratio(r, 'sdpa_ms')} | {ratio(r, 'sdpa_cudnn_ms')} | {ratio(r, 'flex_ms')} | "
                     f"{ratio(r, 'eager_ms')} |")
    ct = next((r for r in records if r["variant"] == "compile_time"), None)
    if ct:
        lines.append("")
        lines.append(f"First call (generation + JIT) of the causal kernel: ours "
                     f"{ct.get('ours_first_call_s', float('nan')):.2f} s, FlexAttention "
                     f"{ct.get('flex_first_call_s', float('nan')):.2f} s.")
    lines.append("")
    lines.append("Ratios are baseline time / our time (above 1 means we are faster).")
    stem.with_suffix(".md").write_text(f"# Attention on {device}\n\n" + "\n".join(lines) + "\n")
    print(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The lane's ahead-of-time step: every kernel the forward benchmark runs, compiled for sm_90
(the mappings the cost model picks for H100 and H200) and sm_80 (A100) with the ptxas Triton
ships; no GPU needed, so a kernel that Triton cannot compile for a real GPU shows up on the CPU.

Scope ``all``: every forward case of the GPU grid on every target, deduplicated by kernel code
(the header comments differ with the sizes; the kernels often do not). Scope ``representative``:
the first case (N=4K, D=128) of each cascade file, for H200 (sm_90) and A100 (sm_80).
"""
from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from types import SimpleNamespace

ALL_TARGETS = (("h100", 90), ("h200", 90), ("a100", 80))
REPRESENTATIVE_TARGETS = (("h200", 90), ("a100", 80))
DTYPE = "bfloat16"


@dataclass(frozen=True)
class Job:
    item: str
    base: dict
    source: str
    phases: list


def _code(source: str) -> str:
    """The kernel code without its comments (which name the sizes and the predicted time)."""
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("#"))


def kernel_jobs(cases: list[dict], scope: str) -> list[Job]:
    import attention_gpu as ag

    from einsum_ir import resolve_sizes

    targets = ALL_TARGETS if scope == "all" else REPRESENTATIVE_TARGETS
    jobs, families, codes = [], set(), set()
    for arch, cc in targets:
        ours = ag.OurKernels(arch)
        for case in cases:
            family = ag._case_file(case)[0]
            if scope != "all" and (family, arch) in families:
                continue
            families.add((family, arch))
            fn = ours(case)
            gen, _ = fn.kernel(resolve_sizes(fn.cascade, ag.case_sizes(case, fn.cascade)), DTYPE)
            key = (_code(gen.source), cc)
            if key in codes:
                continue
            codes.add(key)
            cfg = fn.last_plan.config
            base = dict(variant=case["variant"], seq_len=case["seq_len"], head_dim=case["head_dim"],
                        dtype=DTYPE, family=family, arch=arch, capability=cc,
                        mapping=[cfg.block_r, cfg.block_c, cfg.num_warps, cfg.num_stages])
            item = f"{family}-{case['variant']}-N{case['seq_len']}-D{case['head_dim']}@{arch}-sm{cc}"
            jobs.append(Job(item, base, gen.source, gen.phases))
    return jobs


def compile_job(job: Job) -> dict:
    """One generated module compiled for its target: per-kernel registers, spills, shared memory,
    and whether the tensor-core instructions of the target (wgmma on sm_90) were used."""
    import warnings

    from backends.triton.aot import compile_source

    warnings.filterwarnings("ignore")
    start = time.time()
    try:
        builds = compile_source(SimpleNamespace(source=job.source, phases=job.phases), DTYPE,
                                job.base["capability"])
    except Exception as exc:
        return dict(status="failed", error=f"{type(exc).__name__}: {exc}"[:800],
                    wall_s=time.time() - start)
    return dict(status="ok", builds=[b.__dict__ for b in builds], wall_s=time.time() - start)


def _workers(dry_run: bool) -> int:
    wanted = os.environ.get("CASCADE_LANE_AOT_WORKERS")
    if wanted:
        return max(1, int(wanted))
    return max(1, min(8, os.cpu_count() or 1) if not dry_run else min(2, os.cpu_count() or 1))


def run_aot(ctx, cases: list[dict]) -> int:
    """Compiles the jobs not yet recorded in parallel; what will not fit in the deadline (at the
    estimated seconds per kernel) is recorded as skipped."""
    from backends.triton.aot import available

    if not available():
        ctx.results.append(dict(step=ctx.step, item="ptxas", status="failed",
                                error="Triton's bundled ptxas was not found"))
        return 1
    done = ctx.results.done_items(ctx.step)
    jobs = [j for j in kernel_jobs(cases, ctx.aot_scope) if j.item not in done]
    workers, per_job = _workers(ctx.dry_run), 4.0
    fit = max(0, int((ctx.deadline - time.time()) / per_job * workers))
    for job in jobs[fit:]:
        ctx.results.append(dict(job.base, step=ctx.step, item=job.item, status="skipped: budget"))
    jobs = jobs[:fit]
    print(f"[aot] {len(jobs)} kernels, {workers} workers", flush=True)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    with pool:
        futures = {pool.submit(compile_job, job): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            rec = dict(job.base, step=ctx.step, item=job.item, **future.result())
            ctx.results.append(rec)
            print(f"[aot] {job.item}: {rec['status']} in {rec['wall_s']:.1f} s"
                  + (f" ({rec['error'][:200]})" if rec.get("error") else ""), flush=True)
    return 0

"""The GPU mapping and its cost model.

A mapping fixes what the Triton lowering leaves open: the row tile (``block_r``: queries per
program), the column tile (``block_c``: keys per loop step, or the chunk size of a chunked
recurrence), the warps per program and the software-pipelining stages. The lowering itself fixes
the rest from the cascade (launch grid = leading ranks x row blocks, streamed rank, full tiles).

The model walks the *planned kernel*, not the attention formula: for every loop of every phase it
counts, per loop step and per program,

* tensor-core FLOPs: each Einsum lowered to ``tl.dot`` (2 x the points of its tile space);
* vector work: the element-wise and reduction operations of the other Einsums, with ``exp`` and
  the other transcendental functions on the special-function units and the rest on FP32 lanes;
* memory: the bytes of the input tiles the step loads (and, once per program, the others and the
  stores);

and the number of loop steps each program really makes (the blocks its predicate-derived bounds
visit, evaluated per row block, so causal counts half and a sliding window counts the window).
Time is ``max(tensor + (1 - overlap) * vector, vector, memory)`` over the chip's rates (tensor
cores at an efficiency that plain ``tl.dot`` loops reach), divided by the wave-quantisation
efficiency of the launch; candidates that exceed the shared memory of a block or the registers of a
thread are rejected. This is a model: it ranks mappings and predicts a time; on a GPU the
benchmark prints it next to the measured time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from einsum_ir.analysis.work import expr_ops
from einsum_ir.ir import Access, index_vars, walk
from einsum_ir.passes import Prepared

from backends.triton.lower import Config, Lowering, Planner, _clauses, _factors, pow2

from .arch import GPUArch, load_gpu_arch

TC_EFFICIENCY = 0.65  # fraction of tensor-core peak a plain tl.dot loop sustains
OVERLAP = 0.5  # fraction of vector work hidden under tensor-core work
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
SFU_FUNCS = ("exp", "other")


@dataclass
class GPUMapping:
    config: Config
    arch: GPUArch
    dtype: str
    predicted_s: float
    breakdown: dict = field(default_factory=dict)
    considered: int = 0
    grid: str = ""
    stream: str = ""

    interpret: bool = False

    def describe(self) -> str:
        b = self.breakdown
        how = (f"interpreter mapping (fixed tiles; the model's prediction is for {self.arch.name})"
               if self.interpret else f"mapping chosen by the GPU cost model for {self.arch.name}")
        return (f"{how}, {self.dtype}: "
                f"block_r={self.config.block_r}, block_c={self.config.block_c}, "
                f"num_warps={self.config.num_warps}, num_stages={self.config.num_stages} "
                f"({self.considered} candidates)\n"
                f"predicted {self.predicted_s * 1e3:.4f} ms: tensor cores "
                f"{b.get('tensor_s', 0) * 1e3:.4f} ms, vector {b.get('vector_s', 0) * 1e3:.4f} ms "
                f"(exp {b.get('sfu_s', 0) * 1e3:.4f} ms), memory {b.get('memory_s', 0) * 1e3:.4f} ms, "
                f"{b.get('programs', 0)} programs, {b.get('steps', 0)} loop steps, "
                f"wave efficiency {b.get('wave_eff', 1):.2f}"
                + (f"; compiled for the target: {b['registers']} registers, "
                   f"{b['spill_bytes']} bytes spilled" if "registers" in b else ""))


def choose_mapping(prepared: Prepared, sizes: dict, *, dtype: str = "float16", arch=None,
                   overrides: dict | None = None, interpret: bool = False,
                   check_spills: bool = False, user_params: dict | None = None) -> GPUMapping:
    """The mapping with the least predicted time for a prepared cascade (``overrides`` pin some
    choices; ``sizes`` are the resolved sizes of the cascade as written).

    With ``check_spills`` the best candidates are compiled ahead of time for the target (with
    Triton's ptxas, no GPU needed) and the first one whose kernels spill no registers is taken.
    """
    gpu = arch if isinstance(arch, GPUArch) else load_gpu_arch(arch)
    overrides = dict(overrides or {})
    facts = prepared.facts
    rows = [64, 128]
    cols = [32, 64, 128]
    warps = [4, 8]
    stages = [2, 3, 1]
    if interpret:  # the interpreter's cost is per program and loop step: big tiles, few programs
        rows = [_clamp(pow2(max(sizes.values() or [16])), 16, 64)]
        rows = [64]
        cols = [64]
        warps, stages = [4], [1]
    rows = [overrides["block_r"]] if "block_r" in overrides else rows
    cols = [overrides["block_c"]] if "block_c" in overrides else cols
    warps = [overrides["num_warps"]] if "num_warps" in overrides else warps
    stages = [overrides["num_stages"]] if "num_stages" in overrides else stages
    best, count, fallback = None, 0, None
    ranked = []
    # the Triton tutorial's configuration first: another must be predicted clearly faster
    head = max([v for k, v in sizes.items() if k in ("E", "F")] or [64])
    pref = (128, 64, 8 if head >= 128 else 4, 3)
    grid = sorted(((br, bc, w, st) for bc in cols for br in rows for w in warps for st in stages),
                  key=lambda c: sum(a != b for a, b in zip(c, pref)))
    for br, bc, w, st in grid:
        if True:
            if True:
                if True:
                    cfg = Config(br, bc, w, st)
                    try:
                        m = predict(prepared, sizes, cfg, gpu, dtype, user_params, facts)
                    except Exception:  # a candidate the lowering rejects (e.g. tiles < 16)
                        continue
                    count += 1
                    ranked.append(m)
                    if m.breakdown.get("fits", True):
                        if best is None or m.predicted_s < best.predicted_s * 0.97:
                            best = m
                    elif fallback is None or (m.breakdown["smem"], m.predicted_s) < \
                            (fallback.breakdown["smem"], fallback.predicted_s):
                        fallback = m  # nothing fits: the least shared memory
    best = best or fallback
    if check_spills and best is not None and not interpret:
        best = _without_spills(prepared, sizes, dtype, gpu, best, ranked, user_params) or best
    if best is None:  # nothing could be modelled: defaults
        cfg = Config(overrides.get("block_r", 64), overrides.get("block_c", 64),
                     overrides.get("num_warps", 4), overrides.get("num_stages", 2))
        return GPUMapping(cfg, gpu, dtype, float("nan"), {}, 0)
    best.considered = count
    best.interpret = interpret
    return best


def _without_spills(prepared, sizes, dtype, gpu, best, ranked, user_params, tries: int = 6):
    """The fastest predicted candidate whose compiled kernels use no spill stack."""
    import os

    from backends.triton import aot
    from backends.triton.api import generate_for

    if not aot.available() or os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        return None
    cc = 80 if gpu.tensor_core_flops_per_clk_per_sm.get("float16", 0) <= 2048 else 90
    order = [best] + sorted((m for m in ranked if m is not best and m.breakdown.get("fits")),
                            key=lambda m: m.predicted_s)
    for m in order[:tries]:
        try:
            gen = generate_for(prepared, sizes, m.config, user_params=user_params)
            builds = aot.compile_source(gen.source, dtype, cc)
        except Exception:
            continue
        m.breakdown["registers"] = max((b.registers or 0) for b in builds)
        m.breakdown["spill_bytes"] = max((b.stack_bytes or 0) for b in builds)
        if m.breakdown["spill_bytes"] == 0:
            return m
    return None


def _clamp(x, lo, hi):
    return max(lo, min(hi, x))


def predict(prepared: Prepared, sizes: dict, cfg: Config, gpu: GPUArch, dtype: str,
            user_params: dict | None = None, facts=None) -> GPUMapping:
    """The predicted time of a prepared cascade under one mapping."""
    from backends.triton.api import lowering_sizes

    cascade = prepared.cascade
    facts = facts or prepared.facts
    full = lowering_sizes(prepared, sizes, cfg.block_c, user_params, facts)
    low = Lowering(cascade, full, cfg, facts)
    planner = Planner(low)
    low.stream_red_names = {e.name for e in low.stream_reductions}
    phases, post = planner.plan()
    roles = low.roles
    nbytes = DTYPE_BYTES.get(dtype, 2)

    def blk(var):
        r = roles.role.get(var)
        if r in ("batch", "stream_outer", None):
            return 1
        if r == "reshape":
            return 1
        return int(roles.block[var][1]) if var in roles.block else 1

    batch = 1
    for v in roles.batch:
        batch *= full[v.upper()]
    row = roles.row if roles.row and roles.role[roles.row] == "row" else None
    n_row = math.ceil(full[row.upper()] / cfg.block_r) if row else 1
    tensor = vec = sfu = 0.0
    mem_stream = mem_once = 0.0
    steps_total = 0
    smem = regs = 0
    programs_max = 0
    last_phase = max(phases) if phases else 1
    from backends.triton.lower import _scan_plan
    scan = bool(cfg.scan and _scan_plan(low, phases, post))
    scratch = {e.name for e in low.stream_reductions} | (
        set(low.a.recurrences) if len(phases) > 1 else set())
    for ph, loops in phases.items():
        has_row = row is not None and ph == last_phase
        programs = batch * (n_row if has_row else 1)
        if ph != last_phase and len(loops) == 1:  # a state phase split across programs
            programs = batch * max(1, min(math.ceil(full.get(str(roles.stream_rank), 1) /
                                                    cfg.block_c), -(-4 * gpu.sm_count // batch)))
        programs_max = max(programs_max, programs)
        for loop in loops:
            einsums = _closure(low, loop)
            steps = _steps(low, loop, full, cfg, n_row if has_row else 1) * batch
            steps_total += steps
            t_it = v_it = s_it = b_it = 0.0
            tile_bytes = 0
            for e in einsums:
                pts = 1
                for v in e.iteration_space:
                    pts *= blk(v)
                facs = [f for f, inv in _factors(e.body) if any(isinstance(n, Access) for n in walk(f))]
                if e.reducer == "sum" and len(facs) >= 2:
                    t_it += 2 * pts
                    out_pts = pts // max(1, blk(e.reduced[0]))
                    v_it += out_pts
                    continue
                ops = expr_ops(e.body)
                s_it += pts * sum(ops.get(k, 0) for k in SFU_FUNCS)
                v_it += pts * (sum(ops.values()) - sum(ops.get(k, 0) for k in SFU_FUNCS) + 1)
                if e.where is not None:
                    v_it += 2 * pts
            seen_tiles = set()
            invariant_bytes = 0
            for e in einsums:
                for acc in e.reads():
                    scanned = acc.tensor in low.a.recurrences and scan
                    if acc.tensor not in low.inputs and acc.tensor not in scratch and not scanned:
                        continue
                    key = (acc.tensor, tuple(str(i) for i in acc.indices))
                    if key in seen_tiles:
                        continue
                    seen_tiles.add(key)
                    width = nbytes if acc.tensor in low.inputs else 4  # scratch is fp32
                    size = 1
                    for idx in acc.indices:
                        for v in index_vars(idx):
                            if v in e.iteration_space:
                                size *= blk(v)
                    streamed = any(getattr(n, "name", None) == loop.var or
                                   roles.role.get(getattr(n, "name", "")) in ("stream_plain", "col")
                                   for idx in acc.indices for n in walk(idx))
                    if streamed or scan:
                        b_it += size * width
                        tile_bytes += size * width  # multi-buffered by the pipeline
                    else:
                        invariant_bytes += size * width  # loaded once, kept in shared memory
            tensor += steps * t_it
            vec += steps * v_it
            sfu += steps * s_it
            mem_stream += steps * b_it
            smem = max(smem, cfg.num_stages * tile_bytes + invariant_bytes)
        # once per program: row tiles of the inputs and the outputs
    for d in list(cascade.inputs) + list(cascade.outputs):
        n = nbytes
        for r in d.ranks:
            n *= full.get(r, 1)
        mem_once += n
    # registers: fp32 accumulators and score tiles per thread
    rows = blk(roles.row) if roles.row else 1
    fulls = [blk(v) for v in roles.full]
    acc_elems = rows * sum(fulls) + 2 * rows * cfg.block_c
    if scan or len(phases) > 1:  # a state tile (E x F, fp32) read into registers
        acc_elems += math.prod(sorted(fulls)[-2:]) if len(fulls) >= 2 else 0
    regs = acc_elems / (32 * cfg.num_warps) + 40
    fits = smem <= gpu.smem_bytes_per_block and regs <= gpu.max_registers_per_thread
    occ = max(1, min(gpu.smem_bytes_per_sm // max(1, smem),
                     gpu.registers_per_sm // max(1, int(regs) * 32 * cfg.num_warps),
                     gpu.max_threads_per_sm // (32 * cfg.num_warps)))
    if scan:  # all chunks run in parallel
        programs_max = max(programs_max, steps_total)
    slots = gpu.sm_count * occ
    waves = math.ceil(programs_max / slots) if programs_max else 1
    wave_eff = programs_max / (waves * slots) if programs_max else 1.0
    wave_eff = max(wave_eff, min(1.0, programs_max / gpu.sm_count)) if programs_max >= gpu.sm_count \
        else programs_max / gpu.sm_count
    reuse = min(n_row, 8) if row else 1
    # a warpgroup (4 warps) issues MMAs of 64 rows: fewer rows than 64 per warpgroup idles it
    mma_eff = min(1.0, cfg.block_r / (16 * cfg.num_warps))
    tensor_s = tensor / (gpu.tensor_flops(dtype) * TC_EFFICIENCY * mma_eff)
    sfu_s = sfu / gpu.sfu_ops()
    vector_s = vec / gpu.fp32_flops() + sfu_s
    memory_s = (mem_once + mem_stream / reuse) / gpu.hbm()
    busy = max(tensor_s + (1 - OVERLAP) * vector_s, vector_s, memory_s)
    if cfg.num_stages == 1:  # no software pipelining: loads do not overlap the math
        busy = tensor_s + vector_s + memory_s
    total = busy / max(wave_eff, 1e-3) + gpu.launch_overhead_s * len(phases)
    if not fits:
        total *= 4  # spills or no launch: heavily penalised
    breakdown = dict(mma_eff=mma_eff, tensor_s=tensor_s, vector_s=vector_s, sfu_s=sfu_s, memory_s=memory_s,
                     programs=programs_max, steps=steps_total, wave_eff=wave_eff, smem=smem,
                     regs=regs, fits=fits, flops=tensor)
    return GPUMapping(cfg, gpu, dtype, total, breakdown, 1,
                      grid=f"{n_row} row blocks x {batch}", stream=str(roles.stream_rank))


def _closure(low: Lowering, loop) -> list:
    seen = {}

    def visit(e):
        if e.name in seen:
            return
        seen[e.name] = e
        for acc in e.reads():
            t = acc.tensor
            if t in low.inputs:
                continue
            for d in low.defs[t]:
                if d.name in low.a.recurrences and d is not e:
                    continue
                if d.name in low.stream_red_names and d is not e:
                    continue
                visit(d)

    for kind, u in loop.units:
        for e in (u if kind == "rec" else [u]):
            visit(e)
    for e in loop.outputs:
        visit(e)
    return [e for e in seen.values() if not _is_init(low, e)]


def _is_init(low, e):
    rec = low.a.recurrences.get(e.name)
    return rec is not None and rec.init is e


def _steps(low: Lowering, loop, full: dict, cfg: Config, n_row: int) -> int:
    """Loop steps summed over the row blocks, under the predicate-derived bounds."""
    roles = low.roles
    if loop.style == "split":
        split = low.split_outer_of(loop.var.upper())
        tile = full[split.inner]
        count = math.ceil(full[split.rank] / tile)
    else:
        tile = cfg.block_c
        count = math.ceil(full[loop.var.upper()] / tile)
    preds = [e for e in _closure(low, loop) if e.where is not None]
    if not preds or loop.outputs:
        return count * n_row
    clause_sets = [_clauses(e.where, low) for e in preds]
    if any(c is None for c in clause_sets):
        return count * n_row
    total = 0
    row = roles.row if roles.row and roles.role[roles.row] == "row" else None
    for r in range(n_row):
        lo_r, hi_r = r * cfg.block_r, r * cfg.block_r + cfg.block_r - 1
        for it in range(count):
            if any(_feasible(cs, low, loop, it, tile, lo_r, hi_r, row) for cs in clause_sets):
                total += 1
    return total


def _feasible(clauses, low, loop, it, tile, lo_r, hi_r, row) -> bool:
    roles = low.roles
    for conj in clauses:
        ok = True
        for f in conj:
            v = f.get("1", 0)
            for key, coef in f.items():
                if key in ("1", "#") or coef == 0:
                    continue
                role = roles.role.get(key)
                if key == loop.var and loop.style == "split":
                    lo = hi = it
                elif key == loop.var:
                    lo, hi = it * tile, it * tile + tile - 1
                elif key == row:
                    lo, hi = lo_r, hi_r
                elif role in ("col", "chunk_row", "full"):
                    lo, hi = 0, low.sizes[key.upper()] - 1
                else:
                    lo, hi = -10 ** 9, 10 ** 9
                v += coef * (lo if coef > 0 else hi)
            for coef, name in f.get("#", []):
                v += coef * low.sizes.get(name, 0)
            if v > 0:
                ok = False
                break
        if ok:
            return True
    return False

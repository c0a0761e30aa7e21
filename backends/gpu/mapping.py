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
from dataclasses import dataclass, field, replace

from einsum_ir.affine import evaluate, symbols
from einsum_ir.analysis.work import expr_ops
from einsum_ir.dtypes import DTYPE_BYTES
from einsum_ir.errors import CascadeError
from einsum_ir.exprs import product_factors
from einsum_ir.ir import Access, index_vars, walk
from einsum_ir.passes import Prepared

from .arch import GPUArch, load_gpu_arch
from .bounds import PID, bound_env, loop_bounds, visited_count
from .plan import Config, Lowering, lowering_sizes
from .schedule import schedule

TC_EFFICIENCY = 0.65  # fraction of tensor-core peak a plain tl.dot loop sustains
OVERLAP = 0.5  # fraction of vector work hidden under tensor-core work
UNFIT_PENALTY = 4  # a mapping over the chip's limits spills or does not launch: ranked last
TIE = 1.03  # predictions closer than this to the fastest are ties (the model's resolution)
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


def _candidates(overrides: dict, interpret: bool) -> list[tuple[int, int, int, int]]:
    """(block_r, block_c, num_warps, num_stages) to price; ``overrides`` pin some of them."""
    space = {"block_r": [64, 128], "block_c": [32, 64, 128], "num_warps": [4, 8],
             "num_stages": [2, 3, 1]}
    if interpret:  # the interpreter's cost is per program and loop step: big tiles, few programs
        space = {"block_r": [64], "block_c": [64], "num_warps": [4], "num_stages": [1]}
    for key in space:
        if key in overrides:
            space[key] = [overrides[key]]
    return [(br, bc, w, st) for bc in space["block_c"] for br in space["block_r"]
            for w in space["num_warps"] for st in space["num_stages"]]


def rank_mappings(prepared: Prepared, sizes: dict, *, dtype: str = "float16", arch=None,
                  overrides: dict | None = None, interpret: bool = False,
                  user_params: dict | None = None) -> list[GPUMapping]:
    """Every candidate mapping the model can price, the chosen one first: the fastest that fits
    the chip (ties: the first enumerated), else the one needing the least shared memory."""
    gpu = arch if isinstance(arch, GPUArch) else load_gpu_arch(arch)
    facts = prepared.facts
    priced = []
    for br, bc, w, st in _candidates(dict(overrides or {}), interpret):
        try:
            priced.append(predict(prepared, sizes, Config(br, bc, w, st), gpu, dtype,
                                  user_params, facts))
        except CascadeError:  # a candidate the lowering rejects (e.g. tiles < 16)
            continue
    fitting = [m for m in priced if m.breakdown.get("fits", True)]
    if fitting:
        ordered = sorted(fitting, key=lambda m: m.predicted_s)
        # within the model's resolution of the fastest: the fewest loop steps, then resources
        near = [m for m in ordered if m.predicted_s <= ordered[0].predicted_s * TIE]
        first = min(near, key=lambda m: (m.breakdown["steps"], m.breakdown["smem"],
                                         m.config.num_warps, m.predicted_s))
        ordered = [first] + [m for m in ordered if m is not first]
    else:  # nothing fits: the least shared memory
        ordered = sorted(priced, key=lambda m: (m.breakdown["smem"], m.predicted_s))
    rest = [m for m in priced if m not in ordered]
    return [replace(m, considered=len(priced), interpret=interpret) for m in ordered + rest]


def choose_mapping(prepared: Prepared, sizes: dict, *, dtype: str = "float16", arch=None,
                   overrides: dict | None = None, interpret: bool = False,
                   user_params: dict | None = None) -> GPUMapping:
    """The mapping with the least predicted time for a prepared cascade (``overrides`` pin some
    choices; ``sizes`` are the resolved sizes of the cascade as written)."""
    ranked = rank_mappings(prepared, sizes, dtype=dtype, arch=arch, overrides=overrides,
                           interpret=interpret, user_params=user_params)
    if ranked:
        return ranked[0]
    overrides = dict(overrides or {})  # nothing could be modelled: defaults
    gpu = arch if isinstance(arch, GPUArch) else load_gpu_arch(arch)
    cfg = Config(overrides.get("block_r", 64), overrides.get("block_c", 64),
                 overrides.get("num_warps", 4), overrides.get("num_stages", 2))
    return GPUMapping(cfg, gpu, dtype, float("nan"), {}, 0, interpret=interpret)


@dataclass(frozen=True)
class _Counts:
    """What the planned kernel does, summed over its programs and loop steps."""

    tensor: float  # tensor-core FLOPs
    vector: float  # FP32-lane operations
    sfu: float  # special-function operations (exp, ...)
    streamed_bytes: float  # tile loads of the loops
    once_bytes: float  # inputs and outputs, once
    steps: int  # loop steps over all programs
    programs: int  # the largest launch
    smem: int  # shared memory of one program


def _extent(roles, var) -> int:
    """The tile extent of an index variable (1 for grid and stepped variables)."""
    r = roles.role.get(var)
    if r in ("batch", "stream_outer", "reshape", None):
        return 1
    return int(roles.block[var][1]) if var in roles.block else 1


def _step_work(einsums, blk) -> tuple[float, float, float]:
    """(tensor FLOPs, vector ops, SFU ops) of one loop step over these Einsums."""
    t_it = v_it = s_it = 0.0
    for e in einsums:
        pts = math.prod(blk(v) for v in e.iteration_space)
        facs = [f for f in product_factors(e.body).factors
                if any(isinstance(n, Access) for n in walk(f.expr))]
        if e.reducer == "sum" and len(facs) >= 2:  # a tl.dot
            t_it += 2 * pts
            v_it += pts // max(1, blk(e.reduced[0]))
            continue
        ops = expr_ops(e.body)
        sfu = sum(ops.get(k, 0) for k in SFU_FUNCS)
        s_it += pts * sfu
        v_it += pts * (sum(ops.values()) - sfu + 1)
        if e.where is not None:
            v_it += 2 * pts
    return t_it, v_it, s_it


def _step_bytes(low: Lowering, loop, einsums, blk, nbytes, scratch, scan) -> tuple[int, int]:
    """(bytes streamed per step, bytes loaded once and kept) of the tiles the loop reads."""
    roles = low.roles
    seen, streamed_bytes, invariant_bytes = set(), 0, 0
    for e in einsums:
        for acc in e.reads():
            scanned = acc.tensor in low.a.recurrences and scan
            if acc.tensor not in low.inputs and acc.tensor not in scratch and not scanned:
                continue
            key = (acc.tensor, tuple(str(i) for i in acc.indices))
            if key in seen:
                continue
            seen.add(key)
            width = nbytes if acc.tensor in low.inputs else 4  # scratch is fp32
            size = math.prod(blk(v) for idx in acc.indices for v in index_vars(idx)
                             if v in e.iteration_space)
            streamed = any(getattr(n, "name", None) == loop.var or
                           roles.role.get(getattr(n, "name", "")) in ("stream_plain", "col")
                           for idx in acc.indices for n in walk(idx))
            if streamed or scan:
                streamed_bytes += size * width  # multi-buffered by the pipeline
            else:
                invariant_bytes += size * width  # loaded once, kept in shared memory
    return streamed_bytes, invariant_bytes


def _count(low: Lowering, phases, scan: bool, cfg: Config, gpu: GPUArch, nbytes: int) -> _Counts:
    roles, full = low.roles, low.sizes
    blk = lambda v: _extent(roles, v)  # noqa: E731
    batch = math.prod(full[v.upper()] for v in roles.batch)
    row = roles.row if roles.row and roles.role[roles.row] == "row" else None
    n_row = math.ceil(full[row.upper()] / cfg.block_r) if row else 1
    tensor = vec = sfu = mem_stream = 0.0
    steps_total = smem = programs_max = 0
    last_phase = max(phases) if phases else 1
    scratch = set(low.stream_red_names) | (set(low.a.recurrences) if len(phases) > 1 else set())
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
            t_it, v_it, s_it = _step_work(einsums, blk)
            b_it, invariant = _step_bytes(low, loop, einsums, blk, nbytes, scratch, scan)
            tensor += steps * t_it
            vec += steps * v_it
            sfu += steps * s_it
            mem_stream += steps * b_it
            smem = max(smem, cfg.num_stages * b_it + invariant)
    once = sum(nbytes * math.prod(full.get(r, 1) for r in d.ranks)
               for d in list(low.c.inputs) + list(low.c.outputs))
    if scan:  # all chunks run in parallel
        programs_max = max(programs_max, steps_total)
    return _Counts(tensor, vec, sfu, mem_stream, once, steps_total, programs_max, smem)


def _registers(low: Lowering, cfg: Config, scan: bool, phases) -> float:
    """Registers per thread: fp32 accumulators and score tiles, a state tile if any."""
    roles = low.roles
    rows = _extent(roles, roles.row) if roles.row else 1
    fulls = [_extent(roles, v) for v in roles.full]
    acc_elems = rows * sum(fulls) + 2 * rows * cfg.block_c
    if scan or len(phases) > 1:  # a state tile (E x F, fp32) read into registers
        acc_elems += math.prod(sorted(fulls)[-2:]) if len(fulls) >= 2 else 0
    return acc_elems / (32 * cfg.num_warps) + 40


def _wave_efficiency(gpu: GPUArch, cfg: Config, programs: int, smem: int, regs: float) -> float:
    occ = max(1, min(gpu.smem_bytes_per_sm // max(1, smem),
                     gpu.registers_per_sm // max(1, int(regs) * 32 * cfg.num_warps),
                     gpu.max_threads_per_sm // (32 * cfg.num_warps)))
    if programs < gpu.sm_count:
        return programs / gpu.sm_count
    slots = gpu.sm_count * occ
    waves = math.ceil(programs / slots)
    return max(programs / (waves * slots), min(1.0, programs / gpu.sm_count))


def predict(prepared: Prepared, sizes: dict, cfg: Config, gpu: GPUArch, dtype: str,
            user_params: dict | None = None, facts=None) -> GPUMapping:
    """The predicted time of a prepared cascade under one mapping."""
    facts = facts or prepared.facts
    full = lowering_sizes(prepared, sizes, cfg.block_c, user_params, facts)
    low = Lowering(prepared.cascade, full, cfg, facts)
    plan = schedule(low, cfg)
    phases, scan = plan.phases, plan.scan is not None
    roles = low.roles
    n = _count(low, phases, scan, cfg, gpu, DTYPE_BYTES.get(dtype, 2))  # other dtypes price as 16-bit
    regs = _registers(low, cfg, scan, phases)
    fits = n.smem <= gpu.smem_bytes_per_block and regs <= gpu.max_registers_per_thread
    wave_eff = _wave_efficiency(gpu, cfg, n.programs, n.smem, regs) if n.programs else 1.0
    row = roles.row if roles.row and roles.role[roles.row] == "row" else None
    n_row = math.ceil(full[row.upper()] / cfg.block_r) if row else 1
    reuse = min(n_row, 8) if row else 1
    # a warpgroup (4 warps) issues MMAs of 64 rows: fewer rows than 64 per warpgroup idles it
    mma_eff = min(1.0, cfg.block_r / (16 * cfg.num_warps))
    tensor_s = n.tensor / (gpu.tensor_flops(dtype) * TC_EFFICIENCY * mma_eff)
    sfu_s = n.sfu / gpu.sfu_ops()
    vector_s = n.vector / gpu.fp32_flops() + sfu_s
    memory_s = (n.once_bytes + n.streamed_bytes / reuse) / gpu.hbm()
    busy = max(tensor_s + (1 - OVERLAP) * vector_s, vector_s, memory_s)
    if cfg.num_stages == 1:  # no software pipelining: loads do not overlap the math
        busy = tensor_s + vector_s + memory_s
    total = busy / max(wave_eff, 1e-3) + gpu.launch_overhead_s * len(phases)
    if not fits:
        total *= UNFIT_PENALTY
    breakdown = dict(mma_eff=mma_eff, tensor_s=tensor_s, vector_s=vector_s, sfu_s=sfu_s,
                     memory_s=memory_s, programs=n.programs, steps=n.steps, wave_eff=wave_eff,
                     smem=n.smem, regs=regs, fits=fits, flops=n.tensor)
    batch = math.prod(full[v.upper()] for v in roles.batch)
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
                if d.name in low.a.recurrences and d.id != e.id:
                    continue
                if d.name in low.stream_red_names and d.id != e.id:
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
    return rec is not None and rec.init.id == e.id


ROW_SAMPLES = 256  # row blocks the step count is evaluated at (beyond: evenly spaced samples)


def _steps(low: Lowering, loop, full: dict, cfg: Config, n_row: int) -> int:
    """Loop steps summed over the row blocks, under the loop's bounds (backends.gpu.bounds):
    the blocks the kernel visits. The cost does not grow with the number of row blocks: beyond
    ``ROW_SAMPLES`` the count is the mean over evenly spaced row blocks times their number."""
    bounds = loop_bounds(low, loop)
    env = bound_env(low, full)
    count = evaluate(bounds.count, env)
    used = symbols(bounds.lo) | symbols(bounds.hi)
    for lo, hi in bounds.parts:
        used |= symbols(lo) | symbols(hi)
    if used - set(env):  # bounds over grid indices: every block may be visited
        return count * n_row
    if PID not in used:
        return visited_count(bounds, env) * n_row
    rows = range(n_row) if n_row <= ROW_SAMPLES else \
        sorted({round(k * (n_row - 1) / (ROW_SAMPLES - 1)) for k in range(ROW_SAMPLES)})
    total = 0
    for r in rows:
        env[PID] = r
        total += visited_count(bounds, env)
    return total if n_row <= ROW_SAMPLES else round(total * n_row / len(rows))

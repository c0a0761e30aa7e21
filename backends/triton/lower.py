"""Generic lowering of a cascade to Triton source .

The lowering does not pattern-match attention variants. It assigns every index variable a *role*
and turns every Einsum into tile operations:

* roles: ranks that lead the inputs' layouts (``b``, ``h``) form the launch grid (one value per
  program); the last axes of the inputs and outputs (``e``, ``f``) are *full* tiles; the rank the
  reductions and recurrences walk (the key rank ``M``, or the chunk rank ``N``) is *streamed* by a
  loop; the remaining un-reduced rank (``p``, or a chunk's ``c``) is the *row* tile and the
  remaining reduced one (``m0``, ``d``) the *column* tile;
* a sum of a product of two 2-D tiles over a shared axis -> ``tl.dot``; other reductions along a
  tile axis -> ``tl.sum``/``tl.max``/``tl.min``; element-wise maps -> Triton expressions;
* recurrences along the streamed rank -> loop-carried values; reductions over the streamed rank ->
  loop-carried accumulators; a tensor needed after the reduction it depends on is finished gets a
  later loop (3-pass code gives three loops; the online-softmax rewrite makes it one);
* ``where`` predicates -> ``tl.where`` validity masks applied at reductions, plus loop bounds
  derived from the predicate by interval arithmetic, so blocks whose points are all empty are never
  visited (causal stops at the diagonal, a sliding window visits only the window's blocks);
* affine index expressions -> pointer arithmetic (``h // G``, ``n*C + c``).

Empty points follow the interpreter: reductions see only existing points, a reduction over nothing
is empty (a max/min keeps its identity as the mark, a sum whose points can all be masked a
'met a point' term beside it), ``inf - inf`` is NaN, an empty point (0 only as an online softmax's
rescale exponent, where the factor of 1 meets a zero state), and an empty output element is stored
as the output's declared empty value (0 unless ``empty``).

Reductions that do not involve the row rank (the state of linear attention) go to a first kernel
(phase 0) whose results are written to scratch memory and read by the main kernel.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from backends.gpu.layout import RowLayout
from backends.gpu.plan import Config, Lowering, Roles
from backends.gpu.schedule import Loop, schedule
from einsum_ir.errors import CascadeError
from einsum_ir.passes import Prepared

from .kernel import PhaseMode, PhaseSpec
from .host import HostModule, render_forward
from .module import header, host_function
from .names import Namespace
from .empties import refuse_reductions_over_empty_finals
from . import render
from .phase import PhaseGen
from .tile_ir import reducers_used
from .tiles import NSPLIT_ARG, increments_name, prefix_name


def _fmt(expr):
    from einsum_ir.printer import format_expr
    return format_expr(expr)


# ------------------------------------------------------------------------------ the module


@dataclass
class Generated:
    source: str
    phases: list  # [{"kernel", "grid_row", "pointers", "sizes"}]
    roles: Roles
    config: Config
    tunable: dict  # block constexpr name -> default
    host: HostModule | None = None  # the kernels' text and forward() as data (kernel programs)
    rows: RowLayout = RowLayout()  # the plan's layout of the rows and why (backends/gpu/layout.py)


def generate(prepared: Prepared, sizes: dict, config: Config | None = None, *,
             mapping_note: str = "") -> Generated:
    """The module of a prepared cascade for resolved sizes and a mapping."""
    try:
        return _generate(prepared, sizes, config or Config(), mapping_note)
    except CascadeError as exc:
        raise exc.with_source(prepared.source.source or prepared.cascade.source) from None


def _generate(prepared: Prepared, sizes, config, mapping_note):
    cascade, facts = prepared.cascade, prepared.facts
    names = Namespace()
    low = Lowering(cascade, sizes, config, facts, names.block)
    refuse_reductions_over_empty_finals(low)
    plan = schedule(low, config)
    phases, post = plan.phases, list(plan.post)
    if plan.scan is not None:  # the schedule chose the parallel scan (backends/gpu/schedule.py)
        return _generate_scan(low, names, phases, post, plan.scan, config, mapping_note, prepared)
    kernels = []
    finals_from, nan_finals = {}, set()
    phase_keys = sorted(phases)
    for ph in phase_keys:
        loops = phases[ph]
        last = ph == phase_keys[-1]
        phase_reads = {}
        if last:
            for name, ph0 in finals_from.items():
                phase_reads[name] = ph0
        store_finals = []
        if not last:
            for lp in loops:
                for kind, u in lp.units:
                    for e in (u if kind == "rec" else [u]):
                        if (e.name in low.a.recurrences or kind == "sred") \
                                and e.name not in store_finals:
                            store_finals.append(e.name)
        # a state phase made only of sums over the streamed rank splits that rank across
        # programs (grid axis 0) and adds the partial sums atomically; not where a sum does not
        # vary along a grid rank (its programs along it would each add the same slice)
        split = not last and len(loops) == 1 and all(
            kind == "sred" and u.reducer == "sum" and set(low.roles.batch) <= set(u.iteration_space)
            for kind, u in loops[0].units)
        gen, lines = _phase_gen(low, names, PhaseSpec(
            f"_phase{ph}", tuple(loops), tuple(post) if last else (), tuple(store_finals),
            phase_reads, frozenset(nan_finals), PhaseMode(has_row=last, split_stream=split)))
        nan_finals |= gen.nan_finals
        if not last:
            for name in store_finals:
                rec = low.a.recurrences.get(name)
                e = rec.update if rec else low.defs[name][0]
                axes = [i for k, i in enumerate(e.output.indices) if not rec or k != rec.axis]
                finals_from[name] = [i.name.upper() for i in axes]
        kernels.append((gen, lines, store_finals))
    return _assemble(low, names, kernels, finals_from, config, mapping_note, prepared)


def _phase_gen(low, names, spec: PhaseSpec) -> tuple:
    """The phase's generator, run; a split stream whose sum may have no point in some slices
    is not split (the atomically added partial sums keep no record of which slices had one)."""
    gen = PhaseGen(low, names, spec)
    lines = gen.run()
    if spec.mode.split_stream and any(gen.acc_facts.get(n, (None, None, None))[2] is not None
                                      for n in spec.store_finals):
        return _phase_gen(low, names, replace(spec, mode=replace(spec.mode, split_stream=False)))
    return gen, lines


def _generate_scan(low, names, phases, post, scan, config, mapping_note, prepared):
    loop = phases[1][0]
    recs = low.a.recurrences
    ranks = {}
    for name, upd, _ in scan:
        rec = recs[name]
        ranks[name] = [rec.var.upper() if k == rec.axis else i.name.upper()
                       for k, i in enumerate(upd.output.indices)]
    inc_loop = Loop(loop.level, loop.style, loop.var)
    gen_inc = PhaseGen(low, names, PhaseSpec("_phase_increments", (inc_loop,), mode=PhaseMode(
        has_row=False, parallel=True, scan_inc=tuple(scan),
        extra_ranks=tuple((increments_name(n), r) for n, r in ranks.items()))))
    lines_inc = gen_inc.run()
    main_loop = Loop(loop.level, loop.style, loop.var, (), tuple(loop.outputs))
    reads = {prefix_name(n): r for n, r in ranks.items()}
    gen = PhaseGen(low, names, PhaseSpec("_phase_steps", (main_loop,), phase_reads=reads,
                                         mode=PhaseMode(has_row=False, parallel=True,
                                                        scan_pre=frozenset(n for n, _, _ in scan))))
    lines = gen.run()
    scan_meta = [(n, ranks[n], recs[n].axis, float(recs[n].init.body.value)) for n, _, _ in scan]
    return _assemble(low, names, [(gen_inc, lines_inc, []), (gen, lines, [])], {}, config, mapping_note,
                     prepared, scan=scan_meta)


def _assemble(low: Lowering, names: Namespace, kernels, scratch, config: Config, mapping_note, prepared,
              scan=None):
    roles = low.roles
    src = header(prepared, low.roles, config, mapping_note)
    blocks = {name: size for name, size, _, _ in roles.block.values()}
    src.append("import torch")
    src.append("import triton")
    src.append("import triton.language as tl")
    src.append("")
    baked = {k: v for k, v in low.sizes.items() if low.is_baked(k)}
    src.append(f"BAKED_SIZES = {baked!r}  # sizes compiled into the kernels")
    tunable = {}
    if roles.row and roles.role[roles.row] == "row":
        tunable[roles.block[roles.row][0]] = config.block_r
    for v, r in roles.role.items():
        if r == "stream_plain":
            tunable[roles.block[v][0]] = config.block_c
    fixed_blocks = {k: v for k, v in blocks.items() if k not in tunable}
    src.append(f"FIXED_BLOCKS = {fixed_blocks!r}")
    src.append(f"CONFIG = {dict(tunable, num_warps=config.num_warps, num_stages=config.num_stages)!r}")
    src.append("")
    helpers = combines_used(lines for _, lines, _ in kernels)
    src += render.combine_lines(helpers)
    metas, first_kernel = [], len(src)
    for gen, lines, _ in kernels:
        consts = sorted(gen.sig.blocks)
        evens = dict(sorted(gen.sig.evens.items()))
        args = [names.ptr(p) for p in gen.sig.pointers]
        for p in gen.sig.pointers:
            args += gen.sig.strides[p]
        args += [names.keyed(("nsplit",), "NSPLIT") if s == NSPLIT_ARG else names.size(s)
                 for s in gen.sig.sizes]
        args += [f"{k}: tl.constexpr" for k in consts]
        args += [f"{names.even(k)}: tl.constexpr" for k in evens]
        src.append("@triton.jit")
        src.append(f"def {gen.spec.name}(")
        for a in args:
            src.append(f"    {a},")
        src.append("):")
        src += ["    " + line if line else "" for line in render.lines(lines)]
        src.append("")
        src.append("")
        split = None
        if gen.mode.split_stream:
            lp = gen.spec.loops[0]
            if lp.style == "plain":
                split = (lp.var.upper(), roles.block[lp.var][0])
            else:
                sp = low.split_outer_of(lp.var.upper())
                split = (sp.rank, next(roles.block[v][0] for v in roles.block if v.upper() == sp.inner))
        metas.append({"split": split, "kernel": gen.spec.name, "pointers": list(gen.sig.pointers),
                      "args": _typed_args(low, names, gen, consts, evens),
                      "sizes": list(gen.sig.sizes), "consts": consts, "evens": evens,
                      "row": roles.row if gen.mode.has_row and roles.row and roles.role[roles.row] == "row" else None})
    if scan:
        for m in metas:
            split = low.split_outer_of(gen_loop_var(kernels).upper())
            m["parallel"] = (split.rank, split.inner)
        metas[0]["scan"] = scan
    host = host_function(low, names, metas, scratch, nsplit_arg=NSPLIT_ARG,
                         increments=increments_name, prefix=prefix_name)
    module = HostModule(tuple(src[first_kernel:]), baked, fixed_blocks,
                        dict(tunable, num_warps=config.num_warps, num_stages=config.num_stages),
                        host, tuple(helpers))
    src += render_forward(host)
    return Generated("\n".join(src) + "\n", metas, roles, config, tunable, module)


def combines_used(kernels_lines) -> list[str]:
    """The reducers whose jitted combine functions the kernels call (``tl.reduce`` of a
    product): the module defines each once, only where used."""
    used = set().union(*(reducers_used(lines) for lines in kernels_lines))
    return sorted(used & set(render.COMBINE))


def _typed_args(low: Lowering, names: Namespace, gen, consts, evens) -> list:
    """The kernel's parameters as (identifier, kind, detail): ``ptr`` (detail: the tensor has the
    inputs' dtype, else fp32 scratch), ``stride`` (detail: the last axis), ``size``, ``block``,
    ``even``; what an ahead-of-time compile needs to specialise them."""
    out = [(names.ptr(p), "ptr", p in low.inputs or p in low.outputs) for p in gen.sig.pointers]
    for p in gen.sig.pointers:
        strides = gen.sig.strides[p]
        out += [(x, "stride", k == len(strides) - 1) for k, x in enumerate(strides)]
    out += [(names.keyed(("nsplit",), "NSPLIT") if s == NSPLIT_ARG else names.size(s), "size",
             None) for s in gen.sig.sizes]
    out += [(k, "block", None) for k in consts]
    out += [(names.even(k), "even", None) for k in evens]
    return out


def gen_loop_var(kernels):
    return kernels[0][0].spec.loops[0].var

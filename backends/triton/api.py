"""Python API of the Triton backend: compile a cascade once, call it on torch tensors.

    from backends.triton import compile_cascade
    attn = compile_cascade("examples/attention/causal.ein")
    out = attn(Q=q, K=k, V=v)["AV"]

Rank sizes come from the tensors' shapes; parameters (``W``, ``G``, ``C``, ...) and the mapping
(``block_r``, ``block_c``, ``num_warps``, ``num_stages``) from keyword arguments. A softmax written
in 3-pass (or 2-pass) form goes through the online-softmax rewrite first, so it runs as one fused
loop. Kernels are generated once per (cascade, compile-time sizes, mapping) and cached in memory
and on disk (``$CASCADE_CACHE`` or ``~/.cache/cascade/triton``).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from backends.gpu.layout import RowLayout, lay_out
from backends.gpu.plan import Config, lowering_sizes, row_ranks
from einsum_ir import Cascade, load, resolve_sizes
from einsum_ir.errors import CascadeError
from einsum_ir.passes import Prepared, prepare
from einsum_ir.sizes import real_params
from einsum_ir.support import refuse_infinite_factors

from . import aot
from .gathers import check_gather_indices
from .lower import Generated, generate
from .strategies import TILED, Attempt, Resort, Strategy, Tried, strategies

_MODULES: dict = {}


def cache_dir() -> Path:
    root = os.environ.get("CASCADE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                           "cascade")
    path = Path(root) / "triton"
    path.mkdir(parents=True, exist_ok=True)
    return path


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def prepare_for(cascade: Cascade, *, rewrite: bool = True, block_c: int | None = None) -> Prepared:
    """The one pipeline run of a compile: the online-softmax rewrite (tile ``block_c``) where it
    applies, or the cascade as written (``rewrite=False``)."""
    refuse_infinite_factors(cascade, "Triton backend")
    return prepare(cascade, "one-pass" if rewrite else "as-written", tile_size=block_c)


def choose_checked(prepared: Prepared, sizes: dict, *, dtype: str, arch=None,
                   overrides: dict | None = None, interpret: bool = False,
                   check_spills: bool = False, user_params: dict | None = None):
    """The GPU cost model's mapping; with ``check_spills`` the best candidates are compiled ahead
    of time for the target (Triton's ptxas, no GPU needed) and the fastest predicted one whose
    kernels spill no registers is taken."""
    from backends.gpu.mapping import choose_mapping, rank_mappings

    if not check_spills or interpret or not aot.available():
        return choose_mapping(prepared, sizes, dtype=dtype, arch=arch, overrides=overrides,
                              interpret=interpret, user_params=user_params)
    ranked = rank_mappings(prepared, sizes, dtype=dtype, arch=arch, overrides=overrides,
                           user_params=user_params)
    return _without_spills(prepared, sizes, dtype, ranked, user_params) or ranked[0]


def _without_spills(prepared, sizes, dtype, ranked, user_params, tries: int = 6):
    """The first ranked candidate that fits and whose compiled kernels use no spill stack."""
    fits = [m for m in ranked if m.breakdown.get("fits")]
    for m in fits[:tries]:
        cc = 80 if m.arch.tensor_core_flops_per_clk_per_sm.get("float16", 0) <= 2048 else 90
        try:
            gen = generate_for(prepared, sizes, m.config, user_params=user_params)
            builds = aot.compile_source(gen, dtype, cc)
        except CascadeError:
            continue
        spilled = max((b.stack_bytes or 0) for b in builds)
        checked = replace(m, breakdown={**m.breakdown, "spill_bytes": spilled,
                                        "registers": max((b.registers or 0) for b in builds)})
        if spilled == 0:
            return checked
    return None


def mapping_note(prepared: Prepared, plan_note: str) -> str:
    """The header's mapping lines: the mapping, and why a pass of the pipeline did not apply."""
    return "\n".join([plan_note, *prepared.notes()] if plan_note else prepared.notes())


def generate_for(prepared: Prepared, sizes: dict, config: Config, *,
                 user_params: dict | None = None, mapping_note: str = "",
                 rows_on_grid: bool = False, stored: frozenset = frozenset()) -> Generated:
    """Lowers a prepared cascade for concrete sizes and a mapping. With ``rows_on_grid`` (a last
    resort, once neither one kernel with tiled rows nor a cut into several lowers), rows go on
    the grid as the plan's row layout says (backends/gpu/layout.py): those past the first where
    the cascade has several row ranks (``Config.grid_rows``, decided up front); all of them, one
    per program, where a value over the row tile would span three tile ranks (``sum[m2]
    S[p,m2] > S[p,m]``, ``Config.row_grid``, on the emitter's ``Limit.TILE_RANKS`` refusal).
    ``stored``: the inputs that an earlier kernel of a program wrote (``Config.stored``)."""
    full = lowering_sizes(prepared, sizes, config.block_c, user_params)
    if stored:
        config = replace(config, stored=frozenset(stored))
    if not rows_on_grid:
        return generate(prepared, full, config, mapping_note=mapping_note)

    def lower(rows: RowLayout) -> Generated:
        gen = generate(prepared, full, rows.config(config), mapping_note=mapping_note + rows.note)
        return replace(gen, rows=rows)

    return lay_out(lower, RowLayout.up_front(row_ranks(prepared, full, config)))


def load_module(source: str, name: str = "kernel"):
    """Imports generated source from a file (triton.jit needs the source on disk)."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    if digest in _MODULES:
        return _MODULES[digest]
    path = cache_dir() / f"{name}_{digest}.py"
    if not path.exists() or path.read_text() != source:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(f"cascade_kernel_{digest}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    _MODULES[digest] = module
    return module


@dataclass
class CompiledCascade:
    """A cascade compiled for the Triton backend; call it with tensors by name."""

    cascade: Cascade
    params: dict
    config: dict
    rewrite: bool = True
    arch: str | None = None
    check_spills: bool = False
    multi: bool = True  # where one kernel program refuses, several (backends/triton/program.py)
    # map for Triton's interpreter or not; None: as TRITON_INTERPRET says, for the device's GPU
    # (given, the cost model maps for ``arch`` or H100, as ``cascade compile`` does)
    interpret: bool | None = None
    # lower only in this layout (backends/triton/strategies.py): a group of a kernel program
    # in its program's, or a last resort asked for (``LAST_RESORTS``); None: every one in turn
    resort: Resort | None = None
    stored: frozenset = frozenset()  # inputs an earlier kernel wrote, in fp32 (Config.stored)

    def __post_init__(self):
        self.prepared = prepare_for(self.cascade, rewrite=self.rewrite,
                                    block_c=self.config.get("block_c"))
        self._cache: dict = {}
        self._shrink: dict = {}
        self._programs: dict = {}  # (sizes, dtype, resort) -> Program, for cascades cut into groups
        self._tried: dict = {}  # (sizes, dtype) -> Tried: the strategies a compile attempted
        self.last: Generated | None = None
        self.last_plan = None
        self.tried = Tried()  # what the last compile attempted, in order, and why each refused

    def __repr__(self) -> str:
        tried = f"; {self.tried.describe()}" if self.tried.attempts else ""
        return f"CompiledCascade({self.cascade.name}{tried})"

    # the sizes a call implies
    def sizes_of(self, tensors: dict) -> dict:
        sizes = {}
        names = {d.name for d in self.cascade.inputs}
        missing = sorted(names - set(tensors))
        if missing:
            raise CascadeError(f"missing input tensor {missing[0]}",
                               hint="inputs: " + ", ".join(d.name for d in self.cascade.inputs))
        extra = sorted(set(tensors) - names)
        if extra:
            raise CascadeError(f"{extra[0]} is not an input of {self.cascade.name}",
                               hint="inputs: " + ", ".join(d.name for d in self.cascade.inputs))
        for d in self.cascade.inputs:
            t = tensors[d.name]
            if t.dim() != len(d.axes):
                raise CascadeError(f"{d.name} must have {len(d.axes)} dimensions "
                                   f"({', '.join(d.ranks)}), got shape {tuple(t.shape)}")
            for rank, n in zip(d.ranks, t.shape, strict=True):
                if rank in sizes and sizes[rank] != n:
                    raise CascadeError(f"{d.name}: rank {rank} is {sizes[rank]} elsewhere, "
                                       f"got {n}")
                sizes[rank] = int(n)
        sizes.update(self.params)
        return resolve_sizes(self.cascade, {k: v for k, v in sizes.items()
                                            if self.cascade.size_decl(k) is not None})

    def plan(self, sizes: dict, dtype: str):
        """The mapping (tiles, warps, stages) for these sizes, from the GPU cost model."""
        arch = self.arch
        if arch is None and self.interpret is None and not interpreting():
            try:
                import torch

                if torch.cuda.is_available():
                    from backends.gpu.arch import detect_arch_name

                    arch = detect_arch_name(torch.cuda.get_device_name())
            except ImportError:
                pass
        return choose_checked(self.prepared, sizes, dtype=dtype, arch=arch,
                              overrides=self.config,
                              interpret=interpreting() if self.interpret is None else self.interpret,
                              check_spills=self.check_spills, user_params=self.params)

    def kernel(self, sizes: dict, dtype: str = "float16", shrink: int = 0):
        """The generated module for these sizes (``(Generated, module)``), or, where the cascade
        does not fuse into one kernel program, its multi-kernel :class:`Program` (twice: it is
        both the source and the callable). The strategies are tried in their declared order
        (``strategies.STRATEGIES``), each attempt recorded in ``tried``; a later call at the same
        sizes starts at the one that lowered."""
        key = (tuple(sorted(sizes.items())), dtype)
        order = strategies(self.resort, self.multi)
        known = self._tried.get(key, Tried())
        start = order.index(known.lowered) if known.lowered in order else 0
        tried = Tried(known.attempts[:-1]) if start else Tried()
        for strategy in order[start:]:
            try:
                result = self._lower(strategy, sizes, dtype, shrink, tried)
            except CascadeError as refusal:
                tried = tried.then(Attempt(strategy, refusal))
                continue
            self.tried = self._tried[key] = tried.then(Attempt(strategy))
            return result
        self.tried = tried
        raise tried.final_refusal() from None

    def _lower(self, strategy: Strategy, sizes: dict, dtype: str, shrink: int, tried: Tried):
        if not strategy.program:
            return self._single(sizes, dtype, shrink, strategy.resort)
        key = (tuple(sorted(sizes.items())), dtype, strategy.resort)
        if key not in self._programs:
            refusal = tried.refusal_of(Strategy(strategy.resort, program=False))
            self._programs[key] = self._program(sizes, dtype, refusal, strategy.resort)
        program = self._programs[key]
        self.last, self.last_plan = program, program.plan
        return program, program

    def program(self, sizes: dict, dtype: str, refusal: CascadeError):
        """The kernel program for these sizes, where one kernel program gave ``refusal``."""
        return self._program(sizes, dtype, refusal, self.resort or TILED)

    def _program(self, sizes: dict, dtype: str, refusal: CascadeError, resort: Resort):
        from backends.gpu.reassociate import split_reductions

        from .program import build_program, group_sizes

        config = resort.config(Config(**{k: v for k, v in self.config.items()}))

        def compile_group(sub: Cascade, stored: frozenset) -> CompiledCascade:
            params = {k: v for k, v in {**sizes, **self.params}.items()
                      if (d := sub.size_decl(k)) is not None and not d.index_of}
            return CompiledCascade(sub, params, self.config, self.rewrite, self.arch,
                                   self.check_spills, multi=False, interpret=self.interpret,
                                   resort=resort, stored=stored)

        def probe(fn: CompiledCascade) -> None:  # the default mapping lowers: cheap, no search
            try:
                generate_for(fn.prepared, group_sizes(fn.cascade, sizes), config,
                             user_params=fn.params, rows_on_grid=resort.rows_on_grid,
                             stored=fn.stored)
            except CascadeError:
                raise
            except Exception as exc:  # a defect of the lowering on this group: not this cut
                raise CascadeError(f"the Triton lowering failed on {fn.cascade.name} "
                                   f"({type(exc).__name__}: {exc})") from None

        return build_program(split_reductions(self.cascade), sizes, dtype, compile_group, probe,
                             refusal)

    def _single(self, sizes: dict, dtype: str, shrink: int, resort: Resort):
        plan = self.plan(sizes, dtype)
        cfg = resort.config(plan.config)
        if shrink:  # the GPU refused the launch (shared memory): fewer stages, then smaller tiles
            cfg = _shrunk(cfg, shrink)
        plan = replace(plan, config=cfg)
        key = (tuple(sorted(sizes.items())), cfg.block_r, cfg.block_c, cfg.num_warps,
               cfg.num_stages, cfg.tile_ranks, resort.rows_on_grid, dtype)
        if key not in self._cache:
            gen = generate_for(self.prepared, sizes, cfg, user_params=self.params,
                               mapping_note=mapping_note(self.prepared,
                                                         plan.describe() + resort.note),
                               rows_on_grid=resort.rows_on_grid, stored=self.stored)
            module = load_module(gen.source, self.cascade.name)
            self._cache[key] = (gen, module, plan)
        gen, module, plan = self._cache[key]
        self.last, self.last_plan = gen, plan
        return gen, module

    def source(self, **sizes_or_params) -> str:
        sizes = resolve_sizes(self.cascade, {**self.params, **sizes_or_params})
        gen, _ = self.kernel(sizes)
        return gen.source

    def __call__(self, **tensors):
        import torch
        from triton.runtime.errors import OutOfResources

        sizes = self.sizes_of(tensors)
        first = next(iter(tensors.values()), None)  # a cascade may have no input
        dtype = "float32" if first is None else str(first.dtype).replace("torch.", "")
        if first is not None and first.device.type == "cpu" and not interpreting():
            raise CascadeError("the tensors are on the CPU: move them to a GPU, or set "
                               "TRITON_INTERPRET=1 (before importing triton) to run the kernels "
                               "in Triton's interpreter")
        check_gather_indices(self.cascade, sizes, tensors)
        ins = {k: v for k, v in tensors.items()}
        shrink = self._shrink.get((tuple(sorted(sizes.items())), dtype), 0)
        while True:
            _, module = self.kernel(sizes, dtype, shrink)
            try:
                with torch.no_grad():
                    return module.forward(**ins)
            except OutOfResources:  # the model misjudged the limits: a smaller launch
                if shrink >= 6:
                    raise
                shrink += 1
                self._shrink[(tuple(sorted(sizes.items())), dtype)] = shrink


def _shrunk(cfg: Config, step: int) -> Config:
    """The step-th fallback after a refused launch: fewer stages, then halved tiles."""
    stages, block_c, block_r = cfg.num_stages, cfg.block_c, cfg.block_r
    for _ in range(step):
        if stages > 1:
            stages -= 1
        elif block_c > 16:
            block_c //= 2
        elif block_r > 16:
            block_r //= 2
    return replace(cfg, block_r=block_r, block_c=block_c, num_stages=stages)


def compile_cascade(cascade_or_path, *, block_r: int | None = None, block_c: int | None = None,
                    num_warps: int | None = None, num_stages: int | None = None,
                    rewrite: bool = True, arch: str | None = None, check_spills: bool = False,
                    **params) -> CompiledCascade:
    """Compiles a cascade (an IR object or a ``.ein`` path) into a callable on torch tensors.

    ``params`` set parameters and ranks that the tensors do not determine (``W=256``, ``G=8``,
    ``C=64``); ``block_r``/``block_c``/``num_warps``/``num_stages`` override the mapping the GPU
    cost model chooses (``arch``: ``h100``, ``h200``, ``a100`` or a YAML path; default from the
    device, else H100). ``check_spills`` compiles the best candidate mappings ahead of time and
    takes the fastest predicted one that spills no registers (a few seconds, once per shape).
    """
    cascade = load(cascade_or_path) if isinstance(cascade_or_path, (str, os.PathLike)) \
        else cascade_or_path
    refuse_infinite_factors(cascade, "Triton backend")
    known = {d.name for d in cascade.sizes}
    for k in params:
        if k not in known:
            raise CascadeError(f"{k}={params[k]}: no rank or parameter named {k!r} in "
                               f"{cascade.name}", hint="known names: " + ", ".join(sorted(known)))
    config = {k: v for k, v in dict(block_r=block_r, block_c=block_c, num_warps=num_warps,
                                    num_stages=num_stages).items() if v is not None}
    real = real_params(cascade)  # real parameters keep their value; sizes are integers
    values = {k: float(v) if k in real else int(v) for k, v in params.items()}
    return CompiledCascade(cascade, values, config, rewrite, arch, check_spills)

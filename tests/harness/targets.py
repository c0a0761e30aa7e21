"""The one place the harness calls the back ends. Repoint these functions when the Triton backend
or the mapper changes its entry points; nothing else in the harness imports a backend.

* :func:`try_triton` compiles a cascade with ``backends.triton.compile_cascade``, runs it on fp32
  torch tensors (Triton's interpreter without a GPU) and compares with the float64 interpreter.
* :func:`simulate` maps a cascade with ``mapper.search.search`` on a built-in architecture and
  returns the numbers the invariants need as plain :class:`SimFacts`.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from dataclasses import dataclass, replace

import numpy as np

from einsum_ir import Cascade, evaluate, random_inputs, resolve_sizes
from einsum_ir.errors import CascadeError

from . import outcomes
from .outcomes import Outcome

TIMEOUT_S = 60  # a call that takes longer is a failure (the mapper has hung on small inputs)
MEMORY_BYTES = 1 << 30  # so is one that grows the process by more (the mapper has taken 12 GB)


class Timeout(BaseException):
    """A back end took longer than :data:`TIMEOUT_S` on a small cascade."""


class OutOfMemory(BaseException):
    """A back end grew the process by more than :data:`MEMORY_BYTES` on a small cascade.

    Both are BaseExceptions so that a back end's own ``except Exception`` cannot swallow them."""


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _watch(stop: threading.Event, limit: int) -> None:
    while not stop.wait(0.05):
        if _rss() > limit:
            os.kill(os.getpid(), signal.SIGUSR1)
            return


@contextlib.contextmanager
def deadline(seconds: float, memory: int | None = None):
    """Raises Timeout or OutOfMemory in the calling (main) thread when the call inside runs too
    long or grows too much; does nothing outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    memory = MEMORY_BYTES if memory is None else memory

    def on_time(signum, frame):
        raise Timeout(f"no answer within {seconds:g} s")

    def on_memory(signum, frame):
        raise OutOfMemory(f"grew by more than {memory / 2**30:g} GiB")

    old = signal.signal(signal.SIGALRM, on_time), signal.signal(signal.SIGUSR1, on_memory)
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(stop, _rss() + memory), daemon=True)
    watcher.start()
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        stop.set()
        watcher.join()
        signal.signal(signal.SIGALRM, old[0])
        signal.signal(signal.SIGUSR1, old[1])


def _refusal(exc: CascadeError) -> Outcome:
    if exc.span is None or not exc.message.strip():
        return outcomes.unlocated(exc.message)
    return outcomes.refused(exc.message)


# ------------------------------------------------------------------------------------ Triton


def _import_triton() -> None:
    if not os.environ.get("TRITON_INTERPRET"):
        import torch

        if not torch.cuda.is_available():
            os.environ["TRITON_INTERPRET"] = "1"
    import triton  # noqa: F401

    import backends.triton  # noqa: F401


def _run_triton(cascade: Cascade, inputs: dict, sizes: dict, lowering: str | None) -> dict:
    import torch

    from backends.triton import compile_cascade
    from backends.triton.strategies import LAST_RESORTS

    device = "cuda" if torch.cuda.is_available() else "cpu"
    kernel = compile_cascade(cascade, **sizes)
    if lowering:  # only a last resort, asked for (backends/triton/strategies.py)
        kernel = replace(kernel, resort=LAST_RESORTS[lowering])
    tensors = {k: torch.tensor(v, dtype=torch.float32, device=device) for k, v in inputs.items()}
    return {k: v.detach().cpu().numpy().astype(np.float64) for k, v in kernel(**tensors).items()}


def try_triton(cascade: Cascade, sizes: dict | None = None, seed: int = 0,
               lowering: str | None = None) -> Outcome:
    """MATCHED, REFUSED (located), UNLOCATED, MISMATCH or CRASH; ``lowering`` starts the
    Triton lowering in one of its last resorts (``row_grid``, ``tiles3d``)."""
    from .compare import compare

    sizes = dict(sizes or {})
    try:
        full = resolve_sizes(cascade, sizes)
        inputs = random_inputs(cascade, full, seed)
        ref = evaluate(cascade, inputs, sizes)
        ref32 = evaluate(cascade, {k: v.astype(np.float32) for k, v in inputs.items()}, sizes,
                         dtype=np.float32)
    except Exception as exc:  # the interpreter must run every verified cascade
        return outcomes.crash(RuntimeError(f"interpreter: {type(exc).__name__}: {exc}"))
    _import_triton()  # outside the deadline: the first import takes long on a loaded machine
    try:
        with deadline(TIMEOUT_S):
            got = _run_triton(cascade, inputs, sizes, lowering)
    except CascadeError as exc:
        return _refusal(exc)
    except (Timeout, OutOfMemory) as exc:
        return outcomes.resource_limit(exc)
    except Exception as exc:
        return outcomes.crash(exc)
    return compare(got, ref, ref32)


# ------------------------------------------------------------------------------------ simulator


@dataclass(frozen=True)
class EinsumFacts:
    key: str
    unit: str
    points: int
    ops: dict  # op class -> count


@dataclass(frozen=True)
class UnitFacts:
    pes: int
    cycles: dict  # op class -> cycles per op on one PE
    energy_pJ: dict  # op class -> pJ per op


@dataclass(frozen=True)
class SimFacts:
    form: str  # "as written" or the rewritten form the mapper chose
    cascade: Cascade  # the cascade in that form
    sizes: dict  # the problem sizes the report is for
    cycles: float
    energy_pJ: float
    compute_energy_pJ: float
    numbers: tuple  # (name, value) of every number in the report
    einsums: tuple  # EinsumFacts
    units: dict  # unit name -> UnitFacts


def _numbers(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{prefix}[{i}]")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield prefix, float(obj)


def simulate(cascade: Cascade, arch_name: str, sizes: dict | None = None) -> SimFacts:
    """The best latency mapping's report, as facts; raises CascadeError on a refusal."""
    from mapper.search import search
    from simulator.arch import resolve_arch

    arch = resolve_arch(arch_name)
    with deadline(TIMEOUT_S):
        result = search(cascade, arch, dict(sizes or {}), top=1)
    _, report = result.best[0]
    form_cascade = cascade
    if report.form and report.form != "as written":
        from einsum_ir.passes import online_softmax

        form_cascade = online_softmax(cascade)
    data = report.to_json()
    data.pop("mapping", None)
    units = {}
    for unit in arch.units:
        energy = {op: sum(k * arch.actions[a] for a, k in cost.actions.items())
                  for op, cost in unit.ops.items()}
        units[unit.name] = UnitFacts(unit.pes, {op: c.cycles for op, c in unit.ops.items()}, energy)
    einsums = tuple(EinsumFacts(e.key, e.unit, int(e.points), dict(e.ops)) for e in report.einsums)
    return SimFacts(report.form or "as written", form_cascade, dict(report.sizes),
                    float(report.cycles), float(report.energy_pJ),
                    float(report.energy_breakdown.get("compute", 0.0)),
                    tuple(_numbers(data)), einsums, units)


def try_simulator(cascade: Cascade, arch_name: str, sizes: dict | None = None) -> Outcome:
    """MAPPED_OK, REFUSED, INVARIANT_VIOLATED or CRASH."""
    from .invariants import check

    try:
        facts = simulate(cascade, arch_name, sizes)
    except CascadeError as exc:  # a clear refusal says what is wrong; no location needed
        return outcomes.refused(exc.message) if exc.message.strip() else outcomes.unlocated("")
    except (Timeout, OutOfMemory) as exc:
        return outcomes.resource_limit(exc)
    except Exception as exc:
        return outcomes.crash(exc)
    dense = None
    if any(e.where is not None for e in cascade.einsums):
        try:
            dense = simulate(strip_masks(cascade), arch_name, sizes)
        except (Exception, Timeout, OutOfMemory):  # the unmasked cascade is only a yardstick
            dense = None
    return check(facts, dense)


def strip_masks(cascade: Cascade) -> Cascade:
    from dataclasses import replace

    return cascade.replace_einsums(replace(e, where=None) for e in cascade.einsums)

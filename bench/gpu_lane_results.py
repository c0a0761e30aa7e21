"""The GPU lane's result files: one JSON document rewritten after every record (so a crash or a
timeout keeps everything measured so far) and the markdown summary rendered from it.

The JSON is ``{"meta": {...}, "records": [...]}``. Every record has ``step`` and ``item`` (what it
measured, unique within the step) and ``status`` (``ok``, ``failed``, ``timeout``, ``crashed``,
``skipped: budget`` ...). Forward and backward records carry all of ``TIMING_KEYS``.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

TIMING_KEYS = ("variant", "seq_len", "head_dim", "dtype", "ours_ms", "sdpa_ms", "flex_ms",
               "eager_ms", "ours_tflops", "predicted_ms", "device", "error")


def device_slug(device: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in device).strip("-").lower() or "device"


def results_stem(out_dir, device: str) -> Path:
    return Path(out_dir) / f"{device_slug(device)}-{_dt.date.today().isoformat()}"


def timing_record(rec: dict) -> dict:
    """A forward or backward record with every key of the schema (None where not measured)."""
    return {**{k: None for k in TIMING_KEYS}, **rec}


@dataclass(frozen=True)
class Results:
    """The lane's JSON document at ``path``; its markdown summary is next to it."""

    path: Path

    def start(self, meta: dict) -> None:
        self._write({"meta": meta, "records": []})

    def read(self) -> dict:
        return json.loads(self.path.read_text())

    def records(self, step: str | None = None) -> list[dict]:
        return [r for r in self.read()["records"] if step is None or r.get("step") == step]

    def done_items(self, step: str) -> set[str]:
        return {r["item"] for r in self.records(step) if "item" in r}

    def append(self, rec: dict) -> None:
        doc = self.read()
        doc["records"].append(rec)
        self._write(doc)

    def update_meta(self, **values) -> None:
        doc = self.read()
        doc["meta"].update(values)
        self._write(doc)

    def _write(self, doc: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, indent=1, default=str))
        os.replace(tmp, self.path)

    def write_markdown(self) -> Path:
        md = self.path.with_suffix(".md")
        md.write_text(render(self.read()))
        return md


def _f(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _ratio(rec: dict, key: str) -> str:
    a, b = rec.get(key), rec.get("ours_ms")
    return f"{a / b:.2f}x" if a and b else "-"


def _note(rec: dict) -> str:
    text = rec.get("error") or rec.get("ours_note") or ""
    if rec.get("baseline_errors"):
        failed = "failed: " + ", ".join(sorted(rec["baseline_errors"]))
        text = f"{text}; {failed}" if text else failed
    if rec.get("status", "ok") not in ("ok", "failed"):
        text = f"{rec['status']}: {text}" if text else rec["status"]
    return text.replace("|", "/").replace("\n", " ")[:160]


def forward_table(records: list[dict]) -> list[str]:
    """Our time, the prediction beside it, and each baseline's time over ours (above 1: we are
    faster)."""
    lines = ["| variant | N | D | ours ms | TFLOP/s | predicted ms | measured / predicted | "
             "vs SDPA flash | vs cuDNN | vs Flex | vs eager | first call s | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        if r.get("variant") in (None, "compile_time"):
            continue
        measured, predicted = r.get("ours_ms"), r.get("predicted_ms")
        over = f"{measured / predicted:.2f}" if measured and predicted else "-"
        lines.append(f"| {r['variant']} | {r['seq_len']} | {r['head_dim']} | {_f(measured)} | "
                     f"{_f(r.get('ours_tflops'), 1)} | {_f(predicted)} | {over} | "
                     f"{_ratio(r, 'sdpa_ms')} | {_ratio(r, 'sdpa_cudnn_ms')} | "
                     f"{_ratio(r, 'flex_ms')} | {_ratio(r, 'eager_ms')} | "
                     f"{_f(r.get('ours_first_call_s'), 2)} | {_note(r)} |")
    return lines


# The targets for the backward alone (reported by the benchmark, never asserted):
# baseline -> the least ratio (baseline time / our time), by backward family.
BACKWARD_TARGETS = {"dense": (("sdpa", 0.9),), "causal": (("sdpa", 0.9), ("flex", 1.0)),
                    "sliding": (("flex", 1.0),), "linear": (("eager", 1.0),),
                    "linear_causal": (("eager", 1.0),)}
BASELINE_LABELS = {"sdpa": "SDPA flash", "sdpa_cudnn": "cuDNN", "sdpa_efficient": "SDPA mem-eff",
                   "flex": "FlexAttention", "eager": "PyTorch"}


def backward_kind(variant: str) -> str | None:
    """The backward family of a forward-table variant (``sliding1024`` -> ``sliding``), or None."""
    kind = "sliding" if variant.startswith("sliding") else variant
    return kind if kind in BACKWARD_TARGETS else None


def backward_ratios(rec: dict) -> dict:
    """Baseline time / our time of the backward alone (``bwd_vs_<baseline>``) and of
    forward+backward (``fwdbwd_vs_<baseline>``), for every baseline the record measured (None
    where either time is missing)."""
    out = {}
    for b in (b for b in BASELINE_LABELS if f"{b}_ms" in rec):
        for phase, suffix in (("bwd", "_ms"), ("fwdbwd", "_fwdbwd_ms")):
            a, ours = rec.get(f"{b}{suffix}"), rec.get(f"ours{suffix}")
            out[f"{phase}_vs_{b}"] = a / ours if a and ours else None
    return out


@dataclass(frozen=True)
class Verdict:
    """One target of a record: ``met`` is None where either time is missing."""

    baseline: str
    least: float
    ratio: float | None
    met: bool | None


def target_verdicts(rec: dict) -> list[Verdict]:
    ratios = rec.get("ratios") or backward_ratios(rec)
    out = []
    for baseline, least in BACKWARD_TARGETS.get(backward_kind(rec["variant"]) or "", ()):
        r = ratios.get(f"bwd_vs_{baseline}")
        out.append(Verdict(baseline, least, r, None if r is None else r >= least))
    return out


def _x(r) -> str:
    return "-" if r is None else f"{r:.2f}x"


def _verdicts(rec: dict) -> str:
    return "; ".join(f"{BASELINE_LABELS[v.baseline]} >= {v.least}x: "
                     + {True: "met", False: "below", None: "not measured"}[v.met]
                     for v in target_verdicts(rec))


def _backward_note(rec: dict) -> str:
    engine = rec.get("ours_backward_engine") or ""
    text = _note(rec)
    if engine and not engine.startswith("Triton kernels"):
        text = f"our backward: {engine}" + (f"; {text}" if text else "")
    return text.replace("|", "/").replace("\n", " ")[:220]


def backward_table(records: list[dict]) -> list[str]:
    """Our backward and forward+backward times, each baseline's time over ours (above 1: we are
    faster), the backward's compile time, and the issue's targets."""
    lines = ["| variant | N | D | ours bwd ms | ours fwd+bwd ms | ours bwd compile s | "
             "bwd vs SDPA flash | vs cuDNN | vs Flex | vs PyTorch | fwd+bwd vs SDPA flash / Flex / "
             "PyTorch | Flex bwd compile s | targets (bwd) | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    counts = {True: 0, False: 0, None: 0}
    for r in records:
        if r.get("variant") is None:
            continue
        ratios = r.get("ratios") or backward_ratios(r)
        for v in target_verdicts(r):
            counts[v.met] += 1
        fb = " / ".join(_x(ratios.get(f"fwdbwd_vs_{b}")) for b in ("sdpa", "flex", "eager"))
        lines.append(f"| {r['variant']} | {r['seq_len']} | {r['head_dim']} | {_f(r.get('ours_ms'))} | "
                     f"{_f(r.get('ours_fwdbwd_ms'))} | {_f(r.get('ours_bwd_compile_s'), 2)} | "
                     f"{_x(ratios.get('bwd_vs_sdpa'))} | {_x(ratios.get('bwd_vs_sdpa_cudnn'))} | "
                     f"{_x(ratios.get('bwd_vs_flex'))} | {_x(ratios.get('bwd_vs_eager'))} | {fb} | "
                     f"{_f(r.get('flex_bwd_compile_s'), 2)} | {_verdicts(r) or '-'} | "
                     f"{_backward_note(r)} |")
    lines += ["", f"Targets of the backward alone: {counts[True]} met, {counts[False]} below, "
              f"{counts[None]} not measured (reported, not asserted). Ratios are baseline time / "
              "our time; the compile time is the first backward call minus a warm one."]
    return lines


def _correctness(records: list[dict]) -> list[str]:
    counts: dict = {}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    lines = [", ".join(f"{n} {status}" for status, n in sorted(counts.items())) + "."]
    for r in records:
        if r["status"] not in ("passed", "skipped"):
            last = (r.get("error") or "").strip().splitlines()[-1:] or [""]
            lines.append(f"- `{r['item']}`: {r['status']}: {last[0][:200]}")
    return lines


def _compile(records: list[dict]) -> list[str]:
    return [f"- causal, N={r['seq_len']}, D={r['head_dim']}: ours {_f(r.get('ours_first_call_s'), 2)} s, "
            f"FlexAttention ({r.get('flex_backend', '-')}) {_f(r.get('flex_first_call_s'), 2)} s"
            + (f" ({_note(r)})" if _note(r) else "") for r in records]


def _aot(records: list[dict]) -> list[str]:
    lines = ["| kernel | mapping of | sm | kernels | tensor cores | registers | spill bytes | "
             "shared KiB | result |", "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        builds = r.get("builds") or []
        regs = ", ".join(str(b.get("registers")) for b in builds) or "-"
        stack = ", ".join(str(b.get("stack_bytes")) for b in builds) or "-"
        shared = ", ".join(f"{b.get('shared_bytes', 0) / 1024:.0f}" for b in builds) or "-"
        cores = ", ".join("wgmma" if b.get("uses_wgmma") else "mma" if b.get("uses_mma") else "none"
                          for b in builds) or "-"
        lines.append(f"| {r.get('variant', r['item'])} N={r.get('seq_len')} D={r.get('head_dim')} | "
                     f"{r.get('arch')} | {r.get('capability')} | {len(builds)} | {cores} | {regs} | "
                     f"{stack} | {shared} | "
                     f"{r['status'] if r['status'] != 'ok' else 'compiled'}"
                     + (f": {_note(r)}" if r.get("error") else "") + " |")
    return lines


def render(doc: dict) -> str:
    meta, records = doc["meta"], doc["records"]
    by_step: dict = {}
    for r in records:
        by_step.setdefault(r.get("step"), []).append(r)
    out = [f"# GPU lane on {meta.get('device')} ({meta.get('date')})", "",
           f"torch {meta.get('torch')}, triton {meta.get('triton')}, budget {meta.get('budget_s')} s"
           + (", DRY RUN on the CPU (TRITON_INTERPRET=1, tiny shapes: times prove the path, not "
              "the speed)" if meta.get("dry_run") else "") + ".", "",
           "| step | status | wall s | note |", "|---|---|---|---|"]
    out += [f"| {r['item']} | {r['status']} | {_f(r.get('wall_s'), 1)} | {_note(r) if r.get('error') else ''} |"
            for r in by_step.get("lane", [])]
    sections = (("correctness", "Correctness (gpu-marked tests)", _correctness),
                ("forward", "Forward (ratios: baseline time / our time)", forward_table),
                ("backward", "Backward (dQ, dK, dV from dO) and forward+backward", backward_table),
                ("compile", "First-call compile time (empty caches)", _compile),
                ("aot", "Ahead-of-time compile (Triton's ptxas)", _aot))
    for step, title, fmt in sections:
        if by_step.get(step):
            out += ["", f"## {title}", "", *fmt(by_step[step])]
    return "\n".join(out) + "\n"

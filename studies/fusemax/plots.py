"""Figures like FuseMax's 6-12 from the study's records (matplotlib, Agg backend)."""
from __future__ import annotations

from pathlib import Path

from .study import CONFIGS
from .workloads import MODELS, seq_label

COLORS = {"Unfused": "#888888", "FLAT": "#4c72b0", "+Cascade": "#dd8452", "+Architecture": "#55a868",
          "FuseMax": "#c44e52"}


def _grouped(ax, records, scope, value, title, ylabel, log=False, base=None):
    import numpy as np

    idx = {(r["model"], r["seq_len"], r["config"]): r for r in records if r["scope"] == scope}
    models = [m for m in MODELS if any(k[0] == m for k in idx)]
    seqs = sorted({k[1] for k in idx})
    configs = [c for c in CONFIGS if any(k[2] == c for k in idx)]
    xs = np.arange(len(models) * len(seqs))
    width = 0.8 / len(configs)
    for i, c in enumerate(configs):
        ys = []
        for m in models:
            for s in seqs:
                r = idx.get((m, s, c))
                b = idx.get((m, s, base)) if base else None
                ys.append(value(r, b) if r and (b or not base) else 0)
        ax.bar(xs + i * width - 0.4 + width / 2, ys, width, label=c, color=COLORS.get(c))
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{m}\n{seq_label(s)}" if j == 0 else seq_label(s)
                        for m in models for j, s in enumerate(seqs)], fontsize=6)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=6, ncol=len(configs))


def write_plots(records, outdir, per_einsum_2d: dict | None = None) -> list:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def save(fig, name):
        path = out / name
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(str(path))

    for key, fname, title in (("util_1d", "fig6a_util_1d.png", "Fig. 6a: 1D array utilization"),
                              ("util_2d", "fig6b_util_2d.png", "Fig. 6b: 2D array utilization")):
        fig, ax = plt.subplots(figsize=(12, 3.2))
        _grouped(ax, records, "attention", lambda r, b, k=key: r[k], title, "utilization")
        ax.set_ylim(0, 1.05)
        save(fig, fname)
    if per_einsum_2d:
        fig, ax = plt.subplots(figsize=(8, 3.2))
        configs = list(per_einsum_2d)
        einsums = sorted({e for v in per_einsum_2d.values() for e in v})
        bottom = [0.0] * len(configs)
        for e in einsums:
            ys = [per_einsum_2d[c].get(e, 0.0) for c in configs]
            ax.bar(configs, ys, bottom=bottom, label=e)
            bottom = [a + b for a, b in zip(bottom, ys, strict=True)]
        ax.set_ylabel("fraction of wall time the 2D array is busy")
        ax.set_title("Fig. 7: 2D-array activity per Einsum (BERT, 1K)")
        ax.legend(fontsize=6, ncol=4)
        save(fig, "fig7_2d_activity_bert.png")
    for scope, fs, fe, tag in (("attention", "fig8_attention_speedup.png", "fig9_attention_energy.png", "attention"),
                               ("end2end", "fig10_end2end_speedup.png", "fig11_end2end_energy.png", "end-to-end")):
        fig, ax = plt.subplots(figsize=(12, 3.2))
        _grouped(ax, records, scope, lambda r, b: b["latency_s"] / r["latency_s"],
                 f"{tag} speedup over Unfused", "speedup", log=True, base="Unfused")
        save(fig, fs)
        fig, ax = plt.subplots(figsize=(12, 3.2))
        _grouped(ax, records, scope, lambda r, b: r["energy_J"] / b["energy_J"],
                 f"{tag} energy relative to Unfused", "energy / Unfused", base="Unfused")
        save(fig, fe)
    pareto = [r for r in records if r["scope"] == "pareto"]
    if pareto:
        fig, ax = plt.subplots(figsize=(5, 4))
        for m in MODELS:
            pts = sorted((r["area_mm2"], r["latency_s"], r["pe_dim"]) for r in pareto if r["model"] == m)
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=m)
            for a, l, d in pts:
                if m == "BERT":
                    ax.annotate(str(d), (a, l), fontsize=6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("area (mm^2)")
        ax.set_ylabel("attention latency (s)")
        ax.set_title(f"Fig. 12: area vs latency at {seq_label(pareto[0]['seq_len'])} (pe_dim)")
        ax.legend(fontsize=7)
        save(fig, "fig12_area_latency_pareto.png")
    return written

"""The FuseMax evaluation's workloads (BERT, TrXL, T5, XLM as in the paper) and a transformer layer's linear layers."""
from __future__ import annotations

from functools import lru_cache

from einsum_ir import load, loads
from einsum_ir.resources import BuiltinKind, builtin_dir

ATTENTION = builtin_dir(BuiltinKind.CASCADE)

# model -> (H, E = F, D, S); B = 64 for every model.
MODELS = {
    "BERT": dict(H=12, E=64, D=768, S=3072),
    "TrXL": dict(H=16, E=64, D=1024, S=4096),
    "T5": dict(H=8, E=64, D=512, S=2048),
    "XLM": dict(H=16, E=128, D=2048, S=8192),
}
BATCH = 64
SEQ_LENS = (1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20)


def seq_label(n: int) -> str:
    return f"{n >> 20}M" if n >= 1 << 20 else f"{n >> 10}K"


def attention_sizes(model: str, seq: int) -> dict:
    m = MODELS[model]
    return {"B": BATCH, "H": m["H"], "E": m["E"], "F": m["E"], "P": seq, "M": seq}


LINEAR_TEXT = """\
# The linear layers of one transformer layer (Q, K, V projections, output projection, FFN), as GEMMs.
rank B = 1, P = 1024, D = 768, N = 768, S = 3072
input X[b,p,d], WQ[d,n], WK[d,n], WV[d,n], A[b,p,n], WO[n,d], W1[d,s], W2[s,d]
output QP[b,p,n], KP[b,p,n], VP[b,p,n], F2[b,p,d]
QP[b,p,n] = sum[d] X[b,p,d] * WQ[d,n]
KP[b,p,n] = sum[d] X[b,p,d] * WK[d,n]
VP[b,p,n] = sum[d] X[b,p,d] * WV[d,n]
O[b,p,d]  = sum[n] A[b,p,n] * WO[n,d]
F1[b,p,s] = sum[d] O[b,p,d] * W1[d,s]
F2[b,p,d] = sum[s] F1[b,p,s] * W2[s,d]
"""


def linear_sizes(model: str, seq: int) -> dict:
    m = MODELS[model]
    return {"B": BATCH, "P": seq, "D": m["D"], "N": m["H"] * m["E"], "S": m["S"]}


@lru_cache(maxsize=None)
def cascade(name: str):
    if name == "linear":
        return loads(LINEAR_TEXT, "<linear layers>")
    return load(ATTENTION / f"{name}.ein")

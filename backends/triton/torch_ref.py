"""Eager PyTorch versions of the attention examples, written directly (not through the IR).

The GPU tests use them as the same-dtype baseline of FlexAttention's accuracy rule and, in float64,
as the golden reference; the benchmark uses them as the "eager PyTorch" column.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _mask(P, M, device, kind, W=None):
    p = torch.arange(P, device=device).view(-1, 1)
    m = torch.arange(M, device=device).view(1, -1)
    if kind == "causal":
        return m <= p
    if kind == "sliding":
        return (p - W < m) & (m <= p)
    return None


def softmax_attention(q, k, v, *, kind="dense", W=None, G=1, slope=None, cap=None):
    """softmax(QK^T / sqrt(E) [+ bias | softcap], masked) V in the inputs' dtype, as eager torch."""
    if G > 1:
        k = k.repeat_interleave(G, dim=1)
        v = v.repeat_interleave(G, dim=1)
    P, M, E = q.shape[-2], k.shape[-2], q.shape[-1]
    s = (q @ k.transpose(-1, -2)) / math.sqrt(E)
    if cap is not None:
        s = cap * torch.tanh(s / cap)
    if slope is not None:
        p = torch.arange(P, device=q.device).view(-1, 1)
        m = torch.arange(M, device=q.device).view(1, -1)
        s = s - slope.view(1, -1, 1, 1).to(s.dtype) * (p - m).to(s.dtype)
    mask = _mask(P, M, q.device, "causal" if slope is not None and kind == "dense" else kind, W)
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    a = torch.softmax(s, dim=-1)
    a = torch.nan_to_num(a, nan=0.0)  # fully masked rows give 0
    return a @ v


def elu1(x):
    return F.elu(x) + 1


def linear_attention(q, k, v):
    """Non-causal kernel linear attention (elu + 1 feature map), eager."""
    qf, kf = elu1(q), elu1(k)
    kv = kf.transpose(-1, -2) @ v
    ks = kf.sum(dim=-2)
    num = qf @ kv
    den = (qf * ks.unsqueeze(-2)).sum(-1, keepdim=True)
    return num / den


def chunked_causal_linear_attention(q, k, v, C=64):
    """Causal linear attention chunk by chunk (state carried across chunks), eager PyTorch."""
    B, H, P, E = q.shape
    F_ = v.shape[-1]
    qf, kf = elu1(q), elu1(k)
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    S = torch.zeros(B, H, E, F_, device=q.device, dtype=acc)
    Z = torch.zeros(B, H, E, device=q.device, dtype=acc)
    out = torch.empty(B, H, P, F_, device=q.device, dtype=q.dtype)
    tri = torch.ones(C, C, device=q.device, dtype=torch.bool).tril()
    for s in range(0, P, C):
        e = min(s + C, P)
        qc, kc, vc = (x[:, :, s:e].to(acc) for x in (qf, kf, v))
        sc = (qc @ kc.transpose(-1, -2)).masked_fill(~tri[: e - s, : e - s], 0.0)
        num = qc @ S + sc @ vc
        den = (qc * Z.unsqueeze(-2)).sum(-1, keepdim=True) + sc.sum(-1, keepdim=True)
        out[:, :, s:e] = (num / den).to(q.dtype)
        S = S + kc.transpose(-1, -2) @ vc
        Z = Z + kc.sum(-2)
    return out

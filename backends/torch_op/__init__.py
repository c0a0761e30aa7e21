"""Compiled cascades as native, differentiable PyTorch operators (see :mod:`.op`)."""
from .op import CascadeModule, CascadeOp, native_op

__all__ = ["CascadeModule", "CascadeOp", "native_op"]

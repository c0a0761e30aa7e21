"""Element sizes of the dtypes the analyses and the backends name."""
from __future__ import annotations

DTYPE_BYTES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "fp8": 1, "int8": 1}


def dtype_bytes(dtype) -> int:
    """Bytes of one element: an int (itself), a name in :data:`DTYPE_BYTES`, or anything numpy
    knows (a numpy dtype, ``"int32"``)."""
    if isinstance(dtype, int):
        return dtype
    name = str(dtype)
    if name in DTYPE_BYTES:
        return DTYPE_BYTES[name]
    import numpy as np  # imported here: the command line lists DTYPE_BYTES without numpy

    return np.dtype(dtype).itemsize

"""Shared set-up of the Triton tests: skip without torch or triton; without a GPU, run Triton's
interpreter. Import this before anything imports triton (TRITON_INTERPRET is read at import)."""
import os

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

"""Reverse-mode differentiation of cascades (``cascade grad``): see :mod:`.reverse`."""
from .reverse import RECURRENCE_HINT, Gradient, gradient

__all__ = ["RECURRENCE_HINT", "Gradient", "gradient"]

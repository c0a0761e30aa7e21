"""``pow(x, y)`` as Triton code with numpy's meaning for every base.

``exp2(log2(x) * y)`` alone is NaN for any negative base and for ``0 ** 0``. The magnitude is
computed from ``|x|`` (stable for decays: ``L ** (p - m)`` is one ``exp2`` of a product, never a
chain of multiplies), and the sign and the special cases are selected around it:

* ``y == 0`` gives 1 (numpy's ``x ** 0``, also for ``x == 0``);
* ``x < 0`` with an integer ``y`` gives ``+-|x| ** y`` (negative for odd ``y``); with a
  non-integer ``y`` NaN, as numpy (the interpreter makes that point empty, the store writes 0);
* ``x == 0`` gives 0 for ``y > 0`` and inf for ``y < 0`` (``log2(0) = -inf``).

A constant small integer exponent is a product of the base with itself (exact, no special
function), a constant 0.5 a square root.
"""
from __future__ import annotations

_MAX_UNROLLED = 4  # x ** n as n - 1 multiplies up to this |n|


def pow_code(x: str, y: str, y_const: float | None, y_int: str | None = None) -> str:
    """Code of ``x ** y`` for simple operand codes ``x``, ``y`` (``y_const``: y's constant;
    ``y_int``: y's integer code when it is an index expression such as ``p - m``)."""
    if y_const is not None:
        return _const_pow(x, y_const)
    magnitude = f"tl.exp2(tl.log2(tl.abs({x})) * {y})"
    if y_int is not None:  # an integer exponent: the sign of a negative base is its parity
        sign = f"tl.where({x} < 0, tl.where(({y_int}) % 2 != 0, -1.0, 1.0), 1.0)"
    else:
        integral = f"(tl.floor({y}) == {y})"
        odd = f"(tl.floor({y} * 0.5) * 2.0 != {y})"
        sign = (f"tl.where({x} < 0, tl.where({integral}, tl.where({odd}, -1.0, 1.0), "
                f"float('nan')), 1.0)")
    return f"tl.where({y} == 0, 1.0, {sign} * {magnitude})"


def _const_pow(x: str, n: float) -> str:
    if n == 0:
        return "1.0"
    if n == 0.5:
        return f"tl.sqrt({x})"
    if float(n).is_integer() and abs(n) <= _MAX_UNROLLED:
        product = " * ".join([x] * int(abs(n)))
        return f"({product})" if n > 0 else f"(1.0 / ({product}))"
    magnitude = f"tl.exp2(tl.log2(tl.abs({x})) * {float(n)!r})"
    if not float(n).is_integer():
        return f"tl.where({x} < 0, float('nan'), {magnitude})"
    if int(n) % 2:
        return f"tl.where({x} < 0, -{magnitude}, {magnitude})"
    return magnitude

"""``pow(x, y)`` as tile-IR nodes with numpy's meaning for every base.

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

from .tile_ir import BinOp, Call, Const, Int, Node, Op, Where

_MAX_UNROLLED = 4  # x ** n as n - 1 multiplies up to this |n|
_NAN = Const(float("nan"))


def _bare(op: str, x: Node, y: Node) -> BinOp:
    return BinOp(op, x, y, wrap=False)


def _magnitude(x: Node, y: Node) -> Node:
    return Call("exp2", (_bare("*", Call("log2", (Call("abs", (x,)),)), y),))


def pow_node(x: Node, y: Node, y_const: float | None, y_int: Node | None = None) -> Node:
    """``x ** y`` for simple operands ``x``, ``y`` (``y_const``: y's constant; ``y_int``: y as
    an integer index value, such as ``p - m``)."""
    if y_const is not None:
        return _const_pow(x, y_const)
    negative = _bare("<", x, Int(0))
    if y_int is not None:  # an integer exponent: the sign of a negative base is its parity
        odd = _bare("!=", _bare("%", Op("paren", (y_int,)), Int(2)), Int(0))
        sign = Where(negative, Where(odd, Const(-1.0), Const(1.0)), Const(1.0))
    else:
        integral = BinOp("==", Call("floor", (y,)), y)
        odd = BinOp("!=", _bare("*", Call("floor", (_bare("*", y, Const(0.5)),)), Const(2.0)), y)
        sign = Where(negative, Where(integral, Where(odd, Const(-1.0), Const(1.0)), _NAN),
                     Const(1.0))
    return Where(_bare("==", y, Int(0)), Const(1.0), _bare("*", sign, _magnitude(x, y)))


def _const_pow(x: Node, n: float) -> Node:
    if n == 0:
        return Const(1.0)
    if n == 0.5:
        return Call("sqrt", (x,))
    if float(n).is_integer() and abs(n) <= _MAX_UNROLLED:
        product = x
        for _ in range(int(abs(n)) - 1):
            product = _bare("*", product, x)
        product = Op("paren", (product,))
        return product if n > 0 else BinOp("/", Const(1.0), product)
    magnitude = _magnitude(x, Const(float(n)))
    if not float(n).is_integer():
        return Where(_bare("<", x, Int(0)), _NAN, magnitude)
    if int(n) % 2:
        return Where(_bare("<", x, Int(0)), Op("neg_bare", (magnitude,)), magnitude)
    return magnitude

"""One visitor over size expressions (``M / M0``, ``P + M - 1``, ``min(W, M)``) with three
outputs: an integer (:func:`to_int`), a sympy expression (:func:`to_sympy`) and integer code
text for generated Python or Triton (:func:`to_code`).

A size expression is integer arithmetic (``+ - * / %``, unary minus) and ``min``/``max`` over
numbers and size names. ``/`` is exact division for :func:`to_int` (a size that does not divide
is a mistake, reported with its location), floor division in code, and rational division in
sympy (the caller decides how to round).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Generic, Mapping, Sequence, TypeVar

if TYPE_CHECKING:  # sympy is imported on first use: `cascade check` starts without it
    import sympy

from .errors import CascadeError
from .ir import Binary, Call, Expr, Name, Num, Unary

T = TypeVar("T")


class SizeFold(Generic[T]):
    """What each node of a size expression becomes; :meth:`fold` walks the expression."""

    what = "size"

    def num(self, node: Num) -> T:
        raise NotImplementedError

    def name(self, node: Name) -> T:
        raise NotImplementedError

    def neg(self, value: T) -> T:
        raise NotImplementedError

    def binary(self, node: Binary, lhs: T, rhs: T) -> T:
        raise NotImplementedError

    def call(self, node: Call, args: Sequence[T]) -> T:
        raise NotImplementedError

    def fold(self, expr: Expr) -> T:
        if isinstance(expr, Num):
            return self.num(expr)
        if isinstance(expr, Name):
            return self.name(expr)
        if isinstance(expr, Unary) and expr.op == "-":
            return self.neg(self.fold(expr.operand))
        if isinstance(expr, Binary) and expr.op in ("+", "-", "*", "/", "%"):
            return self.binary(expr, self.fold(expr.lhs), self.fold(expr.rhs))
        if isinstance(expr, Call) and expr.func in ("min", "max") and len(expr.args) == 2:
            return self.call(expr, [self.fold(a) for a in expr.args])
        raise CascadeError(f"a {self.what} must be an integer expression of sizes",
                           getattr(expr, "span", None), "use integers, sizes, + - * / % and min/max")


class IntSizes(SizeFold[int]):
    """Evaluation over named integers; ``/`` must divide exactly."""

    def __init__(self, env: Mapping[str, int], what: str = "size"):
        self.env, self.what = env, what

    def num(self, node: Num) -> int:
        if isinstance(node.value, float) and not float(node.value).is_integer():
            raise CascadeError(f"a {self.what} must be an integer, not {node.value}", node.span,
                               "sizes are integers")
        return int(node.value)

    def name(self, node: Name) -> int:
        if node.name not in self.env:
            raise CascadeError(f"unknown size {node.name!r} in a {self.what}", node.span,
                               "declare it with 'rank' or 'param' before it is used")
        return self.env[node.name]

    def neg(self, value: int) -> int:
        return -value

    def binary(self, node: Binary, lhs: int, rhs: int) -> int:
        if node.op in ("+", "-", "*"):
            return lhs + rhs if node.op == "+" else lhs - rhs if node.op == "-" else lhs * rhs
        if rhs == 0:
            raise CascadeError(f"division by zero in a {self.what}", node.span,
                               "the divisor of a size must be non-zero")
        if node.op == "%":
            return lhs % rhs
        if lhs % rhs:
            raise CascadeError(f"{lhs} is not divisible by {rhs} in a {self.what}", node.span,
                               "choose sizes that divide exactly (for tiles use 'split')")
        return lhs // rhs

    def call(self, node: Call, args: Sequence[int]) -> int:
        return min(args) if node.func == "min" else max(args)


class SympySizes(SizeFold["sympy.Expr"]):
    """A sympy expression; ``symbol(name)`` gives each size name's expression."""

    def __init__(self, symbol: Callable[[str], sympy.Expr]):
        self.symbol = symbol

    def num(self, node: Num) -> sympy.Expr:
        import sympy

        return sympy.Integer(int(node.value))

    def name(self, node: Name) -> sympy.Expr:
        return self.symbol(node.name)

    def neg(self, value: sympy.Expr) -> sympy.Expr:
        return -value

    def binary(self, node: Binary, lhs: sympy.Expr, rhs: sympy.Expr) -> sympy.Expr:
        import sympy

        if node.op == "%":
            return sympy.Mod(lhs, rhs)
        return {"+": lhs + rhs, "-": lhs - rhs, "*": lhs * rhs, "/": lhs / rhs}[node.op]

    def call(self, node: Call, args: Sequence[sympy.Expr]) -> sympy.Expr:
        import sympy

        return sympy.Min(*args) if node.func == "min" else sympy.Max(*args)


class CodeSizes(SizeFold[str]):
    """Integer code text (valid Python, and Triton host or constexpr code): every operation
    parenthesised, ``/`` as ``//``, ``min``/``max`` as calls; ``name(n)`` spells a size name
    (``s['M']`` in a launcher, ``M`` as a kernel argument)."""

    def __init__(self, name: Callable[[str], str]):
        self.spell = name

    def num(self, node: Num) -> str:
        return str(int(node.value))

    def name(self, node: Name) -> str:
        return self.spell(node.name)

    def neg(self, value: str) -> str:
        return f"(-{value})"

    def binary(self, node: Binary, lhs: str, rhs: str) -> str:
        return f"({lhs} {'//' if node.op == '/' else node.op} {rhs})"

    def call(self, node: Call, args: Sequence[str]) -> str:
        return f"{node.func}({', '.join(args)})"


class RealSizes(SizeFold[float]):
    """Evaluation of a real parameter's default over named numbers; ``/`` is real division."""

    what = "real parameter"

    def __init__(self, env: Mapping[str, float]):
        self.env = env

    def num(self, node: Num) -> float:
        return float(node.value)

    def name(self, node: Name) -> float:
        return float(self.env[node.name])

    def neg(self, value: float) -> float:
        return -value

    def binary(self, node: Binary, lhs: float, rhs: float) -> float:
        if node.op in ("/", "%") and rhs == 0:
            raise CascadeError(f"division by zero in a {self.what}", node.span,
                               "the divisor must be non-zero")
        ops = {"+": lhs + rhs, "-": lhs - rhs, "*": lhs * rhs}
        if node.op in ops:
            return ops[node.op]
        return lhs / rhs if node.op == "/" else lhs % rhs

    def call(self, node: Call, args: Sequence[float]) -> float:
        return min(args) if node.func == "min" else max(args)


def to_real(expr: Expr, env: Mapping[str, float]) -> float:
    return RealSizes(env).fold(expr)


def to_int(expr: Expr, env: Mapping[str, int], *, what: str = "size") -> int:
    return IntSizes(env, what).fold(expr)


def to_sympy(expr: Expr, symbol: Callable[[str], sympy.Expr]) -> sympy.Expr:
    return SympySizes(symbol).fold(expr)


def to_code(expr: Expr, name: Callable[[str], str]) -> str:
    return CodeSizes(name).fold(expr)

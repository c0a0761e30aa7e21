"""The reference interpreter: evaluates any verified cascade with numpy (float64 by default).

Semantics (the README's language section states them for users):
* Points that fail a ``where`` predicate do not exist (they are *empty*, not zero). A reduction
  reduces only the points that exist; a reduction over no point gives an empty point.
* ``+``, ``-``, binary ``max`` and ``min`` combine the points either operand has (a missing operand
  acts as the identity: ``X - Y`` is ``X`` where ``Y`` is empty and ``-Y`` where ``X`` is); for
  ``+`` and ``-`` an operand lacking some of the other's indices (``GM[p]`` against ``S[p,m]``, a
  constant) creates no points (``exprs.coverage``). Every other operator and function needs all
  its operands (``*`` meets only where both exist), as in sparse tensor algebra.
* A ``where`` may compare tensor values and an index may read an index tensor (a gather):
  ``data_masks.py``.
* A zero factor annihilates an infinity: ``0 * inf`` is 0, in ``*``, in a sum of products and in
  a ``prod`` reduction (``contract.py``), so ``S - inf * Mask`` masks exactly.
* Any other undefined result of arithmetic on infinities (``-inf - -inf``, ``inf / inf``) is
  empty: an empty history contributes nothing to a running max or sum, so a fully masked query
  row ends empty. A ``sum`` reduction whose result is undefined the same way (+inf and -inf among
  the reduced points) is empty too.
* Index and predicate arithmetic is checked int64 (see ``labelled.py``): an overflow or a zero
  divisor is an error, never a wrap.
* Accesses outside a tensor's extent (the tail of a split that does not divide its rank) read
  empty points.
* Outputs are materialised with empty points as zeros, or as the value the output declares
  (``output LSE[b,h,p] empty -inf``).

Values are carried as labelled arrays (``labelled.py``). Sums of products go through ``np.einsum``
so that a contraction never materialises its whole iteration space.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .budget import check_budget
from .errors import CascadeError
from .contract import multiply, product, sum_of_products
from .data_masks import eval_mask, gather_index, reads_tensors
from .exprs import Factor, coverage, product_factors
from .ir import Access, Binary, Call, Cascade, Einsum, Expr, Name, Num, Unary, walk
from .labelled import IndexEvaluator, LArr, align, ensure_fits, union_labels
from .sizes import resolve_sizes
from .inputs import input_array, input_shapes, random_inputs
from .verifier import Analysis, analyze

_IDENTITY = {"sum": 0.0, "max": -np.inf, "min": np.inf, "prod": 1.0}
_UNION_OPS = {"+", "-", "max", "min"}
# np.einsum names each axis by one letter.
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _and(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a & b


class _Evaluator:
    def __init__(self, analysis: Analysis, sizes: Mapping[str, int], dtype):
        self.a = analysis
        self.c = analysis.cascade
        self.sizes = dict(sizes)
        self.dtype = dtype
        self.store: dict[str, list] = {}  # tensor -> [values, exists or None]
        self.fixed: dict[str, int] = {}

    # ---------------------------------------------------------------- helpers
    def extent(self, var: str) -> int:
        return self.sizes[var.upper()]

    def axis_extent(self, tensor: str, k: int) -> int:
        axis = self.a.shapes[tensor][k]
        return self.sizes[axis.rank] + axis.extra

    def shape(self, tensor: str) -> tuple[int, ...]:
        return tuple(self.axis_extent(tensor, k) for k in range(len(self.a.shapes[tensor])))

    # ---------------------------------------------------------------- indices
    def eval_int(self, expr: Expr) -> LArr:
        """Integer arithmetic over index variables (checked int64; ``/`` floors)."""
        return IndexEvaluator(self.sizes, self.fixed)(expr)

    eval_pred = eval_int  # comparisons and logic give booleans

    # ---------------------------------------------------------------- reads
    def read(self, access: Access) -> LArr:
        if access.tensor not in self.store:
            raise CascadeError(f"{access.tensor} is read before it is computed", access.span,
                               "define it by an earlier Einsum")
        values, exists = self.store[access.tensor]
        # Fast path: distinct plain variables (or fixed ones) within the axis extents: a view.
        plain = True
        labels: list[str] = []
        slicer: list = []
        for k, index in enumerate(access.indices):
            ext = values.shape[k]
            if isinstance(index, Name) and index.is_index:
                if index.name in self.fixed:
                    i = self.fixed[index.name]
                    if not 0 <= i < ext:
                        plain = False
                        break
                    slicer.append(i)
                    continue
                if index.name in labels or self.extent(index.name) > ext:
                    plain = False
                    break
                labels.append(index.name)
                slicer.append(slice(0, self.extent(index.name)))
            elif isinstance(index, (Num, Name)) or (isinstance(index, Binary) and not _has_index(
                    index, self.fixed) and not reads_tensors(index)):
                i = int(self.eval_int(index).values)
                if not 0 <= i < ext:
                    plain = False
                    break
                slicer.append(i)
            else:
                plain = False
                break
        if plain:
            v = values[tuple(slicer)]
            e = exists[tuple(slicer)] if exists is not None else None
            return LArr(tuple(labels), v, e)
        # General path: gather through broadcast integer index arrays.
        idx = [gather_index(self, access, k, index, values.shape[k]) if reads_tensors(index)
               else self.eval_int(index) for k, index in enumerate(access.indices)]
        labels_t = union_labels(*(i.labels for i in idx))
        arrays = [align(i, labels_t)[0] for i in idx]
        valid = None
        for i in idx:  # an empty point of an index tensor reads an empty point
            if i.exists is not None:
                present = align(i, labels_t)[1]
                valid = present if valid is None else valid & present
        clipped = []
        for k, arr in enumerate(arrays):
            ext = values.shape[k]
            ok = (arr >= 0) & (arr < ext)
            valid = ok if valid is None else valid & ok
            clipped.append(np.clip(arr, 0, ext - 1))
        shape = np.broadcast_shapes(*[a.shape for a in clipped]) if clipped else ()
        clipped = [np.broadcast_to(a, shape) for a in clipped]
        v = values[tuple(clipped)]
        e = exists[tuple(clipped)] if exists is not None else None
        if valid is not None and not np.all(valid):
            e = np.broadcast_to(valid, shape) if e is None else (e & valid)
        return LArr(labels_t, v, e)

    # ---------------------------------------------------------------- values
    def eval_value(self, expr: Expr) -> LArr:
        if isinstance(expr, Num):
            return LArr((), np.asarray(expr.value, dtype=self.dtype))
        if isinstance(expr, Name):
            if isinstance(self.sizes.get(expr.name), float):  # a real parameter
                return LArr((), np.asarray(self.sizes[expr.name], dtype=self.dtype))
            arr = self.eval_int(expr)
            return LArr(arr.labels, arr.values.astype(self.dtype))
        if isinstance(expr, Access):
            return self.read(expr)
        if isinstance(expr, Unary):
            inner = self.eval_value(expr.operand)
            if expr.op == "-":
                return LArr(inner.labels, -inner.values, inner.exists)
            return LArr(inner.labels, (inner.values == 0).astype(self.dtype), inner.exists)
        if isinstance(expr, Binary):
            if expr.op in ("and", "or"):
                pred = eval_mask(self, expr)
                return LArr(pred.labels, pred.values.astype(self.dtype))
            cover = coverage(expr.lhs, expr.rhs) if expr.op in ("+", "-") else (True, True)
            return self._binary(expr.op, self.eval_value(expr.lhs), self.eval_value(expr.rhs),
                                cover)
        if isinstance(expr, Call):
            args = [self.eval_value(a) for a in expr.args]
            if len(args) == 2:
                return self._binary(expr.func, *args)
            (arg,) = args
            return LArr(arg.labels, _UNARY[expr.func](arg.values), arg.exists)
        raise CascadeError("unsupported expression", getattr(expr, "span", None),
                           "see the README's language section for the expressions")

    def _binary(self, op: str, lhs: LArr, rhs: LArr, cover=(True, True)) -> LArr:
        labels = union_labels(lhs.labels, rhs.labels)
        a, ea = align(lhs, labels)
        b, eb = align(rhs, labels)
        out = _VALUE_OPS[op](a, b)
        if op in _COMPARE:
            out = out.astype(self.dtype)
        if op in _UNION_OPS and any(cover) and (ea is not None or eb is not None):
            # Where only one operand exists it passes through (negated on the right of '-'); an
            # operand that does not cover the other's indices creates no points (exprs.coverage).
            has_a = True if ea is None else ea
            has_b = True if eb is None else eb
            alone_b = -b if op == "-" else b
            out = np.where(has_a & has_b, out, np.where(has_a, a, alone_b))
            if all(cover):
                exists = None if ea is None or eb is None else (ea | eb)
            else:
                exists = ea if cover[0] else eb
        else:
            exists = _and(ea, eb)
        if op in _NAN_MAKERS:
            fresh = np.isnan(out) & ~np.isnan(a) & ~np.isnan(b)
            if fresh.any():
                exists = ~fresh if exists is None else (exists & ~fresh)
        return LArr(labels, out, exists)

    # ---------------------------------------------------------------- einsums
    def run_einsum(self, einsum: Einsum) -> None:
        out_labels = tuple(v for v in einsum.output_vars if v not in self.fixed)
        reduced = tuple(einsum.reduced)
        if einsum.reducer == "sum":
            result = self._contract(einsum, out_labels, reduced)
        else:
            result = self._map_reduce(einsum, out_labels, reduced)
        self._write(einsum, result)

    def _contract(self, einsum: Einsum, out_labels, reduced) -> LArr:
        product = product_factors(einsum.body)
        sign = [Factor(Num(-1))] if product.negated else []
        factors = [self._factor(f) for f in (*sign, *product.factors)]
        if einsum.where is not None:
            pred = eval_mask(self, einsum.where)
            # The predicate decides which points exist; it contributes no value.
            factors.append(LArr(pred.labels, np.ones(pred.values.shape, dtype=self.dtype), pred.values))
            masked = True
        else:
            masked = False
        masked = masked or any(f.exists is not None for f in factors)
        letters: dict[str, str] = {}
        for label in union_labels(*(f.labels for f in factors)):
            if len(letters) == len(_LETTERS):
                raise CascadeError(f"{einsum.name}: an Einsum over more than {len(_LETTERS)} "
                                   "index variables cannot be evaluated", einsum.span,
                                   "split it into Einsums over fewer index variables")
            letters[label] = _LETTERS[len(letters)]
        present_out = tuple(l for l in out_labels if l in letters)
        spec = ",".join("".join(letters[l] for l in f.labels) for f in factors)
        spec += "->" + "".join(letters[l] for l in present_out)
        values, exists = sum_of_products(spec, [f.values for f in factors],
                                         [f.exists for f in factors])
        if masked:
            masks = [f.exists.astype(self.dtype) if f.exists is not None
                     else np.ones((1,) * len(f.labels), dtype=self.dtype) for f in factors]
            masks = [np.broadcast_to(m, f.values.shape) for m, f in zip(masks, factors, strict=True)]
            exists = _and(exists, np.einsum(spec, *masks, optimize=len(factors) > 2) > 0)
        elif any(self.extent(r) == 0 for r in reduced):
            exists = np.zeros(values.shape, dtype=bool)
        return LArr(present_out, np.asarray(values, dtype=self.dtype),
                    None if exists is None else np.asarray(exists))

    def _factor(self, factor: Factor) -> LArr:
        if factor.divisor:
            inner = self.eval_value(factor.expr)
            with np.errstate(all="ignore"):
                return LArr(inner.labels, 1.0 / inner.values, inner.exists)
        return self.eval_value(factor.expr)

    def _map_reduce(self, einsum: Einsum, out_labels, reduced) -> LArr:
        body = self.eval_value(einsum.body)
        if einsum.where is not None:
            pred = eval_mask(self, einsum.where)
            labels = union_labels(body.labels, pred.labels)
            v, e = align(body, labels)
            p, _ = align(pred, labels)
            target = np.broadcast_shapes(v.shape, p.shape)
            exists = np.broadcast_to(p, target) if e is None else (e & p)
            body = LArr(labels, np.broadcast_to(v, target), exists)
        if not reduced:
            return body
        labels = tuple(out_labels) + tuple(reduced)
        extra = tuple(l for l in body.labels if l not in labels)
        assert not extra, extra
        ensure_fits([self.extent(label) for label in labels], self.dtype.itemsize,
                    f"the iteration space of {einsum.name}", einsum.span)
        v, e = align(body, labels, self.sizes_for(labels), full=True)
        axes = tuple(range(len(out_labels), len(labels)))
        if e is not None:
            v = np.where(e, v, _IDENTITY[einsum.reducer])
        reduce_fn = {"sum": np.sum, "max": np.max, "min": np.min, "prod": product}[einsum.reducer]
        values = reduce_fn(v, axis=axes) if v.size else np.full(v.shape[:len(out_labels)], _IDENTITY[einsum.reducer])
        if e is not None:
            exists = np.any(e, axis=axes)
        elif any(self.extent(r) == 0 for r in reduced):
            exists = np.zeros(values.shape, dtype=bool)
        else:
            exists = None
        if einsum.reducer in ("sum", "prod"):
            # inf + -inf and 0 * inf inside the reduction: as for '+' and '*', the point is empty
            fresh = np.isnan(values) & ~np.any(np.isnan(v), axis=axes)
            if fresh.any():
                exists = ~fresh if exists is None else (exists & ~fresh)
        return LArr(tuple(out_labels), np.asarray(values, dtype=self.dtype), exists)

    def sizes_for(self, labels) -> dict[str, int]:
        return {l: self.extent(l) for l in labels}

    def _write(self, einsum: Einsum, result: LArr) -> None:
        tensor = einsum.name
        if tensor not in self.store:
            shape = self.shape(tensor)
            partial = tensor in self.a.recurrences
            self.store[tensor] = [np.zeros(shape, dtype=self.dtype),
                                  np.zeros(shape, dtype=bool) if partial else None]
        values, exists = self.store[tensor]
        slots = self.a.output_slots(einsum, self.fixed, self.sizes)
        slicer = [slot for slot, _ in slots]
        labels = tuple(label for _, label in slots if label is not None)
        v, e = align(result, labels, self.sizes_for(labels), full=True)
        values[tuple(slicer)] = v
        if e is None:
            if exists is not None:
                exists[tuple(slicer)] = True
        else:
            if exists is None:
                exists = np.ones(values.shape, dtype=bool)
                self.store[tensor][1] = exists
            exists[tuple(slicer)] = e

    def run(self) -> None:
        with np.errstate(all="ignore"):
            for einsum, fixed in self.a.schedule(self.sizes):
                self.fixed = fixed
                self.run_einsum(einsum)
            self.fixed = {}


def _has_index(expr: Expr, fixed) -> bool:
    return any(isinstance(n, Name) and n.is_index and n.name not in fixed for n in walk(expr))


def _elu(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def _gelu(x):  # tanh approximation
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


_UNARY = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "abs": np.abs, "relu": lambda x: np.maximum(x, 0),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "tanh": np.tanh, "elu": _elu,
    "silu": lambda x: x / (1 + np.exp(-x)), "gelu": _gelu, "softplus": lambda x: np.logaddexp(0, x),
    "recip": lambda x: 1 / x, "square": np.square, "floor": np.floor, "ceil": np.ceil,
}
_COMPARE = {"<", "<=", ">", ">=", "==", "!="}
_INT_OPS = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "<": np.less, "<=": np.less_equal,
    ">": np.greater, ">=": np.greater_equal, "==": np.equal, "!=": np.not_equal,
}
_VALUE_OPS = {
    **_INT_OPS, "*": multiply, "/": np.divide, "%": np.mod, "max": np.maximum, "min": np.minimum, "pow": np.power,
}
_NAN_MAKERS = {"+", "-", "*", "/", "%", "pow"}


# -------------------------------------------------------------------- public API


def evaluate(cascade: Cascade, inputs: Mapping[str, np.ndarray] | None = None,
             sizes: Mapping[str, int] | None = None, *, dtype=np.float64, seed: int = 0,
             return_all: bool = False, analysis: Analysis | None = None) -> dict[str, np.ndarray]:
    """Evaluates ``cascade`` and returns its outputs (empty points as zeros).

    ``sizes`` overrides rank and parameter defaults; inputs default to seeded standard normals.
    With ``return_all`` every tensor is returned, intermediates included. What will be allocated
    is checked first against ``labelled.max_memory``.
    """
    try:
        return _evaluate(cascade, inputs, sizes, np.dtype(dtype), seed, return_all, analysis)
    except CascadeError as exc:
        raise exc.with_source(cascade.source) from None


def _evaluate(cascade, inputs, sizes, dtype, seed, return_all, analysis):
    analysis = analysis or analyze(cascade)
    env = resolve_sizes(cascade, sizes)
    check_budget(analysis, env, dtype.itemsize)
    if inputs is None:
        inputs = random_inputs(cascade, env, seed, dtype)
    ev = _Evaluator(analysis, env, dtype)
    for name, shape in input_shapes(cascade, env).items():
        ev.store[name] = [input_array(cascade, name, shape, inputs, dtype), None]
    ev.run()
    wanted = analysis.shapes.keys() if return_all else [d.name for d in cascade.outputs]
    out = {}
    for name in wanted:
        values, exists = ev.store[name]
        decl = cascade.output(name)
        empty = decl.empty if decl is not None else 0.0  # ``output T[...] empty -inf``
        out[name] = values if exists is None else np.where(exists, values, empty).astype(dtype)
    return out

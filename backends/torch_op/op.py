"""Compiled cascades as native PyTorch operators, differentiable through their gradient cascades.

    from backends.torch_op import native_op
    attn = native_op("examples/attention/causal.ein")       # Triton where it lowers
    out = attn(q, k, v)            # by position, in declaration order; or attn(Q=q, K=k, V=v)
    out.sum().backward()           # runs the gradient cascade (einsum_ir.autodiff)

Each cascade becomes two ``torch.library.custom_op`` operators: ``cascade::<name>_<id>_fwd``
(the outputs and the values the gradient saves: one log-sum-exp per softmax) and ``..._bwd`` (the
gradient cascade), each with a fake implementation for shapes, the first wired to the second by
``register_autograd``. ``torch.compile`` treats both as opaque calls, so no kernel cache is touched
while tracing; :meth:`CascadeOp.warm` generates the kernels for given shapes ahead of time.
"""
import hashlib
from typing import List

import torch

from einsum_ir import Cascade, load
from einsum_ir.errors import CascadeError
from einsum_ir.exprs import rank_root
from einsum_ir.printer import format_cascade

from .engines import engine_for, sizes_from

_OPS: dict = {}  # op name -> the CascadeOp that registered it (once per process)


class CascadeOp:
    """A cascade as a differentiable PyTorch operator (see the module's docstring).

    ``backend``: "triton" (the Triton backend where it lowers the cascade, else the reference
    interpreter) or "reference" (the interpreter, any dtype, float64 included). ``wrt`` limits the
    inputs that may require a gradient; ``params`` set parameters the shapes do not give.
    """

    def __init__(self, cascade, *, backend: str = "triton", wrt=None, **params):
        from einsum_ir.autodiff import gradient

        self.cascade: Cascade = load(cascade) if not isinstance(cascade, Cascade) else cascade
        self.params = {k: int(v) for k, v in params.items()}
        self.inputs = tuple(d.name for d in self.cascade.inputs)
        self.outputs = tuple(d.name for d in self.cascade.outputs)
        try:
            self.grad = gradient(self.cascade, wrt)
            self.no_grad_reason = None
        except CascadeError as exc:
            self.grad, self.no_grad_reason = None, str(exc)
        self.saved = self.grad.saved if self.grad else ()
        self.differentiable = {x for x, _ in self.grad.grads} if self.grad else set()
        digest = hashlib.sha256((format_cascade(self.cascade) + repr(sorted(self.params.items()))
                                 + backend + repr(wrt)).encode()).hexdigest()[:10]
        self.op_name = f"cascade::{_ident(self.cascade.name)}_{digest}"
        first = _OPS.get(self.op_name)
        if first is not None:  # an operator exists once per process: share its engines
            self.forward_engine, self.backward_engine = first.forward_engine, first.backward_engine
            self.forward_op, self.backward_op = first.forward_op, first.backward_op
            return
        forward = self.grad.forward if self.grad else self.cascade
        self.forward_engine = engine_for(forward, self.params, backend)
        self.backward_engine = (engine_for(self.grad.backward, self.params, backend)
                                if self.grad else None)
        self.forward_op, self.backward_op = self._register()
        _OPS[self.op_name] = self

    # ------------------------------------------------------------------ calling
    def bind(self, args, kwargs) -> list:
        """The input tensors in declaration order, from positions and names."""
        if len(args) > len(self.inputs):
            raise CascadeError(f"{self.cascade.name} takes {len(self.inputs)} inputs "
                               f"({', '.join(self.inputs)}), got {len(args)}")
        given = dict(zip(self.inputs, args, strict=False))
        for name, value in kwargs.items():
            if name not in self.inputs:
                raise CascadeError(f"{name} is not an input of {self.cascade.name}",
                                   hint="inputs: " + ", ".join(self.inputs))
            if name in given:
                raise CascadeError(f"input {name} is given twice (by position and by name)")
            given[name] = value
        missing = [n for n in self.inputs if n not in given]
        if missing:
            raise CascadeError(f"missing input tensor {missing[0]}",
                               hint="inputs: " + ", ".join(self.inputs))
        return [given[n] for n in self.inputs]

    def __call__(self, *args, **kwargs):
        xs = self.bind(args, kwargs)
        if torch.is_grad_enabled():
            for name, x in zip(self.inputs, xs, strict=True):
                if x.requires_grad and name not in self.differentiable:
                    raise CascadeError(f"input {name} of {self.cascade.name} requires a gradient, "
                                       f"which the op cannot provide: "
                                       + (self.no_grad_reason or "it is not in wrt"),
                                       hint=f"detach {name}, or differentiate another form")
        outs = self.forward_op([x.contiguous() for x in xs])[:len(self.outputs)]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def warm(self, *args, **kwargs) -> None:
        """Generates, loads and launches the forward and backward kernels once on these tensors
        (Triton compiles a kernel at its first launch), so that a traced call later finds them
        ready."""
        xs = [x.detach().contiguous() for x in self.bind(args, kwargs)]
        named = dict(zip(self.inputs, xs, strict=True))
        with torch.no_grad():
            self.forward_engine.warm(named)
            outs = self.forward_engine(named)
            if self.backward_engine is not None:
                seeds = {s: torch.zeros_like(outs[o]) for o, s in self.grad.seeds}
                tensors = {**named, **{k: outs[k] for k in self.saved}, **seeds}
                self.backward_engine.warm(tensors)
                self.backward_engine(tensors)

    def __repr__(self) -> str:
        back = (self.backward_engine.describe() if self.backward_engine
                else f"none ({self.no_grad_reason.splitlines()[0]})")
        return (f"CascadeOp({self.cascade.name}: {self.op_name}; forward: "
                f"{self.forward_engine.describe()}; backward: {back})")

    # ------------------------------------------------------------------ registration
    def _out_shapes(self, xs) -> list[tuple]:
        """Shapes of the outputs and saved values; an extent an input has is read off it (a
        symbolic size stays symbolic), any other from the resolved sizes."""
        where = {}
        for d, x in zip(self.cascade.inputs, xs, strict=True):
            for k, rank in enumerate(d.ranks):
                where.setdefault(rank_root(self.cascade, rank), x.shape[k])
        sizes = None
        forward = self.grad.forward if self.grad else self.cascade
        shapes = []
        for d in (*self.cascade.outputs, *(forward.output(s) for s in self.saved)):
            shape = []
            for rank in d.ranks:
                root = rank_root(self.cascade, rank)
                if root not in where and sizes is None:
                    named = dict(zip(self.inputs, xs, strict=True))
                    sizes = sizes_from(self.cascade, named, self.params)
                shape.append(where[root] if root in where else sizes[rank])
            shapes.append(tuple(shape))
        return shapes

    def _register(self):
        n_in = len(self.inputs)

        def forward(xs: List[torch.Tensor]) -> List[torch.Tensor]:
            out = self.forward_engine(dict(zip(self.inputs, xs, strict=True)))
            return [out[o].contiguous() for o in (*self.outputs, *self.saved)]

        def forward_fake(xs):
            return [xs[0].new_empty(s) for s in self._out_shapes(xs)]

        def backward_impl(xs: List[torch.Tensor]) -> List[torch.Tensor]:
            names = (*self.inputs, *self.saved, *(s for _, s in self.grad.seeds))
            out = self.backward_engine(dict(zip(names, xs, strict=True)))
            return [out[g].contiguous() for _, g in self.grad.grads]

        def backward_fake(xs):
            grads = dict(self.grad.grads)
            return [torch.empty_like(xs[self.inputs.index(x)]) for x in grads]

        fwd = torch.library.custom_op(f"{self.op_name}_fwd", forward, mutates_args=())
        fwd.register_fake(forward_fake)
        bwd = None
        if self.grad is not None:
            bwd = torch.library.custom_op(f"{self.op_name}_bwd", backward_impl, mutates_args=())
            bwd.register_fake(backward_fake)
        fwd.register_autograd(self._backward(bwd, n_in), setup_context=_setup_context)
        return fwd, bwd

    def _backward(self, bwd, n_in):
        def backward(ctx, grads):
            needs = ctx.cascade_needs
            missing = [x for x, n in zip(self.inputs, needs, strict=True)
                       if n and x not in self.differentiable]
            if missing:  # the call checks this first; a traced call may not have
                raise CascadeError(f"input {missing[0]} of {self.cascade.name} requires a "
                                   "gradient, which the op cannot provide: "
                                   + (self.no_grad_reason or "it is not in wrt"))
            if bwd is None or not any(needs):
                return [None] * n_in
            saved = ctx.saved_tensors
            xs, keep = list(saved[:n_in]), list(saved[n_in:])
            outs = keep[:len(self.outputs)]
            seeds = [torch.zeros_like(o) if g is None else g.contiguous()
                     for g, o in zip(grads, outs, strict=False)]  # saved: no seed
            grads_out = bwd(xs + keep[len(self.outputs):] + seeds)
            computed = dict(zip(dict(self.grad.grads), grads_out, strict=True))
            return [computed.get(x) if n else None
                    for x, n in zip(self.inputs, needs, strict=True)]
        return backward


def _setup_context(ctx, inputs, output):
    (xs,) = inputs
    ctx.cascade_needs = [x.requires_grad for x in xs]
    ctx.save_for_backward(*xs, *output)


def _ident(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name) or "cascade"


class CascadeModule(torch.nn.Module):
    """An ``nn.Module`` around a :class:`CascadeOp`: ``forward(*inputs, **inputs)``."""

    def __init__(self, cascade, **options):
        super().__init__()
        self.op = CascadeOp(cascade, **options)

    def forward(self, *args, **kwargs):
        return self.op(*args, **kwargs)

    def extra_repr(self) -> str:
        return repr(self.op)


def native_op(cascade, **options) -> CascadeOp:
    """``CascadeOp(cascade, **options)``: a cascade (IR or ``.ein`` path) as a native op."""
    return CascadeOp(cascade, **options)

"""Reverse-mode differentiation of a cascade: the pass behind ``cascade grad``.

:func:`gradient` walks the Einsums of the cascade as written from the last to the first and emits,
for each read of a value that depends on a differentiated input, the Einsum of its
vector-Jacobian product (:mod:`.vjp`); the shares of one tensor are added up once all its readers
are done. The backward cascade recomputes the forward values its Einsums read, except the
statistics of each softmax over a streamed rank, which the forward cascade saves as a log-sum-exp
(:mod:`.softmax`); an online softmax (running max and rescaled running sums) is differentiated in
its final-value form (:mod:`.online`), so that its backward reads no step of its recurrences. A running sum gets a suffix sum (:mod:`.recurrence`); other recurrences are
refused with a located error.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import CascadeError
from ..ir import Access, Binary, Cascade, Einsum, Name, Num, Role, SizeDecl, TensorDecl
from ..verifier import analyze
from .derivative import inline_read, substitute
from ..passes.rewrite import transform
from .loop import reverse_loop
from .online import collapse
from .recurrence import RECURRENCE_HINT, Loop, loop_of, read_kind, suffix_sum
from .softmax import Softmax, find_softmaxes
from .vjp import Target, tie_count, vjp

__all__ = ["RECURRENCE_HINT", "Gradient", "gradient"]


@dataclass(frozen=True)
class Gradient:
    """The result of the pass.

    ``forward`` is the cascade with the saved values as extra outputs; ``backward`` takes the
    forward's inputs, the saved values and one seed per differentiated output, and gives one
    gradient per differentiated input. The maps give the names: output -> seed, input -> gradient.
    """

    forward: Cascade
    backward: Cascade
    seeds: tuple[tuple[str, str], ...]
    grads: tuple[tuple[str, str], ...]
    saved: tuple[str, ...]


class _Names:
    def __init__(self, taken):
        self.taken = set(taken)

    def fresh(self, base: str) -> str:
        name, k = base, 2
        while name in self.taken:
            name, k = f"{base}_{k}", k + 1
        self.taken.add(name)
        return name


def gradient(cascade: Cascade, wrt=None, outputs=None, *, save_lse: bool = True) -> Gradient:
    """Derives the gradient cascades of ``cascade`` (see :class:`Gradient`).

    ``wrt`` names the inputs to differentiate (default: all), ``outputs`` the outputs whose seeds
    are given (default: all). ``save_lse=False`` differentiates every softmax as written (the
    arg-max rule through its max) instead of saving its log-sum-exp.
    """
    analysis = analyze(cascade)
    outputs = _choose(cascade.outputs, outputs, "output")
    wrt = _choose(cascade.inputs, wrt, "input")
    if not save_lse:
        return _Pass(cascade, wrt, outputs, ()).run()
    collapsed = collapse(cascade, analysis)
    softmaxes = find_softmaxes(collapsed.cascade) if collapsed is not None else ()
    if not softmaxes:  # no online softmax, or one whose outputs depend on the shift
        return _Pass(cascade, wrt, outputs, find_softmaxes(cascade)).run()
    return _Pass(collapsed.cascade, wrt, outputs, softmaxes, original=cascade,
                 finals=dict(collapsed.finals)).run()


def _choose(decls, names, kind: str) -> tuple[str, ...]:
    known = [d.name for d in decls]
    if names is None:
        return tuple(known)
    for name in names:
        if name not in known:
            raise CascadeError(f"{name} is not an {kind} of the cascade",
                               hint=f"{kind}s: " + ", ".join(known))
    return tuple(dict.fromkeys(names))


class _Pass:
    def __init__(self, cascade: Cascade, wrt, outputs, softmaxes: tuple[Softmax, ...],
                 original: Cascade | None = None, finals: dict | None = None):
        self.c = cascade
        # the forward pass runs ``original`` (the online form); ``finals``: the tensors of the
        # final-value form differentiated instead, as final values of the original's states
        self.original, self.finals = original or cascade, finals or {}
        self.wrt, self.outputs, self.softmaxes = wrt, outputs, softmaxes
        self.names = _Names({*cascade.tensor_names(), *cascade.rank_names(),
                             *(d.name for d in cascade.sizes)})
        self.lse = {sm.gm.name: self.names.fresh("LSE" if len(softmaxes) == 1 else
                                                 f"LSE_{sm.gm.name}") for sm in softmaxes}
        self.subst = {**self.lse, **{sm.sd.name: Num(1) for sm in softmaxes}}
        self.seeds = {o: self.names.fresh(f"d{o}") for o in outputs}
        # tensor -> positions of its shares in self.out, by how a recurrence's state is read
        self.shares: dict[str, dict[str, list[int]]] = {"plain": {}, "next": {}, "final": {}}
        self.recurrent: dict[str, Loop] = {}
        self.in_loop: dict[str, Loop] = {}  # an Einsum of a recurrence's group -> the recurrence
        self.new_sizes: list[SizeDecl] = []
        self.out: list[Einsum] = []

    def axes(self, tensor: str) -> tuple[str, ...]:
        decl = self.c.input(tensor)
        if decl is not None:
            return decl.axes
        if tensor in self.recurrent:
            return self.recurrent[tensor].axes()
        (definition,) = self.c.definitions(tensor)
        return tuple(i.name for i in definition.output.indices)

    def active(self) -> set[str]:
        """The tensors on a path from a differentiated input to a chosen output (to a fixed
        point: a recurrence's Einsums may read tensors defined after them)."""
        stopped = set(self.lse)
        needs, useful = set(self.wrt), set(self.outputs)
        while True:
            size = len(needs) + len(useful)
            for e in self.c.einsums:
                if e.name not in stopped and any(a.tensor in needs for a in e.reads()):
                    needs.add(e.name)
                if e.name in useful:
                    useful |= {a.tensor for a in e.reads()}
            if len(needs) + len(useful) == size:
                return needs & useful

    def run(self) -> Gradient:
        active = self.active()
        analysis = analyze(self.c)
        for e in self.c.einsums:
            if e.name in active and e.role is not Role.DEF and e.name not in self.recurrent:
                loop = loop_of(self.c, analysis, analysis.recurrences[e.name])
                self.recurrent[e.name] = loop
                self.in_loop.update({m.name: loop for m in loop.members})
        seen: set[str] = set()
        for e in reversed(self.c.einsums):
            if e.name in active and e.role is Role.UPDATE:
                self._recurrence(self.recurrent[e.name], active | set(self.wrt), seen)
            elif e.name in active and e.role is Role.DEF:
                self._einsum(e, active | set(self.wrt), seen)
        grads = {x: self._total(x) for x in self.wrt}
        return self._build(grads)

    def _einsum(self, e: Einsum, wanted: set[str], seen: set[str]) -> None:
        loop = self.in_loop.get(e.name)
        late = [a.tensor for a in e.reads() if a.tensor in seen
                and not (loop and a.tensor in {loop.tensor, *(m.name for m in loop.members)})]
        if late:
            raise CascadeError(f"{e.name} reads {late[0]}, which a later Einsum defines",
                               e.span, "order the Einsums so that each is defined before use")
        seen.add(e.name)
        grad = self._total(e.name)
        if grad is None:
            return
        ties = None
        if e.reducer in ("max", "min"):
            ties = self.names.fresh(f"N{e.name}")
            self.out.append(tie_count(e, ties))
        reads = dict.fromkeys(a for a in _body_reads(e) if a.tensor in wanted
                              and a.tensor not in self.lse)
        for read in reads:
            rec = self.recurrent.get(read.tensor)
            if rec is not None and loop is rec:
                continue  # a step's read of the state it updates: the reverse loop's part
            self._share(e, read, grad, ties=ties)

    def _share(self, e: Einsum, read: Access, grad: str, ties=None, seed=None) -> None:
        """Emits the VJP of ``e`` for ``read`` and files it as a share of the read tensor."""
        rec = self.recurrent.get(read.tensor)
        kind = read_kind(self.c, rec, read) if rec is not None else "plain"
        target = Target(read.tensor, self.axes(read.tensor),
                        rec.axis if kind == "final" else None,
                        rec.axis if kind == "next" else None)
        name = self.names.fresh(f"d{read.tensor}_{e.name}")
        share = vjp(self.c, e, read, target, grad, name, self.names.fresh, ties, seed=seed,
                    alias=self._alias)
        self._add_share(read.tensor, share, self.shares[kind])

    def _recurrence(self, rec: Loop, wanted: set[str], seen: set[str]) -> None:
        """The gradient of each step's new value (a suffix sum for a running sum, else the
        reverse loop) seeds the VJP of the update."""
        seen.add(rec.tensor)
        plain, nxt = self._total(rec.tensor), self._total(rec.tensor, "next")
        final = self._total(rec.tensor, "final")
        if plain is None and final is None and nxt is None:
            return
        if rec.increment is not None and nxt is None:
            alias = self._alias(rec.rank, set(rec.update.iteration_space)).upper()
            einsums, seed = suffix_sum(rec, plain, final, alias, self.names)
            reads = _accesses_of(rec.increment)
        else:
            einsums, seed = reverse_loop(self.c, rec, plain, nxt, final, self.names, self.axes,
                                         self._alias)
            reads = tuple(a for a in _accesses_of(rec.update.body) if a.tensor != rec.tensor)
        self.out.extend(einsums)
        for read in dict.fromkeys(reads):
            if read.tensor not in wanted or read.tensor in self.lse:
                continue
            self._share(rec.update, read, seed.tensor, seed=seed)

    def _alias(self, rank: str, avoid: set[str]) -> str:
        """An index of an alias rank of ``rank`` (``rank N2 = N``) not in ``avoid``; the alias
        ranks are shared by every Einsum that needs a second index of a rank."""
        for d in self.new_sizes:
            if d.default == Name(rank) and d.name.lower() not in avoid:
                return d.name.lower()
        alias = self.names.fresh(f"{rank}2")
        while alias.lower() in avoid:
            alias = self.names.fresh(f"{rank}2")
        self.new_sizes.append(SizeDecl(alias, Name(rank)))
        return alias.lower()

    def _add_share(self, tensor: str, einsums, shares: dict) -> None:
        if einsums is not None:
            self.out.extend(einsums[:-1])
            shares.setdefault(tensor, []).append(len(self.out))
            self.out.append(einsums[-1])

    def _total(self, tensor: str, kind: str = "plain") -> str | None:
        """The name of the whole gradient of ``tensor``: its seed, its one share (renamed), or
        the sum of its shares; None when nothing reaches it. ``kind``: of a recurrence's state,
        the shares of the reads at n ("plain"), at n+1 ("next") or at the end ("final")."""
        shares = self.shares[kind].get(tensor, [])
        seed = self.seeds.get(tensor) if kind == "plain" else None
        final = kind == "final"
        if not shares:
            return seed
        base = {"plain": f"d{tensor}", "next": f"d{tensor}_next", "final": f"d{tensor}_end"}[kind]
        drop = self.recurrent[tensor].axis if final else None
        axes = tuple(Name(a) for k, a in enumerate(self.axes(tensor)) if k != drop)
        if len(shares) == 1 and seed is None and self.out[shares[0]].output.indices == axes:
            k = shares[0]
            name = self.names.fresh(base)
            share = self.out[k]
            self.names.taken.discard(share.name)
            self.out[k] = replace(share, output=Access(name, share.output.indices))
            return name
        terms = [Access(self.out[k].name, axes) for k in shares]
        if seed is not None:
            terms.insert(0, Access(seed, axes))
        body = terms[0]
        for term in terms[1:]:
            body = Binary("+", body, term)
        name = self.names.fresh(base)
        self.out.append(Einsum(Access(name, axes), body))
        return name

    def _build(self, grads: dict[str, str | None]) -> Gradient:
        names = {}
        for x, g in grads.items():
            if g is None:  # no path to the chosen outputs: the gradient is zero
                g = self.names.fresh(f"d{x}")
                self.out.append(Einsum(Access(g, tuple(Name(a) for a in self.axes(x))), Num(0)))
            names[x] = g
        backward = [_substituted(e, self.subst) for e in self.out]
        recompute = self._recompute(backward)
        einsums = _without_copies([*recompute, *backward], set(names.values()))
        decls = {d.name: d for d in (*self.c.inputs, *self.c.outputs)}
        gm_decls = [TensorDecl(self.lse[sm.gm.name], sm.rows) for sm in self.softmaxes]
        lses = (self._at_finals(_lse(sm, self.lse[sm.gm.name])) for sm in self.softmaxes)
        forward = replace(self.original, outputs=(*self.original.outputs, *gm_decls),
                          einsums=(*self.original.einsums, *lses), name=f"{self.c.name}_fwd")
        back = Cascade(
            (*self.c.sizes, *self.new_sizes), self.c.splits,
            (*self.c.inputs, *gm_decls,
             *(TensorDecl(self.seeds[o], decls[o].axes) for o in self.outputs)),
            tuple(TensorDecl(names[x], decls[x].axes) for x in self.wrt),
            tuple(einsums), name=f"{self.c.name}_grad")
        analyze(back)
        return Gradient(forward, back, tuple(self.seeds.items()), tuple(names.items()),
                        tuple(d.name for d in gm_decls))

    def _at_finals(self, e: Einsum) -> Einsum:
        """``e`` reading the original's final values for the tensors of the final-value form
        (``GM[o]`` as ``RM[o, M1]``)."""
        def final(node):
            if not isinstance(node, Access) or node.tensor not in self.finals:
                return None
            (own,) = self.c.definitions(node.tensor)
            at = {i.name: r for i, r in zip(own.output.indices, node.indices, strict=True)}
            end = self.finals[node.tensor]
            return Access(end.tensor, tuple(at.get(i.name, i) if isinstance(i, Name) else i
                                            for i in end.indices), node.span)

        return replace(e, body=transform(e.body, final))

    def _recompute(self, backward: list[Einsum]) -> list[Einsum]:
        """The forward Einsums the backward ones read, transitively, with the saved values
        substituted (the max read as the log-sum-exp, the denominator as 1)."""
        forward = [_substituted(e, self.subst) for e in self.c.einsums]
        needed: set[str] = set()
        stack = [a.tensor for e in backward for a in e.reads()]
        while stack:
            t = stack.pop()
            if t not in needed:
                needed.add(t)
                stack.extend(a.tensor for e in forward if e.name == t for a in e.reads())
        return [e for e in forward if e.name in needed]


def _body_reads(e: Einsum):
    return tuple(a for a in e.reads() if a in _accesses(e.body))


def _accesses(expr):
    return set(_accesses_of(expr))


def _accesses_of(expr):
    from ..ir import accesses

    return accesses(expr)


def _without_copies(einsums: list[Einsum], keep: set[str]) -> list[Einsum]:
    """Inlines the Einsums that only copy or broadcast a tensor (``A[i, j] = SN[i, j]``: the
    softmax's division by an SD of 1; ``dX[i, j] = dY[i]``: a share of one read) into readers
    that read them at plain indices."""
    out = list(einsums)
    for name in [e.name for e in einsums if _is_copy(e) and e.name not in keep]:
        copy = next(e for e in out if e.name == name)  # its body may read an inlined copy
        readers = [e for e in out if any(a.tensor == copy.name for a in e.reads())]
        if any(not all(isinstance(i, Name) for i in a.indices)
               for e in readers for a in e.reads() if a.tensor == copy.name):
            continue
        if _broadcasts(copy) and any(_adds(e.body) for e in readers):
            continue  # under '+' a broadcast operand creates no points (coverage rule): keep it
        out = [replace(e, body=inline_read(e.body, copy)) for e in out if e is not copy]
    return out


def _broadcasts(copy: Einsum) -> bool:
    return set(copy.output.indices) > set(copy.body.indices)


def _adds(expr) -> bool:
    from ..ir import Binary, walk

    return any(isinstance(x, Binary) and x.op in "+-" for x in walk(expr))


def _is_copy(e: Einsum) -> bool:
    return (e.role is Role.DEF and e.reducer is None and e.where is None
            and isinstance(e.body, Access) and all(isinstance(i, Name) for i in e.body.indices)
            and len(set(e.output.indices)) == len(e.output.indices))


def _substituted(e: Einsum, subst) -> Einsum:
    return replace(e, body=substitute(e.body, subst))


def _lse(sm: Softmax, name: str) -> Einsum:
    from .algebra import add, call

    rows = sm.gm.output.indices
    return Einsum(Access(name, rows), add(Access(sm.gm.name, rows),
                                          call("log", Access(sm.sd.name, rows))))

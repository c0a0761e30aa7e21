"""A recurrence's steps in global memory, for kernels that read them after the one that runs it.

A recurrence ``S[.., 0, ..] = c``, ``S[.., n + 1, ..] = f(S[.., n, ..], ..)`` has N + 1 steps
along its step axis. A kernel program that runs it can hand on what later kernels read of it:

* ``S_steps[.., n, ..] = S[.., n, ..]``: the state before each step (steps 0 .. N - 1), for reads
  whose index stays in [0, N - 1] (``S[n]``, ``S[N - 1 - r]``);
* ``S_next[.., n, ..] = S[.., n + 1, ..]``: the state after each step (steps 1 .. N), for reads in
  [1, N] (``S[n + 1]``, read as ``S_next[n]``);
* ``S_end[..] = S[.., N, ..]``: the final value alone, for reads at exactly ``N``.

Together they hold the N + 1 steps; each is written only where a reader outside the writing
kernel reads that form, so a recurrence read only at its end passes without its step axis. The
readers' accesses are rewritten onto the stored tensors (:func:`read_steps`). A read whose index
the forms above do not bound (``S[n + 2]``, ``S[p / 2]``) cannot be handed on: the recurrence
stays inside the kernels that read it (the partition recomputes it there).

The bounds are symbolic: an index is an affine form of index variables and sizes
(:func:`einsum_ir.affine.affine_of`), each variable ranging over its rank, aliases (``rank N2 =
N``) resolved, so the forms hold at every size.
"""
from __future__ import annotations

from dataclasses import dataclass

from einsum_ir import Cascade
from einsum_ir.affine import affine_of
from einsum_ir.errors import CascadeError
from einsum_ir.ir import Access, Binary, Einsum, Name, Num, Role, Span, TensorDecl
from einsum_ir.passes.rewrite import transform

from .nans import empty_in_memory

FORMS = ("steps", "next", "end")


@dataclass(frozen=True)
class StepStore:
    """How recurrence ``tensor`` (step axis ``axis``, step index ``var``, axes ``axes`` with the
    step axis named ``var``) passes through memory: ``forms`` maps each form read to its name."""

    tensor: str
    axis: int
    var: str
    axes: tuple[str, ...]
    forms: tuple[tuple[str, str], ...]
    aliases: tuple[tuple[str, str], ...] = ()  # rank -> the rank it is an alias of
    span: Span | None = None  # the recurrence's update: where a refusal of a copy points
    empty: float = 0.0  # its empty points in memory (backends.gpu.nans.empty_in_memory)

    @property
    def rank(self) -> str:
        return self.var.upper()

    def names(self) -> tuple[str, ...]:
        return tuple(name for _, name in self.forms)

    def decls(self, only=None) -> list[TensorDecl]:
        """The stored tensors' declarations (``only``: those forms)."""
        out = []
        for form, name in self.forms:
            if only is None or form in only:
                axes = self.axes if form != "end" else \
                    tuple(a for k, a in enumerate(self.axes) if k != self.axis)
                out.append(TensorDecl(name, axes, self.empty))
        return out

    def writers(self, only=None) -> list[Einsum]:
        """The Einsums that copy the forms out of the recurrence, in the kernel that runs it."""
        here = tuple(Name(a) for a in self.axes)
        at = {"steps": Name(self.var), "next": Binary("+", Name(self.var), Num(1)),
              "end": Name(self.rank)}
        out = []
        for form, name in self.forms:
            if only is not None and form not in only:
                continue
            src = Access(self.tensor, _put(here, self.axis, at[form]))
            dst = here if form != "end" else _drop(here, self.axis)
            out.append(Einsum(Access(name, dst), src, span=self.span))
        return out

    def read(self, access: Access) -> Access:
        """``access`` of the recurrence as a read of the stored form that holds it."""
        index = access.indices[self.axis]
        form = _form(dict(self.aliases), index, self.rank)
        name = dict(self.forms)[form]
        if form == "end":
            return Access(name, _drop(access.indices, self.axis), access.span)
        if form == "next":
            index = _minus_one(index)
        return Access(name, _put(access.indices, self.axis, index), access.span)



def step_store(cascade: Cascade, tensor: str, readers) -> StepStore:
    """The store of recurrence ``tensor`` for the ``readers`` (Einsums outside the kernel that runs
    it); raises a located CascadeError where a read cannot be mapped onto a stored form."""
    defs = cascade.definitions(tensor)
    update = next(e for e in defs if e.role is Role.UPDATE)
    axis = next(k for k, i in enumerate(update.output.indices) if isinstance(i, Binary))
    step = update.output.indices[axis]
    if not (isinstance(step.lhs, Name) and step.lhs.is_index):
        raise CascadeError(f"{tensor}'s step is not an index plus one: its steps cannot pass "
                           "between kernels", update.span, source=cascade.source)
    axes = []
    for k, i in enumerate(update.output.indices):
        if k != axis and not (isinstance(i, Name) and i.is_index):
            raise CascadeError(f"{tensor} is written at computed indices: its steps cannot "
                               "pass between kernels", update.span, source=cascade.source)
        axes.append(step.lhs.name if k == axis else i.name)
    ranks = _aliases(cascade)
    forms = set()
    for e in readers:
        for a in e.reads():
            if a.tensor != tensor:
                continue
            form = _form(ranks, a.indices[axis], step.lhs.name.upper())
            if form is None:
                raise CascadeError(f"{tensor} is read at a step that no stored form of its "
                                   "recurrence holds (steps 0 .. N - 1, 1 .. N, or N)", a.span,
                                   source=cascade.source)
            forms.add(form)
    taken = set(cascade.tensor_names())
    names = []
    for f in FORMS:
        if f in forms:
            name = f"{tensor}_{f}"
            while name in taken:
                name += "_"
            names.append((f, name))
    return StepStore(tensor, axis, step.lhs.name, tuple(axes), tuple(names),
                     tuple(sorted(ranks.items())), update.span, empty_in_memory(cascade, tensor))


def read_steps(einsum: Einsum, stores: dict) -> Einsum:
    """``einsum`` reading each stored recurrence through its stored forms."""
    def fn(node):
        if isinstance(node, Access) and node.tensor in stores:
            return stores[node.tensor].read(node)
        return None

    where = transform(einsum.where, fn) if einsum.where is not None else None
    return Einsum(einsum.output, transform(einsum.body, fn), einsum.reducer, einsum.reduced,
                  where, einsum.implicit_sum, einsum.span)


def _aliases(cascade: Cascade) -> dict[str, str]:
    """Each rank declared as another one (``rank N2 = N``) -> the rank it resolves to."""
    direct = {d.name: d.default.name for d in cascade.sizes
              if isinstance(d.default, Name) and not d.default.is_index}
    out = {}
    for rank in direct:
        seen, r = set(), rank
        while r in direct and r not in seen:
            seen.add(r)
            r = direct[r]
        out[rank] = r
    return out


def _form(aliases: dict, index, rank: str) -> str | None:
    """Which stored form holds the steps ``index`` reads: its symbolic bounds in [0, N - 1]
    (``steps``), in [1, N] (``next``), or ``N`` itself (``end``); None otherwise."""
    form = affine_of(index, lambda _: None)
    if form is None:
        return None
    n = aliases.get(rank, rank)
    low, high = _sizes(aliases, form.sizes), _sizes(aliases, form.sizes)
    low_c = high_c = form.const
    for var, coef in form.indices:
        r = aliases.get(var.upper(), var.upper())
        top = {r: coef}  # coef * (R - 1)
        if coef > 0:
            high = _add(high, top)
            high_c -= coef
        else:
            low = _add(low, top)
            low_c -= coef
    if not form.indices and low == {n: 1} and low_c == 0:
        return "end"
    # each bound as (size terms, constant); below N - 1 means N - 1 - high >= 0
    room = _add({n: 1}, {k: -v for k, v in high.items()})
    if _nonnegative(low, low_c) and _nonnegative(room, -1 - high_c):
        return "steps"
    if _nonnegative(low, low_c - 1) and _nonnegative(room, -high_c):
        return "next"
    return None


def _nonnegative(terms: dict, const: int) -> bool:
    """Whether ``sum(c * size) + const >= 0`` at every size >= 1."""
    return all(c >= 0 for c in terms.values()) and const + sum(terms.values()) >= 0


def _sizes(aliases: dict, terms) -> dict:
    out: dict[str, int] = {}
    for s, c in terms:
        out = _add(out, {aliases.get(s, s): c})
    return out


def _add(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return {k: v for k, v in out.items() if v}


def _put(indices: tuple, axis: int, index) -> tuple:
    return tuple(index if k == axis else i for k, i in enumerate(indices))


def _drop(indices: tuple, axis: int) -> tuple:
    return tuple(i for k, i in enumerate(indices) if k != axis)


def _minus_one(index):
    if isinstance(index, Binary) and index.op == "+" and isinstance(index.rhs, Num) \
            and index.rhs.value == 1:
        return index.lhs
    return Binary("-", index, Num(1))


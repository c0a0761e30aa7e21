"""Views of an intermediate's memory that a group reads at plain indices.

Split views: reading at ``hk * G + g2`` as the view ``T[.., hk, .., g2]``.

A group that sums the heads of a group of queries (GQA's ``dK[b,hk,m,e] = sum[g2]
dK_at[b, hk * G + g2, m, e]``) reads its input at a computed index the single-kernel lowering
cannot tile; the same memory, seen with that axis unflattened into (HK, G) and the G axis moved
last, is read at plain indices (``dK_at_by[b, hk, m, e, g2]``). Where every read of an
intermediate in a group has that form on one axis and the axis's extent is exactly the product
(checked at the call's sizes), the group declares the view instead; the program hands it
``tensor.unflatten(axis, (-1, G)).movedim(axis + 1, -1)``, a strided view, no copy.

Permuted views: the lowering takes the grid ranks from the leading axes of the inputs, so axial
attention's second half (``R[y,x,e] * R[y2,x,e]``: x is the same in every read, y varies) lowers
when it reads ``R`` as ``R[x,y,e]`` (``tensor.permute``): the axes every read indexes alike move
first, the axes a read reduces over last but one (mixture of heads' ``sum[h] W[p,h] *
AV[h,p,f]`` reads ``AV[p,h,f]``). The partition tries it where a group refuses as declared.
"""
from __future__ import annotations

from dataclasses import dataclass

from einsum_ir.ir import Access, Binary, Einsum, Name, TensorDecl
from einsum_ir.passes.rewrite import transform


@dataclass(frozen=True)
class SplitView:
    """``name`` is ``tensor`` with axis ``axis`` unflattened into (outer, inner), inner last."""

    tensor: str
    name: str
    axis: int
    outer: str  # index variables
    inner: str
    size: str  # the inner extent's size name (``G``)

    def decl(self, decl: TensorDecl) -> TensorDecl:
        axes = list(decl.axes)
        axes[self.axis] = self.outer
        return TensorDecl(self.name, (*axes, self.inner), decl.empty, decl.span)

    def indices(self, access: Access) -> tuple:
        idx = list(access.indices)
        idx[self.axis] = Name(self.outer)
        return (*idx, Name(self.inner))


@dataclass(frozen=True)
class PermuteView:
    """``name`` is ``tensor`` with its axes in the order ``order``."""

    tensor: str
    name: str
    order: tuple[int, ...]

    def decl(self, decl: TensorDecl) -> TensorDecl:
        return TensorDecl(self.name, tuple(decl.axes[k] for k in self.order), decl.empty,
                          decl.span)

    def indices(self, access: Access) -> tuple:
        return tuple(access.indices[k] for k in self.order)


def permute_view(decl: TensorDecl, einsums, name: str) -> PermuteView | None:
    """The view with the axes every read of ``decl`` indexes by the same variable first, the
    axes a reading Einsum reduces over after the others (the last axis stays last)."""
    reads = [(a, e) for e in einsums for a in e.reads() if a.tensor == decl.name]
    if len(decl.axes) < 3 or not reads:
        return None
    last = len(decl.axes) - 1

    def rank(k: int) -> int:
        names = [a.indices[k].name if isinstance(a.indices[k], Name) else None for a, _ in reads]
        if any(n is not None and n in e.reduced for n, (_, e) in zip(names, reads, strict=True)):
            return 2  # reduced by a read: toward the streamed/column end
        return 0 if None not in names and len(set(names)) == 1 else 1

    order = (*sorted(range(last), key=rank), last)
    return None if order == tuple(range(len(order))) else PermuteView(decl.name, name, order)


def _split_form(index) -> tuple[str, str, str] | None:
    """(outer, size, inner) of ``outer * SIZE + inner`` (either order of each operation)."""
    if not (isinstance(index, Binary) and index.op == "+"):
        return None
    for prod, inner in ((index.lhs, index.rhs), (index.rhs, index.lhs)):
        if isinstance(prod, Binary) and prod.op == "*" and isinstance(inner, Name) \
                and inner.is_index:
            for a, g in ((prod.lhs, prod.rhs), (prod.rhs, prod.lhs)):
                if isinstance(a, Name) and a.is_index and isinstance(g, Name) and not g.is_index:
                    return a.name, g.name, inner.name
    return None


def split_view(decl: TensorDecl, einsums, sizes: dict, name: str) -> SplitView | None:
    """The view every read of ``decl`` in ``einsums`` can take, if there is one."""
    forms = set()
    for e in einsums:
        for access in e.reads():
            if access.tensor != decl.name:
                continue
            found = [(k, _split_form(i)) for k, i in enumerate(access.indices)]
            found = [(k, f) for k, f in found if f is not None]
            if len(found) != 1 or any(not isinstance(i, Name) for k, i in
                                      enumerate(access.indices) if k != found[0][0]):
                return None
            forms.add(found[0])
    if len(forms) != 1:
        return None
    (axis, (outer, size, inner)), = forms
    extent, g = sizes.get(decl.ranks[axis]), sizes.get(size)
    if g is None or extent is None or sizes.get(inner.upper()) != g \
            or sizes.get(outer.upper(), 0) * g != extent:
        return None
    return SplitView(decl.name, name, axis, outer, inner, size)


def read_through(einsum: Einsum, views: dict) -> Einsum:
    """``einsum`` reading each viewed tensor through its view."""
    def fn(node):
        if isinstance(node, Access) and node.tensor in views:
            view = views[node.tensor]
            return Access(view.name, view.indices(node), node.span)
        return None

    where = transform(einsum.where, fn) if einsum.where is not None else None
    return Einsum(einsum.output, transform(einsum.body, fn), einsum.reducer, einsum.reduced,
                  where, einsum.implicit_sum, einsum.span)

"""The three graph algorithms the verifier needs, over small integer graphs.

Written out (iteratively) rather than taken from networkx, whose import alone costs more than the
rest of ``cascade check``. A graph is ``succ``: node -> successors in insertion order; nodes are
``0..n-1``.
"""
from __future__ import annotations

import heapq
from typing import Callable


def find_cycle(n: int, succ: dict[int, list[int]]) -> list[int] | None:
    """The nodes of the first cycle a depth-first search from nodes 0, 1, ... meets (in path
    order, starting where the cycle closes), or None when the graph is acyclic."""
    done: set[int] = set()
    for start in range(n):
        if start in done:
            continue
        path, on_path = [start], {start}
        stack = [iter(succ.get(start, ()))]
        while stack:
            head = next(stack[-1], None)
            if head is None:
                stack.pop()
                node = path.pop()
                on_path.discard(node)
                done.add(node)
                continue
            if head in on_path:
                return path[path.index(head):]
            if head in done:
                continue
            path.append(head)
            on_path.add(head)
            stack.append(iter(succ.get(head, ())))
    return None


def strongly_connected(n: int, succ: dict[int, list[int]]) -> list[list[int]]:
    """Tarjan's strongly connected components (each a list of nodes)."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    components: list[list[int]] = []
    for root in range(n):
        if root in index:
            continue
        work = [(root, iter(succ.get(root, ())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(succ.get(child, ()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components


def smallest_first_order(nodes: list, succ: Callable[[object], list], key) -> list:
    """Topological order of an acyclic graph that always takes the available node with the
    smallest ``key`` (unique when keys are distinct)."""
    indegree = {node: 0 for node in nodes}
    for node in nodes:
        for child in succ(node):
            indegree[child] += 1
    ready = [(key(node), node) for node in nodes if indegree[node] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, node = heapq.heappop(ready)
        order.append(node)
        for child in succ(node):
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(ready, (key(child), child))
    return order

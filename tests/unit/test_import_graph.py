"""The module graph of src/agenttui has no cycles (docs/architecture.md): each module can be read
knowing only the modules below it. Imports inside functions and under TYPE_CHECKING count too."""

from __future__ import annotations

import grimp


def strongly_connected_groups(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the groups of two or more modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def test_the_finder_sees_a_cycle():
    graph = grimp.ImportGraph()
    for module in ("a", "b", "c"):
        graph.add_module(module)
    graph.add_import(importer="a", imported="b")
    graph.add_import(importer="b", imported="c")
    assert strongly_connected_groups(graph) == []
    graph.add_import(importer="c", imported="a")
    assert strongly_connected_groups(graph) == [["a", "b", "c"]]


def test_no_import_cycle_between_modules_of_agenttui():
    graph = grimp.build_graph("agenttui", cache_dir=None)
    assert strongly_connected_groups(graph) == []

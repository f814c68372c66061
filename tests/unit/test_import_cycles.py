"""No import circle anywhere in the bot, the commands or the core: a module that needs
another's type at run time or only for checking (`TYPE_CHECKING`) alike, as import-linter's
graph (grimp) sees them."""

from __future__ import annotations

import grimp


def circles(*packages: str) -> list[list[str]]:
    """Every group of modules of `packages` that import one another round (Tarjan)."""
    graph = grimp.build_graph(*packages, include_external_packages=False, cache_dir=None)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_round_another() -> None:
    assert circles("bot", "commands", "core") == []

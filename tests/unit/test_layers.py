"""The layers of DESIGN.md: core imports no front, no Slack, no rich; commands no Slack."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
FORBIDDEN = {
    "core": {"bot", "commands", "slack_bolt", "slack_sdk", "rich"},
    "commands": {"bot", "slack_bolt", "slack_sdk", "rich"},
}
# web frameworks may appear only in the local target's model server and in emulators
WEB = {"flask", "fastapi", "starlette", "uvicorn", "aiohttp"}
# the model-server worker and the warm runtime it is forked from (which imports it ahead)
MODEL_SERVER = {
    "core/targets/local/server.py": {"uvicorn"},
    "core/targets/local/zygote.py": {"uvicorn"},
}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_imports_point_down(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            imported(path)
            & (FORBIDDEN[package] | WEB) - MODEL_SERVER.get(str(path.relative_to(ROOT)), set())
        )
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def modules_imported(path: Path) -> set[str]:
    """Every module `path` imports, wherever in it (a function's body too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_no_command_module_imports_the_command_table() -> None:
    """The table (commands.registry) imports every command; a command that imported it back,
    even inside a function, would make an import circle (help did, for the names)."""
    offenders = {
        path.name
        for path in (ROOT / "commands").glob("*.py")
        if path.name != "registry.py" and "commands.registry" in modules_imported(path)
    }
    assert offenders == set()

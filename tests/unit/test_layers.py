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

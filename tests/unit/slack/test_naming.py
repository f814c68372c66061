"""Every text that names a command names one the app registers, under every setting: the
namespace's name, and direct commands on or off (`CHATOPS_SLACK_DIRECT_COMMANDS`). Each text
is rendered as the front renders it and each `/word` in it is looked up in the manifest the
same settings make."""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.slack.manifest import manifest
from bot.slack.rendering import messages
from bot.slack.rendering.blocks import history, registered, status
from bot.slack.rendering.home import home_view
from bot.slack.rendering.mrkdwn import named, shown
from commands.base import HistoryReport, StatusReport, UsageError
from commands.naming import Naming
from commands.registry import COMMANDS, describe, parse, split
from core.admission.approvals import expired_text
from core.admission.locker import locked_text, still_running_text, taken_text
from core.events import EndpointStatus
from core.oncall import sentinel, watching
from core.oncall.overview import Overview
from core.registry.runs import Registered
from core.store.models import ApprovalRow, AuditRow, LockAttempt, LockRow, Operation
from tests.unit.commands.test_grammar import MALFORMED

NOW = datetime(2024, 5, 1, tzinfo=UTC)
NAMINGS = [Naming("mlops", True), Naming("mlops", False), Naming("ml", False), Naming("deploy")]
# a slash word in shown text: not part of a URL, a path or a word
SLASH = re.compile(r"(?<![\w/.:<>@-])/([a-z][a-z0-9_-]*)")
# the one command of Slack's own the bot tells people to type: inviting it to a channel
SLACKS_OWN = {"/invite"}


def registered_by(naming: Naming) -> set[str]:
    made = manifest(command=naming.namespace, direct=naming.direct)
    return {c["command"] for c in made["features"]["slash_commands"]} | SLACKS_OWN


def slash_words(text: str) -> set[str]:
    return {f"/{w}" for w in SLASH.findall(text)}


class _Any(dict[str, Any]):
    """Any placeholder of a template, filled with a plain value."""

    def __missing__(self, key: str) -> str:
        return "1" if key in ("n", "version", "page", "pages", "attempts") else "dev"


def templates() -> Iterator[tuple[str, str]]:
    for name in dir(messages):
        value = getattr(messages, name)
        if name.isupper() and isinstance(value, str):
            yield name, string.Formatter().vformat(value, (), _Any())


def core_texts() -> Iterator[str]:
    """Texts of the core and the command table that name commands, as users meet them."""
    yield describe()
    for name in COMMANDS:
        yield describe(name)
    for line, _ in MALFORMED:
        found = parse(*split(line))
        assert isinstance(found, UsageError)
        yield found.text
    attempt = LockAttempt(False, "t", "<@U0CAROL>", "freeze", NOW, True)
    yield locked_text("dev", "iris", attempt)
    yield locked_text("dev", "iris", LockAttempt(False, "t", "<@U0CAROL>", "deploy", NOW))
    held = LockRow(env="dev", endpoint="iris", token="t", holder="<@U0CAROL>", reason="r")
    op = Operation(id="op-1", kind="deploy", env="dev", endpoint="iris", command="/deploy")
    yield still_running_text("dev", "iris", held, op)
    yield taken_text(op, attempt)
    row = ApprovalRow(
        id="apr-1", model="iris", version=2, env="prod", requester_id="U1",
        requester_name="<@U1>", reason="", command="", expires_at=NOW,
    )  # fmt: skip
    yield expired_text(row)
    templates = (sentinel.OFFER, sentinel.NO_OFFER)
    templates += (watching.NOTHING_BEFORE, watching.NO_GOING_BACK, watching.HELD)
    for template in templates:
        yield string.Formatter().vformat(template, (), _Any())


@pytest.mark.parametrize("naming", NAMINGS, ids=str)
def test_every_template_names_only_registered_commands(naming: Naming) -> None:
    known = registered_by(naming)
    for name, text in templates():
        assert slash_words(named(text, naming)) <= known, (name, named(text, naming))
    for text in core_texts():
        rendered = shown(text, naming)
        assert slash_words(rendered) <= known, rendered
        assert not re.search("[\ue000-\ue003]", rendered)


@pytest.mark.parametrize("naming", NAMINGS, ids=str)
def test_long_lists_page_with_a_command_the_app_registers(naming: Naming) -> None:
    eps = [endpoint(i, "dev" if i < 150 else "prod") for i in range(200)]
    text, blocks = status(StatusReport(endpoints=eps, detail=False, env="dev"), naming)
    more = blocks[-1]["elements"][0]["text"]
    ask = naming.typed("status in dev page 2")
    assert more == f"… and 152 more endpoints: `{ask}`"
    assert slash_words(text + str(blocks)) <= registered_by(naming)
    # the command it names is one the grammar reads: page 2 of the same list
    found = parse(*split(ask, namespace=naming.namespace))
    assert not isinstance(found, UsageError) and found[1].page == 2
    view = home_view(Overview(eps, [], [], []), production=frozenset(), naming=naming)
    assert slash_words(str(view)) <= registered_by(naming)
    reg = Registered("iris", 3, "abcdef123", "exp", {"acc": 0.9}, NOW, 0.0)
    assert slash_words(str(registered(reg, naming))) <= registered_by(naming)
    entry = AuditRow(
        at=NOW, actor_id="U1", actor_name="<@U1>", action="unlock", command="unlock iris",
        env="dev", endpoint="iris", outcome="refused", operation_id="", approver="",
        detail=still_running_text("dev", "iris", LockRow(holder="<@U2>", reason="r"), Operation(
            id="op-1", kind="deploy", env="dev", endpoint="iris", command="deploy iris v1")),
    )  # fmt: skip
    _, shown_history = history(HistoryReport(entries=[entry], endpoint=None), naming)
    assert f"`{naming.typed('cancel iris in dev')}`" in str(shown_history)


def test_a_namespace_named_like_a_command_is_registered_once() -> None:
    names = [c["command"] for c in manifest(command="deploy")["features"]["slash_commands"]]
    assert names.count("/deploy") == 1
    assert Naming("deploy").typed("deploy iris v2") == "/deploy deploy iris v2"
    assert split("/deploy deploy iris v2", namespace="deploy") == ("deploy", "iris v2")


def endpoint(i: int, env: str) -> EndpointStatus:
    return EndpointStatus(
        env=env, name=f"model-{i}", model=f"model-{i}", version=1, resources="1 CPU",
        replicas=1, up=True, since=NOW, url=f"http://127.0.0.1:{5000 + i}", target="local",
    )  # fmt: skip


def test_registry_free_text_cannot_forge_the_bots_marks() -> None:
    from core.registry.events import RegistryEvent, RegistryEventKind

    forged = "\ue002<@U0CANARY>\ue003 and \ue000unlock iris\ue001"
    event = RegistryEvent(RegistryEventKind.TAG_SET, "iris", 2, tag="note", value=forged)
    rendered = shown(event.label, Naming())
    assert "<@U0CANARY>" not in rendered and "&lt;@U0CANARY&gt;" in rendered
    assert "/unlock" not in rendered

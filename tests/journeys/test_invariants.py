"""The journeys' invariants catch what they are for, and only that: each check on texts as the
bot sends them (no bot needed)."""

from __future__ import annotations

from tests.journeys import invariants as inv
from tests.journeys.harness import TYPED_PINGS


def said(text: str, blocks: object = None) -> inv.Said:
    return inv.Said("chat.postMessage C0OPS", text, blocks)


def ids(found: list[inv.Violation]) -> list[str]:
    return [v.id for v in found]


def test_only_commands_the_manifest_registers_may_be_named() -> None:
    fine = said(
        "`/mlops deploy iris v1` or `/deploy iris v1`; fatal: cannot open /dev/accel0; "
        "live at http://127.0.0.1:8000/invocations; see dev/iris and v1/v2; log: GET /ping 200"
    )
    assert inv.commands_registered([fine], direct=True) == []
    assert ids(inv.commands_registered([fine], direct=False)) == ["commands-registered[direct-off]"]
    slack_own = said("`/status` shows what serves. Usage: /help [command]")
    assert ids(inv.commands_registered([slack_own], direct=True)) == [
        "commands-registered[reserved]",
        "commands-registered[reserved]",
    ]
    assert ids(inv.commands_registered([said("try `/mlops` or `/chatops`")], direct=True)) == []
    custom = said("try `/mlops status`")
    assert inv.commands_registered([custom], direct=False, command="ops") == [
        inv.Violation("commands-registered[other]", custom.where, "try `/mlops status`")
    ]


def test_typed_mentions_must_show_escaped_and_the_bots_own_must_ping() -> None:
    typed = said(f"<@U0ALICE> froze iris: {TYPED_PINGS}")
    assert set(ids(inv.no_foreign_ping([typed]))) == {"no-foreign-ping"}
    escaped = TYPED_PINGS.replace("<", "&lt;").replace(">", "&gt;")
    assert inv.no_foreign_ping([said(f"<@U0ALICE> froze iris: {escaped}")]) == []
    shown = said(f"iris is frozen by &lt;@U0ALICE&gt;: {escaped}")
    assert ids(inv.no_foreign_ping([shown])) == ["own-mentions-ping"]
    in_blocks = said("ok", [{"type": "section", "text": {"type": "mrkdwn", "text": "<!here>"}}])
    assert ids(inv.no_foreign_ping([in_blocks])) == ["no-foreign-ping"]


def test_internal_errors_are_named_by_their_kind_in_messages_and_logs() -> None:
    text = (
        "Something unexpected went wrong while running `/mlops scale iris 2cpu` (AttributeError)."
        " Nothing more will happen for it"
    )
    assert ids(inv.no_internal_error([said(text)])) == ["no-internal-error[AttributeError]"]
    assert ids(inv.no_internal_error([said("deploy failed: an unexpected KeyError")])) == [
        "no-internal-error[KeyError]"
    ]
    log = (
        "ERROR chatops.slack (App Home) failed unexpectedly\n"
        'Traceback (most recent call last):\n  File "x.py", line 1, in f\n'
        "AttributeError: 'str' object has no attribute 'endpoints'\n"
    )
    assert ids(inv.no_internal_error([], log)) == ["logged-traceback[AttributeError]"]
    assert (
        inv.no_internal_error([said("Unexpected `4`: after the version comes `to <env>`.")]) == []
    )


def test_payloads_slack_would_refuse_are_caught() -> None:
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    assert ids(inv.valid_block_kit([said("fine", [section])])) == ["valid-block-kit"]
    assert ids(inv.valid_block_kit([said("x" * 4001)])) == ["valid-block-kit"]
    view = {"type": "home", "blocks": [{"type": "divider"}]}
    home = inv.Said("views.publish U0ALICE", None, view, home=True)
    assert inv.valid_block_kit([home, said("fine", [{"type": "divider"}])]) == []
    refused = inv.Said("chat.update C0OPS refused by Slack: invalid_blocks", None, None)
    assert ids(inv.valid_block_kit([refused])) == ["valid-block-kit"]


def test_an_internal_error_is_named_by_its_kind_not_by_the_command() -> None:
    text = (
        "Something unexpected went wrong while running `/approve apr-1 (button)` (KeyError). "
        "Nothing more will happen for it"
    )
    assert ids(inv.no_internal_error([said(text)])) == ["no-internal-error[KeyError]"]

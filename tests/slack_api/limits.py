"""What Slack refuses in a message, checked as Slack checks it: the blocks by slack_sdk's own
models (`Block.parse(...)` and `validate_json()`, the element inside each block too), and
the limits slack_sdk does not check (a context's texts, a field's 2,000 characters, the
number of blocks, the fallback text, a button's confirm dialog). A refusal is the error code
Slack answers with."""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block, ConfirmObject

MAX_TEXT = 4_000  # a message's `text`: longer is msg_too_long
MAX_BLOCKS = 50
MAX_HOME_BLOCKS = 100
MAX_TEXT_OBJECT = 3_000
MAX_FIELD = 2_000
MAX_FIELDS = 10


class Refused(Exception):
    def __init__(self, code: str, why: str) -> None:
        super().__init__(f"{code}: {why}")
        self.code = code
        self.why = why


def check_text(text: Any) -> None:
    if isinstance(text, str) and len(text) > MAX_TEXT:
        raise Refused("msg_too_long", f"text of {len(text)} characters (at most {MAX_TEXT})")


def check_blocks(blocks: Any, *, limit: int = MAX_BLOCKS) -> None:
    """Raise `Refused("invalid_blocks", why)` for blocks Slack would not show."""
    if not isinstance(blocks, list):
        raise Refused("invalid_blocks_format", "blocks is not a list")
    if len(blocks) > limit:
        raise Refused("invalid_blocks", f"{len(blocks)} blocks (at most {limit})")
    for i, raw in enumerate(blocks):
        if not isinstance(raw, dict):
            raise Refused("invalid_blocks", f"block {i} is not an object")
        block = Block.parse(raw)
        if block is None:
            raise Refused("invalid_blocks", f"block {i} has an unknown type {raw.get('type')!r}")
        try:
            block.validate_json()
            for element in getattr(block, "elements", None) or []:
                if hasattr(element, "validate_json"):
                    element.validate_json()
        except SlackObjectFormationError as exc:
            raise Refused("invalid_blocks", f"block {i}: {exc}") from None
        _check_texts(raw, where=f"block {i}")


def _check_texts(raw: dict[str, Any], *, where: str) -> None:
    fields = raw.get("fields") or []
    if len(fields) > MAX_FIELDS:
        raise Refused("invalid_blocks", f"{where}: {len(fields)} fields (at most {MAX_FIELDS})")
    for f in fields:
        if len(str(f.get("text", ""))) > MAX_FIELD:
            raise Refused("invalid_blocks", f"{where}: a field over {MAX_FIELD} characters")
    for element in raw.get("elements") or []:
        text = element.get("text") if isinstance(element, dict) else None
        if element.get("type") in ("mrkdwn", "plain_text") and len(str(text)) > MAX_TEXT_OBJECT:
            raise Refused("invalid_blocks", f"{where}: a text over {MAX_TEXT_OBJECT} characters")
    for element in [*(raw.get("elements") or []), raw.get("accessory")]:
        confirm = element.get("confirm") if isinstance(element, dict) else None
        if confirm is None:
            continue
        # slack_sdk checks a confirm dialog only when asked (its text: 300 characters at most)
        try:
            ConfirmObject.parse(confirm).validate_json()  # type: ignore[union-attr]
        except (SlackObjectFormationError, AttributeError, TypeError) as exc:
            raise Refused("invalid_blocks", f"{where}: a confirm dialog: {exc}") from None


def check_message(text: Any, blocks: Any) -> None:
    check_text(text)
    if blocks is not None:
        check_blocks(blocks)

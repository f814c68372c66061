"""`token [list | revoke <id>]`"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from commands.base import Context, Reply, UsageError, shown, tokens
from core.events import Refusal
from core.marks import command

NAME = "token"
SUMMARY = "a personal API token for `mlflow deployments -t chatops:/<env>`; list or revoke yours"
USAGE = "token [list | revoke <id>]"
EXAMPLES = ["token", "token list", "token revoke tok-0123abcd45"]
DETAILS = """\
`/token` makes a personal token for the bot's HTTP API, which MLflow's own
`mlflow deployments` CLI and `get_deploy_client("chatops:/<env>")` use: every call acts as
you, with your roles, through the same admission as a typed command. The token is shown once,
to you alone (an ephemeral answer, or in your DM with the bot); the bot keeps only its hash.
`/token list` shows your tokens (when made, last used, revoked), never a secret;
`/token revoke <id>` ends one at once. The console gives no tokens: there is nobody for
them to act as."""

_ID_LENGTH = 40


class Token(BaseModel):
    action: Literal["issue", "list", "revoke"] = "issue"
    id: str = ""


def _error(problem: str) -> UsageError:
    return UsageError(problem, USAGE, EXAMPLES[0])


def parse(text: str) -> Token | UsageError:
    words = tokens(text)
    if not words:
        return Token()
    verb, rest = words[0].lower(), words[1:]
    if verb == "list" and not rest:
        return Token(action="list")
    if verb == "revoke":
        if len(rest) != 1:
            return UsageError(
                "Say which token to revoke, by its id (`/token list` shows them).",
                USAGE,
                EXAMPLES[2],
            )
        token_id = rest[0]
        if len(token_id) > _ID_LENGTH or not token_id.replace("-", "").isalnum():
            return UsageError(f"`{shown(token_id)}` is not a token id.", USAGE, EXAMPLES[2])
        return Token(action="revoke", id=token_id)
    return _error(f"Unexpected `{shown(' '.join(words))}`: say `list`, `revoke <id>` or nothing.")


def run(cmd: Token, ctx: Context) -> Reply:
    if cmd.action == "list":
        return ctx.core.tokens.listed(ctx.actor)
    if cmd.action == "revoke":
        return ctx.core.tokens.revoke(ctx.actor, cmd.id)
    if not ctx.private:
        return Refusal(
            "Tokens are given only where the bot can show one to you alone: ask in Slack "
            f"with `{command('token')}`."
        )
    return ctx.core.tokens.issue(ctx.actor)

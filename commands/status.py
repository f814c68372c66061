"""`status [endpoint] [in <env>] [page <N>] [public]`"""

from __future__ import annotations

from pydantic import BaseModel

from commands.base import Context, Reply, StatusReport, UsageError, check_name, shown, tokens
from core.events import Refusal

NAME = "status"
MAX_PAGE = 10_000
SUMMARY = "show what serves: every endpoint, or one in detail"
USAGE = "status [endpoint] [in <env>] [page <N>] [public]"
EXAMPLES = ["status", "status iris", "status in prod", "status public", "status in dev page 2"]
DETAILS = """\
Without an endpoint: a table of every endpoint (model, version, resources, replicas, health,
since when, URL, traffic). With one: that endpoint in detail. Health is checked live, so an
endpoint whose servers died shows as down. Traffic is what the endpoint answered over the last
5 minutes: requests a minute, the share of 5xx errors, p50 and p99 latency, and which versions
served them (a CML endpoint says where its workspace shows this instead). Admins also see
what the bot's last readiness check (as `chatops check` runs it) found wrong in their
environments, with what to do. In Slack the answer is for you alone; add `public` to post it
for the whole channel. A list longer than a message shows says how many more there are and
the command for the next page (`page 2`)."""


class Status(BaseModel):
    endpoint: str | None = None
    env: str | None = None
    public: bool = False
    page: int = 1


def _error(problem: str) -> UsageError:
    return UsageError(problem, USAGE, EXAMPLES[1])


def parse(text: str) -> Status | UsageError:
    words = tokens(text)
    public = bool(words) and words[-1].lower() == "public"
    if public:
        words = words[:-1]
    page = 1
    if len(words) >= 2 and words[-2].lower() == "page":
        if not words[-1].isdecimal() or not 1 <= int(words[-1]) <= MAX_PAGE:
            return _error(f"`{shown(words[-1])}` is no page: say `page 2`, a number from 1.")
        page, words = int(words[-1]), words[:-2]
    endpoint = env = None
    if words and words[0].lower() != "in":
        endpoint, words = words[0], words[1:]
        if bad := check_name(endpoint, "endpoint name", USAGE, EXAMPLES[1]):
            return bad
    if words:
        if words[0].lower() != "in":
            return _error(f"Unexpected `{shown(words[0])}`: after the endpoint comes `in <env>`.")
        if len(words) == 1:
            return _error("Say which environment after `in`, e.g. `in prod`.")
        env = words[1]
        if bad := check_name(env, "environment name", USAGE, EXAMPLES[2]):
            return bad
        if len(words) > 2:
            return _error(f"Unexpected `{shown(' '.join(words[2:]))}` after the environment.")
    return Status(endpoint=endpoint, env=env, public=public, page=page)


def run(cmd: Status, ctx: Context) -> Reply:
    found = ctx.core.deployer.status(env=cmd.env, endpoint=cmd.endpoint)
    if isinstance(found, Refusal):
        return found
    return StatusReport(
        endpoints=found,
        detail=cmd.endpoint is not None,
        env=cmd.env,
        public=cmd.public,
        page=cmd.page,
        # an answer posted for the channel shows no admin's problems
        problems=None if cmd.public else ctx.core.readiness_problems(ctx.actor, env=cmd.env),
    )

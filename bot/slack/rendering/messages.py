"""Every piece of text the Slack front shows people, in one place.

These are mrkdwn: a literal `<`, `>` or `&` is written `&lt;`, `&gt;`, `&amp;` (Slack reads
`<…>` as a link or a mention); values put into them are escaped (bot/slack/rendering/mrkdwn.py). A
command they name is a mark (`core.marks.command`, its values unescaped: the front escapes
the command it renders) the front renders as its settings register it (`mrkdwn.named`): no
text here names a command the app does not have.
"""

from __future__ import annotations

from core.marks import command

_STATUS = command("status")

NOT_IN_CHANNEL = (
    "I can't post in this channel because I'm not a member of it. Invite me with "
    "`/invite @{bot}` and run the command again. Meanwhile I'll send this operation's "
    "progress to you in a direct message."
)
DM_FALLBACK_HEADER = "Progress of your command `{command}` (I can't post in <#{channel}>):"
RUNNING = ":hourglass_flowing_sand: running · {step} · {elapsed}"
RESUMED = ":arrows_counterclockwise: resumed after the bot process running it stopped · {elapsed}"
SUCCEEDED = ":white_check_mark: {text}"
FAILED = ":x: {text}"
FAILED_AT = ":x: failed at *{step}* after {elapsed}"
STILL_SERVING = ":shield: {serving}"
LOG_TAIL = "Log tail:\n```{tail}```"
INTERNAL_ERROR = (
    "Something unexpected went wrong while running `{command}` ({error}). Nothing more will "
    f"happen for it; `{_STATUS}` shows what serves."
)
STATUS_EMPTY = "No endpoints{where} yet. Deploy one with `" + command("deploy <model> v<N>") + "`."
STATUS_TITLE = "Endpoints{where}"
STATUS_PAGE = " (page {page} of {pages})"
STATUS_NO_PAGE = "There is no page {page}: the list has {pages}; this is the last."
UP = ":large_green_circle: up"
DOWN = ":red_circle: down"
NOT_IN_CHANNEL_REQUEST = (
    "I can't post the approval request in this channel because I'm not a member of it: invite "
    "me with `/invite @{bot}`, or share this with an admin, who can decide with "
    f"`{command('approve')}`:"
)
NOT_READY = (
    "I can't run commands right now: {reason}. Nothing was done; try again in a minute "
    "(the bot keeps trying to recover)."
)
NOT_RECORDED = (
    "I couldn't record your command ({error}), so it will not run. Try again in a minute."
)
ABANDONED = (
    "I stopped {attempts} times while running `{command}`, so I gave up on it; it was not "
    f"run again. `{_STATUS}` shows what serves now; run it again if it is still wanted."
)
CONFIRM_PRODUCTION = (
    "{model} v{version} starts serving in *{env}* as soon as you approve. Approve it?"
)
EXPIRED = (
    ":hourglass: Expired at {at} UTC, undecided. Ask again with `"
    + command("promote {model} v{version} to {env}")
    + "`."
)
APPROVED = ":white_check_mark: Approved by {by} at {at}; deploying in this thread"
REJECTED = ":no_entry: Rejected by {by} at {at}{reason}"
HELD = ":warning: Still pending: {text}"
STATUS_MORE = "… and {n} more endpoints: {asks}"
STATUS_ASK = "`" + command("status{where} page {page}") + "`"
READINESS_TITLE = (
    ":warning: The readiness check of {ago} found {n} problem(s) (shown to admins only):"
)
READINESS_LINE = "• *{scope}* · {check}: {found} → {fix}"
READINESS_MORE = "… and {n} more: `chatops check` shows them all"
HISTORY_EMPTY = "Nothing recorded yet{where}."
HISTORY_TITLE = "Last {n} attempts{where}"
HISTORY_MORE = "… and {n} older attempts that do not fit here"
NO_METRICS = "no metrics logged"
AND_MORE = " … and {n} more metrics"
SLACK_REFUSED = (
    "Slack refused my message about `{command}` ({error}), so it is not shown in the channel. "
    "{outcome}"
)
UPDATE_REFUSED = (
    "Slack refused the update of the message about `{command}` ({error}), so it may look "
    "unfinished. It ended: {status}"
)
REQUEST_NOT_POSTED = (
    "I couldn't post your request in the channel: Slack answered `{error}`. I withdrew it, so "
    "nothing is pending; nothing changed and what served still serves. {hint}"
)
REQUEST_HINT_ACCESS = "Invite me with `/invite @{bot}` and ask again."
REQUEST_HINT_OTHER = "Ask again in a minute, or ask an admin to deploy it."
WITHDRAWN = "the request could not be shown in Slack ({error})"
SERVING_HINT = f"`{_STATUS}` shows what serves."
TOLD_HERE = "It goes on; I will tell you here how it ends."
REGISTERED_NEXT = "Next: `" + command("promote {model} v{version} to <env>") + "`"
HOME_TITLE = "What serves"
HOME_TO_DECIDE = "Requests you can decide"
HOME_MINE = "Your recent requests and operations"
HOME_NOTHING_MINE = "Nothing yet: `" + command("help") + "` lists what you can do."
HOME_NO_ENDPOINTS = (
    "No endpoints yet. An admin deploys one with `" + command("deploy <model> v<N>") + "`."
)
HOME_ASK = "`" + command("status in {env}") + "`"
HOME_MORE_ENDPOINTS = "… and {n} more endpoints in {envs}: {asks}"
HOME_MORE_TO_DECIDE = "… and {n} more requests you can decide: {asks}"

# registry announcements
ANNOUNCE_DEPLOY = "Deploy to {env}"
ANNOUNCE_PROMOTE = "Request promotion to {env}"
ANNOUNCE_THIS = "This version (v{version})"
ANNOUNCE_SERVES = "{env} serves v{version}"
ANNOUNCE_NOTHING_SERVES = "Nothing of {model} serves yet"
ANNOUNCE_HOW = "Run `{run}` · admins of {deploy} deploy it, developers ask to promote it"
# on an alias that drifted from what serves
DRIFT_DEPLOY = "Deploy v{version} to {env}"
DRIFT_MOVE_BACK = "Move @{alias} back to v{version}"
DRIFT_HOW = "Deploy serves what the alias names; Move back changes the alias, not what serves."
ANNOUNCE_BAD_BUTTON = "That button names no version I can act on; type the command instead."
PLAN_TITLE = "Plan: {summary}"
PLAN_PASSED = ":white_check_mark:"
PLAN_REFUSED = ":no_entry:"
PLAN_MORE_REQUIREMENTS = "… and {n} more checks"
PLAN_CHANGES_NOTHING = "A plan changes nothing: no lock, no operation. Run the command to do it."

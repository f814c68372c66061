"""Every piece of text the Slack front shows people, in one place.

These are mrkdwn: a literal `<`, `>` or `&` is written `&lt;`, `&gt;`, `&amp;` (Slack reads
`<…>` as a link or a mention); values put into them are escaped (bot/slack/mrkdwn.py).
"""

from __future__ import annotations

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
    "happen for it; `/status` shows what serves."
)
STATUS_EMPTY = "No endpoints{where} yet. Deploy one with `/deploy &lt;model&gt; v&lt;N&gt;`."
STATUS_TITLE = "Endpoints{where}"
UP = ":large_green_circle: up"
DOWN = ":red_circle: down"
NOT_IN_CHANNEL_REQUEST = (
    "I can't post the approval request in this channel because I'm not a member of it: invite "
    "me with `/invite @{bot}`, or share this with an admin, who can decide with `/approve`:"
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
    "run again. `/status` shows what serves now; run it again if it is still wanted."
)
CONFIRM_PRODUCTION = (
    "{model} v{version} starts serving in *{env}* as soon as you approve. Approve it?"
)
EXPIRED = ":hourglass: Expired at {at} UTC, undecided. Ask again with `{command}`."
APPROVED = ":white_check_mark: Approved by {by} at {at}; deploying in this thread"
REJECTED = ":no_entry: Rejected by {by} at {at}{reason}"
HELD = ":warning: Still pending: {text}"
STATUS_MORE = "… and {n} more: {asks}"
STATUS_ASK = "`/status in {env}`"
READINESS_TITLE = (
    ":warning: The readiness check of {ago} found {n} problem(s) (shown to admins only):"
)
READINESS_LINE = "• *{scope}* · {check}: {found} → {fix}"
READINESS_MORE = "… and {n} more: `chatops check` shows them all"
HISTORY_EMPTY = "Nothing recorded yet{where}."
HISTORY_TITLE = "Last {n} attempts{where}"
NO_METRICS = "no metrics logged"
AND_MORE = " … and {n} more"
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
SERVING_HINT = "`/status` shows what serves."
TOLD_HERE = "It goes on; I will tell you here how it ends."
REGISTERED_NEXT = "Next: `/promote {model} v{version} to &lt;env&gt;`"
HOME_TITLE = "What serves"
HOME_TO_DECIDE = "Requests you can decide"
HOME_MINE = "Your recent requests and operations"
HOME_NOTHING_MINE = "Nothing yet: `/{command} help` lists what you can do."
HOME_NO_ENDPOINTS = (
    "No endpoints yet. An admin deploys one with `/{command} deploy &lt;model&gt; v&lt;N&gt;`."
)
HOME_MORE = "… and {n} more that do not fit here."

# registry announcements
ANNOUNCE_DEPLOY = "Deploy to {env}"
ANNOUNCE_PROMOTE = "Request promotion to {env}"
ANNOUNCE_THIS = "This version (v{version})"
ANNOUNCE_SERVES = "{env} serves v{version}"
ANNOUNCE_NOTHING_SERVES = "Nothing of {model} serves yet"
ANNOUNCE_HOW = "Run `{run}` · admins of {deploy} deploy it, developers ask to promote it"
ANNOUNCE_BAD_BUTTON = "That button names no version I can act on; type the command instead."
PLAN_TITLE = "Plan: {summary}"
PLAN_PASSED = ":white_check_mark:"
PLAN_REFUSED = ":no_entry:"
PLAN_CHANGES_NOTHING = "A plan changes nothing: no lock, no operation. Run the command to do it."

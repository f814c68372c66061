"""Every piece of text the Slack front shows people, in one place."""

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
STATUS_EMPTY = "No endpoints{where} yet. Deploy one with `/deploy <model> v<N>`."
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
HOME_TITLE = "What serves"
HOME_TO_DECIDE = "Requests you can decide"
HOME_MINE = "Your recent requests and operations"
HOME_NOTHING_MINE = "Nothing yet: `/{command} help` lists what you can do."
HOME_NO_ENDPOINTS = "No endpoints yet. An admin deploys one with `/{command} deploy <model> v<N>`."
HOME_MORE = "… and {n} more that do not fit here."

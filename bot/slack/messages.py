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

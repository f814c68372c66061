"""A canary's card: both versions side by side, kept current in place in the deploy's
thread, with Promote / Hold / Abort for the admins of its environment (each click is
`/canary <endpoint> promote|hold|abort in <env> at <N>%`, admitted as if typed)."""

from __future__ import annotations

import json
from typing import Any

from bot.slack.rendering.blocks import Blocks, context, fallback, fields, section
from bot.slack.rendering.ids import CANARY
from bot.slack.rendering.mrkdwn import BUTTON, CONFIRM, escape, fit_line
from bot.text import latency, span

ABORT_CONFIRM = (
    "Send every request of {endpoint} in {env} back to v{serving} and stop v{version}? "
    "The deploy ends failed."
)


def card(data: dict[str, Any], *, ended: str = "") -> tuple[str, Blocks]:
    """The card of one canary step (`data`: a `CARD` event's); `ended` (mrkdwn, escaped)
    replaces its buttons once the step is over."""
    model, env = escape(str(data.get("model", ""))), escape(str(data.get("env", "")))
    version, share, shadow = data.get("version"), int(data.get("share") or 0), data.get("shadow")
    step, steps = data.get("step"), data.get("steps")
    if share:
        what = f"v{version} answers *{share}%* of requests"
    else:
        what = f"v{version} answers no request"
    if shadow:
        what += f", gets a copy of {shadow}% of the others"
    head = f"*Canary of {model} v{version} in {env}* · step {step} of {steps}: {what}"
    blocks: Blocks = [section(head)]
    pairs = [
        (_side_title(s, i, data), _side_text(s, share if i else 100 - share))
        for i, s in enumerate(data.get("sides") or [])
        if s
    ]
    copied = data.get("shadowed") or {}
    if shadow or copied.get("requests"):
        pairs.append(("Shadow", _shadow_text(copied)))
    deltas = data.get("metrics") or []
    if deltas:
        pairs.append(("Registry metrics", _metrics_text(deltas)))
    if pairs:
        blocks.append(fields(pairs))
    if not data.get("known", True) and data.get("detail"):
        blocks.append(context(escape(str(data["detail"]))))
    if ended:
        blocks.append(context(ended))
        return fallback(f"Canary of {data.get('model')} v{version}: {ended}"), blocks
    blocks.append(context(_progress(data)))
    buttons = _buttons(data)
    if buttons:
        blocks.append({"type": "actions", "block_id": f"canary-{step}", "elements": buttons})
    fallback_text = f"Canary of {data.get('model')} v{version} in {data.get('env')} at {share}%"
    return fallback(fallback_text), blocks


def _side_title(side: dict[str, Any], index: int, data: dict[str, Any]) -> str:
    return f"v{side.get('version')} ({'new' if index else 'serving'})"


def _side_text(side: dict[str, Any], share: int) -> str:
    rate = side.get("error_rate")
    errors = f"{rate:.1%} errors" if rate is not None else "no errors counted"
    return (
        f"{share}% · {int(side.get('requests') or 0):,} requests\n"
        f"{errors} · p50 {_ms(side.get('p50_ms'))} · p99 {_ms(side.get('p99_ms'))}"
    )


def _shadow_text(copied: dict[str, Any]) -> str:
    agreement = copied.get("agreement")
    agreed = (
        f"agreement {agreement:.1%} of {int(copied.get('compared') or 0):,}"
        if agreement is not None
        else "nothing compared yet"
    )
    return (
        f"{int(copied.get('requests') or 0):,} copied · {int(copied.get('errors') or 0)} failed\n"
        f"{agreed} · p99 {_ms(copied.get('p99_ms'))}"
    )


def _metrics_text(deltas: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{escape(str(d['name']))} {float(d['value']):.3g} ({float(d['delta']):+.3g})"
        for d in deltas[:4]
    )


def _progress(data: dict[str, Any]) -> str:
    baked, bake = float(data.get("baked_s") or 0), float(data.get("bake_s") or 0)
    following = data.get("next")
    then = "takes every request" if following == 100 else f"answers {following}%"
    if data.get("held_by"):
        return (
            f"Held by {escape(str(data['held_by']))} after {span(baked)}: stays at this step "
            f"until promoted or aborted; then v{data.get('version')} {then}."
        )
    if data.get("auto_promote"):
        return (
            f"Baked {span(baked)} of {span(bake)}; then, unless held or aborted, "
            f"v{data.get('version')} {then} by itself."
        )
    new = f"v{data.get('version')}"
    if baked >= bake:
        return f"Baked {span(baked)}: waiting for an admin to promote it ({new} {then}) or abort."
    return f"Baked {span(baked)} of {span(bake)}; then an admin promotes it ({new} {then})."


def _buttons(data: dict[str, Any]) -> list[dict[str, Any]]:
    following = data.get("next")
    labels = {
        "promote": "Take all traffic" if following == 100 else f"Promote to {following}%",
        "hold": "Hold",
        "abort": "Abort",
    }
    out = []
    for decision, label in labels.items():
        value = json.dumps(
            {
                "endpoint": data.get("endpoint"),
                "env": data.get("env"),
                "decision": decision,
                "at": int(data.get("share") or 0),
            }
        )
        button: dict[str, Any] = {
            "type": "button",
            "text": {"type": "plain_text", "text": fit_line(label, BUTTON)},
            "action_id": f"{CANARY}_{decision}",
            "value": value,
        }
        if decision == "promote":
            button["style"] = "primary"
        if decision == "abort":
            button["style"] = "danger"
            button["confirm"] = {
                "title": {"type": "plain_text", "text": "Abort the canary?"},
                "text": {
                    "type": "mrkdwn",
                    "text": fit_line(
                        ABORT_CONFIRM.format(
                            endpoint=escape(str(data.get("endpoint"))),
                            env=escape(str(data.get("env"))),
                            serving=data.get("serving_version"),
                            version=data.get("version"),
                        ),
                        CONFIRM,
                    ),
                },
                "confirm": {"type": "plain_text", "text": "Abort"},
                "deny": {"type": "plain_text", "text": "Keep it"},
                "style": "danger",
            }
        out.append(button)
    return out


def _ms(value: object) -> str:
    return latency(float(value)) if isinstance(value, int | float) else "n/a"

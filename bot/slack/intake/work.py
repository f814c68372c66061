"""Running one job the front recorded: the command it stands for goes through the command
table like any typed line, and its reply is rendered for Slack: status and plans for the
asker, deploys and scales in a thread, decided requests shown on the request's message.

A job holds everything Slack sent for it, so it runs the same in the process that acked it,
in a worker process, or in the worker that takes it again after the first one died. Each
answer to its requester is recorded (the outbox) before it is sent and marked sent after: a
job taken again once it answered answers nothing new, and an answer recorded by a process
that died before sending it is sent by the next one.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError

from bot.slack.intake.groups import GroupDirectory
from bot.slack.intake.jobs import (
    FRONT,
    AnnouncedAction,
    AnyJob,
    ApiCall,
    ButtonClick,
    CanaryClick,
    DirectMessage,
    HomeOpened,
    Mention,
    Query,
    RegistryNotice,
    SlashCommand,
    job_of,
)
from bot.slack.intake.zones import ZoneDirectory
from bot.slack.posting import oncall
from bot.slack.posting.announce import SlackAnnouncer
from bot.slack.posting.answers import TypedResponder
from bot.slack.posting.approving import RequestMessages
from bot.slack.posting.links import thread_link
from bot.slack.posting.poster import Poster, Responder
from bot.slack.posting.reporter import Respond, ThreadReporter
from bot.slack.rendering import messages
from bot.slack.rendering.api import answer as api_answer
from bot.slack.rendering.blocks import history as history_blocks
from bot.slack.rendering.blocks import registered as registered_blocks
from bot.slack.rendering.blocks import section
from bot.slack.rendering.blocks import status as status_blocks
from bot.slack.rendering.home import home_view
from bot.slack.rendering.mrkdwn import escape, mention, named, shown
from bot.slack.rendering.plans import plan as plan_blocks
from bot.slack.rendering.served import served_at as served_blocks
from commands.base import Context, HelpText, HistoryReport, Reply, StatusReport, UsageError
from commands.naming import Naming
from commands.registry import NAMESPACE, describe, parse
from core import failpoints
from core.admission.approvals import ApprovalRequested, Decided, Held, Undecided
from core.admission.plans import PlanReport
from core.admission.roles import Actor
from core.events import LogReporter, Notice, Outcome, Refusal, Reporter
from core.oncall.overview import overview
from core.oncall.timemachine import ServedAt
from core.outbox import ANSWER, Outbox
from core.registry.runs import Registered
from core.scrub import scrub_value
from core.store.jobs import JobRow, JobState
from core.store.models import Operation
from core.tokens import Issued

if TYPE_CHECKING:
    from core.runtime import Runtime

log = logging.getLogger("chatops.slack")
# every job that is a command: what it asks is run through the command table
Asked = (
    SlashCommand
    | Query
    | Mention
    | DirectMessage
    | ButtonClick
    | AnnouncedAction
    | oncall.RollbackClick
    | CanaryClick
)


class Work:
    def __init__(
        self,
        *,
        runtime: Runtime,
        poster: Poster,
        bot_name: str = "chatops",
        min_interval: float = 1.0,
        command: str = NAMESPACE,
        direct: bool = True,
        announce_channel: str = "",
    ) -> None:
        self.runtime = runtime
        self.command = command
        # how this front's commands are typed, for texts that belong to no job (on-call)
        self.naming = Naming(command, direct)
        # who opened the App Home since this process started: it is refreshed for them
        # after what they asked for ran
        self.home_seen: set[str] = set()
        self.queue = runtime.jobs
        self.max_attempts = runtime.settings.max_attempts
        self.poster = poster
        self.announcer = SlackAnnouncer(runtime=runtime, poster=poster, channel=announce_channel)
        self.requests = RequestMessages(
            approvals=runtime.approvals, poster=poster, bot_name=bot_name
        )
        self.bot_name = bot_name
        self.min_interval = min_interval
        settings = runtime.settings
        handles = {
            entry
            for env in settings.environments
            for entry in (*env.admins, *env.developers)
            if entry.startswith("@")
        }
        self.groups = GroupDirectory(poster, handles, ttl_s=settings.group_cache_ttl_s)
        self.zones = ZoneDirectory(poster)
        self.people = {
            entry
            for env in settings.environments
            for entry in (*env.admins, *env.developers)
            if not entry.startswith("@")
        }

    def reporter_for(self, op: Operation) -> Reporter:
        """Where an operation taken over from another bot process reports: its own thread."""
        if op.reply_to.get("front") != "slack" or not op.reply_to.get("channel"):
            return LogReporter()
        return ThreadReporter.resuming(
            op.reply_to,
            poster=self.poster,
            bot_name=self.bot_name,
            min_interval=self.min_interval,
        )

    def groups_of(self, user: str) -> frozenset[str]:
        return self.groups.groups_of(user)

    def run(self, row: JobRow) -> JobState:
        """Run a job the front recorded; never raises: what goes wrong is told to the
        requester. Every job that asks for something — a slash command, a mention, a DM, a
        button — is the command it stands for, run through the command table like a typed
        line; only the App Home and registry events are not commands."""
        try:
            job = job_of(row.payload)
        except ValueError:
            log.error("job %s is not one this bot knows (%s): dropped", row.id, row.kind)
            return JobState.ABANDONED
        if isinstance(job, RegistryNotice):
            return self.announcer.notice(job)
        if isinstance(job, ApiCall):
            return self._api(row, job)
        if isinstance(job, HomeOpened):
            self.home_seen.add(job.user_id)
            self._refresh_home(job)
            return JobState.DONE
        respond = Answers(self.runtime.outbox, row.id, self._responder(job))
        try:
            if row.attempts > 1 and self._carried_on(row, job, respond):
                return JobState.ABANDONED if row.attempts > self.max_attempts else JobState.DONE
            self._command(row, job, respond)
        except SlackApiError as exc:  # Slack refused what it was shown: the requester hears it
            error = str(exc.response.get("error") or "error")
            log.warning("%s: Slack refused a message: %s", job.line, error)
            refused = messages.SLACK_REFUSED.format(
                command=escape(job.line), error=escape(error), outcome=messages.SERVING_HINT
            )
            respond(text=named(refused, job.naming))
        except Exception as exc:
            log.exception("%s failed unexpectedly", job.line)
            try:
                failed = messages.INTERNAL_ERROR.format(
                    command=escape(job.line), error=type(exc).__name__
                )
                respond(text=named(failed, job.naming))
            except Exception:
                log.exception("could not tell the requester")
        # a side effect: a Home that cannot be refreshed never becomes the command's answer
        self._refresh_home(job)
        return JobState.DONE

    def _api(self, row: JobRow, job: ApiCall) -> JobState:
        """A call to the HTTP API: the command it stands for, run as its token's owner
        through the command table; its answer kept for the call that waits for it. What
        the operation says goes to its thread (the API channel, else the owner's DM)."""
        naming = job.naming
        try:
            if row.attempts > 1 and (op := self.queue.operation_of(row.id)) is not None:
                said = {"status": 202, "body": {"state": op.state, "operation": op.id}}
                self.queue.answer(row, said)
                return JobState.DONE
            found = parse(*job.entry)
            if isinstance(found, UsageError):
                self.queue.answer(row, api_answer(found, naming, call=job.call))
                return JobState.DONE
            module, parsed = found
            channel = job.channel_id or self._dm(job.user_id)
            told: list[dict[str, object]] = []  # what the requester would have been told
            reporter = ThreadReporter(
                poster=self.poster,
                channel=channel,
                user=job.user_id,
                command=job.line,
                respond=lambda **message: told.append(message),
                bot_name=self.bot_name,
                min_interval=self.min_interval,
                job=row.id,
                naming=naming,
            )
            ctx = Context(
                core=self.runtime,
                actor=self._actor(job),
                reporter=reporter,
                text=job.line,
                namespace=self.command,
                or_request=job.call in ("create", "update"),
            )
            reply = module.run(parsed, ctx)
            link = thread_link(self.poster, reporter.where) if reporter.ts else ""
            if isinstance(reply, ApprovalRequested):
                self.requests.post(reply, channel, reporter.respond, naming)
                where = self.runtime.approvals.lookup(reply.approval.id)
                link = thread_link(self.poster, (where.where if where else None) or {})
            # a caller that waits for the decision waits in the API front, holding no worker
            said = api_answer(reply, naming, call=job.call, name=job.name, link=link)
        except Exception as exc:
            log.exception("an API call (%s) failed unexpectedly", job.line)
            failed = f"{job.line} failed unexpectedly ({type(exc).__name__}); nothing more known."
            said = {"status": 500, "body": {"error": failed}}
        self.queue.answer(row, said)
        return JobState.DONE

    def _dm(self, user: str) -> str:
        """The DM channel of the bot with `user` (their user id, should Slack not open one:
        the reporter then says where it could not post)."""
        opened = self.poster.try_call("conversations.open", users=user)
        return str(((opened or {}).get("channel") or {}).get("id") or user)

    def _responder(self, job: Asked) -> Respond:
        """How the requester of `job` is answered: its `response_url`, or (typed text has
        none) a message where it was typed."""
        if isinstance(job, (Mention, DirectMessage)):
            return TypedResponder(self.poster, job)
        return Responder(job.response_url)

    def send_owed(self) -> bool:
        """Send one answer or announcement a bot process recorded and did not send (it
        stopped, or Slack refused the announcement); False when there is none."""
        return self._send_answer() or self.announcer.post_owed()

    def _send_answer(self) -> bool:
        owed = self.runtime.outbox.take(ANSWER, frozenset({FRONT}))
        if owed is None:
            return False
        row = self.queue.get(owed.job_id)
        try:
            job = job_of(row.payload) if row is not None else None
        except ValueError:
            job = None
        if isinstance(job, Asked):
            log.info("sending the answer to job %s its stopped process left unsent", owed.job_id)
            message = dict(owed.payload.get("message") or {})
            try:
                self._responder(job)(**message)
            except Exception:  # logged, not retried forever: the requester may ask again
                log.exception("could not send the answer to job %s", owed.job_id)
        self.runtime.outbox.sent(owed.id)
        return True

    def _command(self, row: JobRow, job: Asked, respond: Answers) -> None:
        """Parse what the job stands for with the one grammar, run it, render its reply."""
        found = parse(*job.entry)
        if isinstance(found, UsageError):
            # a slash command's ack said so already; anything else hears it now, escaped:
            # `<model>` shows, `<!here>` pings nobody
            if not isinstance(job, (SlashCommand, Query)):
                respond(text=shown(found.text, job.naming))
            return
        module, parsed = found
        reporter = self._reporter(row, job, respond)
        ctx = Context(
            core=self.runtime,
            actor=self._actor(job),
            reporter=reporter,
            text=job.line,
            namespace=self.command,
            resume=row.attempts > 1,
            on_decided=lambda decided: self._decided(row, job, respond, decided),
            zone=lambda: self.zones.zone_of(job.user_id),
            private=True,  # every answer of a command goes to its asker alone unless public
        )
        # what is said while the command runs (a verdict shown, a thread's fallback) is not
        # its answer: a job taken again after only that runs the command again
        respond.final = False
        try:
            reply = module.run(parsed, ctx)
        finally:
            respond.final = True
        self._render(reply, job, respond, reporter)

    def publish_home(self, user: str, naming: Naming) -> None:
        """The App Home as `user` sees it now, its commands as `naming` registers them."""
        actor = self._actor_of(user)
        seen = overview(self.runtime, actor)
        production = frozenset(
            e.name for e in self.runtime.settings.environments if e.is_production
        )
        view = home_view(seen, production=production, naming=naming)
        self.poster.try_call("views.publish", user_id=user, view=view)

    def _refresh_home(self, job: AnyJob) -> None:
        """The Home of someone who opened it, as it is now; a failure here is logged once
        and is nobody's answer: the Home shows what it showed before."""
        if job.user_id not in self.home_seen:
            return
        try:
            self.publish_home(job.user_id, job.naming)
        except Exception:
            log.exception("the App Home of %s could not be refreshed", job.user_id)

    def _carried_on(self, row: JobRow, job: AnyJob, respond: Respond) -> bool:
        """For a job taken again (its bot process died): True when there is nothing more to
        do for it: its operation was recorded (whoever takes that over finishes it), or it
        was taken too often (its requester is told)."""
        op = self.queue.operation_of(row.id)
        if op is not None:
            log.info("job %s recorded operation %s already: not run again", row.id, op.id)
            return True
        if self.runtime.outbox.answered(row.id):
            log.info("job %s answered already: it answers nothing new", row.id)
            return True
        if row.attempts > self.max_attempts:
            log.error("job %s (%s) taken %d times: given up", row.id, job.line, row.attempts)
            abandoned = messages.ABANDONED.format(
                attempts=row.attempts - 1, command=escape(job.line)
            )
            respond(text=named(abandoned, job.naming))
            return True
        log.warning("running job %s (%s) again: attempt %d", row.id, job.line, row.attempts)
        return False

    def _shown(self, job: AnyJob, text: str) -> str:
        """Core text in mrkdwn: its commands as the job's front names them, the people the
        bot means mentioned, all else escaped (a `<@…>` a user typed pings nobody)."""
        return shown(text, job.naming)

    def _actor(self, job: AnyJob) -> Actor:
        return self._actor_of(job.user_id)

    def _actor_of(self, user: str) -> Actor:
        return Actor(id=user, name=f"<@{user}>", groups=self.groups_of(user))

    def _reporter(
        self,
        row: JobRow,
        job: AnyJob,
        respond: Respond,
        *,
        channel: str | None = None,
        thread_ts: str | None = None,
    ) -> ThreadReporter:
        if thread_ts is None and isinstance(
            job, (Mention, DirectMessage, AnnouncedAction, oncall.RollbackClick, CanaryClick)
        ):
            thread_ts = job.thread_ts  # typed in a thread, or a click on an announcement
        return ThreadReporter(
            poster=self.poster,
            channel=channel or job.channel_id,
            user=job.user_id,
            command=job.line,
            respond=respond,
            bot_name=self.bot_name,
            min_interval=self.min_interval,
            thread_ts=thread_ts,
            job=row.id,
            naming=job.naming,
        )

    def _render(self, reply: Reply, job: Asked, respond: Respond, reporter: ThreadReporter) -> None:
        """The reply of a command, for Slack: what it says depends on what it is, never on
        which command answered."""
        if isinstance(reply, StatusReport):
            text, blocks = status_blocks(reply, job.naming)
            respond(
                response_type="in_channel" if reply.public else "ephemeral",
                text=text,
                blocks=blocks,
            )
        elif isinstance(reply, HelpText):
            respond(text=shown(describe(reply.command), job.naming))
        elif isinstance(reply, ApprovalRequested):
            self.requests.post(reply, job.channel_id, respond, job.naming)
        elif isinstance(reply, HistoryReport):
            text, blocks = history_blocks(reply, job.naming)
            respond(text=text, blocks=blocks)
        elif isinstance(reply, ServedAt):  # for the asker alone, like /history
            links = {s.operation: thread_link(self.poster, s.where) for s in reply.served}
            text, blocks = served_blocks(reply, links, job.naming)
            respond(text=text, blocks=blocks)
        elif isinstance(reply, PlanReport):  # for the asker alone, like /status
            text, blocks = plan_blocks(reply, job.naming)
            respond(text=text, blocks=blocks)
        elif isinstance(reply, Registered):
            text, blocks = registered_blocks(reply, job.naming)
            respond(response_type="in_channel", text=text, blocks=blocks)
        elif isinstance(reply, Issued):  # to the asker alone; the secret put in last
            respond(text=self._shown(job, reply.text), reveal=reply.secret)
        elif isinstance(reply, Notice):
            respond(response_type="in_channel", text=self._shown(job, reply.text))
        elif isinstance(reply, Outcome):
            if reporter.ts is None:
                # the thread could not be opened anywhere: the requester still gets the end
                text = self._shown(job, reply.text)
                respond(text=text, blocks=[section(text)])
        elif isinstance(reply, Decided):
            if isinstance(reply.outcome, Refusal):
                respond(text=self._shown(job, reply.outcome.text))
        elif isinstance(reply, Held):
            self._held(reply, job, respond)
        elif isinstance(reply, Undecided):
            self._undecided(reply, job, respond)
        else:
            respond(text=self._shown(job, reply.text))

    def _decided(self, row: JobRow, job: Asked, respond: Respond, decided: Decided) -> Reporter:
        """A promotion request was decided (by its buttons or typed): the verdict replaces
        the buttons, and the deploy it starts reports in the request's thread."""
        where = decided.approval.where or {}
        at = f"{decided.approval.decided_at:%Y-%m-%d %H:%M} UTC"
        by = mention(job.user_id)
        reason = decided.approval.decision_reason
        verdict = (
            messages.APPROVED.format(by=by, at=at)
            if decided.approved
            else messages.REJECTED.format(
                by=by, at=at, reason=f": {escape(reason)}" if reason else ""
            )
        )
        self.requests.show(where, verdict, respond, keep_buttons=False)
        return self._reporter(
            row, job, respond, channel=where.get("channel"), thread_ts=where.get("ts")
        )

    def _held(self, held: Held, job: Asked, respond: Respond) -> None:
        """An approval that cannot be carried out now: told to the admin who tried, on the
        request (its buttons kept) and to the requester."""
        text = self._shown(job, held.text)
        respond(text=text)
        where = (held.approval.where if held.approval else None) or {}
        self.requests.show(where, messages.HELD.format(text=text), respond, keep_buttons=True)
        self.requests.tell_requester(where, self._shown(job, held.requester_text))

    def _undecided(self, refused: Undecided, job: Asked, respond: Respond) -> None:
        """A decision not taken (it may name who decided first: recorded, not typed). A
        request found expired loses its buttons: nobody can decide it any more."""
        respond(text=self._shown(job, refused.text))
        request = refused.approval
        if request is not None and request.state == "expired" and (request.where or {}).get("ts"):
            note = named(
                messages.EXPIRED.format(
                    at=f"{request.expires_at:%Y-%m-%d %H:%M}",
                    model=request.model,
                    version=request.version,
                    env=request.env,
                ),
                job.naming,
            )
            self.requests.show(request.where or {}, note, respond, keep_buttons=False)


class Answers:
    """A job's `respond`: each answer recorded as owed before it is sent and marked sent
    after. An answer given while `final` (the command's own reply, a refusal, an error)
    means the job answered: taken again after its process died, it answers nothing new."""

    def __init__(self, outbox: Outbox, job_id: str, respond: Respond) -> None:
        self.outbox = outbox
        self.job_id = job_id
        self.respond = respond
        self.final = True

    def __call__(self, **message: object) -> None:
        # a secret shown once is never recorded: sent again, the answer says it is gone
        kept = {k: v for k, v in message.items() if k != "reveal"}
        said = {"message": scrub_value(kept), "final": self.final}
        owed = self.outbox.owe(ANSWER, said, front=FRONT, job_id=self.job_id)
        failpoints.hit("answer.recorded")
        self.respond(**message)
        failpoints.hit("answer.sent")
        self.outbox.sent(owed)

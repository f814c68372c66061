"""The `/metrics` page: what the state database holds, read at each scrape, with the counts of
every process that shares this one's directory (see `core.metrics`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector

from core.errors import ChatOpsError
from core.metrics import SHARED_ENV, ThisProcess
from core.store.db import Database
from core.store.jobs import JobQueue
from core.store.repos.operations import OperationRepository
from core.store.repos.outbox import OutboxRepository

__all__ = ["CONTENT_TYPE", "Exposition", "StateCollector"]

# what `generate_latest` writes, and what every Prometheus server reads
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# from being asked for to ending: a query answers in a second, a CML deploy takes minutes
OPERATION_BOUNDS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class StateCollector:
    """Operations and Slack jobs as the state database holds them, read at each scrape."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.operations = OperationRepository(db)
        self.jobs = JobQueue(db)
        self.outbox = OutboxRepository(db)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "chatops_state_database_up", "Whether the state database answered this scrape"
        )
        try:
            families = list(self._families(self.db.now()))
        except ChatOpsError:  # a scrape says the database is down; it does not fail
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from families

    def _families(self, now: datetime) -> Iterator[Metric]:
        keys = ["kind", "env", "outcome"]
        ended = CounterMetricFamily(
            "chatops_operations",
            "Operations that ended, by kind, environment and outcome",
            labels=keys,
        )
        took = HistogramMetricFamily(
            "chatops_operation_duration_seconds",
            "Time from an operation being asked for to its end, by kind, environment and outcome",
            labels=keys,
        )
        for t in self.operations.ended(OPERATION_BOUNDS):
            ended.add_metric([t.kind, t.env, t.state], float(t.count))
            buckets = [(repr(b), float(n)) for b, n in zip(OPERATION_BOUNDS, t.within, strict=True)]
            took.add_metric(
                [t.kind, t.env, t.state], [*buckets, ("+Inf", float(t.count))], t.seconds
            )
        yield ended
        yield took

        waiting = GaugeMetricFamily(
            "chatops_operations_unfinished",
            "Operations queued (waiting for a bot process) or running, by kind and environment",
            labels=["kind", "env", "state"],
        )
        oldest = GaugeMetricFamily(
            "chatops_operation_oldest_queued_seconds",
            "How long the oldest queued operation has waited (0: none waits)",
        )
        queued_since: list[datetime] = []
        for t in self.operations.unfinished():
            waiting.add_metric([t.kind, t.env, t.state], float(t.count))
            if t.state == "queued" and t.oldest is not None:
                queued_since.append(t.oldest)
        oldest.add_metric([], _age(now, queued_since))
        yield waiting
        yield oldest

        yield from self._canaries()

        jobs = GaugeMetricFamily(
            "chatops_slack_jobs",
            "Slack requests acknowledged and not yet run (queued) or running, by kind",
            labels=["kind", "state"],
        )
        job_oldest = GaugeMetricFamily(
            "chatops_slack_job_oldest_queued_seconds",
            "How long the oldest queued Slack request has waited (0: none waits)",
        )
        queued_since = []
        for kind, state, count, first in self.jobs.depth():
            jobs.add_metric([kind, state], float(count))
            if state == "queued" and first is not None:
                queued_since.append(first)
        job_oldest.add_metric([], _age(now, queued_since))
        yield jobs
        yield job_oldest

        owed = GaugeMetricFamily(
            "chatops_owed_unsent",
            "What the bot owes people and has not sent yet (final words, answers, "
            "announcements, alerts), by kind",
            labels=["kind"],
        )
        owed_oldest = GaugeMetricFamily(
            "chatops_owed_oldest_unsent_seconds",
            "How long the oldest unsent one has been owed (0: nothing is owed)",
        )
        since = []
        for kind, count, first in self.outbox.unsent():
            owed.add_metric([kind], float(count))
            since.append(first)
        owed_oldest.add_metric([], _age(now, since))
        yield owed
        yield owed_oldest

    def _canaries(self) -> Iterator[Metric]:
        """Each canary under way: its shares and what its new version answered so far."""
        labels = ["env", "endpoint", "version"]
        share = GaugeMetricFamily(
            "chatops_canary_share_percent",
            "Percent of an endpoint's requests its new version answers in a canary",
            labels=labels,
        )
        shadow = GaugeMetricFamily(
            "chatops_canary_shadow_percent",
            "Percent of an endpoint's requests copied to its new version in a canary",
            labels=labels,
        )
        agreement = GaugeMetricFamily(
            "chatops_canary_agreement_ratio",
            "Share of shadowed requests the new version predicted as what serves did",
            labels=labels,
        )
        answered = GaugeMetricFamily(
            "chatops_canary_requests",
            "Requests a canary's new version answered (and failed) since its step began",
            labels=[*labels, "outcome"],
        )
        for op in self.operations.running():
            at = op.canary_share
            if at is None:
                continue
            remote = op.remote or {}
            key = [op.env, op.endpoint, str(remote.get("resolved") or "")]
            share.add_metric(key, float(at))
            shadow.add_metric(key, float((op.brief or {}).get("shadow") or 0))
            seen = remote.get("canary_seen") or {}
            if seen.get("compared"):
                agreement.add_metric(key, float(seen["agreed"]) / float(seen["compared"]))
            requests, errors = int(seen.get("requests") or 0), int(seen.get("errors") or 0)
            answered.add_metric([*key, "ok"], float(requests - errors))
            answered.add_metric([*key, "error"], float(errors))
        yield share
        yield shadow
        yield agreement
        yield answered


def _age(now: datetime, since: list[datetime]) -> float:
    return max(0.0, (now - min(since)).total_seconds()) if since else 0.0


class Exposition:
    """The `/metrics` page of a front: the state database's figures, and the counts of every
    process sharing this one's directory (or of this process alone)."""

    def __init__(self, db: Database) -> None:
        self.state = StateCollector(db)

    @classmethod
    def of(cls, queue: JobQueue) -> Exposition:
        """The page for the state database `queue` lives in."""
        return cls(queue.db)

    def render(self) -> bytes:
        """The page, in Prometheus' text format (`CONTENT_TYPE`). Blocks on the database."""
        registry = CollectorRegistry(auto_describe=False)
        shared = os.environ.get(SHARED_ENV)
        if shared and os.path.isdir(shared):
            MultiProcessCollector(registry, path=shared)  # type: ignore[no-untyped-call]
        else:
            registry.register(ThisProcess())
        registry.register(self.state)
        return generate_latest(registry)

"""How a local endpoint's workers deal a split with a candidate and count it: the memory the
host writes and every worker reads (a `Board`), and the counts each worker keeps in its own
traffic region, in one process (the same memory the real processes share)."""

from __future__ import annotations

import os

from core.predictions import agree
from core.targets.local import messages, split
from core.targets.local.split import CANDIDATE, SERVING, Board, Splitter, Totals
from core.targets.local.traffic import Region


def worker(board: Board, region: Region) -> Splitter:
    """A worker's side of the board, counting into `region` (as a worker maps them)."""
    return Splitter(os.dup(board.fd), region.cells)


def test_a_worker_deals_the_candidate_its_share_to_the_request() -> None:
    board, region = Board(), Region()
    splitter = worker(board, region)
    assert splitter.current() is None  # no split: every request stays

    board.set(1, canary=7, shadow=30, tolerance=0.0, ports=[40001, 40002])
    dealt = splitter.current()
    assert dealt is not None and dealt.ports == [40001, 40002]
    canary = [dealt.canary_turn() for _ in range(1000)]
    assert sum(canary) == 70 and not any(canary[:14])  # one in every 14 or 15, evenly
    assert sum(dealt.shadow_turn() for _ in range(1000)) == 300

    board.clear()
    assert splitter.current() is None


def test_counts_start_anew_with_a_new_split_and_the_host_reads_only_the_current_one() -> None:
    board, region = Board(), Region()
    splitter = worker(board, region)
    board.set(1, canary=50, shadow=0, tolerance=0.0, ports=[40001])
    first = splitter.current()
    assert first is not None
    for status in (200, 200, 503):
        first.record(CANDIDATE, status, 0.002)
    first.record(SERVING, 200, 0.001)

    totals = Totals()
    totals.add(region.cells, 1)
    serving, candidate = totals.groups[SERVING], totals.groups[CANDIDATE]
    assert (candidate.requests, candidate.errors, serving.requests) == (3, 1, 1)

    board.set(2, canary=10, shadow=0, tolerance=0.0, ports=[40001])
    second = splitter.current()
    assert second is not None and second is not first
    second.record(CANDIDATE, 200, 0.002)
    old, new = Totals(), Totals()
    old.add(region.cells, 1)  # what the worker counted for a split no longer set is gone
    new.add(region.cells, 2)
    assert old.groups[CANDIDATE].requests == 0
    assert (new.groups[CANDIDATE].requests, new.groups[SERVING].requests) == (1, 0)


def test_predictions_agree_when_identical_or_within_the_tolerance() -> None:
    assert agree([1, 2.5, "setosa"], [1, 2.5, "setosa"], 0.0)
    assert not agree([3.0], [3.5], 0.0)
    assert agree([3.0], [3.5], 0.5) and not agree([3.0], [3.51], 0.5)
    assert agree([{"p": [0.1, 0.9]}], [{"p": [0.11, 0.89]}], 0.02)
    assert not agree([{"p": 0.1}], [{"q": 0.1}], 1.0)
    assert not agree([1, 2], [1, 2, 3], 1.0)
    assert not agree([True], [1], 0.0)  # a class flag is not a number
    assert agree([float("nan")], [float("nan")], 0.0)  # the same answer
    assert not agree([float("nan")], [1.0], 1.0) and not agree([float("inf")], [1e308], 1e308)


def test_a_host_that_cannot_split_is_told_as_not_counted_with_why() -> None:
    old = split.summary({"ok": False, "error": "unknown op 'compare'"}, "d-2")
    assert not old.known and old.detail == messages.SPLIT_OLD_HOST
    none = split.summary(None, "d-2")
    assert not none.known and none.detail == messages.SPLIT_NO_HOST
    never = split.summary({"ok": True, "split": None}, "d-2")
    assert not never.known and "d-2" in never.detail

"""A command is answered while the model-server runtime warms: its warm-up takes seconds, and
only what starts a model server waits for it. Starting it again while a start is waited for
used to wait that start out, so a cold `chatops console -c "/deploy …"` opened the registry
only once the runtime was warm, seconds late."""

from __future__ import annotations

import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.runtime import Runtime
from core.targets.local.target import Zygote
from tests.conftest import make_settings
from tests.scenarios.test_deploy_scale_status import run


@pytest.fixture
def warming(tmp_path: Path) -> Iterator[Zygote]:
    """A runtime that is still warming: its process never says it is ready."""
    never_ready = tmp_path / "python"
    never_ready.write_text("#!/bin/sh\nexec sleep 300\n")
    never_ready.chmod(never_ready.stat().st_mode | stat.S_IXUSR)
    zygote = Zygote(state_dir=tmp_path, python=str(never_ready))
    zygote.prewarm()
    deadline = time.monotonic() + 30
    while zygote._starting is None:  # until its start is waited for, as a first spawn waits
        assert time.monotonic() < deadline, "the runtime's start was never waited for"
        time.sleep(0.01)
    yield zygote
    zygote.close()


def returns_at_once(call: object) -> bool:
    done = threading.Event()

    def run() -> None:
        call()  # type: ignore[operator]
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done.wait(10)  # a start is waited for up to two minutes


def test_starting_it_again_while_it_warms_does_not_wait(warming: Zygote) -> None:
    assert returns_at_once(warming.prewarm)
    assert not warming.ready


def test_a_command_is_answered_while_it_warms(
    warming: Zygote, tmp_path: Path, registry_uri: str
) -> None:
    runtime = Runtime(make_settings(tmp_path / "state", registry_uri), zygote=warming)
    try:
        assert returns_at_once(runtime.warm_up)
        outcome = run(runtime, "/status")
        assert outcome.ok, outcome
        assert not warming.ready
    finally:
        runtime.close()

"""The model-server runtime is ended by the process that started it, never by a Ctrl-C to the
bot's process group: one that arrives while it starts (right after the worker said it is
ready) used to stop its interpreter mid-import, with "Fatal Python error" in the bot's log."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from core.targets.local.target import Zygote


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals")
def test_a_ctrl_c_while_the_runtime_starts_leaves_it_to_its_parent(tmp_path: Path) -> None:
    zygote = Zygote(state_dir=tmp_path)
    try:
        zygote.prewarm()
        launched = zygote._launched or zygote._starting or zygote._proc
        assert launched is not None
        time.sleep(0.05)  # its interpreter is starting: what a Ctrl-C then reached
        launched.send_signal(signal.SIGINT)
        zygote.wait_ready()
        assert zygote.ready
        assert launched.poll() is None
    finally:
        zygote.close()
    assert launched.poll() is not None  # its parent ended it

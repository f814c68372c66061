"""CML (Cloudera AI) API v2 emulator: the subset the bot uses, over real HTTP.

running = start_emulator(tracking_uri="sqlite:///mlflow.db", api_key="k", projects=["demo"])
running.url            # base URL for CMLClient(base_url=...)
running.faults.fail_next = 3
running.stop()
"""

from __future__ import annotations

from emulators.cml.emulator import CMLEmulator
from emulators.cml.server import RunningEmulator, main, serve_in_thread, start_emulator
from emulators.cml.switches import Faults, Timings

__all__ = [
    "CMLEmulator",
    "Faults",
    "RunningEmulator",
    "Timings",
    "main",
    "serve_in_thread",
    "start_emulator",
]

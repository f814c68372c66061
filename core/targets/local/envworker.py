"""A model-server worker in a model's own environment (uvenv.py).

Such a worker cannot be forked from the warm runtime: its packages are not the runtime's. The
endpoint host forks as for any worker, and the child executes the environment's interpreter
on this module, handing it the endpoint's shared listening socket and the pipe it reports
ready on; from there it is the same worker (server.py): private port, SIGUSR1 to take the
endpoint's traffic, SIGTERM to drain, memory watchdog.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import asdict
from typing import NoReturn

from core.targets.local.server import WorkerSpec, run_worker


def exec_worker(
    *, python: str, code: str, spec: WorkerSpec, shared: socket.socket, ready_fd: int
) -> NoReturn:
    """Replace this (freshly forked) process with a worker running in `python`'s environment."""
    os.set_inheritable(shared.fileno(), True)
    os.set_inheritable(ready_fd, True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PYTHONPATH=code, PYTHONNOUSERSITE="1")
    argv = [python, "-m", __name__, json.dumps(asdict(spec)), str(shared.fileno()), str(ready_fd)]
    os.execve(python, argv, env)


def main() -> None:
    spec = WorkerSpec(**json.loads(sys.argv[1]))
    shared = socket.socket(fileno=int(sys.argv[2]))
    run_worker(spec, shared, int(sys.argv[3]))


if __name__ == "__main__":
    main()

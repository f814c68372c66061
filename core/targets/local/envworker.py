"""A model-server worker in a model's own environment (uvenv.py).

Such a worker cannot be forked from the warm runtime: its packages are not the runtime's. The
endpoint host forks as for any worker, and the child executes the environment's interpreter
on this module, handing it the endpoint's shared listening socket, the pipe it reports ready
on, the memory it counts its traffic in and the one its host writes the split in; from there
it is the same worker (server.py): private port, SIGUSR1 to take the endpoint's traffic,
SIGTERM to drain, memory limit enforced.
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
    *,
    python: str,
    code: str,
    spec: WorkerSpec,
    shared: socket.socket,
    ready_fd: int,
    counts_fd: int,
    split_fd: int,
) -> NoReturn:
    """Replace this (freshly forked) process with a worker running in `python`'s environment."""
    for fd in (shared.fileno(), ready_fd, counts_fd, split_fd):
        os.set_inheritable(fd, True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PYTHONPATH=code, PYTHONNOUSERSITE="1")
    fds = [str(fd) for fd in (shared.fileno(), ready_fd, counts_fd, split_fd)]
    argv = [python, "-m", __name__, json.dumps(asdict(spec)), *fds]
    os.execve(python, argv, env)


def main() -> None:
    spec = WorkerSpec(**json.loads(sys.argv[1]))
    shared = socket.socket(fileno=int(sys.argv[2]))
    run_worker(spec, shared, *(int(fd) for fd in sys.argv[3:7]))


if __name__ == "__main__":
    main()

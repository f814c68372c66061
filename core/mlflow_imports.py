"""MLflow's modules, imported on one thread at a time.

A bot process imports MLflow only when it first needs the registry (it takes a second or
more, with pandas, pyarrow and scipy), which may be on any thread: the worker's warm-up and a
command's handler at once. MLflow's modules import each other in circles, and a second thread
importing them meanwhile can be handed one half made (an ImportError naming a "partially
initialized module"). Every such import is made inside `mlflow_imports()`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_ONE_AT_A_TIME = threading.RLock()


@contextmanager
def mlflow_imports() -> Iterator[None]:
    """Import MLflow's modules inside this block: no other thread imports them meanwhile."""
    with _ONE_AT_A_TIME:
        yield

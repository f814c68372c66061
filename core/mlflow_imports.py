"""MLflow's modules, imported on one thread at a time, without the data libraries the bot
never asks MLflow for.

A bot process imports MLflow only when it first needs the registry (it takes a second or
more), which may be on any thread: the worker's warm-up and a command's handler at once.
MLflow's modules import each other in circles, and a second thread importing them meanwhile
can be handed one half made (an ImportError naming a "partially initialized module"). Every
such import is made inside `mlflow_imports()`.

`import mlflow` also loads pandas (and scipy with it) for its datasets and evaluation, each
import wrapped in `suppress(ImportError)` so that mlflow-skinny, which lacks them, works. The
bot reads and writes the registry and copies artifacts; it never logs a dataset. Inside the
block those imports are refused on the importing thread, so MLflow sets itself up as
mlflow-skinny does, and a process that only talks to the registry (the worker of a bot whose
environments are all on CML) holds about 60 MB less. Outside the block they import as ever:
the model-server runtime, which scores DataFrames, imports MLflow's pyfunc stack itself.
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType

# top-level packages MLflow imports only as optional extras (see above)
OPTIONAL = frozenset({"pandas", "scipy"})

_ONE_AT_A_TIME = threading.RLock()
_inside = threading.local()  # how deep this thread is in `mlflow_imports()` blocks


class _OptionalRefused(importlib.abc.MetaPathFinder):
    """Says an optional package is not installed while its importer is inside the block."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if getattr(_inside, "depth", 0) and fullname.partition(".")[0] in OPTIONAL:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None  # the finders after this one decide


# installed once for good: sys.meta_path changed while another thread imports could skip a finder
if not any(isinstance(f, _OptionalRefused) for f in sys.meta_path):
    sys.meta_path.insert(0, _OptionalRefused())


@contextmanager
def mlflow_imports() -> Iterator[None]:
    """Import MLflow's modules inside this block: no other thread imports them meanwhile, and
    MLflow's optional pandas and scipy are not loaded for it (already loaded, they are used)."""
    with _ONE_AT_A_TIME:
        _inside.depth = getattr(_inside, "depth", 0) + 1
        try:
            yield
        finally:
            _inside.depth -= 1

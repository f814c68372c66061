"""MLflow's modules, imported on one thread at a time, and in a process that only talks to
the registry, without the data libraries it never asks MLflow for.

A bot process imports MLflow only when it first needs the registry (it takes a second or
more), which may be on any thread: the worker's warm-up and a command's handler at once.
MLflow's modules import each other in circles, and a second thread importing them meanwhile
can be handed one half made (an ImportError naming a "partially initialized module"). Every
such import is made inside `mlflow_imports()`.

`import mlflow` also loads pandas (and scipy with it) for its datasets, models and
evaluation, each import wrapped so that mlflow-skinny, which lacks them, works. A process that
only reads and writes the registry and copies artifacts (the Slack worker of a bot that serves
no model on this machine) says so with `registry_only()` before it first imports MLflow: from
then on those imports are refused inside the block, MLflow sets itself up as mlflow-skinny
does, and the process holds about 50 MB less. Such a process cannot load a model afterwards
(`mlflow.models` is left without its pandas-based helpers), so the console, which may create
the demo model, and the model-server runtime never say it.
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
_only_the_registry = threading.Event()  # set once by `registry_only()`, never cleared


class _OptionalRefused(importlib.abc.MetaPathFinder):
    """Says an optional package is not installed while its importer is inside the block."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        inside: int = getattr(_inside, "depth", 0)
        if inside and _only_the_registry.is_set() and fullname.partition(".")[0] in OPTIONAL:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None  # the finders after this one decide


# installed once for good: sys.meta_path changed while another thread imports could skip a finder
if not any(isinstance(f, _OptionalRefused) for f in sys.meta_path):
    sys.meta_path.insert(0, _OptionalRefused())


def registry_only() -> None:
    """This process uses MLflow for its registry alone and will never load a model: MLflow's
    optional pandas and scipy are not loaded for it (already loaded, they are used). Said
    before MLflow is first imported; it lasts as long as the process."""
    _only_the_registry.set()


@contextmanager
def mlflow_imports() -> Iterator[None]:
    """Import MLflow's modules inside this block: no other thread imports them meanwhile (and,
    in a process that is `registry_only()`, without MLflow's optional pandas and scipy)."""
    with _ONE_AT_A_TIME:
        _inside.depth = getattr(_inside, "depth", 0) + 1
        try:
            yield
        finally:
            _inside.depth -= 1

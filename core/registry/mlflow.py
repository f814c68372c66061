"""The MLflow model registry, seen as the bot needs it: versions, aliases, metrics, artifacts;
and the one thing it writes there, which version serves an environment (`mark_serving`).

MLflow's own exceptions are translated here into `core.errors`, so nothing above this module
knows MLflow raised them. Every wait on a registry server is bounded (`bound_http_waits`): a
registry that refuses, or accepts and never answers, fails the call within about 30 s, with
a text that names the registry without its credentials.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from core import metrics
from core.errors import NotFound, RegistryError
from core.marks import unmarked
from core.mlflow_imports import mlflow_imports
from core.scrub import scrub
from core.versions import ModelVersion as ModelVersion  # re-exported: callers import it here
from core.versions import serving_tag as serving_tag

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

# the longest one registry call may wait on an unreachable or silent server
REGISTRY_WAIT_S = 30.0
# MLflow's error code for a model, version, run or alias that is not there
DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
# tries after the first, and urllib3's backoff factor: it sleeps 0 s, then 2 s (factor * 2)
_RETRIES = 2
_BACKOFF = 1
_JITTER = 0.5


def http_waits(budget_s: float) -> dict[str, str]:
    """MLflow's HTTP settings that keep one registry call within `budget_s`: every try may
    wait the per-try timeout, plus the backoff sleeps between them."""
    sleeps = sum(_BACKOFF * 2**n + _JITTER for n in range(1, _RETRIES))
    per_try = max(1, int((budget_s - sleeps) / (_RETRIES + 1)))
    return {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(per_try),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(_RETRIES),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(_BACKOFF),
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": str(_JITTER),
    }


def bound_http_waits(budget_s: float = REGISTRY_WAIT_S) -> None:
    """Bounds this process's waits on MLflow servers to `budget_s` per call. MLflow reads
    these variables on every request (its defaults retry for about 4 minutes and wait 120 s
    for each answer); they are the process's, so the last budget set applies."""
    os.environ.update(http_waits(budget_s))


def unreachable(exc: BaseException) -> str | None:
    """Why the server could not be reached, when that is what `exc` (or its cause) says."""
    seen: BaseException | None = exc
    while seen is not None and not isinstance(seen, requests.exceptions.RequestException):
        seen = seen.__cause__ or seen.__context__
    if seen is None:
        return None
    text = str(seen)
    if isinstance(seen, requests.exceptions.Timeout) or "timed out" in text.lower():
        return "timeout"
    if "refused" in text.lower():
        return "connection refused"
    if "resolve" in text.lower() or "name or service not known" in text.lower():
        return "unknown host"
    return "connection failed"


@contextmanager
def translated(uri: str, doing: str, *, budget_s: float) -> Iterator[None]:
    """MLflow's exceptions as `RegistryError` (`NotFound` when MLflow says there is no such
    thing): an unreachable registry named (without its credentials) with how long it was
    waited for."""
    with mlflow_imports():  # MLflow takes a second or more to import
        from mlflow.exceptions import MlflowException

    begun = time.monotonic()
    try:
        yield
    except MlflowException as exc:
        why = unreachable(exc)
        metrics.registry_call("error" if why is None else "unreachable")
        if why is None and exc.error_code == DOES_NOT_EXIST:
            raise NotFound(f"MLflow has no such thing, while {doing}: {exc.message}") from None
        if why is None:
            raise RegistryError(f"MLflow failed while {doing}: {exc.message}") from None
        took = time.monotonic() - begun
        where = f"the MLflow registry at {scrub(uri)}"
        if why == "timeout":
            text = f"{where} did not answer within {budget_s:g} s while {doing}"
        else:
            text = f"{where} cannot be reached ({why}; gave up after {took:.0f} s) while {doing}"
        raise RegistryError(text) from None
    metrics.registry_call("ok")


class Registry:
    """One MLflow registry: read (and the artifact copies the targets load), and written
    only to say what serves an environment (its alias and a version tag)."""

    def __init__(
        self,
        *,
        tracking_uri: str,
        registry_uri: str | None = None,
        wait_s: float = REGISTRY_WAIT_S,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.wait_s = wait_s
        bound_http_waits(wait_s)
        self._client: MlflowClient | None = None
        self._opening = threading.Lock()

    @property
    def client(self) -> MlflowClient:
        # Creating the client opens (and on first use migrates) the database: do it once,
        # also when a command asks while the worker's warm-up is opening it
        with self._opening:
            if self._client is None:
                # opening it imports the store's modules too
                with mlflow_imports():
                    from mlflow.tracking import MlflowClient

                    self._client = MlflowClient(
                        tracking_uri=self.tracking_uri, registry_uri=self.registry_uri
                    )
            return self._client

    def models(self) -> list[str]:
        """Names of every registered model, sorted."""
        with self.guarded("listing the registered models"):
            return sorted(m.name for m in self.client.search_registered_models(max_results=1000))

    def resolve(
        self, model: str, *, version: int | None = None, alias: str | None = None
    ) -> ModelVersion:
        """The registered version named by number or alias; `NotFound` says what does exist."""
        known = self.models()
        if model not in known:
            hint = f"registered models: {', '.join(known)}" if known else "the registry is empty"
            raise NotFound(f"there is no model called `{model}` in the registry ({hint})")
        with self.guarded(f"reading {model}"):
            if alias is not None:
                mv = self._by_alias(model, alias)
            elif version is not None:
                mv = self._by_version(model, version)
            else:
                raise NotFound(f"say which version of `{model}` to use, e.g. `{model} v1`")
            run = self.client.get_run(mv.run_id) if mv.run_id else None
        if mv.status != "READY":
            raise NotFound(f"{model} v{mv.version} is not ready yet (status {mv.status})")
        return ModelVersion(
            model=model,
            version=int(mv.version),
            source=mv.source,
            run_id=mv.run_id or None,
            status=mv.status,
            created_at=datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=UTC),
            # names anyone with registry access chose: never taken for the bot's own marks
            aliases=tuple(unmarked(a) for a in getattr(mv, "aliases", ()) or ()),
            metrics={unmarked(k): v for k, v in run.data.metrics.items()} if run else {},
            run_name=unmarked(str(run.info.run_name or "")) if run else "",
        )

    def guarded(self, doing: str) -> AbstractContextManager[None]:
        """Around a registry call: its MLflow errors become `RegistryError`s naming the
        registry without its credentials, and how long it was waited for."""
        return translated(self.registry_uri, doing, budget_s=self.wait_s)

    def _versions(self, model: str) -> list[int]:
        found = self.client.search_model_versions(f"name = '{model}'", max_results=1000)
        return sorted(int(v.version) for v in found)

    def _by_version(self, model: str, version: int):  # type: ignore[no-untyped-def]
        with mlflow_imports():
            from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version(model, str(version))
        except MlflowException as exc:
            if unreachable(exc):
                raise
            versions = self._versions(model)
            listed = ", ".join(f"v{v}" for v in versions) or "none"
            raise NotFound(f"{model} has no version {version} (versions: {listed})") from None

    def _by_alias(self, model: str, alias: str):  # type: ignore[no-untyped-def]
        with mlflow_imports():
            from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(model, alias)
        except MlflowException as exc:
            if unreachable(exc):
                raise
            aliases = sorted(self.client.get_registered_model(model).aliases or {})
            listed = ", ".join(f"@{a}" for a in aliases) or "none"
            raise NotFound(f"{model} has no alias @{alias} (aliases: {listed})") from None

    # -- what serves an environment, written back ---------------------------------------
    def mark_serving(
        self,
        *,
        model: str,
        version: int,
        alias: str,
        tag: str,
        value: str,
        before: tuple[str, int] | None = None,
    ) -> None:
        """Move `alias` of `model` to `version`, tag that version `tag` = `value`, and take
        `tag` off `before` (the model and version that served until now: of another model,
        its `alias` too, while it still names it). `RegistryError` says which write failed;
        what was written before it stays."""
        with self._writing(f"moving @{alias} of {model} to v{version}"):
            self.client.set_registered_model_alias(model, alias, str(version))
        with self._writing(f"tagging {model} v{version} {tag}"):
            self.client.set_model_version_tag(model, str(version), tag, value)
        if before is not None and before != (model, version):
            self.unmark_serving(model=before[0], version=before[1], alias=alias, tag=tag)

    def unmark_serving(self, *, model: str, version: int, alias: str, tag: str) -> bool:
        """Take `tag` off `model` v`version`, and `alias` off `model` while it names that
        version still (what it names otherwise is left alone). True when the alias was
        taken off. Tags and aliases already gone are no error."""
        with self._writing(f"taking {tag} off {model} v{version}", gone_ok=True):
            self.client.delete_model_version_tag(model, str(version), tag)
        aliases: dict[str, object] = {}
        with self._writing(f"reading @{alias} of {model}", gone_ok=True):
            aliases = dict(self.client.get_registered_model(model).aliases or {})
        if str(aliases.get(alias, "")) != str(version):
            return False
        with self._writing(f"taking @{alias} off {model} v{version}", gone_ok=True):
            self.client.delete_registered_model_alias(model, alias)
            return True
        return False  # the model or its alias went meanwhile

    @contextmanager
    def _writing(self, doing: str, *, gone_ok: bool = False) -> Iterator[None]:
        """Around one write: every failure a `RegistryError` naming the write (an error of the
        HTTP client underneath included); with `gone_ok`, a thing already gone is none."""
        try:
            with self.guarded(doing):
                yield
        except NotFound as exc:
            if not gone_ok:
                raise RegistryError(exc.message) from None
        except (requests.RequestException, OSError) as exc:
            why = unreachable(exc) or type(exc).__name__
            where = f"the MLflow registry at {scrub(self.registry_uri)}"
            raise RegistryError(f"{where} failed ({why}) while {doing}") from None

    def download(self, mv: ModelVersion, dest: Path) -> Path:
        """A local copy of the version's model artifacts (reused when already complete)."""
        if (dest / "MLmodel").exists():
            return dest
        with mlflow_imports():
            from mlflow.artifacts import download_artifacts

        partial = dest.with_name(dest.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        try:
            with self.guarded(f"fetching the artifacts of {mv.label}"):
                uri = self.client.get_model_version_download_uri(mv.model, str(mv.version))
                local = download_artifacts(
                    artifact_uri=uri, dst_path=str(partial), tracking_uri=self.tracking_uri
                )
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            raise RegistryError(f"could not fetch the artifacts of {mv.label}: {exc}") from None
        except RegistryError:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        if not (Path(local) / "MLmodel").exists():
            shutil.rmtree(partial, ignore_errors=True)
            raise RegistryError(f"{mv.label} has no MLmodel file: it is not an MLflow model")
        shutil.rmtree(dest, ignore_errors=True)
        Path(local).rename(dest)
        shutil.rmtree(partial, ignore_errors=True)
        return dest

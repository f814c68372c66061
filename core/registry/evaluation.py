"""A version's evaluation dataset, as its run logged it: what the prediction diff scores the
new version and the serving one on, beside the input example.

A run names its evaluation dataset in one of two ways MLflow has:
- a dataset input logged with the context `evaluation` (`mlflow.log_input(dataset,
  context="evaluation")`) whose source is a file MLflow can fetch (a path, a `runs:/` or
  artifact URI): a JSON table or a CSV file;
- else a table the run logged (`mlflow.log_table`) whose file or folder name begins with
  `eval` (`evaluation.json`, `eval/holdout.json`).

Only the columns the model's input example names are sent, of the types the example gives
them (a model logged without an input example gets no such diff); the one column left over
(or one called `target`, `label` or `y`) holds the targets.
Read with the standard library: a worker that serves no model locally has no pandas.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from core.errors import RegistryError
from core.marks import unmarked
from core.mlflow_imports import mlflow_imports
from core.predictions import storable
from core.registry.mlflow import Registry
from core.versions import ModelVersion

CONTEXT_TAG = "mlflow.data.context"  # MLflow's tag of a dataset input's role
EVALUATION = "evaluation"
LOGGED_ARTIFACTS_TAG = "mlflow.loggedArtifacts"  # where MLflow lists a run's logged tables
TARGET_NAMES = ("target", "targets", "label", "labels", "y")
MAX_ROWS = 1000  # the rows scored at most (the first ones)
CHUNK_ROWS = 250  # rows a request
MAX_BYTES = 20 * 1024 * 1024  # a larger file is not fetched whole into the bot


@dataclass(frozen=True)
class Logged:
    """Where a run logged its evaluation dataset, before anything is fetched."""

    name: str  # as people know it
    uri: str  # what MLflow fetches
    rows: int | None = None  # as the dataset's profile says, when it does
    refused: str = ""  # why the bot does not fetch it

    def described(self) -> str:
        rows = self.rows
        counted = f" ({rows:,} row{'s' if rows != 1 else ''})" if rows is not None else ""
        return f"evaluation dataset `{self.name}`{counted}"


@dataclass(frozen=True)
class EvaluationSet:
    """The rows to score (at most `MAX_ROWS`), the columns the model takes, and the targets."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    total: int  # rows in the dataset
    target: str = ""  # the targets' column; "" without
    targets: tuple[Any, ...] = ()

    def bodies(self) -> list[dict[str, Any]]:
        """The scoring requests, `CHUNK_ROWS` rows each, as the input example is sent."""
        return [
            {
                "dataframe_split": {
                    "columns": list(self.columns),
                    "data": storable([list(r) for r in self.rows[i : i + CHUNK_ROWS]]),
                }
            }
            for i in range(0, len(self.rows), CHUNK_ROWS)
        ]

    def described(self) -> str:
        """`evaluation dataset `iris-test` (45 rows, target `species`)`"""
        if len(self.rows) < self.total:
            counted = f"the first {len(self.rows):,} of {self.total:,} rows"
        else:
            counted = f"{self.total:,} row{'s' if self.total != 1 else ''}"
        aimed = f", target `{self.target}`" if self.target else ""
        return f"evaluation dataset `{self.name}` ({counted}{aimed})"


def logged(registry: Registry, mv: ModelVersion) -> Logged | None:
    """Where `mv`'s run logged its evaluation dataset; None when it logged none (or has no
    run). `RegistryError` when the run cannot be read."""
    if not mv.run_id:
        return None
    with registry.guarded(f"reading the run of {mv.label}"):
        run = registry.client.get_run(mv.run_id)
    for given in getattr(run.inputs, "dataset_inputs", None) or ():
        tags = {t.key: t.value for t in given.tags or ()}
        if tags.get(CONTEXT_TAG) != EVALUATION:
            continue
        dataset = given.dataset
        uri = _source_uri(dataset.source)
        if uri:
            name = unmarked(dataset.name or PurePosixPath(uri).name)
            refused = _outside(uri, _experiment_artifacts(registry, run.info.experiment_id))
            return Logged(name, uri, _rows(dataset.profile), refused)
    for table in _tables(run.data.tags.get(LOGGED_ARTIFACTS_TAG)):
        if any(part.lower().startswith("eval") for part in PurePosixPath(table).parts):
            return Logged(unmarked(table), f"runs:/{mv.run_id}/{table}")
    return None


def unread(found: Logged) -> str:
    """Why the dataset `found` names would not be read, as far as its name and source tell
    (a plan asks without fetching it); "" when it would be fetched."""
    if found.refused:
        return f"{found.described()} {found.refused}"
    suffix = PurePosixPath(found.uri).suffix.lower()
    if suffix not in (".json", ".csv"):
        return (
            f"{found.described()} is a {suffix or 'file without a suffix'}: the prediction "
            "diff reads JSON tables (mlflow.log_table) and CSV files"
        )
    return ""


def read(registry: Registry, found: Logged, example: dict[str, Any] | None) -> EvaluationSet:
    """The dataset `logged` found, shaped as `example` (the input example) is; `RegistryError`
    saying why when it cannot be read or does not fit the model's input."""
    if why := unread(found):
        raise RegistryError(why)
    columns, data = _table(registry, found)
    if not data:
        raise RegistryError(f"{found.described()} has no rows")
    wanted, types = _example_columns(example)
    if not wanted:
        raise RegistryError(
            f"the model's input example names no columns to send the rows of {found.described()} in"
        )
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise RegistryError(
            f"{found.described()} lacks the model's input column(s) "
            + ", ".join(f"`{unmarked(c)}`" for c in missing[:5])
        )
    sent = wanted
    target = _target(columns, sent)
    at = {c: i for i, c in enumerate(columns)}
    rows = tuple(tuple(_typed(row[at[c]], types.get(c)) for c in sent) for row in data[:MAX_ROWS])
    targets = tuple(row[at[target]] for row in data[:MAX_ROWS]) if target else ()
    return EvaluationSet(
        name=found.name,
        columns=tuple(sent),
        rows=rows,
        total=len(data),
        target=unmarked(target),
        targets=targets,
    )


def _source_uri(source: str | None) -> str:
    """The fetchable URI of a dataset source as MLflow records it (JSON: `uri`, `path`)."""
    try:
        fields = json.loads(source or "")
    except ValueError:
        return ""
    if not isinstance(fields, dict):
        return ""
    for key in ("uri", "path", "url"):
        value = fields.get(key)
        if isinstance(value, str) and value and not value.startswith(("http://", "https://")):
            return value
    return ""


def _experiment_artifacts(registry: Registry, experiment_id: str) -> str:
    with registry.guarded("reading the run's experiment"):
        return str(registry.client.get_experiment(experiment_id).artifact_location or "")


def _outside(uri: str, artifacts: str) -> str:
    """Why a source on this machine's disk is not fetched: only the artifacts of the run's
    experiment are (MLflow keeps one record of a dataset logged by several runs of it, with
    the first one's source; a path anywhere else would have the bot read its own files for
    whoever logs runs); "" for those and for any store MLflow fetches from elsewhere
    (`s3://`, `runs:/`, …)."""
    scheme = urlsplit(uri).scheme
    if scheme not in ("", "file"):
        return ""
    # MLflow decodes what a file URI escapes (`%2E%2E`): a path is taken only as written
    plain = not any(c in uri for c in "%?#\x00")
    mine = Path(urlsplit(artifacts).path or artifacts).resolve()
    path = Path(urlsplit(uri).path if scheme else uri)
    local = urlsplit(artifacts).scheme in ("", "file")
    if plain and local and path.is_absolute() and path.resolve().is_relative_to(mine):
        return ""
    return (
        "lies outside the artifacts of its run's experiment on this machine: only the "
        "registry's own files are read"
    )


def _rows(profile: str | None) -> int | None:
    try:
        rows = json.loads(profile or "").get("num_rows")
    except (ValueError, AttributeError):
        return None
    return rows if isinstance(rows, int) else None


def _tables(tag: str | None) -> list[str]:
    try:
        listed = json.loads(tag or "[]")
    except ValueError:
        return []
    if not isinstance(listed, list):
        return []
    return [
        str(a["path"])
        for a in listed
        if isinstance(a, dict) and a.get("type") == "table" and a.get("path")
    ]


def _table(registry: Registry, found: Logged) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows) of the file `found` names: a JSON table or a CSV file."""
    with mlflow_imports():
        from mlflow.artifacts import download_artifacts

    suffix = PurePosixPath(found.uri).suffix.lower()
    _size_known(registry, found)
    with tempfile.TemporaryDirectory(prefix="chatops-evaluation-") as tmp:
        try:
            with registry.guarded(f"fetching {found.described()}"):
                local = Path(
                    download_artifacts(
                        artifact_uri=found.uri, dst_path=tmp, tracking_uri=registry.tracking_uri
                    )
                )
            _not_too_large(found, local.stat().st_size)
            text = local.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise RegistryError(
                f"could not fetch {found.described()}: {type(exc).__name__}"
            ) from None
    try:
        return _csv(text) if suffix == ".csv" else _json(text)
    except (ValueError, KeyError, TypeError, IndexError, RecursionError, csv.Error):
        raise RegistryError(
            f"{found.described()} is no table: a JSON table has `columns` and `data`, as "
            "mlflow.log_table writes it, and a CSV file a header row"
        ) from None


def _size_known(registry: Registry, found: Logged) -> None:
    """Refuse a file too large before it is fetched, where its size can be asked: a file on
    this machine, or a run's artifact (the registry lists its size)."""
    scheme = urlsplit(found.uri).scheme
    if scheme in ("", "file"):
        with contextlib.suppress(OSError):
            _not_too_large(found, os.stat(urlsplit(found.uri).path).st_size)
        return
    if scheme == "runs":
        run_id, _, path = urlsplit(found.uri).path.lstrip("/").partition("/")
        folder = str(PurePosixPath(path).parent)
        with registry.guarded(f"listing the artifacts of run {run_id[:8]}"):
            listed = registry.client.list_artifacts(run_id, None if folder == "." else folder)
        size = next((f.file_size for f in listed if f.path == path), None)
        if isinstance(size, int):
            _not_too_large(found, size)


def _not_too_large(found: Logged, size: int) -> None:
    if size > MAX_BYTES:
        raise RegistryError(
            f"{found.described()} is {size / 2**20:.0f} MB: the prediction diff reads at most "
            f"{MAX_BYTES // 2**20} MB"
        )


def _json(text: str) -> tuple[list[str], list[list[Any]]]:
    table = json.loads(text)
    if isinstance(table, dict) and isinstance(table.get("dataframe_split"), dict):
        table = table["dataframe_split"]
    if isinstance(table, list):  # records
        if not all(isinstance(record, dict) for record in table):
            raise ValueError("records that are not objects")
        columns = list(table[0]) if table else []
        return _named(columns), [[record[c] for c in columns] for record in table]
    if not isinstance(table, dict) or not isinstance(table.get("columns"), list):
        raise ValueError("no list of columns")
    columns, data = _named(table["columns"]), table["data"]
    if not isinstance(data, list) or any(
        not isinstance(r, list) or len(r) != len(columns) for r in data
    ):
        raise ValueError("rows of other widths than the columns")
    return columns, data


def _named(columns: list[Any]) -> list[str]:
    names = [str(c) for c in columns]
    if len(set(names)) != len(names):
        raise ValueError("a column named twice")
    return names


def _csv(text: str) -> tuple[list[str], list[list[Any]]]:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise ValueError("no header")
    columns, data = _named(rows[0]), [r for r in rows[1:] if r]
    if any(len(r) != len(columns) for r in data):
        raise ValueError("rows of other widths than the header")
    return columns, [[_parsed(v) for v in r] for r in data]


def _parsed(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _example_columns(example: dict[str, Any] | None) -> tuple[list[str], dict[str, type]]:
    """The columns the input example sends, in its order, and the type of each's first
    value; ([], {}) when there is none or it is no table."""
    split = (example or {}).get("dataframe_split")
    if isinstance(split, dict) and isinstance(split.get("columns"), list):
        columns = [str(c) for c in split["columns"]]
        data = split.get("data")
        first = data[0] if isinstance(data, list) and data else []
        values = first if isinstance(first, list) and len(first) == len(columns) else []
        return columns, {c: type(v) for c, v in zip(columns, values, strict=False)}
    records = (example or {}).get("dataframe_records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        return [str(c) for c in records[0]], {str(c): type(v) for c, v in records[0].items()}
    return [], {}


def _target(columns: list[str], sent: list[str]) -> str:
    rest = [c for c in columns if c not in sent]
    if len(rest) == 1:
        return rest[0]
    return next((c for c in rest if c.lower() in TARGET_NAMES), "")


def _typed(value: Any, kind: type | None) -> Any:
    """`value` as the example gives its column (an int read where the model takes floats)."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value

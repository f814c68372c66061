"""Request fields checked as CML's gateway decodes them (protobuf JSON): a field of the wrong
type is refused with 400 and a ``runtimeError`` body, so nothing wrongly typed is ever stored.

Types follow the spec's definitions of the bodies the emulator takes. As the gateway does,
integers and doubles may also come as JSON strings of a number (int64 fields are strings in
the spec), ``null`` means the field was left out, and unknown fields are ignored (dropped).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from emulators.cml.errors import ApiError

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

# a field's type: a scalar name, "<type>[]" for an array, "map" (string -> string), or the
# name of an object definition below
DEFINITIONS: dict[str, dict[str, str]] = {
    "Tag": {"key": "string", "value": "string"},
    "DefaultResources": {"cpu_millicores": "int64", "memory_mb": "int64", "nvidia_gpus": "int64"},
    "DefaultReplicationPolicy": {"num_replicas": "int64", "type": "string"},
    "ShortCreateModelBuild": {
        "comment": "string",
        "file_path": "string",
        "function_name": "string",
        "kernel": "string",
        "runtime_identifier": "string",
        "runtime_addon_identifiers": "string[]",
        "registered_model_version_id": "string",
        "model_root_dir": "string",
        "build_script_path": "string",
    },
    "ShortCreateModelDeployment": {
        "cpu": "double",
        "memory": "double",
        "nvidia_gpus": "int32",
        "environment": "map",
        "replicas": "int32",
        "deployment_secrets": "map",
    },
    "CreateRegisteredModelRequest": {
        "project_id": "string",
        "experiment_id": "string",
        "run_id": "string",
        "model_path": "string",
        "model_name": "string",
        "tags": "Tag[]",
        "description": "string",
        "notes": "string",
        "visibility": "Visibility",
    },
    "CreateModelRequest": {
        "project_id": "string",
        "name": "string",
        "description": "string",
        "disable_authentication": "boolean",
        "registered_model_id": "string",
        "run_as": "int32",
        "visibility": "string",
        "auto_build_config": "ShortCreateModelBuild",
        "auto_deployment_config": "ShortCreateModelDeployment",
        "auto_build_model": "boolean",
        "auto_deploy_model": "boolean",
        "accelerator_label_id": "int64",
        "resource_group_id": "int32",
        "resource_profile_id": "int32",
    },
    "UpdateSingleModel": {
        "id": "string",
        "name": "string",
        "description": "string",
        "visibility": "string",
        "default_resources": "DefaultResources",
        "default_replication_policy": "DefaultReplicationPolicy",
        "run_as": "int32",
        "accelerator_label_id": "int64",
        "resource_group_id": "int32",
        "resource_profile_id": "int32",
    },
    "CreateModelBuildRequest": {
        "project_id": "string",
        "model_id": "string",
        "comment": "string",
        "file_path": "string",
        "function_name": "string",
        "kernel": "string",
        "runtime_identifier": "string",
        "runtime_addon_identifiers": "string[]",
        "registered_model_version_id": "string",
        "auto_deployment_config": "ShortCreateModelDeployment",
        "auto_deploy_model": "boolean",
        "model_root_dir": "string",
        "build_script_path": "string",
        "accelerator_label_id": "int64",
        "resource_group_id": "int32",
        "resource_profile_id": "int32",
    },
    "CreateModelDeploymentRequest": {
        "project_id": "string",
        "model_id": "string",
        "build_id": "string",
        "cpu": "double",
        "memory": "double",
        "nvidia_gpus": "int32",
        "environment": "map",
        "replicas": "int32",
        "accelerator_label_id": "int64",
        "resource_group_id": "int32",
        "resource_profile_id": "int32",
        "deployment_secrets": "map",
    },
}
ENUMS: dict[str, tuple[str, ...]] = {"Visibility": ("PRIVATE", "PUBLIC")}

# operationId -> the definition of its body
BODIES = {
    "CreateRegisteredModel": "CreateRegisteredModelRequest",
    "CreateModel": "CreateModelRequest",
    "UpdateModel": "UpdateSingleModel",
    "CreateModelBuild": "CreateModelBuildRequest",
    "CreateModelDeployment": "CreateModelDeploymentRequest",
}
# query parameters whose type is not string, by name (the same in every operation)
QUERY_TYPES = {
    "page_size": "int32",
    "include_public_projects": "boolean",
    "include_all_projects": "boolean",
}
_TRUE, _FALSE = ("true", "1", "t"), ("false", "0", "f")


def checked_body(operation: str, body: Any) -> dict[str, Any]:
    """``body`` of ``operation`` with every known field of its type; ``ApiError`` 400 else."""
    definition = BODIES.get(operation)
    if definition is None:
        return {}  # the gateway ignores a body the operation takes none of
    return _object(body, definition, "")


def checked_query(query: Mapping[str, str]) -> dict[str, Any]:
    """The query with typed parameters parsed, as the gateway parses them (strconv)."""
    result: dict[str, Any] = dict(query)
    for name, kind in QUERY_TYPES.items():
        if name not in query:
            continue
        text = query[name].strip()
        if kind == "boolean":
            if text.lower() not in _TRUE + _FALSE:
                raise _refused(name, "a boolean", query[name])
            result[name] = text.lower() in _TRUE
        else:
            result[name] = _integer(text, name, INT32)
    return result


def _value(value: Any, kind: str, where: str) -> Any:
    if kind.endswith("[]"):
        if not isinstance(value, list):
            raise _refused(where, "an array", value)
        return [_value(item, kind[:-2], f"{where}[{i}]") for i, item in enumerate(value)]
    if kind in DEFINITIONS:
        return _object(value, kind, where)
    if kind in ENUMS:
        if value not in ENUMS[kind]:
            raise _refused(where, f"one of {list(ENUMS[kind])}", value)
        return value
    if kind == "map":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise _refused(where, "an object of strings", value)
        return dict(value)
    if kind == "string":
        if not isinstance(value, str):
            raise _refused(where, "a string", value)
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _refused(where, "a boolean", value)
        return value
    if kind == "double":
        return _double(value, where)
    number = _integer(value, where, INT32 if kind == "int32" else INT64)
    return str(number) if kind == "int64" else number


def _object(value: Any, definition: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _refused(where or "the body", f"an object ({definition})", value)
    fields = DEFINITIONS[definition]
    return {
        name: _value(item, fields[name], f"{where}.{name}" if where else name)
        for name, item in value.items()
        if name in fields and item is not None
    }


def _integer(value: Any, where: str, bounds: tuple[int, int]) -> int:
    if isinstance(value, bool):
        raise _refused(where, "an integer", value)
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    if number is None or not bounds[0] <= number <= bounds[1]:
        raise _refused(where, "an integer", value)
    return number


def _double(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _refused(where, "a number", value)
    try:
        number = float(value)
    except ValueError:
        raise _refused(where, "a number", value) from None
    if not math.isfinite(number):
        raise _refused(where, "a finite number", value)
    return number


def _refused(where: str, expected: str, value: Any) -> ApiError:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return ApiError.invalid(f"invalid value for {where}: expected {expected}, got {shown}")

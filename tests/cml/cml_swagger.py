"""Checks HTTP exchanges against the CML API v2 Swagger 2.0 spec (vendored in specs/).

A request must hit a path template and method the spec has, use only its query parameters
(with values of their types) and send a body whose every field exists in the body schema with
the right type. A response body must hold only fields the spec's response definition knows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

SPEC_PATH = Path(__file__).resolve().parents[2] / "specs" / "cml-api-v2.swagger.json"


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    template: str
    spec: dict[str, Any]

    def params(self, where: str) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in self.spec.get("parameters", []) if p["in"] == where}


class Swagger:
    def __init__(self, path: Path = SPEC_PATH) -> None:
        self.doc = json.loads(path.read_text())
        self.operations: list[tuple[re.Pattern[str], Operation]] = []
        for template, item in self.doc["paths"].items():
            for method, spec in item.items():
                if method == "parameters":
                    continue
                op = Operation(spec["operationId"], method.upper(), template, spec)
                self.operations.append((_template_regex(template), op))
        # literal segments beat parameters, as a router would choose
        self.operations.sort(key=lambda pair: pair[1].template.count("{"))

    def operation(self, operation_id: str) -> Operation:
        return next(op for _, op in self.operations if op.operation_id == operation_id)

    def match(self, method: str, path: str) -> Operation | None:
        for regex, op in self.operations:
            if op.method == method and regex.fullmatch(path):
                return op
        return None

    # -- requests ------------------------------------------------------------------------

    def check_request(
        self, method: str, url: str, body: bytes
    ) -> tuple[Operation | None, list[str]]:
        parts = urlsplit(url)
        op = self.match(method, parts.path)
        if op is None:
            return None, [f"{method} {parts.path}: no such path and method in the spec"]
        errors: list[str] = []
        where = f"{op.operation_id} request"
        query = op.params("query")
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name not in query:
                errors.append(f"{where}: query parameter {name!r} is not in the spec")
                continue
            errors += _check_query_value(query[name], value, f"{where} ?{name}")
            if name == "search_filter":
                try:
                    if not isinstance(json.loads(value), dict):
                        errors.append(f"{where}: search_filter is not a JSON object")
                except ValueError:
                    errors.append(f"{where}: search_filter is not JSON: {value!r}")
        body_params = op.params("body")
        # swagger-codegen clients (cmlapi) send `{}` on a POST without a body; the gateway
        # takes it as none
        if body and not (not body_params and body.strip() == b"{}"):
            if not body_params:
                errors.append(f"{where}: sends a body but the spec takes none")
            else:
                schema = next(iter(body_params.values()))["schema"]
                errors += self.validate(json.loads(body), schema, f"{where} body")
        return op, errors

    def check_exchanges(self, exchanges: Iterable[Any]) -> list[str]:
        """Problems with recorded exchanges (``method``, ``url``, ``request_body``, ``status``,
        ``response_body``): requests and responses both."""
        problems = []
        for exchange in exchanges:
            op, errors = self.check_request(exchange.method, exchange.url, exchange.request_body)
            problems += errors
            if op is not None:
                problems += self.check_response(op, exchange.status, exchange.response_body)
        return problems

    # -- responses -----------------------------------------------------------------------

    def check_response(self, op: Operation, status: int, body: bytes) -> list[str]:
        responses = op.spec["responses"]
        answer = responses.get(str(status)) or responses.get("default")
        where = f"{op.operation_id} response {status}"
        if answer is None:
            return [f"{where}: the spec has no such response"]
        if "schema" not in answer:
            return []
        try:
            data = json.loads(body)
        except ValueError:
            return [f"{where}: body is not JSON: {body[:100]!r}"]
        return self.validate(data, answer["schema"], where)

    # -- schemas -------------------------------------------------------------------------

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.doc["definitions"][schema["$ref"].split("/")[-1]]
        return schema

    def validate(self, value: Any, schema: dict[str, Any], where: str) -> list[str]:
        name = schema["$ref"].split("/")[-1] if "$ref" in schema else ""
        schema = self.resolve(schema)
        kind = schema.get("type", "object" if "properties" in schema else None)
        label = f"{where} ({name})" if name else where
        if kind == "object":
            if not isinstance(value, dict):
                return [f"{label}: expected an object, got {type(value).__name__}"]
            props = schema.get("properties")
            if props is None:
                return []  # free-form object (e.g. environment)
            errors = []
            for key, item in value.items():
                if key not in props:
                    errors.append(f"{label}: field {key!r} is not in the spec")
                else:
                    errors += self.validate(item, props[key], f"{where}.{key}")
            return errors
        if kind == "array":
            if not isinstance(value, list):
                return [f"{label}: expected an array, got {type(value).__name__}"]
            errors = []
            for i, item in enumerate(value):
                errors += self.validate(item, schema["items"], f"{where}[{i}]")
            return errors
        return _check_scalar(value, schema, label)


def _template_regex(template: str) -> re.Pattern[str]:
    pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
    return re.compile(pattern)


def _check_scalar(value: Any, schema: dict[str, Any], where: str) -> list[str]:
    kind, fmt = schema.get("type"), schema.get("format")
    ok = True
    if kind == "string":
        ok = isinstance(value, str)
        if ok and fmt == "date-time":
            try:
                datetime.fromisoformat(value)
            except ValueError:
                return [f"{where}: {value!r} is not an ISO 8601 date-time"]
        if ok and fmt == "int64":
            ok = value.lstrip("-").isdigit()
        if ok and "enum" in schema and value not in schema["enum"]:
            return [f"{where}: {value!r} is not one of {schema['enum']}"]
    elif kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind == "boolean":
        ok = isinstance(value, bool)
    return [] if ok else [f"{where}: {value!r} is not a {kind}{f' ({fmt})' if fmt else ''}"]


def _check_query_value(param: dict[str, Any], value: str, where: str) -> list[str]:
    kind = param.get("type")
    if kind == "integer" and not value.lstrip("-").isdigit():
        return [f"{where}: {value!r} is not an integer"]
    if kind == "boolean" and value not in ("true", "false"):
        return [f"{where}: {value!r} is not a boolean"]
    return []

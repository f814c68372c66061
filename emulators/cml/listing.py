"""List semantics shared by every list call: search_filter, sort, page_size/page_token."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from emulators.cml.errors import ApiError

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000


def field(item: Mapping[str, Any], dotted: str) -> Any:
    value: Any = item
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _same(actual: Any, wanted: Any) -> bool:
    if isinstance(actual, bool):
        text = str(wanted).lower()
        return actual == (text in ("t", "true", "1")) and text in (
            "t",
            "f",
            "true",
            "false",
            "1",
            "0",
        )
    if actual is None:
        return wanted in (None, "")
    return str(actual) == str(wanted)


def parse_filter(raw: str | None, allowed: Mapping[str, str] | None) -> dict[str, Any]:
    """``{"name": "x"}`` -> {item field: wanted}; ``allowed`` maps filter keys to item fields
    (None: any field of the item)."""
    if not raw:
        return {}
    try:
        wanted = json.loads(raw)
    except ValueError:
        raise ApiError.invalid(f"search_filter is not valid JSON: {raw[:80]}") from None
    if not isinstance(wanted, dict):
        raise ApiError.invalid("search_filter must be a JSON object of field to value")
    result = {}
    for key, value in wanted.items():
        if allowed is not None and key not in allowed:
            raise ApiError.invalid(
                f"unsupported search filter key {key!r}; supported: {sorted(allowed)}"
            )
        result[allowed[key] if allowed is not None else key] = value
    return result


def apply(
    items: Sequence[Mapping[str, Any]],
    *,
    search_filter: str | None,
    sort: str | None,
    page_size: int | None,
    page_token: str | None,
    filter_keys: Mapping[str, str] | None = None,
    sort_keys: Sequence[str] | Mapping[str, str] | None = None,
) -> tuple[list[Mapping[str, Any]], str]:
    """One page of ``items`` after filtering and sorting, and the token of the next page."""
    wanted = parse_filter(search_filter, filter_keys)
    chosen = [i for i in items if all(_same(field(i, k), v) for k, v in wanted.items())]
    for key, descending in reversed(_parse_sort(sort, sort_keys)):
        chosen.sort(key=_sorter(key), reverse=descending)
    size = page_size if page_size and page_size > 0 else DEFAULT_PAGE_SIZE
    size = min(size, MAX_PAGE_SIZE)
    start = _offset(page_token)
    page = chosen[start : start + size]
    more = start + size < len(chosen)
    return page, _token(start + size) if more else ""


def _parse_sort(
    sort: str | None, allowed: Sequence[str] | Mapping[str, str] | None
) -> list[tuple[str, bool]]:
    """(item field, descending) for each key of ``sort``; ``allowed`` names the keys, or maps
    each key to the item field it sorts by."""
    keys = []
    for part in (sort or "").split(","):
        part = part.strip()
        if not part:
            continue
        descending = part.startswith("-")
        key = part.lstrip("+-")
        if allowed is not None and key not in allowed:
            raise ApiError.invalid(f"unsupported sort key {key!r}; supported: {sorted(allowed)}")
        if isinstance(allowed, Mapping):
            key = allowed[key]
        keys.append((key, descending))
    return keys


def _sorter(key: str) -> Callable[[Mapping[str, Any]], tuple[int, Any]]:
    return lambda item: _sort_key(field(item, key))


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, bool | int | float):
        return (1, value)
    return (2, str(value))


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, number = text.split(":")
        if prefix != "offset" or int(number) < 0:
            raise ValueError(text)
        return int(number)
    except ValueError:
        raise ApiError.invalid(f"invalid page_token {token[:40]!r}") from None

"""The CML (Cloudera AI) target: a typed API v2 client and its payloads."""

from __future__ import annotations

from core.targets.cml.client import CMLClient, Page, SearchFilter, iter_all
from core.targets.cml.errors import (
    CMLAPIError,
    CMLAuthError,
    CMLNotFound,
    CMLServerError,
    CMLUnreachable,
)

__all__ = [
    "CMLAPIError",
    "CMLAuthError",
    "CMLClient",
    "CMLNotFound",
    "CMLServerError",
    "CMLUnreachable",
    "Page",
    "SearchFilter",
    "iter_all",
]

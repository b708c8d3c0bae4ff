"""NDJSON lines: compact JSON, one value per line, UTF-8."""

from __future__ import annotations

import json
from typing import Any

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)

MEDIA_TYPE = "application/x-ndjson"


def dumps(value: Any) -> bytes:
    """``value`` as compact JSON bytes."""
    return _ENCODER.encode(value).encode()


def dumps_line(value: Any) -> bytes:
    """``value`` as one NDJSON line."""
    return _ENCODER.encode(value).encode() + b"\n"

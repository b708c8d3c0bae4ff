"""NDJSON lines: compact JSON, one value per line, UTF-8.

orjson writes them; values it refuses (integers past 64 bits, keys that are not
text) and non-finite floats, which orjson would silently write as ``null``, go
through the standard encoder, which refuses NaN and infinities loudly.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)

MEDIA_TYPE = "application/x-ndjson"


def dumps(value: Any) -> bytes:
    """``value`` as compact JSON bytes."""
    try:
        raw = orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return _ENCODER.encode(value).encode()
    if b"null" in raw and _has_non_finite(value):
        return _ENCODER.encode(value).encode()  # raises ValueError, as before
    return raw


def dumps_line(value: Any) -> bytes:
    """``value`` as one NDJSON line."""
    return dumps(value) + b"\n"


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_has_non_finite(item) for item in value)
    return False

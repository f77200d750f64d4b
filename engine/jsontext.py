"""Strict JSON decoding for text nobody vouches for (model output, upstream artifacts).

Python's `json` accepts `NaN` and `Infinity`, which RFC 8259 does not and which cannot be
stored back as JSON, and it recurses once per nesting level, so a small document of brackets
raises RecursionError deep inside whatever walks it next. Both are rejected here, up front,
with a reason a caller can report.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64


class JsonRejected(ValueError):
    """The text is not acceptable JSON; `reason` is `invalid`, `non_finite` or `too_deep`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _non_finite(token: str) -> Any:
    raise JsonRejected("non_finite")


def loads(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parses `text`, refusing non-finite numbers and nesting deeper than `max_depth`."""
    try:
        value = json.loads(text, parse_constant=_non_finite)
    except JsonRejected:
        raise
    except RecursionError:
        raise JsonRejected("too_deep") from None
    except ValueError:
        raise JsonRejected("invalid") from None
    if depth(value) > max_depth:
        raise JsonRejected("too_deep")
    return value


def depth(value: Any) -> int:
    """Nesting depth (a scalar is 0), computed without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level + 1)
        stack.extend((child, level + 1) for child in children)
    return deepest

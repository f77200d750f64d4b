"""Registry schemas validated with a linear-time regular expression engine (RE2).

`jsonschema` evaluates `pattern` and `patternProperties` with Python's backtracking `re`: a
registry schema holding `^(a+)+$` and a crafted answer can keep a step busy past its invocation
timeout. The three keywords that match patterns are replaced here by RE2 equivalents, whose
running time is linear in the input; a schema whose patterns RE2 cannot compile (backreferences,
lookaround) is refused when it is resolved, before any model call. `unevaluatedProperties`
matches `patternProperties` through jsonschema internals that cannot be re-routed, so a schema
using both is refused as well.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

import re2
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print the offending pattern to stderr
# Values under these keywords are data, not schemas: a "pattern" key there is no regex.
_DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})


class UnsupportedPattern(ValueError):
    """The schema holds a pattern RE2 cannot run (or a keyword mix it cannot bound)."""


@functools.lru_cache(maxsize=1024)
def compiled(pattern: str) -> Any:
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error:
        raise UnsupportedPattern("pattern not supported by the linear-time engine") from None


def check(json_schema: Any) -> None:
    """Raises UnsupportedPattern unless every pattern compiles with RE2 and no subschema mixes
    `unevaluatedProperties` with `patternProperties` anywhere in the schema."""
    uses_unevaluated = uses_pattern_properties = False
    for node in _schema_nodes(json_schema):
        if isinstance(node.get("pattern"), str):
            compiled(node["pattern"])
        pattern_properties = node.get("patternProperties")
        if isinstance(pattern_properties, Mapping):
            uses_pattern_properties = True
            for pattern in pattern_properties:
                compiled(str(pattern))
        uses_unevaluated = uses_unevaluated or "unevaluatedProperties" in node
    if uses_unevaluated and uses_pattern_properties:
        raise UnsupportedPattern("unevaluatedProperties together with patternProperties")


def _schema_nodes(value: Any) -> Iterator[Mapping[str, Any]]:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            yield node
            stack.extend(v for k, v in node.items() if k not in _DATA_KEYWORDS)
        elif isinstance(node, list):
            stack.extend(node)


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and compiled(pattern).search(instance) is None:
        yield ValidationError("does not match the schema pattern")


def _pattern_properties(
    validator: Any, pattern_properties: Mapping[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        regex = compiled(pattern)
        for key, value in instance.items():
            if regex.search(key) is not None:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    declared = schema.get("properties", {})
    patterns = [compiled(p) for p in schema.get("patternProperties", {})]
    extras = [
        key
        for key in instance
        if key not in declared and not any(r.search(key) is not None for r in patterns)
    ]
    if validator.is_type(additional, "object"):
        for key in extras:
            yield from validator.descend(instance[key], additional, path=key)
    elif additional is False and extras:
        yield ValidationError("additional properties are not allowed")  # keys not named


LinearValidator: Any = validators.extend(
    Draft202012Validator,
    {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
    },
)

"""The rules test client's own pieces, without the emulator: token format and value encoding.

A wrong token or a wrongly typed value would make the matrix test something other than what
§13 describes (e.g. every user anonymous, or `priority: 5` sent as a double), so they are pinned
here where a failure is cheap to read.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tests.backtest.rules_client import (
    ANONYMOUS,
    OWNER,
    auth_headers,
    to_fields,
    to_value,
    unsigned_jwt,
)


def _segment(text: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def test_unsigned_jwt_has_none_header_firebase_claims_and_empty_signature() -> None:
    token = unsigned_jwt("user_alice", "demo-backtest", issued_at=1_700_000_000)

    header, payload, signature = token.split(".")
    assert signature == ""
    assert "=" not in header + payload  # base64url without padding
    assert _segment(header) == {"alg": "none", "typ": "JWT"}
    assert _segment(payload) == {
        "iss": "https://securetoken.google.com/demo-backtest",
        "aud": "demo-backtest",
        "sub": "user_alice",
        "user_id": "user_alice",
        "iat": 1_700_000_000,
        "exp": 1_700_003_600,
        "auth_time": 1_700_000_000,
        "firebase": {"sign_in_provider": "custom", "identities": {}},
    }


def test_actors_map_to_owner_token_no_header_or_user_jwt() -> None:
    users = {"alice": "user_alice"}
    assert auth_headers(OWNER, users, "p") == {"Authorization": "Bearer owner"}
    assert auth_headers(ANONYMOUS, users, "p") == {}
    bearer = auth_headers("alice", users, "p")["Authorization"]
    assert bearer.startswith("Bearer ")
    assert _segment(bearer.removeprefix("Bearer ").split(".")[1])["sub"] == "user_alice"
    with pytest.raises(ValueError, match="unknown actor"):
        auth_headers("mallory", users, "p")


def test_values_keep_their_json_kind() -> None:
    doc = json.loads(
        '{"n": 5, "x": 5.0, "b": true, "z": null, "s": "2025-01-15T10:00:00Z",'
        ' "l": [1, "a"], "m": {"k": [], "e": {}}}'
    )
    assert to_fields(doc) == {
        "n": {"integerValue": "5"},
        "x": {"doubleValue": 5.0},
        "b": {"booleanValue": True},
        "z": {"nullValue": None},
        "s": {"stringValue": "2025-01-15T10:00:00Z"},  # RFC 3339 text stays a string
        "l": {"arrayValue": {"values": [{"integerValue": "1"}, {"stringValue": "a"}]}},
        "m": {
            "mapValue": {
                "fields": {
                    "k": {"arrayValue": {"values": []}},
                    "e": {"mapValue": {"fields": {}}},
                }
            }
        },
    }


def test_special_values() -> None:
    assert to_value(float("nan")) == {"doubleValue": "NaN"}
    assert to_value(float("-inf")) == {"doubleValue": "-Infinity"}
    plus_two = timezone(timedelta(hours=2))
    assert to_value(datetime(2025, 1, 15, 12, 0, 1, tzinfo=plus_two)) == {
        "timestampValue": "2025-01-15T10:00:01Z"
    }
    with pytest.raises(ValueError, match="int64"):
        to_value(2**63)
    with pytest.raises(ValueError, match="timezone"):
        to_value(datetime(2025, 1, 15, tzinfo=None))
    with pytest.raises(TypeError):
        to_value({1, 2})
    assert to_value(datetime(2025, 1, 15, tzinfo=UTC))["timestampValue"] == "2025-01-15T00:00:00Z"

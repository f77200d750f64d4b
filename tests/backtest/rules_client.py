"""A small REST client for judging `firestore.rules` on the Firestore emulator.

The Python admin SDK always talks to the emulator as `Bearer owner`, which bypasses rules, so it
cannot observe a rules verdict. This module speaks the emulator's REST API directly, acting as a
given user with the unsigned JWTs the emulator accepts (BACKTEST.md §13), as the admin, or with
no credentials. It also models `contracts/backtest/rules_test_matrix.json` (format in
`contracts/backtest/README.md`, section "Rules matrix") and knows how to perform one case.

Every request returns a `Reply` (status and body) instead of raising: a 403 is a verdict the
tests assert on, not an error.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast, get_args
from urllib.parse import quote

import requests

OWNER = "owner"
"""Actor name for the emulator's admin token (`Bearer owner`): rules are bypassed."""

ANONYMOUS = "anonymous"
"""Actor name for a request without an Authorization header."""

Op = Literal["create", "get", "update", "delete", "list"]
Expect = Literal["allow", "deny"]

# The emulator answers an allowed request with 200 and a refused one with 403 PERMISSION_DENIED.
EXPECTED_STATUS: Mapping[Expect, int] = {"allow": 200, "deny": 403}

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


# --------------------------------------------------------------------------------------
# Credentials
# --------------------------------------------------------------------------------------


def _b64url(raw: bytes) -> str:
    """Base64url without padding, as JWTs encode their segments (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _compact_json(value: Mapping[str, object]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")


def unsigned_jwt(uid: str, project: str, *, issued_at: int | None = None) -> str:
    """An unsigned Firebase ID token for `uid` that the emulator evaluates as that user.

    The emulator does not verify signatures but does read the Firebase claims, so the payload
    carries everything §13 lists: issuer and audience of `project`, `sub`/`user_id` = uid,
    times, and a `firebase` claim. `issued_at` is a parameter only so a test can pin the token;
    by default the token is valid from now for an hour.
    """
    now = int(time.time()) if issued_at is None else issued_at
    header = {"alg": "none", "typ": "JWT"}
    payload = {
        "iss": f"https://securetoken.google.com/{project}",
        "aud": project,
        "sub": uid,
        "user_id": uid,
        "iat": now,
        "exp": now + 3600,
        "auth_time": now,
        "firebase": {"sign_in_provider": "custom", "identities": {}},
    }
    # The trailing dot is the empty signature segment of an `alg: none` token.
    return f"{_b64url(_compact_json(header))}.{_b64url(_compact_json(payload))}."


def auth_headers(actor: str, users: Mapping[str, str], project: str) -> dict[str, str]:
    """HTTP headers that make a request come from `actor`.

    `owner` is the emulator's admin, `anonymous` sends no credentials, and any other actor must
    be a key of `users` (actor name -> Firebase uid); an unknown actor is a matrix error, so it
    raises instead of silently testing the anonymous path.
    """
    if actor == OWNER:
        return {"Authorization": "Bearer owner"}
    if actor == ANONYMOUS:
        return {}
    try:
        uid = users[actor]
    except KeyError:
        raise ValueError(f"unknown actor {actor!r}; known users: {sorted(users)}") from None
    return {"Authorization": f"Bearer {unsigned_jwt(uid, project)}"}


# --------------------------------------------------------------------------------------
# Plain JSON -> Firestore REST Value
# --------------------------------------------------------------------------------------


def to_value(value: object) -> dict[str, Any]:
    """Encode a plain JSON value (plus `datetime`) as a Firestore REST `Value`.

    Numbers keep their JSON kind, as the contracts require: `5` is an `integerValue` (int64,
    sent as a decimal string) and `5.0` a `doubleValue`. Strings always stay strings, including
    RFC 3339 ones: the matrix format does not mark any string as a timestamp, and guessing from
    the text would also turn legitimate strings into timestamps. A caller that wants a
    `timestampValue` passes a timezone-aware `datetime`.
    """
    if value is None:
        return {"nullValue": None}
    # bool before int: True is an int in Python but a booleanValue in Firestore.
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"integer {value} does not fit Firestore's int64")
        return {"integerValue": str(value)}
    if isinstance(value, float):
        if math.isnan(value):
            return {"doubleValue": "NaN"}
        if math.isinf(value):
            return {"doubleValue": "Infinity" if value > 0 else "-Infinity"}
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return {"timestampValue": value.astimezone(UTC).isoformat().replace("+00:00", "Z")}
    if isinstance(value, Mapping):
        return {"mapValue": {"fields": to_fields(cast(Mapping[str, object], value))}}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [to_value(item) for item in value]}}
    raise TypeError(f"cannot encode {type(value).__name__} as a Firestore value")


def to_fields(data: Mapping[str, object]) -> dict[str, dict[str, Any]]:
    """Encode a document's top-level map as the REST `fields` object."""
    return {str(key): to_value(item) for key, item in data.items()}


# --------------------------------------------------------------------------------------
# REST client
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What the emulator answered: the status decides the verdict, the body explains it."""

    status: int
    body: str


@dataclass(frozen=True)
class EqualityFilter:
    """A `where field == value` filter, the only query shape the matrix uses."""

    field: str
    equals: str


class EmulatorRestClient:
    """Document and rules endpoints of one project on a running Firestore emulator."""

    def __init__(
        self, base_url: str, project: str, *, session: requests.Session, timeout: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.project = project
        self._http = session
        self._timeout = timeout

    @property
    def documents_url(self) -> str:
        return f"{self.base_url}/v1/projects/{self.project}/databases/(default)/documents"

    @property
    def _rules_url(self) -> str:
        return f"{self.base_url}/emulator/v1/projects/{self.project}:securityRules"

    def _doc_url(self, path: str) -> str:
        return f"{self.documents_url}/{quote(path.strip('/'), safe='/')}"

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        params: Sequence[tuple[str, str]] = (),
        body: Mapping[str, Any] | None = None,
    ) -> Reply:
        resp = self._http.request(
            method,
            url,
            headers=dict(headers),
            params=list(params),
            json=body,
            timeout=self._timeout,
        )
        return Reply(status=int(resp.status_code), body=str(resp.text))

    # ---- rules (emulator admin endpoints, no credentials needed) ------------------------

    def current_ruleset(self) -> dict[str, Any]:
        """The ruleset the emulator applies to this project now, to put it back later."""
        resp = self._http.get(self._rules_url, timeout=self._timeout)
        resp.raise_for_status()
        ruleset = resp.json()
        if not isinstance(ruleset, dict) or "rules" not in ruleset:
            raise RuntimeError(f"unexpected ruleset answer: {resp.text[:500]}")
        return cast(dict[str, Any], ruleset)

    def put_ruleset(self, ruleset: Mapping[str, Any]) -> None:
        """Replace this project's ruleset; a ruleset that does not compile raises (HTTP 400)."""
        resp = self._http.put(self._rules_url, json=dict(ruleset), timeout=self._timeout)
        if resp.status_code != 200:
            raise RuntimeError(f"loading rules failed ({resp.status_code}): {resp.text[:2000]}")

    def load_rules(self, text: str, name: str = "firestore.rules") -> None:
        """Load a rules source, as §13 describes, replacing whatever the project had."""
        self.put_ruleset({"rules": {"files": [{"name": name, "content": text}]}})

    def delete_all_documents(self) -> None:
        """Empty this project's default database (the emulator's admin endpoint)."""
        url = f"{self.base_url}/emulator/v1/projects/{self.project}/databases/(default)/documents"
        resp = self._http.delete(url, timeout=self._timeout)
        resp.raise_for_status()

    # ---- documents -----------------------------------------------------------------------

    def create(
        self, headers: Mapping[str, str], collection: str, doc_id: str, data: Mapping[str, object]
    ) -> Reply:
        """`POST .../<collection>?documentId=<id>`: a create that fails if the id is taken."""
        return self._send(
            "POST",
            self._doc_url(collection),
            headers,
            params=[("documentId", doc_id)],
            body={"fields": to_fields(data)},
        )

    def get(self, headers: Mapping[str, str], path: str) -> Reply:
        return self._send("GET", self._doc_url(path), headers)

    def update(
        self,
        headers: Mapping[str, str],
        path: str,
        data: Mapping[str, object],
        field_paths: Sequence[str],
    ) -> Reply:
        """`PATCH` with `updateMask.fieldPaths`, required to hit an existing document.

        Without `currentDocument.exists=true` a PATCH on a missing document would be an upsert,
        which the rules judge as a *create*; the precondition keeps an "update" case an update
        (a missing document answers 404, which no expectation accepts).
        """
        params = [("updateMask.fieldPaths", field) for field in field_paths]
        params.append(("currentDocument.exists", "true"))
        return self._send(
            "PATCH", self._doc_url(path), headers, params=params, body={"fields": to_fields(data)}
        )

    def delete(self, headers: Mapping[str, str], path: str) -> Reply:
        """`DELETE`, required to hit an existing document.

        Deleting a missing document is otherwise a silent 200, which would hide a case that
        lost its target.
        """
        return self._send(
            "DELETE", self._doc_url(path), headers, params=[("currentDocument.exists", "true")]
        )

    def list(
        self, headers: Mapping[str, str], collection: str, where: EqualityFilter | None
    ) -> Reply:
        """`POST .../documents:runQuery` over a top-level collection, optionally filtered.

        The rules judge the query itself, not the documents it would return: a filter on the
        caller's own uid is what lets an owner-only `list` rule pass.
        """
        query: dict[str, object] = {"from": [{"collectionId": collection}]}
        if where is not None:
            query["where"] = {
                "fieldFilter": {
                    "field": {"fieldPath": where.field},
                    "op": "EQUAL",
                    "value": to_value(where.equals),
                }
            }
        return self._send(
            "POST", f"{self.documents_url}:runQuery", headers, body={"structuredQuery": query}
        )


# --------------------------------------------------------------------------------------
# The rules matrix (contracts/backtest/rules_test_matrix.json)
# --------------------------------------------------------------------------------------


def _split_doc_path(path: str) -> tuple[str, str]:
    """`backtestJobs/r01` -> (`backtestJobs`, `r01`)."""
    collection, sep, doc_id = path.strip("/").rpartition("/")
    if not sep or not collection or not doc_id:
        raise ValueError(f"not a document path: {path!r}")
    return collection, doc_id


@dataclass(frozen=True)
class SeedDocument:
    path: str
    data: Mapping[str, object]


@dataclass(frozen=True)
class MatrixCase:
    """One row of the matrix; `path` is a document path, or a collection id for `list`."""

    id: str
    description: str
    actor: str
    op: Op
    path: str
    expect: Expect
    data: Mapping[str, object] | None = None
    update_mask: tuple[str, ...] = ()
    query: EqualityFilter | None = None

    @property
    def expected_status(self) -> int:
        return EXPECTED_STATUS[self.expect]

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> MatrixCase:
        op = raw["op"]
        expect = raw["expect"]
        if op not in get_args(Op) or expect not in get_args(Expect):
            raise ValueError(f"case {raw.get('id')}: unknown op {op!r} or expect {expect!r}")
        query = raw.get("query")
        return cls(
            id=str(raw["id"]),
            description=str(raw["description"]),
            actor=str(raw["actor"]),
            op=op,
            path=str(raw["path"]),
            expect=expect,
            data=raw.get("data"),
            update_mask=tuple(raw.get("updateMask") or ()),
            query=None if query is None else EqualityFilter(str(query["field"]), query["equals"]),
        )


@dataclass(frozen=True)
class RulesMatrix:
    """The parsed matrix. Parse a document that already passed its JSON Schema."""

    project: str
    users: Mapping[str, str]
    seed: tuple[SeedDocument, ...]
    cases: tuple[MatrixCase, ...]

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RulesMatrix:
        cases = tuple(MatrixCase.from_json(case) for case in raw["cases"])
        ids = [case.id for case in cases]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate case ids in the matrix: {ids}")
        return cls(
            project=str(raw["project"]),
            users={str(name): str(uid) for name, uid in raw["users"].items()},
            seed=tuple(SeedDocument(str(doc["path"]), doc["data"]) for doc in raw["seed"]),
            cases=cases,
        )

    def index_of(self, case_id: str) -> int:
        for index, case in enumerate(self.cases):
            if case.id == case_id:
                return index
        raise KeyError(case_id)


def write_seed(client: EmulatorRestClient, matrix: RulesMatrix) -> None:
    """Create every seed document as the admin; a seed that does not land is a harness error."""
    owner = auth_headers(OWNER, matrix.users, matrix.project)
    for doc in matrix.seed:
        collection, doc_id = _split_doc_path(doc.path)
        reply = client.create(owner, collection, doc_id, doc.data)
        if reply.status != 200:
            raise RuntimeError(f"seeding {doc.path} failed ({reply.status}): {reply.body[:1000]}")


def perform(client: EmulatorRestClient, matrix: RulesMatrix, case: MatrixCase) -> Reply:
    """Send the request `case` describes, as its actor, and return the emulator's answer."""
    headers = auth_headers(case.actor, matrix.users, matrix.project)
    if case.op == "list":
        return client.list(headers, case.path, case.query)
    if case.op == "get":
        return client.get(headers, case.path)
    if case.op == "delete":
        return client.delete(headers, case.path)
    if case.data is None:
        raise ValueError(f"{case.id}: {case.op} needs data")
    if case.op == "update":
        if not case.update_mask:
            raise ValueError(f"{case.id}: update needs an updateMask")
        return client.update(headers, case.path, case.data, case.update_mask)
    collection, doc_id = _split_doc_path(case.path)
    return client.create(headers, collection, doc_id, case.data)

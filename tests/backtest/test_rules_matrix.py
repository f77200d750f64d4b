"""`firestore.rules` judged by the emulator against `contracts/backtest/rules_test_matrix.json`.

Where it runs: the session Firestore emulator, in the project the matrix names (`demo-backtest`),
not the session project other modules use. The emulator keeps rules and documents per project,
so loading restrictive rules and wiping documents here can never affect another module, and no
other module's documents can leak into a verdict. The module fixture still records that
project's ruleset first and, at module end, puts it back and empties the project.

State model: the matrix defines the state each case sees as "the seed, then every earlier case,
in order" (several cases write: R01, R02, R29, R30). A `MatrixPass` reproduces exactly that
however pytest selects or orders the tests: it executes cases lazily, in matrix order, each once,
on a freshly loaded-and-seeded project, and remembers every reply. Asking for case k runs the
cases up to k that have not run yet, so `-k R30` alone still sees R01..R29 applied first. When
another pass (the permissive or admin test) has taken over the project in between, the next
case that still has to run starts again from the seed and replays its predecessors. Re-seeding
before each case instead would be simpler, and no verdict of today's matrix would change, but
it would quietly drop the matrix's ordering semantics (e.g. R16's list would no longer see the
jobs R01 and R02 created) for any future case that depends on them.

Besides the 30 contract cases the module proves the harness sees real verdicts (a permissive
ruleset must flip every deny case), that `Bearer owner` bypasses the rules, and pins the §13
conditions the matrix leaves open (`EXTRA_CASES`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace

import pytest
import requests
from jsonschema import Draft202012Validator

from devstack import REPO_ROOT
from devstack.services import FirestoreEmulator
from tests import contracts
from tests.backtest.rules_client import (
    OWNER,
    EmulatorRestClient,
    EqualityFilter,
    Expect,
    MatrixCase,
    Reply,
    RulesMatrix,
    auth_headers,
    perform,
    write_seed,
)

MATRIX_PATH = "backtest/rules_test_matrix.json"
MATRIX = RulesMatrix.from_json(contracts.load(MATRIX_PATH))
SHIPPED_RULES = (REPO_ROOT / "firestore.rules").read_text(encoding="utf-8")

# Deliberately wrong rules: anyone may do anything to both collections. Under them every request
# of the matrix succeeds, so each case the shipped rules must refuse has to flip to 200.
PERMISSIVE_RULES = """rules_version = '2';
service cloud.firestore {
  match /databases/{database}/documents {
    match /backtestJobs/{jobId} {
      allow read, write: if true;
    }
    match /backtestResults/{jobId} {
      allow read, write: if true;
    }
  }
}
"""

# Every "deny" case of the matrix: each one is refused only by the rules (none by a missing
# document or a malformed request), so each must flip to 200 when the rules let everything pass.
EXPECTED_FLIPS_UNDER_PERMISSIVE_RULES = (
    "R03",  # create for another uid
    "R04",  # unauthenticated create
    "R05",  # status running
    "R06",  # legacy CloudBacktestStatus.queued
    "R07",  # startedAt set
    "R08",  # errorCode set
    "R09",  # jobId != document id
    "R10",  # unknown field
    "R11",  # no configUsed
    "R12",  # 5001 prices
    "R14",  # get another user's job
    "R15",  # unauthenticated get
    "R17",  # unfiltered list
    "R18",  # list filtered on another uid
    "R19",  # update own status
    "R20",  # update own configUsed
    "R21",  # re-queue another user's job
    "R22",  # delete own job
    "R24",  # get another user's result
    "R26",  # client creates a result
    "R27",  # client updates a result
    "R28",  # client deletes a result
)


def _case(case_id: str) -> MatrixCase:
    return MATRIX.cases[MATRIX.index_of(case_id)]


# --------------------------------------------------------------------------------------
# §13 conditions the contract matrix does not pin
# --------------------------------------------------------------------------------------

_ABSENT = object()


def _job_like_r01(job_id: str, changes: Mapping[str, object]) -> dict[str, object]:
    """R01's valid submission under id `job_id`, with `changes` applied.

    Keys are field names or `configUsed.<name>`; the value `_ABSENT` removes the field.
    """
    base = _case("R01").data
    assert base is not None
    data: dict[str, object] = copy.deepcopy(dict(base))
    data["jobId"] = job_id
    for key, value in changes.items():
        target = data
        name = key
        if key.startswith("configUsed."):
            config = data["configUsed"]
            assert isinstance(config, dict)
            target, name = config, key.removeprefix("configUsed.")
        if value is _ABSENT:
            del target[name]
        else:
            target[name] = value
    return data


def _extra_create(case_id: str, expect: Expect, why: str, **changes: object) -> MatrixCase:
    changes = {key.replace("__", "."): value for key, value in changes.items()}
    return MatrixCase(
        id=case_id,
        description=why,
        actor="alice",
        op="create",
        path=f"backtestJobs/{case_id}",
        expect=expect,
        data=_job_like_r01(case_id, changes),
    )


# The matrix leaves several §13 conditions unexercised (removing them from the rules keeps all
# 30 cases green): three of the five worker fields, the required-key list on its own, the types
# of engineVersion, priority, configUsed and pricePath, the allowed "absent or null" forms, the
# 5000-price boundary itself, and the default deny outside the two collections. These cases pin
# them, each in the seeded state and independently of the others. `configUsed__x` is
# `configUsed.x`.
EXTRA_CASES = (
    _extra_create("x-lease", "deny", "leaseExpiresAt set", leaseExpiresAt="2025-01-15T10:15:00Z"),
    _extra_create("x-completed", "deny", "completedAt set", completedAt="2025-01-15T10:00:06Z"),
    _extra_create("x-errmsg", "deny", "errorMessage set", errorMessage="boom"),
    _extra_create("x-no-submitted", "deny", "submittedAt missing", submittedAt=_ABSENT),
    _extra_create("x-no-engine", "deny", "engineVersion missing", engineVersion=_ABSENT),
    _extra_create("x-engine-int", "deny", "engineVersion not a string", engineVersion=1),
    _extra_create("x-no-userid", "deny", "userId missing", userId=_ABSENT),
    _extra_create("x-prio-int", "allow", "priority an integer", priority=3),
    _extra_create("x-prio-absent", "allow", "priority absent", priority=_ABSENT),
    _extra_create("x-prio-str", "deny", "priority a string", priority="high"),
    _extra_create("x-prio-double", "deny", "priority a double", priority=1.5),
    _extra_create("x-config-str", "deny", "configUsed not a map", configUsed="wheel"),
    _extra_create(
        "x-no-path", "allow", "configUsed without pricePath", configUsed__pricePath=_ABSENT
    ),
    _extra_create("x-null-path", "allow", "pricePath null", configUsed__pricePath=None),
    _extra_create("x-5000", "allow", "exactly 5000 prices", configUsed__pricePath=[100.0] * 5000),
    _extra_create("x-path-str", "deny", "pricePath not a list", configUsed__pricePath="100,101"),
    MatrixCase(
        id="x-anon-result",
        description="unauthenticated read of a result",
        actor="anonymous",
        op="get",
        path="backtestResults/seed-alice",
        expect="deny",
    ),
    MatrixCase(
        id="x-list-results-all",
        description="list results without a uid filter",
        actor="alice",
        op="list",
        path="backtestResults",
        expect="deny",
    ),
    MatrixCase(
        id="x-list-results-bob",
        description="list results filtered on another uid",
        actor="alice",
        op="list",
        path="backtestResults",
        expect="deny",
        query=EqualityFilter("userId", "user_bob"),
    ),
    MatrixCase(
        id="x-other-collection",
        description="a collection the rules do not match is closed",
        actor="alice",
        op="create",
        path="profiles/user_alice",
        expect="deny",
        data={"userId": "user_alice"},
    ),
)


# --------------------------------------------------------------------------------------
# Running the matrix on the emulator
# --------------------------------------------------------------------------------------


@dataclass
class Stage:
    """The matrix project on the emulator, and which pass its rules and documents belong to."""

    client: EmulatorRestClient
    holder: MatrixPass | None = None


@dataclass
class MatrixPass:
    """The matrix executed once, in order, under one rules text (see the module docstring)."""

    stage: Stage
    rules: str
    replies: dict[str, Reply] = field(default_factory=dict)
    # Index of the next case to execute in the project's current state.
    _next: int = field(default=0, init=False)

    def restart(self) -> None:
        """Load our rules on an empty project and write the seed: the state before R01."""
        client = self.stage.client
        client.load_rules(self.rules)
        client.delete_all_documents()
        write_seed(client, MATRIX)
        self.stage.holder = self
        self._next = 0

    def settle_after(self, case_id: str) -> None:
        """Bring the project to the state right after `case_id` (and everything before it)."""
        target = MATRIX.index_of(case_id)
        if self.stage.holder is not self or self._next > target + 1:
            self.restart()
        while self._next <= target:
            case = MATRIX.cases[self._next]
            self.replies[case.id] = perform(self.stage.client, MATRIX, case)
            self._next += 1

    def reply(self, case_id: str) -> Reply:
        """The emulator's answer to `case_id`, given in the state the matrix defines for it."""
        if case_id not in self.replies:
            self.settle_after(case_id)
        return self.replies[case_id]

    def run_all(self) -> dict[str, Reply]:
        """Execute the whole matrix from the seed and return every reply by case id."""
        self.restart()
        self.settle_after(MATRIX.cases[-1].id)
        return dict(self.replies)


@pytest.fixture(scope="module")
def stage(firestore_emulator: FirestoreEmulator) -> Iterator[Stage]:
    """The matrix project on the session emulator, restored when the module ends.

    Restoring means the project's previous ruleset (the emulator's open default on a fresh
    emulator) and no documents, so nothing this module loaded or wrote outlives it.
    """
    with requests.Session() as session:
        client = EmulatorRestClient(firestore_emulator.base_url, MATRIX.project, session=session)
        original_ruleset = client.current_ruleset()
        try:
            yield Stage(client)
        finally:
            client.put_ruleset(original_ruleset)
            client.delete_all_documents()


@pytest.fixture(scope="module")
def shipped(stage: Stage) -> MatrixPass:
    """The matrix under the repository's `firestore.rules`."""
    return MatrixPass(stage, SHIPPED_RULES)


def _explain(case: MatrixCase, reply: Reply) -> str:
    return (
        f"{case.id} ({case.description}): {case.actor} {case.op} {case.path} expected "
        f"{case.expect} (HTTP {case.expected_status}), got HTTP {reply.status}: {reply.body[:600]}"
    )


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------


def test_matrix_conforms_to_its_schema() -> None:
    """The harness reads the matrix as its schema describes; a drifted file fails here first."""
    schema = contracts.load("backtest/rules_test_matrix.schema.json")
    errors = sorted(
        Draft202012Validator(schema).iter_errors(contracts.load(MATRIX_PATH)),
        key=lambda err: list(err.absolute_path),
    )
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


@pytest.mark.parametrize("case", MATRIX.cases, ids=[case.id for case in MATRIX.cases])
def test_case(shipped: MatrixPass, case: MatrixCase) -> None:
    """One matrix case: the shipped rules give the verdict the matrix expects."""
    reply = shipped.reply(case.id)
    assert reply.status == case.expected_status, _explain(case, reply)


@pytest.mark.parametrize("case", EXTRA_CASES, ids=[case.id for case in EXTRA_CASES])
def test_condition_beyond_matrix(stage: Stage, case: MatrixCase) -> None:
    """A §13 condition the matrix leaves open, tried on the freshly seeded project."""
    MatrixPass(stage, SHIPPED_RULES).restart()
    reply = perform(stage.client, MATRIX, case)
    assert reply.status == case.expected_status, _explain(case, reply)


def test_permissive_rules_flip_the_deny_cases(stage: Stage) -> None:
    """The harness observes real verdicts: with allow-everything rules the deny cases pass.

    If requests were malformed, sent as the admin, or aimed at missing documents, the deny cases
    would keep failing for reasons other than the rules and this test would catch it.
    """
    replies = MatrixPass(stage, PERMISSIVE_RULES).run_all()

    not_allowed = {cid: r.status for cid, r in replies.items() if r.status != 200}
    assert not not_allowed, f"permissive rules still refused: {not_allowed}"
    flipped = tuple(
        case.id for case in MATRIX.cases if replies[case.id].status != case.expected_status
    )
    assert flipped == EXPECTED_FLIPS_UNDER_PERMISSIVE_RULES


def test_owner_token_bypasses_rules(stage: Stage) -> None:
    """The worker's admin path: `Bearer owner` writes what the rules refuse any client.

    R29/R30 are replayed as alice in the state right before them (refused), then run as the
    matrix says (as owner, allowed), and the written documents are read back as the admin.
    """
    run = MatrixPass(stage, SHIPPED_RULES)
    run.settle_after("R28")
    client = stage.client
    for case_id in ("R29", "R30"):
        as_alice = replace(_case(case_id), actor="alice", expect="deny")
        reply = perform(client, MATRIX, as_alice)
        assert reply.status == 403, _explain(as_alice, reply)

    run.settle_after("R30")
    for case_id in ("R29", "R30"):
        assert run.replies[case_id].status == 200, _explain(_case(case_id), run.replies[case_id])

    owner = auth_headers(OWNER, MATRIX.users, MATRIX.project)
    result = client.get(owner, "backtestResults/r29")
    assert result.status == 200, result.body
    job = client.get(owner, "backtestJobs/seed-bob")
    assert job.status == 200, job.body
    assert json.loads(job.body)["fields"]["status"] == {"stringValue": "running"}

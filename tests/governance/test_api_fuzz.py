"""Schemathesis drives every operation of the published schema against a live server, as an administrator with a
bearer token, over the world of tests/governance/api_world.py: no answer may be a server error, and every answer
must be one the operation declares, in its declared content type and shape.

The number of examples per operation is bounded so that the whole run fits CI's time (README, "API schema and
fuzzer"); the generation is derandomized, so a run repeats the last one's requests. Deselect with -m "not fuzz"."""

import time
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from governance.access.services import api_token_create
from tests.governance.api_world import build_api_world

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db(transaction=True)]

# Generated requests per operation, valid and invalid: the administrator may do nearly everything, so its requests
# reach the services; the auditor's writes are refused, so a few show that the refusals are as declared.
EXAMPLES = {"admin_user": 100, "auditor": 5}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(params=list(EXAMPLES))
def fuzz_schema(request, migration_data, live_server, admin_user):
    world = build_api_world(admin_user)
    persona = request.getfixturevalue(request.param)
    secret = api_token_create(actor=persona, owner=persona, name="fuzz").secret
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/?format=json")
    # A connection per request: kept alive, each answer of the test server waited 40 ms on a delayed ACK (Nagle).
    schema.config.update(base_url=live_server.url,
                         headers={"Authorization": f"Bearer {secret}", "Connection": "close"})
    return request.param, schema, _real_records(world)


def _real_records(world) -> dict[str, dict]:
    """By collection, the path parameters of a real record, so that writes and reads also get past the lookup."""
    by_id = {"teams": "team", "environments": "dev", "cis": "service", "freezes": "freeze",
             "maintenance-windows": "window", "lockdowns": "lockdown", "calendar-feeds": "feed",
             "standard-templates": "template", "deployment-plans": "plan"}
    return {**{collection: {"id": world[name].pk} for collection, name in by_id.items()},
            "changes": {"number": world["approved"].number}, "artifacts": {"digest": world["artifact"].digest},
            "rollouts": {"number": world["deployment"].number}}


def _cases(operation, real: dict | None):
    """Valid and invalid requests; where the path names a record, a real one as often as a made-up one."""
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    made_up = [operation.as_strategy(generation_mode=mode) for mode in modes]
    if real is None:
        return st.one_of(made_up)
    return st.one_of(*made_up, *(operation.as_strategy(generation_mode=mode, path_parameters=real) for mode in modes))


def _fuzz(operation, strategy, examples: int, sent: Counter) -> None:
    @settings(max_examples=examples, derandomize=True, deadline=None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(strategy)
    def exercise(case):
        sent[operation.label] += 1
        case.call_and_validate(checks=CHECKS)

    exercise()


def test_every_operation_answers_as_declared_and_never_with_a_server_error(fuzz_schema, capsys):
    persona, schema, real = fuzz_schema
    sent: Counter = Counter()
    failures = []
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        collection = operation.path.split("/")[3]  # /api/v1/<collection>/...
        known = real.get(collection) if "{" in operation.path else None
        try:
            _fuzz(operation, _cases(operation, known), EXAMPLES[persona], sent)
        except (FailureGroup, Exception) as failure:  # the operation's first failing request, with its curl
            failures.append(f"{operation.label}:\n{failure}")
    with capsys.disabled():
        print(f"\nfuzz as {persona}: {len(sent)} operations, {sum(sent.values())} requests, "
              f"{len(failures)} failing operations, {time.monotonic() - started:.0f} s")
    assert not failures, "\n\n".join(failures)

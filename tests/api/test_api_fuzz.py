"""Schemathesis over every operation of both services' served OpenAPI documents, against real
apps on loopback (a manager over three storage nodes, so routes do real work): no 5xx (but
the 502/503/504 an operation documents as answers about the cluster's state), every answer's
status, content type and body as the document says, and no ERROR or traceback in the services'
logs.

A few examples per operation in the normal suite (the same ones every run); ``make fuzz`` sets
COFRE_FUZZ_EXAMPLES to search far more, at random.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, CheckContext, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cofre.protocol.framing import CONTENT_TYPE as FRAMED

from .conftest import AUTH, LoopThread, Services, Troubles, cluster

# The framed batch format is bytes to the fuzzer (the contract test sends real frames).
schemathesis.serializer.alias(FRAMED, "application/octet-stream")

_EXAMPLES_ENV = os.environ.get("COFRE_FUZZ_EXAMPLES")
EXAMPLES = int(_EXAMPLES_ENV or "8")
# Answers about the cluster's state, not crashes: not enough nodes with room (503), a replica or
# source node failing (502), a node timing out (504). Allowed where the document lists them.
CLUSTER_STATE_STATUSES = frozenset({502, 503, 504})


def not_a_crash(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """schemathesis' not_a_server_error, except for a 502/503/504 the operation documents."""
    documented = case.operation.definition.raw.get("responses", {})
    if response.status_code in CLUSTER_STATE_STATUSES and str(response.status_code) in documented:
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [
    not_a_crash,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    # The normal suite tries the same cases every run; make fuzz searches at random.
    derandomize=_EXAMPLES_ENV is None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def services(
    loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Services]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    running = cluster(root)
    yield loop_thread.run(running.__aenter__())
    loop_thread.run(running.__aexit__(None, None, None))


def _fuzz(base_url: str, troubles: Troubles, mode: GenerationMode) -> None:
    """Every operation of the served document, each its own hypothesis run; all failures are
    collected and reported together, one paragraph per operation."""
    schema = schemathesis.openapi.from_url(base_url + "/v1/openapi.json", headers=AUTH)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"invalid operation in the document: {result.err()}")
            continue
        operation = result.ok()
        operations += 1

        @FUZZ_SETTINGS
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Case) -> None:
            troubles.take()
            response = case.call(base_url=base_url, headers=AUTH, timeout=30)
            logged = troubles.take()
            case.validate_response(response, checks=CHECKS)
            assert logged == [], f"the service logged: {logged}"

        try:
            run()
        except Unsatisfiable:
            # Nothing to get wrong (a negative case of an operation without inputs).
            continue
        # Every operation is tried, all failures reported at the end (schemathesis reports
        # failed checks as a BaseExceptionGroup).
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.label} ({mode}): {exc}")
    assert operations > 0
    assert not failures, f"{len(failures)} of {operations} operations failed:\n\n" + "\n\n".join(
        failures
    )


MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


@pytest.mark.parametrize("mode", MODES)
def test_manager_api_fuzz(mode: GenerationMode, services: Services, troubles: Troubles) -> None:
    _fuzz(services.manager, troubles, mode)


@pytest.mark.parametrize("mode", MODES)
def test_node_api_fuzz(mode: GenerationMode, services: Services, troubles: Troubles) -> None:
    _fuzz(services.nodes["node-0"], troubles, mode)

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
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from hypothesis.strategies import SearchStrategy
from schemathesis import APIOperation, Case, CheckContext, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cofre.chunks import hash_bytes
from cofre.protocol.framing import CONTENT_TYPE as FRAMED

from .conftest import (
    AUTH,
    LoopThread,
    Services,
    Troubles,
    chunked,
    cluster,
    manifest_of,
    send_chunks,
    ticket,
)

# The framed batch format is bytes to the fuzzer (the contract test sends real frames).
schemathesis.serializer.alias(FRAMED, "application/octet-stream")

_EXAMPLES_ENV = os.environ.get("COFRE_FUZZ_EXAMPLES")
EXAMPLES = int(_EXAMPLES_ENV or "8")
# Answers about the cluster's state, not crashes: not enough nodes with room (503), a replica or
# source node failing (502), a node timing out (504), a node's disk full (507). Allowed where the
# document lists them.
CLUSTER_STATE_STATUSES = frozenset({502, 503, 504, 507})


def not_a_crash(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """schemathesis' not_a_server_error, except for such an answer the operation documents."""
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


SEEDED_NAME = "fuzz/seeded.txt"
SESSION = "fuzz-session"


@dataclass
class Seeded:
    """The running services, and values that name real things in them: the fuzzer also sends
    these in place of the parameters of the same name, so cases reach past the 404s."""

    services: Services
    manager: dict[tuple[str, str], str]
    node: dict[tuple[str, str], str]
    # Where any URL a request body names is pointed (see _confined).
    peer: str


async def _seed(services: Services) -> Seeded:
    """A committed file and an open upload on the manager; on node-0 a stored chunk and an open
    relay session (to node-1), with a ticket for both."""
    node0, node1 = services.nodes["node-0"], services.nodes["node-1"]
    data = bytes(range(256)) * 9
    refs, blobs = chunked(data)
    manifest = manifest_of(SEEDED_NAME, data, refs)
    file = {"name": SEEDED_NAME, "size": len(data), "mode": 0o640, "mtime": 1.5}
    async with aiohttp.ClientSession(headers=AUTH) as http:
        async with http.post(services.manager + "/v1/uploads", json=file) as resp:
            up = await resp.json()
        await send_chunks(http, up, {**blobs, manifest.hash: manifest.encode()})
        commit = f"{services.manager}/v1/uploads/{up['upload_id']}/commit"
        async with http.post(commit, json={"manifest": manifest.to_json()}) as resp:
            assert resp.status == 201, await resp.text()
        async with http.post(services.manager + "/v1/uploads", json=file) as resp:
            still_open = await resp.json()
        session = {
            "upload_id": SESSION,
            "replicas": [{"node_id": "node-1", "url": node1}],
            "replica_ticket": ticket("node-1", upload_id=SESSION),
            "keep_copy": True,
            "expires": time.time() + 3600,
        }
        async with http.post(node0 + "/v1/sessions", json=session) as resp:
            assert resp.status == 201, await resp.text()
        write = {"X-Cofre-Ticket": ticket("node-0", upload_id=SESSION)}
        chunk = b"a chunk only node-0 holds" * 40
        stored = hash_bytes(chunk)
        async with http.put(f"{node0}/v1/chunks/{stored}", data=chunk, headers=write) as resp:
            assert resp.status == 201, await resp.text()
    return Seeded(
        services=services,
        manager={("query", "name"): SEEDED_NAME, ("path", "upload_id"): still_open["upload_id"]},
        node={
            ("path", "hash"): stored,
            ("path", "upload_id"): SESSION,
            ("header", "X-Cofre-Ticket"): write["X-Cofre-Ticket"],
        },
        peer=node1,
    )


@pytest.fixture(scope="module")
def seeded(loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    running = cluster(tmp_path_factory.mktemp("fuzz"))
    services = loop_thread.run(running.__aenter__())
    try:
        yield loop_thread.run(_seed(services))
    finally:
        loop_thread.run(running.__aexit__(None, None, None))


# Body fields that hold URLs a service then calls (a pull's sources, a relay's replicas).
URL_KEYS = frozenset({"url", "urls", "sources"})


def _confined(value: Any, peer: str, *, is_url: bool = False) -> Any:
    """``value`` with every URL in it (and every string under a URL key) replaced by ``peer``:
    a node given the fuzzer's URLs would look those hosts up and connect to them, and a test
    sends traffic only to this machine."""
    if isinstance(value, dict):
        return {k: _confined(v, peer, is_url=k in URL_KEYS) for k, v in value.items()}
    if isinstance(value, list):
        return [_confined(v, peer, is_url=is_url) for v in value]
    if isinstance(value, str) and (is_url or "://" in value):
        return peer
    return value


def _strategy(
    operation: APIOperation, mode: GenerationMode, known: dict[tuple[str, str], str], peer: str
) -> SearchStrategy[Case]:
    """Cases as the document allows, or (half the time) with the operation's parameters that
    name something real set to that; any URL in a body points at ``peer``."""
    plain = operation.as_strategy(generation_mode=mode)
    given: dict[str, dict[str, str]] = {"path": {}, "query": {}, "header": {}}
    for param in operation.definition.raw.get("parameters", []):
        value = known.get((param.get("in"), param.get("name")))
        if value is not None:
            given[param["in"]][param["name"]] = value
    if any(given.values()):
        real = operation.as_strategy(
            generation_mode=mode,
            path_parameters=given["path"] or None,
            query=given["query"] or None,
            headers=given["header"] or None,
        )
        plain = st.one_of(plain, real)

    def confine(case: Case) -> Case:
        case.body = _confined(case.body, peer)
        return case

    return plain.map(confine)


def _fuzz(
    base_url: str,
    troubles: Troubles,
    mode: GenerationMode,
    known: dict[tuple[str, str], str],
    peer: str,
) -> None:
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
        @given(case=_strategy(operation, mode, known, peer))
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
def test_manager_api_fuzz(mode: GenerationMode, seeded: Seeded, troubles: Troubles) -> None:
    _fuzz(seeded.services.manager, troubles, mode, seeded.manager, seeded.peer)


@pytest.mark.parametrize("mode", MODES)
def test_node_api_fuzz(mode: GenerationMode, seeded: Seeded, troubles: Troubles) -> None:
    _fuzz(seeded.services.nodes["node-0"], troubles, mode, seeded.node, seeded.peer)

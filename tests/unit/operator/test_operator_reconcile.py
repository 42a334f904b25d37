"""Reconcile passes through the kopf handlers, against a recording fake of the Kubernetes API and
a fake manager on loopback: passes on one cluster never overlap, an unchanged cluster is only
read, and a child's change reaches the cluster's status without a full pass.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer
from kopf._core.engines.posting import event_queue_loop_var, event_queue_var, settings_var

from cofre import tls
from cofre.kube import KubeError, object_path
from cofre.operator import builders, certs, handlers
from cofre.operator.reconcile import Context, drift
from cofre.operator.spec import Names, labels
from cofre.protocol.api import reply
from cofre.protocol.manager_api import ClusterStats, DrainStatus, NodeDrain

NS = "ns"
PLURAL_KINDS = {
    "secrets": "Secret",
    "statefulsets": "StatefulSet",
    "poddisruptionbudgets": "PodDisruptionBudget",
}
WRITES = ("create", "apply", "delete", "status")


def sts_path(name: str) -> str:
    return object_path("apps/v1", "StatefulSet", namespace=NS, name=name)


BC_PATH = object_path("cofre.dev/v1alpha1", "BackupCluster", namespace=NS, name="demo")
SECRET_PATH = object_path("v1", "Secret", namespace=NS, name="demo-token")
STORAGE = sts_path("demo-storage")
MANAGER = sts_path("demo-manager")
PDB = object_path("policy/v1", "PodDisruptionBudget", namespace=NS, name="demo-storage")
TOOLBOX = object_path("apps/v1", "Deployment", namespace=NS, name="demo-toolbox")


def _short(path: str) -> str:
    """/apis/apps/v1/namespaces/ns/statefulsets/demo-storage -> statefulsets/demo-storage"""
    return "/".join(path.split("/")[-2:])


class FakeKube:
    """The API server as reconcile sees it: objects by path, every call recorded in ``log``.

    Every call suspends once before it acts, as a real request does, so two passes left to run
    at once interleave their calls.
    """

    def __init__(
        self, log: list[str], *, on_apply: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        self.log = log
        self.objects: dict[str, dict[str, Any]] = {}
        self.on_apply = on_apply

    def put(self, obj: dict[str, Any], *, status: Mapping[str, Any] | None = None) -> None:
        meta = obj["metadata"]
        path = object_path(obj["apiVersion"], obj["kind"], namespace=NS, name=meta["name"])
        obj = copy.deepcopy(obj)
        obj["metadata"].setdefault("generation", 1)
        if status is not None:
            obj["status"] = dict(status)
        self.objects[path] = obj

    async def get(self, path: str) -> dict[str, Any] | None:
        self.log.append(f"get {_short(path)}")
        await asyncio.sleep(0)
        obj = self.objects.get(path)
        return copy.deepcopy(obj) if obj is not None else None

    async def apply(self, obj: Mapping[str, Any]) -> Any:
        path = self._path(obj)
        self.log.append(f"apply {_short(path)}")
        await asyncio.sleep(0)
        live = self.objects.get(path)
        new = copy.deepcopy(dict(obj))
        # What the server keeps or adds itself: status, uid, a generation bumped by changes.
        new["metadata"]["uid"] = f"uid-{_short(path)}"
        if live is not None:
            new["status"] = live.get("status", {})
            bump = live.get("spec") != new.get("spec")
            new["metadata"]["generation"] = live["metadata"].get("generation", 1) + int(bump)
        else:
            new["metadata"]["generation"] = 1
        self.objects[path] = new
        if self.on_apply is not None:
            self.on_apply(new)
        return copy.deepcopy(new)

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        path = self._path(obj)
        self.log.append(f"create {_short(path)}")
        await asyncio.sleep(0)
        if path in self.objects:
            raise KubeError(f"{path} exists", status=409, reason="AlreadyExists")
        self.objects[path] = copy.deepcopy(dict(obj))
        return copy.deepcopy(self.objects[path])

    async def delete(self, path: str) -> bool:
        self.log.append(f"delete {_short(path)}")
        await asyncio.sleep(0)
        return self.objects.pop(path, None) is not None

    async def patch_status(self, path: str, status: Mapping[str, Any]) -> dict[str, Any]:
        self.log.append(f"status {_short(path)}")
        await asyncio.sleep(0)
        obj = self.objects[path]
        obj["status"] = {**obj.get("status", {}), **copy.deepcopy(dict(status))}
        return copy.deepcopy(obj)

    def settle(self, path: str, *, ready: int | None = None) -> None:
        """Its controller caught up: every replica updated, ``ready`` of them ready (all: None)."""
        obj = self.objects[path]
        replicas = int(obj["spec"]["replicas"])
        obj["status"] = {
            "observedGeneration": obj["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas if ready is None else ready,
        }

    @staticmethod
    def _path(obj: Mapping[str, Any]) -> str:
        meta = obj["metadata"]
        return object_path(obj["apiVersion"], obj["kind"], namespace=NS, name=meta["name"])


class FakeManager:
    """The manager's stats and drain API, keeping the draining set it is given."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.draining: list[str] = []
        self.tokens: set[str] = set()
        self.under_replicated = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/stats", self.stats)
        app.router.add_get("/v1/drain", self.drain_status)
        app.router.add_put("/v1/drain", self.set_drain)
        return app

    def _seen(self, request: web.Request, extra: str = "") -> None:
        self.tokens.add(request.headers["Authorization"].removeprefix("Bearer "))
        self.log.append(f"manager {request.method} {request.path}{extra}")

    async def stats(self, request: web.Request) -> web.Response:
        self._seen(request)
        stats = ClusterStats(
            nodes_ready=4,
            nodes_total=4,
            used_bytes=10,
            capacity_bytes=100,
            files=1,
            versions=1,
            under_replicated_chunks=self.under_replicated,
        )
        return reply(stats)

    def _status(self) -> DrainStatus:
        nodes = {n: NodeDrain(done=False, chunks_left=2, bytes_left=20) for n in self.draining}
        return DrainStatus(done=not nodes, chunks_left=2 * len(nodes), bytes_left=0, nodes=nodes)

    async def drain_status(self, request: web.Request) -> web.Response:
        self._seen(request)
        return reply(self._status())

    async def set_drain(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self._seen(request, f" {','.join(body['nodes'])}")
        self.draining = list(body["nodes"])
        return reply(self._status())


class ToLoopback(AbstractResolver):
    """Every host (the operator asks <name>-manager.<ns>.svc) is the fake manager on loopback."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": self.port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        pass


@dataclass
class World:
    log: list[str]
    kube: FakeKube
    manager: FakeManager
    memo: kopf.Memo
    # What the fake manager presents; load another certificate into it to change that.
    manager_context: ssl.SSLContext
    tmp: Path

    def body(self) -> kopf.Body:
        return kopf.Body(copy.deepcopy(self.kube.objects[BC_PATH]))  # type: ignore[arg-type]

    def status(self) -> dict[str, Any]:
        return dict(self.kube.objects[BC_PATH].get("status") or {})

    def writes(self) -> list[str]:
        return [c for c in self.log if c.split()[0] in WRITES or " PUT " in c]

    async def full_pass(self) -> None:
        await handlers.tick(body=self.body(), memo=self.memo)


def cluster(*, storage_nodes: int = 3, generation: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "cofre.dev/v1alpha1",
        "kind": "BackupCluster",
        "metadata": {"name": "demo", "namespace": NS, "uid": "uid-demo", "generation": generation},
        "spec": {"storageNodes": storage_nodes, "replicationFactor": 2, **spec},
    }


@pytest.fixture
async def world(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    events: asyncio.Queue[Any],
    tmp_path: Path,
) -> AsyncIterator[World]:
    log: list[str] = []
    manager = FakeManager(log)
    # HTTPS, presenting whatever the operator last wrote into the manager's TLS Secret, as the
    # real manager does once the kubelet updated its mounted files.
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)

    def present(obj: dict[str, Any]) -> None:
        if obj["kind"] == "Secret" and obj["metadata"]["name"] == "demo-cofre-tls-manager":
            load_into(served, obj, tmp_path)

    server = await aiohttp_server(manager.app(), host="127.0.0.1", ssl=served)
    kube = FakeKube(log, on_apply=present)
    kube.put(cluster())
    # A new connection (and handshake) per request: what the server presents now is what counts.
    connector = aiohttp.TCPConnector(resolver=ToLoopback(server.port or 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        memo = kopf.Memo()
        handlers.install(memo, Context(api=kube, http=http, default_image="img:1"))
        yield World(
            log=log, kube=kube, manager=manager, memo=memo, manager_context=served, tmp=tmp_path
        )


def load_into(context: ssl.SSLContext, secret: Mapping[str, Any], tmp: Path) -> None:
    cert, key = tmp / "tls.crt", tmp / "tls.key"
    cert.write_bytes(base64.b64decode(secret["data"]["tls.crt"]))
    key.write_bytes(base64.b64decode(secret["data"]["tls.key"]))
    context.load_cert_chain(cert, key)


@pytest.fixture
async def events() -> AsyncIterator[asyncio.Queue[Any]]:
    """What kopf.event posts, as kopf's poster would get it."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    settings = kopf.OperatorSettings()
    settings.posting.level = logging.DEBUG
    tokens = (
        settings_var.set(settings),
        event_queue_var.set(queue),
        event_queue_loop_var.set(asyncio.get_running_loop()),
    )
    yield queue
    event_queue_loop_var.reset(tokens[2])
    event_queue_var.reset(tokens[1])
    settings_var.reset(tokens[0])


def reasons(queue: asyncio.Queue[Any]) -> list[str]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait().reason)
    return out


def _sts_object(name: str, component: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": NS, "labels": labels("demo", component)},
        "spec": {"replicas": replicas},
    }


ONE_PASS_DRAINING = [
    "get backupclusters/demo",
    "get secrets/demo-token",
    "create secrets/demo-token",
    "get secrets/demo-cofre-ca",
    "apply secrets/demo-cofre-ca",
    "get secrets/demo-cofre-tls-manager",
    "apply secrets/demo-cofre-tls-manager",
    "get secrets/demo-cofre-tls-storage",
    "apply secrets/demo-cofre-tls-storage",
    "get secrets/demo-cofre-trust",
    "apply secrets/demo-cofre-trust",
    "get serviceaccounts/demo-manager",
    "apply serviceaccounts/demo-manager",
    "get roles/demo-manager",
    "apply roles/demo-manager",
    "get rolebindings/demo-manager",
    "apply rolebindings/demo-manager",
    "get statefulsets/demo-manager",
    "get statefulsets/demo-storage",
    "manager GET /v1/stats",
    "manager GET /v1/drain",
    "manager PUT /v1/drain demo-storage-3",
    "get services/demo-storage",
    "apply services/demo-storage",
    "get poddisruptionbudgets/demo-storage",
    "apply poddisruptionbudgets/demo-storage",
    "get statefulsets/demo-storage",
    "apply statefulsets/demo-storage",
    "get services/demo-manager",
    "apply services/demo-manager",
    "get statefulsets/demo-manager",
    "apply statefulsets/demo-manager",
    "get deployments/demo-toolbox",
    "status backupclusters/demo",
]

SECOND_PASS_DRAINING = [
    "get backupclusters/demo",
    "get secrets/demo-token",
    "get secrets/demo-cofre-ca",
    "get secrets/demo-cofre-tls-manager",
    "get secrets/demo-cofre-tls-storage",
    "get secrets/demo-cofre-trust",
    "get serviceaccounts/demo-manager",
    "get roles/demo-manager",
    "get rolebindings/demo-manager",
    "get statefulsets/demo-manager",
    "get statefulsets/demo-storage",
    "manager GET /v1/stats",
    "manager GET /v1/drain",
    "get services/demo-storage",
    "get poddisruptionbudgets/demo-storage",
    "get statefulsets/demo-storage",
    "get services/demo-manager",
    "get statefulsets/demo-manager",
    "get deployments/demo-toolbox",
    "status backupclusters/demo",
]


async def test_timer_and_update_at_once_run_one_pass_after_the_other(
    world: World, events: asyncio.Queue[Any]
) -> None:
    # A cluster scaled from 4 to 3 storage nodes whose token Secret is not there yet: each pass
    # would make a token and ask the manager to drain demo-storage-3.
    world.kube.put(_sts_object("demo-storage", "storage-node", 4))
    world.kube.put(_sts_object("demo-manager", "manager", 1))
    world.kube.settle(STORAGE)
    world.kube.settle(MANAGER)
    await asyncio.gather(
        handlers.tick(body=world.body(), memo=world.memo),
        handlers.changed(body=world.body(), memo=world.memo),
    )
    assert world.log.count("create secrets/demo-token") == 1
    token = base64.b64decode(world.kube.objects[SECRET_PATH]["data"]["token"]).decode()
    assert world.manager.tokens == {token}
    assert [c for c in world.log if "PUT" in c] == ["manager PUT /v1/drain demo-storage-3"]
    # The second pass starts only once the first wrote its status, and then finds the token and
    # the drain the first one left.
    assert world.log == ONE_PASS_DRAINING + SECOND_PASS_DRAINING
    assert world.manager.draining == ["demo-storage-3"]
    assert reasons(events).count("DrainStarted") == 1
    status = world.status()
    assert status["storageNodes"] == 4
    assert status["phase"] == "ScalingDown"
    assert world.kube.objects[STORAGE]["spec"]["replicas"] == 4


async def test_an_unchanged_cluster_is_only_read(world: World) -> None:
    await world.full_pass()
    world.kube.settle(STORAGE)
    world.kube.settle(MANAGER)
    await world.full_pass()
    assert world.status()["phase"] == "Ready"
    world.log.clear()
    await world.full_pass()
    assert world.log, "the pass read nothing"
    assert world.writes() == []
    assert all(c.startswith(("get ", "manager GET ")) for c in world.log), world.log


async def test_a_drifted_or_deleted_child_is_applied_again(world: World) -> None:
    await world.full_pass()
    world.kube.settle(STORAGE)
    world.kube.settle(MANAGER)
    await world.full_pass()
    # Edited by hand: the manager's image; deleted: the disruption budget.
    manager = world.kube.objects[MANAGER]
    manager["spec"]["template"]["spec"]["containers"][0]["image"] = "someone/else:latest"
    del world.kube.objects[PDB]
    world.log.clear()
    await world.full_pass()
    assert world.writes() == [
        "apply poddisruptionbudgets/demo-storage",
        "apply statefulsets/demo-manager",
    ]
    image = world.kube.objects[MANAGER]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "img:1"
    assert PDB in world.kube.objects


async def test_a_spec_change_applies_only_the_children_it_changes(world: World) -> None:
    await world.full_pass()
    world.kube.settle(STORAGE)
    world.kube.settle(MANAGER)
    await world.full_pass()
    world.kube.put(cluster(generation=2, toolbox=True), status=world.status())
    world.log.clear()
    await world.full_pass()
    assert world.writes() == ["apply deployments/demo-toolbox", "status backupclusters/demo"]
    assert world.status()["observedGeneration"] == 2
    world.kube.put(cluster(generation=3, toolbox=False), status=world.status())
    world.log.clear()
    await world.full_pass()
    assert world.writes() == ["delete deployments/demo-toolbox", "status backupclusters/demo"]


def _pod(name: str, component: str, *, cluster: str = "demo") -> kopf.Body:
    raw = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": labels(cluster, component)},
    }
    return kopf.Body(raw)  # type: ignore[arg-type]


async def test_a_pod_change_refreshes_its_clusters_status(
    world: World, events: asyncio.Queue[Any]
) -> None:
    await world.full_pass()
    world.kube.settle(STORAGE)
    world.kube.settle(MANAGER)
    await world.full_pass()
    ready = world.status()
    assert (ready["phase"], ready["readyNodes"]) == ("Ready", 3)
    # A storage pod fails its readiness probe: its StatefulSet counts one ready replica less.
    world.kube.settle(STORAGE, ready=2)
    world.log.clear()
    reasons(events)
    await handlers.pod_event(body=_pod("demo-storage-1", "storage-node"), memo=world.memo)
    status = world.status()
    assert (status["phase"], status["readyNodes"]) == ("Degraded", 2)
    assert status["observedGeneration"] == ready["observedGeneration"]
    assert status["usedBytes"] == ready["usedBytes"]
    assert reasons(events) == ["PhaseDegraded", "Degraded"]
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "NodesNotReady")
    assert degraded["message"] == "2/3 storage nodes ready"
    # Two ready nodes still hold the two copies every chunk needs: readable, not healthy.
    assert (ready["healthStatus"], status["healthStatus"]) == ("green", "yellow")
    # Only reads, then the status: no child written, the manager not asked.
    assert world.writes() == ["status backupclusters/demo"]
    assert not any(c.startswith("manager") for c in world.log)
    # Back: Ready and green again, and a Recovered event says so.
    world.kube.settle(STORAGE)
    await handlers.pod_event(body=_pod("demo-storage-1", "storage-node"), memo=world.memo)
    status = world.status()
    assert (status["phase"], status["healthStatus"]) == ("Ready", "green")
    assert reasons(events) == ["PhaseReady", "Recovered"]


async def test_a_statefulset_change_refreshes_its_owners_status(world: World) -> None:
    await world.full_pass()
    world.kube.settle(STORAGE)
    await world.full_pass()
    assert world.status()["phase"] == "Progressing"
    world.kube.settle(MANAGER)
    world.log.clear()
    await handlers.statefulset_event(
        body=kopf.Body(copy.deepcopy(world.kube.objects[MANAGER])),  # type: ignore[arg-type]
        memo=world.memo,
    )
    assert world.status()["phase"] == "Ready"
    assert world.writes() == ["status backupclusters/demo"]


async def test_a_refresh_keeps_the_scale_down_the_last_pass_decided(world: World) -> None:
    world.kube.put(_sts_object("demo-storage", "storage-node", 4))
    world.kube.put(_sts_object("demo-manager", "manager", 1))
    world.kube.settle(STORAGE)
    world.kube.settle(MANAGER)
    await world.full_pass()
    before = world.status()
    world.kube.settle(STORAGE, ready=3)
    await handlers.pod_event(body=_pod("demo-storage-3", "storage-node"), memo=world.memo)
    after = world.status()
    assert after["readyNodes"] == 3
    assert after["phase"] == "ScalingDown"
    assert after["storageNodes"] == 4
    scaling = [c for c in after["conditions"] if c["type"] == "ScalingDown"]
    assert scaling == [c for c in before["conditions"] if c["type"] == "ScalingDown"]


async def test_children_that_feed_no_status_refresh_nothing(world: World) -> None:
    await world.full_pass()
    world.log.clear()
    await handlers.pod_event(body=_pod("demo-toolbox-abc", "toolbox"), memo=world.memo)
    other = _pod("other-storage-0", "storage-node", cluster="other")
    await handlers.pod_event(body=other, memo=world.memo)
    assert world.writes() == []
    assert world.log == ["get backupclusters/other"]


def test_owner_of_prefers_the_owner_reference() -> None:
    sts = _sts_object("x-storage", "storage-node", 3)
    sts["metadata"]["labels"]["app.kubernetes.io/instance"] = "label-name"
    sts["metadata"]["ownerReferences"] = [
        {"apiVersion": "cofre.dev/v1alpha1", "kind": "BackupCluster", "name": "owner-name"}
    ]
    assert handlers.owner_of(sts) == (NS, "owner-name")
    del sts["metadata"]["ownerReferences"]
    assert handlers.owner_of(sts) == (NS, "label-name")
    sts["metadata"]["labels"]["app.kubernetes.io/component"] = "toolbox"
    assert handlers.owner_of(sts) is None


async def test_waiting_refreshes_of_one_cluster_collapse_into_one() -> None:
    locks = handlers.PassLocks()
    key = (NS, "demo")
    ran: list[str] = []

    async def refresh(name: str) -> None:
        async with locks.hold(key, coalesce=True) as holding:
            if holding:
                ran.append(name)

    async with locks.hold(key):
        tasks = [asyncio.create_task(refresh(f"r{i}")) for i in range(3)]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert ran == ["r0"]
    # Once a refresh holds the lock, a new change queues a new one.
    await refresh("r3")
    assert ran == ["r0", "r3"]


def test_drift_counts_only_what_the_builders_set() -> None:
    want = {"spec": {"replicas": 3, "ports": [{"port": 80}], "cpu": "0.5"}}
    live = {
        "spec": {"replicas": 3, "ports": [{"port": 80, "protocol": "TCP"}], "cpu": "500m"},
        "status": {"readyReplicas": 3},
    }
    assert drift(want, live) is None
    assert drift(want, {**live, "spec": {**live["spec"], "replicas": 5}}) == ".spec.replicas"
    assert drift(want, {**live, "spec": {**live["spec"], "ports": []}}) == ".spec.ports"
    assert drift(want, {**live, "spec": {**live["spec"], "cpu": "1"}}) == ".spec.cpu"
    assert drift({"size": "1Gi"}, {"size": "1024Mi"}) is None


async def test_the_managers_numbers_degrade_and_recover_the_cluster(
    world: World, events: asyncio.Queue[Any]
) -> None:
    await world.full_pass()
    world.kube.settle(STORAGE)
    world.kube.settle(MANAGER)
    await world.full_pass()
    assert world.status()["healthStatus"] == "green"
    reasons(events)
    world.manager.under_replicated = 5
    await world.full_pass()
    status = world.status()
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "UnderReplicated")
    assert (status["phase"], status["healthStatus"]) == ("Degraded", "yellow")
    assert reasons(events) == ["PhaseDegraded", "Degraded"]
    # A refresh keeps judging by the last numbers: no flapping back to green.
    await handlers.pod_event(body=_pod("demo-storage-0", "storage-node"), memo=world.memo)
    assert world.status()["healthStatus"] == "yellow"
    assert reasons(events) == []
    world.manager.under_replicated = 0
    await world.full_pass()
    assert (world.status()["phase"], world.status()["healthStatus"]) == ("Ready", "green")
    assert reasons(events) == ["PhaseReady", "Recovered"]


async def test_a_scale_up_is_posted(world: World, events: asyncio.Queue[Any]) -> None:
    await world.full_pass()
    world.kube.settle(STORAGE)
    world.kube.settle(MANAGER)
    await world.full_pass()
    reasons(events)
    world.kube.put(cluster(storage_nodes=5, generation=2), status=world.status())
    await world.full_pass()
    assert reasons(events) == ["ScaledUp", "SpecApplied", "PhaseProgressing"]
    assert world.kube.objects[STORAGE]["spec"]["replicas"] == 5


CA_SECRET = object_path("v1", "Secret", namespace=NS, name="demo-cofre-ca")
MANAGER_TLS = object_path("v1", "Secret", namespace=NS, name="demo-cofre-tls-manager")
TRUST = object_path("v1", "Secret", namespace=NS, name="demo-cofre-trust")


def _served_serial(world: World) -> int:
    data = world.kube.objects[MANAGER_TLS]["data"]
    return certs.serial_of(base64.b64decode(data["tls.crt"]))


async def test_an_overdue_certificate_is_reissued_in_place_and_trusted(world: World) -> None:
    # A CA and a manager certificate 80 days into its 90: past its renew_at.
    now = datetime.now(UTC)
    ca = certs.CaState(signing=tls.new_ca(common_name="ca", valid_for=timedelta(days=3650)))
    old = certs.issue_leaf(
        ca,
        dns_names=Names("demo").manager_dns_names(NS),
        valid_for=timedelta(days=90),
        now=now - timedelta(days=80),
    )
    kw = {"name": "demo", "namespace": NS}
    world.kube.put(builders.build_ca_secret(cert=ca.signing.cert, key=ca.signing.key, **kw))
    world.kube.put(
        builders.build_tls_secret(component="manager", cert=old.cert, key=old.key, ca=old.ca, **kw)
    )
    await world.full_pass()
    world.kube.settle(STORAGE)
    world.kube.settle(MANAGER)
    await world.full_pass()
    assert _served_serial(world) != certs.serial_of(old.cert)
    # Kept: the CA (it signed the new certificate) and the manager's pods (no restart: the
    # service re-reads its files).
    assert (
        world.kube.objects[CA_SECRET]["data"]["ca.crt"]
        == base64.b64encode(ca.signing.cert).decode()
    )
    new = base64.b64decode(world.kube.objects[MANAGER_TLS]["data"]["tls.crt"])
    assert certs.issued_by(new, ca.signing.cert)
    # The operator asked the manager over HTTPS, trusting the CA from the Secret.
    assert "manager GET /v1/stats" in world.log
    assert world.status()["phase"] == "Ready"
    world.log.clear()
    await world.full_pass()
    assert world.writes() == []


async def test_a_manager_presenting_another_cas_certificate_is_not_asked(
    world: World, tmp_path: Path
) -> None:
    await world.full_pass()
    world.kube.settle(STORAGE)
    world.kube.settle(MANAGER)
    await world.full_pass()
    assert "manager GET /v1/stats" in world.log
    # An impostor with a certificate for the right names, from a CA the cluster never had.
    other = certs.CaState(signing=tls.new_ca(common_name="evil", valid_for=timedelta(days=1)))
    fake = certs.issue_leaf(
        other,
        dns_names=Names("demo").manager_dns_names(NS),
        valid_for=timedelta(hours=1),
        now=datetime.now(UTC),
    )
    secret = builders.build_tls_secret(
        component="manager", cert=fake.cert, key=fake.key, ca=fake.ca, name="demo", namespace=NS
    )
    load_into(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), secret, tmp_path)
    world.log.clear()
    # The same listener presents the impostor's certificate from now on.
    world.manager_context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    await world.full_pass()
    assert not any(c.startswith("manager ") for c in world.log), world.log


async def test_a_cert_manager_issuer_gets_certificates_not_a_ca(world: World) -> None:
    world.kube.put(cluster(certificates={"issuer": {"name": "corp", "kind": "ClusterIssuer"}}))
    world.kube.put(_sts_object("demo-manager", "manager", 1))
    world.kube.settle(MANAGER)
    await world.full_pass()
    assert "apply certificates/demo-cofre-tls-manager" in world.log
    assert "apply certificates/demo-cofre-tls-storage" in world.log
    assert CA_SECRET not in world.kube.objects and TRUST not in world.kube.objects
    # Until cert-manager wrote the Secret there is no CA to trust: the manager is not asked.
    assert not any(c.startswith("manager ") for c in world.log)
    sts = world.kube.objects[MANAGER]["spec"]["template"]["metadata"]
    assert "annotations" not in sts
    # cert-manager issues (here: the test, as its CA issuer would).
    ca = certs.CaState(signing=tls.new_ca(common_name="corp", valid_for=timedelta(days=30)))
    leaf = certs.issue_leaf(
        ca,
        dns_names=Names("demo").manager_dns_names(NS),
        valid_for=timedelta(days=1),
        now=datetime.now(UTC),
    )
    secret = builders.build_tls_secret(
        component="manager", cert=leaf.cert, key=leaf.key, ca=leaf.ca, name="demo", namespace=NS
    )
    world.kube.put(secret)
    load_into(world.manager_context, secret, world.tmp)
    world.log.clear()
    await world.full_pass()
    trust = world.kube.objects[TRUST]["data"]["ca.crt"]
    assert base64.b64decode(trust) == ca.signing.cert
    assert "manager GET /v1/stats" in world.log
    # The pods now name the CA they trust (set once it is known: one roll).
    annotations = world.kube.objects[MANAGER]["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"cofre.dev/ca": certs.newest_ca_id(ca.signing.cert)}


async def test_an_issuer_without_cert_manager_says_so(
    world: World, events: asyncio.Queue[Any]
) -> None:
    world.kube.put(cluster(certificates={"issuer": {"name": "corp"}}))
    plain_apply = world.kube.apply

    async def no_cert_manager(obj: Mapping[str, Any]) -> Any:
        if obj["kind"] == "Certificate":
            raise KubeError("the server could not find the requested resource", status=404)
        return await plain_apply(obj)

    world.kube.apply = no_cert_manager  # type: ignore[method-assign]
    with pytest.raises(kopf.TemporaryError, match="install cert-manager or remove the issuer"):
        await world.full_pass()
    assert "CertManagerMissing" in reasons(events)

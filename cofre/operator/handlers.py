"""kopf handlers for BackupCluster: thin, each one a pass of ``reconcile`` under the cluster's lock.

Create, update and resume run a full pass at once; a timer runs one every few seconds, which moves
a scale-down along as the manager drains and puts back any deleted or edited child. kopf runs the
timer beside the change handlers, so every pass on one BackupCluster takes its lock first: two
passes never both find no token, or both send a drain. Changes of the cluster's StatefulSets and
pods (watched by their labels) refresh its status at once, under the same lock.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import kopf

from cofre.kube import open_api
from cofre.operator.metrics import OperatorMetrics, serve
from cofre.operator.reconcile import (
    MANAGER_TIMEOUT_S,
    Context,
    Target,
    observe,
    publish_status,
    read_cluster,
    reconcile,
)
from cofre.operator.settings import OperatorConfig
from cofre.operator.spec import (
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    ClusterSpec,
    SpecError,
    parse_spec,
)
from cofre.protocol.client import open_session

log = logging.getLogger(__name__)

# seconds between timer passes: drain progress and readiness show up within this.
RECONCILE_INTERVAL_S = 10.0
_STACK = "stack"
_CONTEXT = "context"
_LOCKS = "locks"
_METRICS = "metrics"
# What every child carries (builders.labels); its instance label names the BackupCluster.
CHILD_LABELS = {"app.kubernetes.io/name": "cofre", "app.kubernetes.io/managed-by": "cofre-operator"}
INSTANCE_LABEL = "app.kubernetes.io/instance"
# Children whose state is in the status: the storage nodes and the manager, not the toolbox.
STATUS_COMPONENTS = ("storage-node", "manager")

Key = tuple[str, str]


class PassLocks:
    """One lock per BackupCluster (namespace, name): its passes run one at a time.

    Keyed by name rather than uid because the children are named after the cluster: passes of a
    deleted cluster and of a new one of the same name must not overlap either. Locks live only
    while a pass holds or awaits them (weak values), so nothing accumulates for deleted clusters.
    A status refresh that finds another refresh of the same cluster still waiting does nothing:
    the waiting one reads everything once it runs.
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[Key, asyncio.Lock] = weakref.WeakValueDictionary()
        self._waiting: set[Key] = set()

    @asynccontextmanager
    async def hold(self, key: Key, *, coalesce: bool = False) -> AsyncIterator[bool]:
        """Hold ``key``'s lock; yields True once held.

        ``coalesce``: yield False at once (holding nothing) if another coalescing holder of
        ``key`` is still waiting for the lock; it will see whatever this one would have.
        """
        if coalesce and key in self._waiting:
            yield False
            return
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        if coalesce:
            self._waiting.add(key)
        try:
            async with lock:
                # From here on a new change needs a new read: let the next one queue.
                if coalesce:
                    self._waiting.discard(key)
                yield True
        finally:
            if coalesce:
                self._waiting.discard(key)


def install(memo: kopf.Memo, context: Context, metrics: OperatorMetrics | None = None) -> None:
    """Put what every handler needs in the operator's memo."""
    memo[_CONTEXT] = context
    memo[_METRICS] = metrics or OperatorMetrics()
    # Every object's memo is a shallow copy of this one: all of them share these locks.
    memo[_LOCKS] = PassLocks()


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.peering.standalone = True
    # Only explicit events (kopf.event) reach the BackupCluster, not every log line.
    settings.posting.level = logging.WARNING
    settings.persistence.finalizer = "cofre.dev/operator"
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    config = memo.get("config")
    if not isinstance(config, OperatorConfig):
        from cofre.config import load

        config = load(OperatorConfig)
    stack = AsyncExitStack()
    api = await stack.enter_async_context(open_api())
    http = await stack.enter_async_context(open_session(timeout_s=MANAGER_TIMEOUT_S))
    memo[_STACK] = stack
    metrics = OperatorMetrics()
    if config.metrics_port:
        runner = await serve(metrics, host=config.metrics_host, port=config.metrics_port)
        stack.push_async_callback(runner.cleanup)
    install(memo, Context(api=api, http=http, default_image=config.image), metrics)
    log.info("operator started image=%s namespaces=%s", config.image, config.namespaces or "all")


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    stack = memo.get(_STACK)
    if isinstance(stack, AsyncExitStack):
        await stack.aclose()


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
async def changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await full_pass(_key(body.metadata), memo)


@kopf.timer(
    GROUP, VERSION, PLURAL, interval=RECONCILE_INTERVAL_S, initial_delay=RECONCILE_INTERVAL_S
)
async def tick(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await full_pass(_key(body.metadata), memo)


@kopf.on.event("apps", "v1", "statefulsets", labels=CHILD_LABELS)
async def statefulset_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await _child_changed(body, memo)


@kopf.on.event("", "v1", "pods", labels=CHILD_LABELS)
async def pod_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await _child_changed(body, memo)


def owner_of(child: Mapping[str, Any]) -> Key | None:
    """The BackupCluster whose status a child's state feeds (None: not such a child).

    A StatefulSet names it in its ownerReference; a pod's owner is its StatefulSet, so for pods
    the instance label (which the builders put on both) names it.
    """
    meta = child.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get("app.kubernetes.io/component") not in STATUS_COMPONENTS:
        return None
    namespace = meta.get("namespace")
    owners = [
        ref
        for ref in meta.get("ownerReferences") or []
        if ref.get("kind") == KIND and str(ref.get("apiVersion", "")).startswith(f"{GROUP}/")
    ]
    name = owners[0].get("name") if owners else labels.get(INSTANCE_LABEL)
    if not namespace or not name:
        return None
    return str(namespace), str(name)


async def _child_changed(body: kopf.Body, memo: kopf.Memo) -> None:
    key = owner_of(body)
    if key is None:
        return
    try:
        await refresh_status(key, memo)
    except kopf.TemporaryError as exc:
        # Not retried here: the next child change or timer pass writes the status.
        log.warning("status refresh failed cluster=%s/%s: %s", *key, exc)


async def full_pass(key: Key, memo: kopf.Memo) -> None:
    """Reconcile every child of the BackupCluster ``key`` and write its status."""
    with _metrics(memo).reconcile_pass():
        await _exclusive(key, memo, reconcile_and_publish, refresh=False)


async def refresh_status(key: Key, memo: kopf.Memo) -> None:
    """Write the BackupCluster's status as its children show it now; no child is written."""
    metrics = _metrics(memo)

    async def counted(context: Context, target: Target, current: Mapping[str, Any]) -> None:
        with metrics.status_refresh():
            await observe_and_publish(context, target, current)

    await _exclusive(key, memo, counted, refresh=True)


def _metrics(memo: kopf.Memo) -> OperatorMetrics:
    metrics = memo[_METRICS]
    assert isinstance(metrics, OperatorMetrics)
    return metrics


Step = Callable[[Context, Target, Mapping[str, Any]], Awaitable[None]]


async def _exclusive(key: Key, memo: kopf.Memo, step: Step, *, refresh: bool) -> None:
    context, locks = memo[_CONTEXT], memo[_LOCKS]
    assert isinstance(context, Context) and isinstance(locks, PassLocks)
    async with locks.hold(key, coalesce=refresh) as holding:
        if not holding:
            return
        namespace, name = key
        # Read under the lock: the spec and the status as the last pass left them, not as the
        # (possibly older) event that started this pass saw them.
        current = await read_cluster(context, namespace=namespace, name=name)
        if current is None:
            log.debug("cluster=%s/%s gone; nothing to do", namespace, name)
            context.trust.forget(key)
            return
        await step(context, Target.of(current), current)


def _parse(target: Target, current: Mapping[str, Any]) -> ClusterSpec:
    try:
        return parse_spec(current.get("spec") or {})
    except SpecError as exc:
        kopf.event(target.body, type="Warning", reason="InvalidSpec", message=str(exc))
        raise kopf.PermanentError(str(exc)) from exc


async def reconcile_and_publish(
    context: Context, target: Target, current: Mapping[str, Any]
) -> None:
    spec = _parse(target, current)
    previous = dict(current.get("status") or {})
    status = await reconcile(context, target, spec, previous=previous)
    await publish_status(context, target, spec, previous=previous, status=status)


async def observe_and_publish(context: Context, target: Target, current: Mapping[str, Any]) -> None:
    try:
        spec = parse_spec(current.get("spec") or {})
    except SpecError:
        return  # the full pass reports it
    previous = dict(current.get("status") or {})
    status = await observe(context, target, spec, previous=previous)
    if status is not None:
        await publish_status(context, target, spec, previous=previous, status=status)


def _key(meta: Mapping[str, Any]) -> Key:
    return str(meta.get("namespace")), str(meta.get("name"))

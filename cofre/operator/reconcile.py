"""One reconcile pass: ordered, idempotent ``ensure_*`` steps, then the new status.

Every pass derives every child from the spec (never from the event that triggered it) and applies
it by server-side apply, so running it twice changes nothing. The only state kept between passes
is the token (in its Secret) and the drain (in the manager).
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import kopf

from cofre.errors import CofreError
from cofre.kube import KubeApi, KubeError, object_path
from cofre.operator import builders
from cofre.operator.decisions import (
    DrainProgress,
    Readiness,
    ScalePlan,
    phase_of,
    plan_scale,
    statefulset_ready,
    statefulset_rolling_out,
)
from cofre.operator.spec import TOKEN_KEY, ClusterSpec, Names, storage_selector
from cofre.operator.status import Observed, build_status, condition, was_ready
from cofre.protocol.client import ManagerClient
from cofre.protocol.manager_api import ClusterStats

log = logging.getLogger(__name__)

# seconds for one request to the manager: the operator must not hang on a sick one.
MANAGER_TIMEOUT_S = 10.0


@dataclass(frozen=True, kw_only=True)
class Context:
    api: KubeApi
    http: aiohttp.ClientSession
    # The image children run when the spec names none (the operator's own).
    default_image: str


@dataclass(frozen=True, kw_only=True)
class Target:
    """The BackupCluster being reconciled."""

    body: kopf.Body
    name: str
    namespace: str
    generation: int

    @property
    def names(self) -> Names:
        return Names(self.name)


async def apply(ctx: Context, target: Target, obj: dict[str, Any]) -> dict[str, Any]:
    """Adopt ``obj`` (ownerReference to the BackupCluster) and create-or-patch it."""
    kopf.adopt(obj, owner=target.body)
    kind, name = obj["kind"], obj["metadata"]["name"]
    try:
        result: dict[str, Any] = await ctx.api.apply(obj)
    except KubeError as exc:
        if exc.status == 409:
            raise kopf.TemporaryError(f"conflict on {kind} {name}: {exc}", delay=5) from exc
        if exc.status in (400, 422):
            raise kopf.PermanentError(f"{kind} {name} rejected: {exc}") from exc
        raise kopf.TemporaryError(f"cannot apply {kind} {name}: {exc}", delay=15) from exc
    log.debug("applied kind=%s name=%s namespace=%s", kind, name, target.namespace)
    return result


async def _get(ctx: Context, path: str) -> dict[str, Any] | None:
    try:
        return await ctx.api.get(path)
    except KubeError as exc:
        raise kopf.TemporaryError(f"cannot read {path}: {exc}", delay=15) from exc


async def ensure_secret(ctx: Context, target: Target) -> str:
    """The cluster token: generated once, then kept for the life of the BackupCluster."""
    path = object_path("v1", "Secret", namespace=target.namespace, name=target.names.secret)
    existing = await _get(ctx, path)
    token = ""
    if existing is not None:
        raw = (existing.get("data") or {}).get(TOKEN_KEY)
        token = base64.b64decode(raw).decode() if raw else ""
    if not token:
        token = secrets.token_urlsafe(32)
        log.info("generated cluster token secret=%s namespace=%s", path, target.namespace)
    await apply(
        ctx,
        target,
        builders.build_secret(name=target.name, namespace=target.namespace, token=token),
    )
    return token


async def ensure_manager_rbac(ctx: Context, target: Target) -> None:
    kw = {"name": target.name, "namespace": target.namespace}
    await apply(ctx, target, builders.build_manager_service_account(**kw))
    await apply(ctx, target, builders.build_manager_role(**kw))
    await apply(ctx, target, builders.build_manager_role_binding(**kw))


async def read_statefulset(ctx: Context, target: Target, name: str) -> dict[str, Any] | None:
    path = object_path("apps/v1", "StatefulSet", namespace=target.namespace, name=name)
    return await _get(ctx, path)


async def ensure_storage(
    ctx: Context, target: Target, spec: ClusterSpec, *, image: str, plan: ScalePlan
) -> dict[str, Any]:
    kw = {"name": target.name, "namespace": target.namespace}
    await apply(ctx, target, builders.build_storage_service(**kw))
    await apply(ctx, target, builders.build_storage_disruption_budget(**kw))
    return await apply(
        ctx,
        target,
        builders.build_storage_statefulset(spec, image=image, replicas=plan.replicas, **kw),
    )


async def ensure_manager(
    ctx: Context, target: Target, spec: ClusterSpec, *, image: str
) -> dict[str, Any]:
    kw = {"name": target.name, "namespace": target.namespace}
    await apply(ctx, target, builders.build_manager_service(**kw))
    return await apply(ctx, target, builders.build_manager_statefulset(spec, image=image, **kw))


async def ensure_toolbox(ctx: Context, target: Target, spec: ClusterSpec, *, image: str) -> None:
    if spec.toolbox:
        obj = builders.build_toolbox_deployment(
            spec, name=target.name, namespace=target.namespace, image=image
        )
        await apply(ctx, target, obj)
        return
    path = object_path(
        "apps/v1", "Deployment", namespace=target.namespace, name=target.names.toolbox
    )
    try:
        if await ctx.api.delete(path):
            log.info("deleted toolbox deployment=%s", path)
    except KubeError as exc:
        raise kopf.TemporaryError(f"cannot delete toolbox: {exc}", delay=15) from exc


async def ask_manager(
    ctx: Context, target: Target, *, token: str, manager_ready: bool
) -> tuple[ClusterStats | None, DrainProgress | None]:
    """-> (stats, drain status); None for what the manager could not answer."""
    if not manager_ready:
        return None, None
    client = _manager(ctx, target, token)
    stats: ClusterStats | None = None
    drain: DrainProgress | None = None
    try:
        stats = await client.stats()
        drain = await client.drain_status()
    except CofreError as exc:
        log.warning("manager did not answer cluster=%s/%s: %s", target.namespace, target.name, exc)
    return stats, drain


def _manager(ctx: Context, target: Target, token: str) -> ManagerClient:
    return ManagerClient(ctx.http, target.names.manager_url(target.namespace), token)


async def send_drain(ctx: Context, target: Target, *, token: str, nodes: tuple[str, ...]) -> bool:
    """Make the manager's draining set exactly ``nodes``."""
    try:
        await _manager(ctx, target, token).set_draining(nodes)
    except CofreError as exc:
        log.warning("drain request failed cluster=%s nodes=%s: %s", target.name, nodes, exc)
        return False
    log.info("drain set cluster=%s/%s nodes=%s", target.namespace, target.name, nodes or "none")
    return True


async def reconcile(
    ctx: Context, target: Target, spec: ClusterSpec, *, previous: Mapping[str, Any]
) -> dict[str, Any]:
    """Bring every child in line with ``spec``; return the new status."""
    names = target.names
    image = spec.image or ctx.default_image
    token = await ensure_secret(ctx, target)
    await ensure_manager_rbac(ctx, target)

    manager_sts = await read_statefulset(ctx, target, names.manager)
    storage_sts = await read_statefulset(ctx, target, names.storage)
    manager_ready = statefulset_ready(manager_sts) >= 1
    stats, drain = await ask_manager(ctx, target, token=token, manager_ready=manager_ready)
    current = None if storage_sts is None else int(storage_sts["spec"].get("replicas", 0))
    plan = plan_scale(
        statefulset=names.storage,
        desired=spec.storage_nodes,
        current=current,
        replication_factor=spec.replication_factor,
        primary_keeps_copy=spec.primary_keeps_copy,
        drain=drain,
    )
    if plan.send_drain is not None:
        sent = await send_drain(ctx, target, token=token, nodes=plan.send_drain)
        if sent and plan.send_drain:
            kopf.event(
                target.body,
                type="Normal",
                reason="DrainStarted",
                message=f"draining {', '.join(plan.send_drain)} before removing them",
            )
        elif sent and plan.targets:
            kopf.event(
                target.body,
                type="Normal",
                reason="DrainEnded",
                message=f"{', '.join(plan.targets)} stay and take new data again",
            )
    storage_sts = await ensure_storage(ctx, target, spec, image=image, plan=plan)
    manager_sts = await ensure_manager(ctx, target, spec, image=image)
    await ensure_toolbox(ctx, target, spec, image=image)

    _scale_events(target, plan, previous)
    if previous.get("observedGeneration") != target.generation:
        kopf.event(
            target.body,
            type="Normal",
            reason="SpecApplied",
            message=f"generation {target.generation}: {spec.storage_nodes} storage nodes "
            f"(now {plan.replicas}), replication factor {spec.replication_factor}, image {image}",
        )
    readiness = Readiness(
        desired=spec.storage_nodes,
        replicas=plan.replicas,
        ready_nodes=statefulset_ready(storage_sts),
        rolling_out=statefulset_rolling_out(storage_sts),
        manager_ready=statefulset_ready(manager_sts) >= 1,
        draining=plan.state in ("draining", "waiting"),
        was_ready=was_ready(previous, generation=target.generation),
    )
    observed = Observed(
        generation=target.generation,
        phase=phase_of(readiness),
        desired=spec.storage_nodes,
        ready_nodes=readiness.ready_nodes,
        manager_ready=readiness.manager_ready,
        plan=plan,
        selector=storage_selector(target.name),
        stats=stats,
    )
    status = build_status(previous, observed, now=datetime.now(UTC))
    if previous.get("phase") != status["phase"]:
        kopf.event(
            target.body,
            type="Warning" if status["phase"] == "Degraded" else "Normal",
            reason=f"Phase{status['phase']}",
            message=f"phase {previous.get('phase', 'none')} -> {status['phase']}: "
            f"{readiness.ready_nodes}/{spec.storage_nodes} storage nodes ready",
        )
    log.debug(
        "reconciled cluster=%s/%s phase=%s plan=%s replicas=%d ready=%d",
        target.namespace,
        target.name,
        status["phase"],
        plan.state,
        plan.replicas,
        readiness.ready_nodes,
    )
    return status


def _scale_events(target: Target, plan: ScalePlan, previous: Mapping[str, Any]) -> None:
    """One event per scale-down step: the ScalingDown condition's reason says which was sent."""
    before = condition(previous.get("conditions") or [], "ScalingDown") or {}
    reason = before.get("reason")
    if plan.state == "refused" and reason != "BelowReplicationMinimum":
        kopf.event(target.body, type="Warning", reason="ScaleDownRefused", message=plan.message)
    elif plan.state == "removing" and reason != "RemovingDrainedNodes":
        kopf.event(target.body, type="Normal", reason="ScaledDown", message=plan.message)

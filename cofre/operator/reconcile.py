"""One reconcile pass: ordered, idempotent ``ensure_*`` steps, then the new status.

Every pass derives every child from the spec (never from the event that triggered it). A child is
written only when it is missing, when what the builders make of the spec changed (a hash of it is
an annotation on the child), or when the live child drifted from it; otherwise a pass only reads.
The only state kept between passes is the token (in its Secret) and the drain (in the manager).
Passes on one BackupCluster never overlap: the handlers run them under a per-object lock.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import secrets
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, cast

import aiohttp
import kopf

from cofre import tls
from cofre.errors import CofreError
from cofre.kube import KubeError, KubeObject, object_path
from cofre.operator import builders, certs
from cofre.operator.decisions import (
    DrainProgress,
    Event,
    Readiness,
    ScalePlan,
    phase_of,
    plan_scale,
    scale_events,
    statefulset_ready,
    statefulset_rolling_out,
)
from cofre.operator.spec import (
    GROUP,
    KIND,
    TOKEN_KEY,
    VERSION,
    ClusterSpec,
    Names,
    storage_selector,
)
from cofre.operator.status import (
    Observed,
    build_status,
    changed_fields,
    condition,
    scaling_down,
    status_events,
    was_ready,
)
from cofre.operator.trust import TrustContexts
from cofre.protocol.client import ManagerClient
from cofre.protocol.manager_api import ClusterStats

log = logging.getLogger(__name__)

# seconds for one request to the manager: the operator must not hang on a sick one.
MANAGER_TIMEOUT_S = 10.0
# On every child: the hash of the object as built (and adopted) when it was last applied.
APPLIED_HASH = "cofre.dev/applied-hash"
API_VERSION = f"{GROUP}/{VERSION}"


class Kube(Protocol):
    """What reconcile needs of the Kubernetes API (``cofre.kube.KubeApi`` in the operator)."""

    async def get(self, path: str) -> KubeObject | None: ...

    async def apply(self, obj: Mapping[str, Any]) -> Any: ...

    async def create(self, obj: Mapping[str, Any]) -> KubeObject: ...

    async def delete(self, path: str) -> bool: ...

    async def patch_status(self, path: str, status: Mapping[str, Any]) -> KubeObject: ...


@dataclass(frozen=True, kw_only=True)
class Context:
    api: Kube
    http: aiohttp.ClientSession
    # What each cluster's manager must present a certificate from: that cluster's CA.
    trust: TrustContexts = field(default_factory=TrustContexts)
    # The image children run when the spec names none (the operator's own).
    default_image: str


@dataclass(frozen=True, kw_only=True)
class Target:
    """The BackupCluster being reconciled, as read at the start of the pass."""

    body: kopf.Body
    name: str
    namespace: str
    generation: int

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Target:
        meta = raw.get("metadata") or {}
        return cls(
            body=kopf.Body(cast(kopf.RawBody, dict(raw))),
            name=str(meta.get("name")),
            namespace=str(meta.get("namespace")),
            generation=int(meta.get("generation") or 0),
        )

    @property
    def names(self) -> Names:
        return Names(self.name)

    @property
    def path(self) -> str:
        return cluster_path(namespace=self.namespace, name=self.name)


def cluster_path(*, namespace: str, name: str) -> str:
    return object_path(API_VERSION, KIND, namespace=namespace, name=name)


async def read_cluster(ctx: Context, *, namespace: str, name: str) -> KubeObject | None:
    """The BackupCluster as it is now (None: deleted); a pass never trusts an older event's copy."""
    return await _get(ctx, cluster_path(namespace=namespace, name=name))


def stamp(obj: KubeObject) -> str:
    """Annotate ``obj`` with the hash of what it is now; -> the hash."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    obj["metadata"].setdefault("annotations", {})[APPLIED_HASH] = digest
    return digest


_QUANTITY = re.compile(
    r"^([+-]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$"
)
_SCALE = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    **{s: Decimal(1000) ** (i + 1) for i, s in enumerate("kMGTPE")},
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
}


def _quantity(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    match = _QUANTITY.match(str(value))
    if match is None:
        return None
    try:
        return Decimal(match.group(1)) * _SCALE[match.group(2) or ""]
    except InvalidOperation:
        return None


def drift(want: object, have: object, path: str = "") -> str | None:
    """Where the live ``have`` differs from the built ``want`` (None: nowhere).

    Only what ``want`` sets counts: fields the API server adds (defaults, status, uid) are not a
    difference; quantities compare by value, as the server rewrites them ("0.5" is "500m").
    """
    if isinstance(want, Mapping):
        if not isinstance(have, Mapping):
            return path or "."
        for key, value in want.items():
            where = drift(value, have.get(key), f"{path}.{key}")
            if where is not None:
                return where
        return None
    if isinstance(want, list):
        if not isinstance(have, list) or len(have) != len(want):
            return path
        for i, (w, h) in enumerate(zip(want, have, strict=True)):
            where = drift(w, h, f"{path}[{i}]")
            if where is not None:
                return where
        return None
    if want == have:
        return None
    q_want, q_have = _quantity(want), _quantity(have)
    return None if q_want is not None and q_want == q_have else path


def why_apply(obj: Mapping[str, Any], live: Mapping[str, Any] | None) -> str | None:
    """Why the stamped ``obj`` must be applied over ``live``; None: it matches already."""
    if live is None:
        return "missing"
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    if annotations.get(APPLIED_HASH) != obj["metadata"]["annotations"][APPLIED_HASH]:
        return "changed"
    where = drift(obj, live)
    return None if where is None else f"drifted at {where}"


def _write_error(kind: str, name: str, exc: KubeError) -> kopf.PermanentError | kopf.TemporaryError:
    if exc.status == 409:
        return kopf.TemporaryError(f"conflict on {kind} {name}: {exc}", delay=5)
    if exc.status in (400, 422):
        return kopf.PermanentError(f"{kind} {name} rejected: {exc}")
    return kopf.TemporaryError(f"cannot write {kind} {name}: {exc}", delay=15)


async def apply(ctx: Context, target: Target, obj: KubeObject) -> KubeObject:
    """Adopt ``obj`` (ownerReference to the BackupCluster) and create-or-patch it if needed.

    -> the live object: as it was when it matched, else as the apply left it.
    """
    name = obj["metadata"]["name"]
    live = await _get(
        ctx, object_path(obj["apiVersion"], obj["kind"], namespace=target.namespace, name=name)
    )
    return await apply_over(ctx, target, obj, live=live)


async def apply_over(
    ctx: Context, target: Target, obj: KubeObject, *, live: KubeObject | None
) -> KubeObject:
    """``apply`` with the live object read already."""
    kopf.adopt(obj, owner=target.body)
    stamp(obj)
    kind, name = obj["kind"], obj["metadata"]["name"]
    why = why_apply(obj, live)
    if why is None:
        assert live is not None
        return live
    try:
        result: KubeObject = await ctx.api.apply(obj)
    except KubeError as exc:
        raise _write_error(kind, name, exc) from exc
    log.info("applied kind=%s name=%s namespace=%s reason=%s", kind, name, target.namespace, why)
    return result


async def _get(ctx: Context, path: str) -> KubeObject | None:
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
    if existing is None:
        # Create, never overwrite: if another writer made it meanwhile, its token wins.
        token = secrets.token_urlsafe(32)
        obj = builders.build_secret(name=target.name, namespace=target.namespace, token=token)
        kopf.adopt(obj, owner=target.body)
        stamp(obj)
        try:
            await ctx.api.create(obj)
        except KubeError as exc:
            raise _write_error("Secret", target.names.secret, exc) from exc
        log.info("generated cluster token secret=%s namespace=%s", path, target.namespace)
        return token
    if not token:
        token = secrets.token_urlsafe(32)
        log.info("generated cluster token (secret had none) secret=%s", path)
    obj = builders.build_secret(name=target.name, namespace=target.namespace, token=token)
    await apply_over(ctx, target, obj, live=existing)
    return token


async def ensure_certificates(
    ctx: Context, target: Target, spec: ClusterSpec, *, now: datetime
) -> bytes | None:
    """The CA and the manager's and storage nodes' certificates, renewed when due; the trust
    Secret (ca.crt only) for clients.

    -> the CA bundle the cluster's services present certificates from (None: not issued yet,
    cert-manager still at work).
    """
    if spec.certificates.issuer is not None:
        return await _ensure_cert_manager(ctx, target, spec)
    names = target.names
    ca_path = object_path("v1", "Secret", namespace=target.namespace, name=names.ca_secret)
    live_ca = await _get(ctx, ca_path)
    ca, changes = certs.plan_ca(
        certs.read_ca(live_ca),
        cluster=target.name,
        valid_for=timedelta(seconds=spec.certificates.ca_duration_s),
        now=now,
    )
    await apply_over(ctx, target, _ca_secret(target, ca), live=live_ca)
    for change in changes:
        log.info("ca cluster=%s/%s secret=%s: %s", target.namespace, target.name, ca_path, change)
        _certificate_event(target, reason="CARotated", message=f"{names.ca_secret}: {change}")
    bundle = ca.bundle()
    valid_for = timedelta(seconds=spec.certificates.duration_s)
    for component, secret, dns_names in (
        (builders.MANAGER, names.manager_tls, names.manager_dns_names(target.namespace)),
        (builders.STORAGE, names.storage_tls, names.storage_dns_names(target.namespace)),
    ):
        path = object_path("v1", "Secret", namespace=target.namespace, name=secret)
        live = await _get(ctx, path)
        leaf, why = certs.plan_leaf(
            certs.read_leaf(live), ca=ca, dns_names=dns_names, valid_for=valid_for, now=now
        )
        obj = builders.build_tls_secret(
            name=target.name,
            namespace=target.namespace,
            component=component,
            cert=leaf.cert,
            key=leaf.key,
            ca=leaf.ca,
        )
        await apply_over(ctx, target, obj, live=live)
        if why is not None:
            log.info(
                "certificate secret=%s namespace=%s serial=%x not_after=%s reason=%s",
                secret,
                target.namespace,
                certs.serial_of(leaf.cert),
                tls.not_after(leaf.cert).isoformat(),
                why,
            )
            _certificate_event(target, reason="CertificateIssued", message=f"{secret}: {why}")
    await apply(
        ctx,
        target,
        builders.build_trust_secret(name=target.name, namespace=target.namespace, ca=bundle),
    )
    return bundle


def _ca_secret(target: Target, ca: certs.CaState) -> KubeObject:
    return builders.build_ca_secret(
        name=target.name,
        namespace=target.namespace,
        cert=ca.signing.cert,
        key=ca.signing.key,
        next_cert=ca.next.cert if ca.next is not None else None,
        next_key=ca.next.key if ca.next is not None else None,
        next_since=ca.next_since.isoformat() if ca.next_since is not None else None,
        previous_cert=ca.previous,
    )


def _certificate_event(target: Target, *, reason: str, message: str) -> None:
    kopf.event(target.body, type="Normal", reason=reason, message=message)


async def _ensure_cert_manager(ctx: Context, target: Target, spec: ClusterSpec) -> bytes | None:
    """cert-manager Certificates; their issuer's CA (ca.crt of the manager's Secret, as
    cert-manager writes it) becomes the trust Secret once it is there."""
    kw = {"name": target.name, "namespace": target.namespace}
    for component in (builders.MANAGER, builders.STORAGE):
        try:
            await apply(ctx, target, builders.build_certificate(spec, component=component, **kw))
        except kopf.TemporaryError as exc:
            cause = exc.__cause__
            if isinstance(cause, KubeError) and cause.status == 404:
                message = (
                    "spec.certificates.issuer needs cert-manager, and the API server has no"
                    " cert-manager.io/v1 Certificate: install cert-manager or remove the issuer"
                )
                kopf.event(
                    target.body, type="Warning", reason="CertManagerMissing", message=message
                )
                raise kopf.TemporaryError(message, delay=60) from exc
            raise
    path = object_path("v1", "Secret", namespace=target.namespace, name=target.names.manager_tls)
    issued = certs.read_leaf(await _get(ctx, path))
    if issued is None or not issued.ca:
        log.info(
            "waiting for cert-manager cluster=%s/%s secret=%s",
            target.namespace,
            target.name,
            target.names.manager_tls,
        )
        return None
    await apply(ctx, target, builders.build_trust_secret(ca=issued.ca, **kw))
    return issued.ca


async def ensure_manager_rbac(ctx: Context, target: Target) -> None:
    kw = {"name": target.name, "namespace": target.namespace}
    await apply(ctx, target, builders.build_manager_service_account(**kw))
    await apply(ctx, target, builders.build_manager_role(**kw))
    await apply(ctx, target, builders.build_manager_role_binding(**kw))


async def read_statefulset(ctx: Context, target: Target, name: str) -> KubeObject | None:
    path = object_path("apps/v1", "StatefulSet", namespace=target.namespace, name=name)
    return await _get(ctx, path)


async def ensure_storage(
    ctx: Context,
    target: Target,
    spec: ClusterSpec,
    *,
    image: str,
    plan: ScalePlan,
    ca_id: str | None,
) -> KubeObject:
    kw = {"name": target.name, "namespace": target.namespace}
    await apply(ctx, target, builders.build_storage_service(**kw))
    await apply(ctx, target, builders.build_storage_disruption_budget(**kw))
    return await apply(
        ctx,
        target,
        builders.build_storage_statefulset(
            spec, image=image, replicas=plan.replicas, ca_id=ca_id, **kw
        ),
    )


async def ensure_manager(
    ctx: Context, target: Target, spec: ClusterSpec, *, image: str, ca_id: str | None
) -> KubeObject:
    kw = {"name": target.name, "namespace": target.namespace}
    await apply(ctx, target, builders.build_manager_service(**kw))
    return await apply(
        ctx, target, builders.build_manager_statefulset(spec, image=image, ca_id=ca_id, **kw)
    )


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
    if await _get(ctx, path) is None:
        return
    try:
        if await ctx.api.delete(path):
            log.info("deleted toolbox deployment=%s", path)
    except KubeError as exc:
        raise kopf.TemporaryError(f"cannot delete toolbox: {exc}", delay=15) from exc


async def ask_manager(
    ctx: Context, target: Target, *, token: str, ca: bytes | None, manager_ready: bool
) -> tuple[ClusterStats | None, DrainProgress | None]:
    """-> (stats, drain status); None for what the manager could not answer."""
    if not manager_ready:
        return None, None
    client = await _manager(ctx, target, token, ca)
    if client is None:
        return None, None
    stats: ClusterStats | None = None
    drain: DrainProgress | None = None
    try:
        stats = await client.stats()
        drain = await client.drain_status()
    except CofreError as exc:
        log.warning("manager did not answer cluster=%s/%s: %s", target.namespace, target.name, exc)
    return stats, drain


async def _manager(
    ctx: Context, target: Target, token: str, ca: bytes | None
) -> ManagerClient | None:
    """A client of the cluster's manager trusting the cluster's CA (None: no usable CA yet)."""
    if ca is None:
        log.info("no CA yet; manager not asked cluster=%s/%s", target.namespace, target.name)
        return None
    try:
        context = ctx.trust.context((target.namespace, target.name), ca)
    except (ssl.SSLError, ValueError) as exc:
        log.warning("unusable CA bundle cluster=%s/%s: %s", target.namespace, target.name, exc)
        return None
    return ManagerClient(ctx.http, target.names.manager_url(target.namespace), token, tls=context)


async def send_drain(
    ctx: Context, target: Target, *, token: str, ca: bytes | None, nodes: tuple[str, ...]
) -> bool:
    """Make the manager's draining set exactly ``nodes``."""
    client = await _manager(ctx, target, token, ca)
    if client is None:
        return False
    try:
        await client.set_draining(nodes)
    except CofreError as exc:
        log.warning("drain request failed cluster=%s nodes=%s: %s", target.name, nodes, exc)
        return False
    log.info("drain set cluster=%s/%s nodes=%s", target.namespace, target.name, nodes or "none")
    return True


async def reconcile(
    ctx: Context, target: Target, spec: ClusterSpec, *, previous: Mapping[str, Any]
) -> KubeObject:
    """Bring every child in line with ``spec``; return the new status."""
    names = target.names
    image = spec.image or ctx.default_image
    token = await ensure_secret(ctx, target)
    ca = await ensure_certificates(ctx, target, spec, now=datetime.now(UTC))
    await ensure_manager_rbac(ctx, target)

    manager_sts = await read_statefulset(ctx, target, names.manager)
    storage_sts = await read_statefulset(ctx, target, names.storage)
    manager_ready = statefulset_ready(manager_sts) >= 1
    stats, drain = await ask_manager(ctx, target, token=token, ca=ca, manager_ready=manager_ready)
    current = None if storage_sts is None else int(storage_sts["spec"].get("replicas", 0))
    plan = plan_scale(
        statefulset=names.storage,
        desired=spec.storage_nodes,
        current=current,
        replication_factor=spec.replication_factor,
        primary_keeps_copy=spec.primary_keeps_copy,
        drain=drain,
    )
    sent = False
    if plan.send_drain is not None:
        sent = await send_drain(ctx, target, token=token, ca=ca, nodes=plan.send_drain)
    ca_id = certs.newest_ca_id(ca) if ca is not None else None
    storage_sts = await ensure_storage(ctx, target, spec, image=image, plan=plan, ca_id=ca_id)
    manager_sts = await ensure_manager(ctx, target, spec, image=image, ca_id=ca_id)
    await ensure_toolbox(ctx, target, spec, image=image)

    before = condition(previous.get("conditions") or [], "ScalingDown") or {}
    post(
        target,
        scale_events(plan, current=current, sent=sent, previous_reason=before.get("reason")),
    )
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
        replicas=plan.replicas,
        plan=plan,
        selector=storage_selector(target.name),
        stats=stats,
        replication_factor=spec.replication_factor,
        capacity_warning_percent=spec.capacity_warning_percent,
    )
    status = build_status(previous, observed, now=datetime.now(UTC))
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


async def observe(
    ctx: Context, target: Target, spec: ClusterSpec, *, previous: Mapping[str, Any]
) -> KubeObject | None:
    """The status as the children show it now, without writing a child or asking the manager.

    What a child's change can alter: readiness and phase. The spec's generation, the scale plan
    (ScalingDown) and the manager's numbers stay what the last full pass recorded. None: no full
    pass has recorded a status yet.
    """
    if "observedGeneration" not in previous:
        return None
    generation = int(previous["observedGeneration"])
    names = target.names
    manager_sts = await read_statefulset(ctx, target, names.manager)
    storage_sts = await read_statefulset(ctx, target, names.storage)
    replicas = 0 if storage_sts is None else int(storage_sts["spec"].get("replicas", 0))
    readiness = Readiness(
        desired=spec.storage_nodes,
        replicas=replicas,
        ready_nodes=statefulset_ready(storage_sts),
        rolling_out=statefulset_rolling_out(storage_sts),
        manager_ready=statefulset_ready(manager_sts) >= 1,
        draining=scaling_down(previous),
        was_ready=was_ready(previous, generation=generation),
    )
    observed = Observed(
        generation=generation,
        phase=phase_of(readiness),
        desired=spec.storage_nodes,
        ready_nodes=readiness.ready_nodes,
        manager_ready=readiness.manager_ready,
        replicas=replicas,
        plan=None,
        selector=storage_selector(target.name),
        stats=None,
        replication_factor=spec.replication_factor,
        capacity_warning_percent=spec.capacity_warning_percent,
    )
    return build_status(previous, observed, now=datetime.now(UTC))


async def publish_status(
    ctx: Context,
    target: Target,
    spec: ClusterSpec,
    *,
    previous: Mapping[str, Any],
    status: Mapping[str, Any],
) -> bool:
    """Write what changed in ``status`` (nothing: no request) and post a phase change as an event.

    -> whether anything was written.
    """
    changed = changed_fields(previous, status)
    if not changed:
        return False
    try:
        await ctx.api.patch_status(target.path, changed)
    except KubeError as exc:
        if exc.status == 404:
            log.debug("cluster=%s/%s gone before its status", target.namespace, target.name)
            return False
        raise _write_error(KIND, target.name, exc) from exc
    post(target, status_events(previous, status, desired=spec.storage_nodes))
    log.debug(
        "status written cluster=%s/%s fields=%s",
        target.namespace,
        target.name,
        ",".join(sorted(changed)),
    )
    return True


def post(target: Target, events: list[Event]) -> None:
    for event in events:
        kopf.event(target.body, type=event.type, reason=event.reason, message=event.message)
        log.info(
            "event cluster=%s/%s reason=%s message=%s",
            target.namespace,
            target.name,
            event.reason,
            event.message,
        )

"""The BackupCluster's status: phase, conditions and the numbers the manager reports.

``set_condition`` is the one place conditions change; it keeps lastTransitionTime unless the
condition's status flips, as Kubernetes conventions ask.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cofre.kube import KubeObject
from cofre.operator.decisions import Phase, ScalePlan
from cofre.protocol.manager_api import ClusterStats

CONDITION_TYPES = ("Ready", "Progressing", "Degraded", "ScalingDown")


def timestamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    *,
    type: str,
    status: bool,
    reason: str,
    message: str,
    now: datetime,
) -> list[KubeObject]:
    """``conditions`` with ``type`` set (added or replaced), in a stable order."""
    text = "True" if status else "False"
    previous = next((c for c in conditions if c.get("type") == type), None)
    changed = previous is None or previous.get("status") != text
    new = {
        "type": type,
        "status": text,
        "reason": reason,
        "message": message,
        "lastTransitionTime": (
            timestamp(now) if changed or previous is None else previous["lastTransitionTime"]
        ),
    }
    out = [dict(c) for c in conditions if c.get("type") != type]
    out.append(new)
    order = {t: i for i, t in enumerate(CONDITION_TYPES)}
    return sorted(out, key=lambda c: order.get(str(c.get("type")), len(order)))


def condition(conditions: Sequence[Mapping[str, Any]], type: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type), None)


@dataclass(frozen=True, kw_only=True)
class Observed:
    """What one reconcile pass saw."""

    generation: int
    phase: Phase
    desired: int
    ready_nodes: int
    manager_ready: bool
    # The storage StatefulSet's replicas (what the plan gave it).
    replicas: int
    # None: a status-only refresh, which keeps the last full pass's ScalingDown condition.
    plan: ScalePlan | None
    selector: str
    # GET /v1/stats, None when the manager could not be asked.
    stats: ClusterStats | None


def build_status(previous: Mapping[str, Any], observed: Observed, *, now: datetime) -> KubeObject:
    """The new status document (a full replacement of the fields it names)."""
    o = observed
    conditions: list[KubeObject] = list(previous.get("conditions") or [])
    nodes = f"{o.ready_nodes}/{o.desired} storage nodes ready"
    manager = "manager ready" if o.manager_ready else "manager not ready"
    conditions = set_condition(
        conditions,
        type="Ready",
        status=o.phase == "Ready",
        reason="ClusterReady" if o.phase == "Ready" else "NotReady",
        message=f"{nodes}, {manager}",
        now=now,
    )
    conditions = set_condition(
        conditions,
        type="Progressing",
        status=o.phase in ("Progressing", "ScalingDown"),
        reason="Reconciling" if o.phase in ("Progressing", "ScalingDown") else "Stable",
        message=f"{nodes}, {manager}",
        now=now,
    )
    conditions = set_condition(
        conditions,
        type="Degraded",
        status=o.phase == "Degraded",
        reason="NodesNotReady" if o.phase == "Degraded" else "Healthy",
        message=f"{nodes}, {manager}" if o.phase == "Degraded" else "",
        now=now,
    )
    reasons = {
        "steady": "EndingDrain" if o.plan is not None and o.plan.targets else "Idle",
        "draining": "Draining",
        "waiting": "WaitingForManager",
        "removing": "RemovingDrainedNodes",
        "refused": "BelowReplicationMinimum",
    }
    if o.plan is not None:
        conditions = set_condition(
            conditions,
            type="ScalingDown",
            status=o.plan.state in ("draining", "waiting", "removing"),
            reason=reasons[o.plan.state],
            message=o.plan.message,
            now=now,
        )
    status: KubeObject = {
        "phase": o.phase,
        "observedGeneration": o.generation,
        "conditions": conditions,
        "readyNodes": o.ready_nodes,
        "storageNodes": o.replicas,
        "selector": o.selector,
    }
    if o.stats is not None:
        status.update(
            usedBytes=o.stats.used_bytes,
            used=human_bytes(o.stats.used_bytes),
            capacityBytes=o.stats.capacity_bytes,
            files=o.stats.files,
            underReplicatedChunks=o.stats.under_replicated_chunks,
        )
    return status


def human_bytes(n: int) -> str:
    """1536 -> "1.5Ki": short, for the printer column."""
    value = float(n)
    for unit in ("", "Ki", "Mi", "Gi", "Ti", "Pi"):
        if value < 1024 or unit == "Pi":
            return f"{n}" if unit == "" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def scaling_down(previous: Mapping[str, Any]) -> bool:
    """Whether the last full pass left a drain under way (its ScalingDown condition says so)."""
    scaling = condition(previous.get("conditions") or [], "ScalingDown") or {}
    return scaling.get("status") == "True" and scaling.get("reason") in (
        "Draining",
        "WaitingForManager",
    )


def changed_fields(previous: Mapping[str, Any], status: Mapping[str, Any]) -> KubeObject:
    """The fields of ``status`` whose value differs from ``previous`` (nothing to write: {})."""
    return {k: v for k, v in status.items() if previous.get(k) != v}


def was_ready(previous: Mapping[str, Any], *, generation: int) -> bool:
    """Whether this generation's spec was reached once before (a shortfall now is a fault)."""
    return previous.get("observedGeneration") == generation and previous.get("phase") in (
        "Ready",
        "Degraded",
    )

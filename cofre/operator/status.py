"""The BackupCluster's status: phase, conditions and the numbers the manager reports.

``set_condition`` is the one place conditions change; it keeps lastTransitionTime unless the
condition's status flips, as Kubernetes conventions ask.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from cofre.kube import KubeObject
from cofre.operator.decisions import Event, Phase, ScalePlan
from cofre.protocol.manager_api import ClusterStats

CONDITION_TYPES = ("Ready", "Progressing", "Degraded", "ScalingDown")
# Degraded's reasons, most severe first: the condition names the first that holds, its message
# lists them all.
DegradedReason = Literal[
    "ManagerNotReady", "NodesNotReady", "ChunksMissing", "UnderReplicated", "CapacityLow"
]
HealthStatus = Literal["green", "yellow", "red"]
# Used share of the capacity (percent) at which a cluster is CapacityLow, unless its spec names
# another (spec.capacityWarningPercent).
DEFAULT_CAPACITY_WARNING_PERCENT = 85


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
    # What the nodes and the manager make of the cluster (decisions.phase_of); the status's
    # phase is Degraded also when the data is (see build_status).
    phase: Phase
    desired: int
    ready_nodes: int
    manager_ready: bool
    # The storage StatefulSet's replicas (what the plan gave it).
    replicas: int
    # None: a status-only refresh, which keeps the last full pass's ScalingDown condition.
    plan: ScalePlan | None
    selector: str
    # GET /v1/stats, None when the manager could not be asked (the last numbers stand).
    stats: ClusterStats | None
    replication_factor: int = 1
    capacity_warning_percent: int = DEFAULT_CAPACITY_WARNING_PERCENT


@dataclass(frozen=True, kw_only=True)
class DataState:
    """The manager's numbers: from this pass's stats, else as the last full pass recorded them."""

    under_replicated: int = 0
    missing: int = 0
    used_bytes: int = 0
    capacity_bytes: int = 0


def data_state(stats: ClusterStats | None, previous: Mapping[str, Any]) -> DataState:
    if stats is not None:
        return DataState(
            under_replicated=stats.under_replicated_chunks,
            missing=stats.missing_chunks,
            used_bytes=stats.used_bytes,
            capacity_bytes=stats.capacity_bytes,
        )
    return DataState(
        under_replicated=int(previous.get("underReplicatedChunks") or 0),
        missing=int(previous.get("missingChunks") or 0),
        used_bytes=int(previous.get("usedBytes") or 0),
        capacity_bytes=int(previous.get("capacityBytes") or 0),
    )


def used_percent(data: DataState) -> int | None:
    """Used bytes as a whole percentage of the capacity (None: no capacity known)."""
    if data.capacity_bytes <= 0:
        return None
    return data.used_bytes * 100 // data.capacity_bytes


@dataclass(frozen=True)
class Fault:
    reason: DegradedReason
    message: str


def faults(o: Observed, data: DataState) -> list[Fault]:
    """Why the cluster is degraded, most severe first ([]: it is not)."""
    out: list[Fault] = []
    # Node shortfalls count only once the spec was reached (phase_of says Degraded): before, or
    # while rolling out or draining, missing pods are work in progress.
    if o.phase == "Degraded" and not o.manager_ready:
        out.append(Fault("ManagerNotReady", "the manager is not ready"))
    if o.phase == "Degraded" and o.ready_nodes < o.desired:
        out.append(Fault("NodesNotReady", f"{o.ready_nodes}/{o.desired} storage nodes ready"))
    if data.missing:
        out.append(Fault("ChunksMissing", f"{data.missing} chunks have no copy on a ready node"))
    if data.under_replicated:
        out.append(
            Fault(
                "UnderReplicated",
                f"{data.under_replicated} chunks have fewer than {o.replication_factor} copies"
                " on ready nodes",
            )
        )
    percent = used_percent(data)
    if percent is not None and percent >= o.capacity_warning_percent:
        out.append(
            Fault(
                "CapacityLow",
                f"{percent}% of the capacity used ({human_bytes(data.used_bytes)} of"
                f" {human_bytes(data.capacity_bytes)}; warning at {o.capacity_warning_percent}%)",
            )
        )
    return out


def health_of(o: Observed, data: DataState, found: Sequence[Fault]) -> HealthStatus:
    """green: ready, nothing wrong; red: chunks unreadable, or could be; yellow: the rest."""
    if not o.manager_ready or o.ready_nodes < o.replication_factor or data.missing:
        return "red"
    if o.phase == "Ready" and not found:
        return "green"
    return "yellow"


def build_status(previous: Mapping[str, Any], observed: Observed, *, now: datetime) -> KubeObject:
    """The new status document (a full replacement of the fields it names)."""
    o = observed
    data = data_state(o.stats, previous)
    found = faults(o, data)
    # A cluster at its spec whose data is degraded is Degraded, not Ready.
    phase: Phase = "Degraded" if o.phase == "Ready" and found else o.phase
    conditions: list[KubeObject] = list(previous.get("conditions") or [])
    nodes = f"{o.ready_nodes}/{o.desired} storage nodes ready"
    manager = "manager ready" if o.manager_ready else "manager not ready"
    # Ready: every node and the manager serve; the data's faults show in Degraded.
    ready = o.phase == "Ready"
    conditions = set_condition(
        conditions,
        type="Ready",
        status=ready,
        reason="ClusterReady" if ready else "NotReady",
        message=f"{nodes}, {manager}",
        now=now,
    )
    progressing = o.phase in ("Progressing", "ScalingDown")
    conditions = set_condition(
        conditions,
        type="Progressing",
        status=progressing,
        reason=PROGRESS_REASONS[o.phase],
        message=f"{nodes}, {manager}",
        now=now,
    )
    conditions = set_condition(
        conditions,
        type="Degraded",
        status=bool(found),
        reason=found[0].reason if found else "Healthy",
        message="; ".join(f.message for f in found),
        now=now,
    )
    if o.plan is not None:
        conditions = set_condition(
            conditions,
            type="ScalingDown",
            status=o.plan.state in ("draining", "waiting", "removing"),
            reason=scaling_reason(o.plan),
            message=o.plan.message,
            now=now,
        )
    status: KubeObject = {
        "phase": phase,
        "healthStatus": health_of(o, data, found),
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
            capacity=human_bytes(o.stats.capacity_bytes),
            files=o.stats.files,
            underReplicatedChunks=o.stats.under_replicated_chunks,
            missingChunks=o.stats.missing_chunks,
        )
    return status


PROGRESS_REASONS: Mapping[Phase, str] = {
    "Progressing": "Reconciling",
    "ScalingDown": "Draining",
    "Ready": "Stable",
    "Degraded": "Stable",
}


def scaling_reason(plan: ScalePlan) -> str:
    return {
        "steady": "EndingDrain" if plan.targets else "Idle",
        "draining": "Draining",
        "waiting": "WaitingForManager",
        "removing": "RemovingDrainedNodes",
        "refused": "BelowReplicationMinimum",
    }[plan.state]


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


def status_events(
    previous: Mapping[str, Any], status: Mapping[str, Any], *, desired: int
) -> list[Event]:
    """The events a status change posts: the phase's move, and Degraded's start, change of
    reason and end (Recovered)."""
    out: list[Event] = []
    phase, before = status.get("phase"), previous.get("phase")
    if phase != before:
        out.append(
            Event(
                "Warning" if phase == "Degraded" else "Normal",
                f"Phase{phase}",
                f"phase {before or 'none'} -> {phase}: "
                f"{status.get('readyNodes', 0)}/{desired} storage nodes ready",
            )
        )
    was = condition(previous.get("conditions") or [], "Degraded") or {}
    now = condition(status.get("conditions") or [], "Degraded") or {}
    health = status.get("healthStatus", "unknown")
    if now.get("status") == "True" and (
        was.get("status") != "True" or was.get("reason") != now.get("reason")
    ):
        out.append(
            Event(
                "Warning",
                "Degraded",
                f"{now.get('reason')}: {now.get('message')} (health {health})",
            )
        )
    elif was.get("status") == "True" and now.get("status") != "True":
        out.append(
            Event(
                "Normal",
                "Recovered",
                f"no longer degraded (was {was.get('reason')}), health {health}",
            )
        )
    return out

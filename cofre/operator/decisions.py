"""Pure decisions of the operator: how to scale the storage nodes, and what phase the cluster is in.

Scale-down never loses data: the pods that will go (the highest ordinals) are drained by the
manager first, and the StatefulSet shrinks only once the manager reports every one of them done
(each chunk they held has its full count of verified copies elsewhere).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cofre.operator.spec import min_storage_nodes
from cofre.protocol.manager_api import DrainStatus

ScaleState = Literal["steady", "draining", "removing", "refused", "waiting"]
Phase = Literal["Progressing", "Ready", "Degraded", "ScalingDown"]


# The manager's GET /v1/drain answer, as the wire layer defines it.
DrainProgress = DrainStatus


@dataclass(frozen=True, kw_only=True)
class ScalePlan:
    # Replicas the storage StatefulSet gets in this pass.
    replicas: int
    state: ScaleState
    # Set: make the manager's draining set exactly these nodes (PUT /v1/drain); () ends every
    # drain, so pods kept after a cancelled scale-down, or back after a scale-up, take data again.
    send_drain: tuple[str, ...] | None = None
    # The pods being drained (refused removal; steady: kept pods still draining).
    targets: tuple[str, ...] = ()
    message: str = ""


def drain_targets(statefulset: str, *, current: int, desired: int) -> tuple[str, ...]:
    """Pods a StatefulSet removes going from ``current`` to ``desired``: the highest ordinals."""
    return tuple(f"{statefulset}-{i}" for i in range(desired, current))


def plan_scale(
    *,
    statefulset: str,
    desired: int,
    current: int | None,
    replication_factor: int,
    primary_keeps_copy: bool,
    drain: DrainProgress | None,
) -> ScalePlan:
    """What to do with the storage StatefulSet now.

    ``current`` is its replica count (None: it does not exist yet); ``drain`` is the manager's
    drain status, None when the manager could not be asked.
    """
    if current is None or desired >= current:
        draining = set(drain.nodes) if drain is not None else set()
        kept = drain_targets(statefulset, current=desired, desired=0)
        stale = tuple(n for n in kept if n in draining)
        message = (
            f"ending the drain of {', '.join(stale)}: they take new data again" if stale else ""
        )
        return ScalePlan(
            replicas=desired,
            state="steady",
            send_drain=() if draining else None,
            targets=stale,
            message=message,
        )
    needed = min_storage_nodes(
        replication_factor=replication_factor, primary_keeps_copy=primary_keeps_copy
    )
    targets = drain_targets(statefulset, current=current, desired=desired)
    if desired < needed:
        return ScalePlan(
            replicas=current,
            state="refused",
            targets=targets,
            message=(
                f"refusing to scale storage nodes from {current} to {desired}: replication factor"
                f" {replication_factor} needs at least {needed}; nothing was removed"
            ),
        )
    if drain is None:
        return ScalePlan(
            replicas=current,
            state="waiting",
            targets=targets,
            message=f"waiting for the manager to drain {', '.join(targets)}",
        )
    if not set(targets) <= set(drain.nodes):
        return ScalePlan(
            replicas=current,
            state="draining",
            send_drain=targets,
            targets=targets,
            message=f"draining {', '.join(targets)}",
        )
    # Nodes of an earlier, larger scale-down that are kept now stop draining.
    exact = targets if set(drain.nodes) - set(targets) else None
    if all(drain.nodes[t].done for t in targets):
        return ScalePlan(
            replicas=desired,
            state="removing",
            send_drain=exact,
            targets=targets,
            message=f"drained {', '.join(targets)}; removing them",
        )
    bytes_left = sum(drain.nodes[t].bytes_left for t in targets)
    chunks_left = sum(drain.nodes[t].chunks_left for t in targets)
    done = sum(1 for t in targets if drain.nodes[t].done)
    return ScalePlan(
        replicas=current,
        state="draining",
        send_drain=exact,
        targets=targets,
        message=(
            f"draining {', '.join(targets)}: {done}/{len(targets)} done, {chunks_left} chunks,"
            f" {bytes_left} bytes left"
        ),
    )


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the BackupCluster."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def scale_events(
    plan: ScalePlan, *, current: int | None, sent: bool, previous_reason: str | None
) -> list[Event]:
    """The events of one pass's scale step, each posted once.

    ``current``: the StatefulSet's replicas before the pass (None: not made yet); ``sent``: the
    plan's drain request reached the manager; ``previous_reason``: the reason of the ScalingDown
    condition the last full pass recorded (which step it had reached).
    """
    out: list[Event] = []
    if current is not None and plan.replicas > current:
        out.append(Event("Normal", "ScaledUp", f"storage nodes {current} -> {plan.replicas}"))
    if sent and plan.send_drain and plan.state == "draining":
        out.append(
            Event(
                "Normal",
                "DrainStarted",
                f"draining {', '.join(plan.send_drain)} before removing them",
            )
        )
    elif sent and plan.targets and plan.state == "steady":
        out.append(
            Event("Normal", "DrainEnded", f"{', '.join(plan.targets)} stay and take new data again")
        )
    if plan.state == "refused" and previous_reason != "BelowReplicationMinimum":
        out.append(Event("Warning", "ScaleDownRefused", plan.message))
    elif plan.state == "removing" and previous_reason != "RemovingDrainedNodes":
        nodes = ", ".join(plan.targets)
        out.append(
            Event(
                "Normal",
                "DrainCompleted",
                f"drained {nodes}: every chunk they held has its copies on the nodes that stay",
            )
        )
        out.append(
            Event(
                "Normal",
                "ScaledDown",
                f"storage nodes {current} -> {plan.replicas}: removing {nodes}",
            )
        )
    return out


@dataclass(frozen=True, kw_only=True)
class Readiness:
    desired: int
    # The storage StatefulSet: spec replicas, and what its status reports.
    replicas: int
    ready_nodes: int
    rolling_out: bool
    manager_ready: bool
    draining: bool
    # The cluster was Ready (or Degraded) at this same generation before this pass.
    was_ready: bool


def phase_of(r: Readiness) -> Phase:
    if r.draining:
        return "ScalingDown"
    if (
        r.manager_ready
        and r.replicas == r.desired
        and r.ready_nodes >= r.desired
        and not r.rolling_out
    ):
        return "Ready"
    # A shortfall after the spec was reached is a fault; before that, work in progress.
    if r.was_ready and not r.rolling_out and r.replicas == r.desired:
        return "Degraded"
    return "Progressing"


def statefulset_rolling_out(sts: Mapping[str, Any] | None) -> bool:
    """Whether a StatefulSet is still converging on its spec (new revision, pods to create)."""
    if sts is None:
        return True
    meta, spec, status = sts.get("metadata") or {}, sts.get("spec") or {}, sts.get("status") or {}
    replicas = int(spec.get("replicas", 1))
    return (
        int(status.get("observedGeneration", 0)) < int(meta.get("generation", 0))
        or int(status.get("replicas", 0)) != replicas
        or int(status.get("updatedReplicas", 0)) < replicas
    )


def statefulset_ready(sts: Mapping[str, Any] | None) -> int:
    if sts is None:
        return 0
    return int((sts.get("status") or {}).get("readyReplicas", 0))

"""Status documents and conditions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cofre.operator.decisions import Event, ScalePlan
from cofre.operator.status import (
    Observed,
    build_status,
    changed_fields,
    condition,
    human_bytes,
    scaling_down,
    set_condition,
    status_events,
    was_ready,
)
from cofre.protocol.manager_api import ClusterStats

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
T1 = datetime(2026, 1, 1, 12, 5, 0, tzinfo=UTC)


def test_set_condition_keeps_transition_time_while_status_holds() -> None:
    conds = set_condition([], type="Ready", status=True, reason="A", message="m", now=T0)
    conds = set_condition(conds, type="Ready", status=True, reason="B", message="n", now=T1)
    (ready,) = conds
    assert ready == {
        "type": "Ready",
        "status": "True",
        "reason": "B",
        "message": "n",
        "lastTransitionTime": "2026-01-01T12:00:00Z",
    }
    conds = set_condition(conds, type="Ready", status=False, reason="C", message="", now=T1)
    assert conds[0]["lastTransitionTime"] == "2026-01-01T12:05:00Z"
    assert conds[0]["status"] == "False"


def test_set_condition_keeps_a_stable_order() -> None:
    conds = set_condition([], type="ScalingDown", status=False, reason="x", message="", now=T0)
    conds = set_condition(conds, type="Ready", status=True, reason="x", message="", now=T0)
    assert [c["type"] for c in conds] == ["Ready", "ScalingDown"]


def _observed(**kw: object) -> Observed:
    base: dict[str, object] = {
        "generation": 3,
        "phase": "Ready",
        "desired": 4,
        "ready_nodes": 4,
        "manager_ready": True,
        "replicas": 4,
        "plan": ScalePlan(replicas=4, state="steady"),
        "selector": "a=b",
        "stats": ClusterStats(
            nodes_ready=4,
            nodes_total=4,
            used_bytes=1536,
            capacity_bytes=4096,
            files=2,
            versions=2,
            under_replicated_chunks=0,
        ),
        "replication_factor": 2,
        "capacity_warning_percent": 85,
    }
    base.update(kw)
    return Observed(**base)  # type: ignore[arg-type]


def test_build_status_ready() -> None:
    status = build_status({}, _observed(), now=T0)
    assert status["phase"] == "Ready"
    assert status["observedGeneration"] == 3
    assert status["readyNodes"] == 4
    assert status["selector"] == "a=b"
    assert (status["usedBytes"], status["capacityBytes"], status["files"]) == (1536, 4096, 2)
    assert status["used"] == "1.5Ki"
    assert (status["capacity"], status["healthStatus"]) == ("4.0Ki", "green")
    assert (status["underReplicatedChunks"], status["missingChunks"]) == (0, 0)
    by_type = {c["type"]: c["status"] for c in status["conditions"]}
    assert by_type == {
        "Ready": "True",
        "Progressing": "False",
        "Degraded": "False",
        "ScalingDown": "False",
    }


def test_build_status_draining_reports_progress() -> None:
    plan = ScalePlan(
        replicas=6, state="draining", targets=("n-5",), message="draining n-5: 7 bytes left"
    )
    status = build_status({}, _observed(phase="ScalingDown", plan=plan, stats=None), now=T0)
    scaling = condition(status["conditions"], "ScalingDown")
    assert scaling is not None
    assert scaling["status"] == "True"
    assert scaling["reason"] == "Draining"
    assert "7 bytes left" in scaling["message"]
    assert "usedBytes" not in status


def test_build_status_refusal_is_a_false_scaling_condition() -> None:
    plan = ScalePlan(replicas=4, state="refused", message="refusing")
    status = build_status({}, _observed(plan=plan), now=T0)
    scaling = condition(status["conditions"], "ScalingDown")
    assert scaling is not None
    assert (scaling["status"], scaling["reason"]) == ("False", "BelowReplicationMinimum")


def test_a_refresh_keeps_the_scaling_down_condition() -> None:
    plan = ScalePlan(replicas=6, state="draining", targets=("n-5",), message="draining n-5")
    before = build_status({}, _observed(phase="ScalingDown", plan=plan), now=T0)
    assert scaling_down(before)
    after = build_status(
        before, _observed(phase="ScalingDown", plan=None, replicas=6, ready_nodes=5), now=T0
    )
    assert condition(after["conditions"], "ScalingDown") == condition(
        before["conditions"], "ScalingDown"
    )
    assert (after["storageNodes"], after["readyNodes"]) == (6, 5)
    assert set(changed_fields(before, after)) == {"readyNodes", "storageNodes", "conditions"}
    assert changed_fields(after, after) == {}
    removing = ScalePlan(replicas=3, state="removing", targets=("n-5",))
    assert not scaling_down(build_status({}, _observed(plan=removing), now=T0))


def test_was_ready_only_at_the_same_generation() -> None:
    assert was_ready({"observedGeneration": 3, "phase": "Ready"}, generation=3)
    assert was_ready({"observedGeneration": 3, "phase": "Degraded"}, generation=3)
    assert not was_ready({"observedGeneration": 2, "phase": "Ready"}, generation=3)
    assert not was_ready({"observedGeneration": 3, "phase": "Progressing"}, generation=3)


def test_human_bytes() -> None:
    assert human_bytes(0) == "0"
    assert human_bytes(1023) == "1023"
    assert human_bytes(10 * 1024**3) == "10.0Gi"


def _stats(*, used: int = 1536, capacity: int = 4096, under: int = 0, missing: int = 0) -> Any:
    return ClusterStats(
        nodes_ready=4,
        nodes_total=4,
        used_bytes=used,
        capacity_bytes=capacity,
        files=2,
        versions=2,
        under_replicated_chunks=under,
        missing_chunks=missing,
    )


def _degraded(status: dict[str, Any]) -> tuple[str, str, str]:
    cond = condition(status["conditions"], "Degraded")
    assert cond is not None
    return cond["status"], cond["reason"], cond["message"]


@pytest.mark.parametrize(
    ("observed", "reason", "words", "health"),
    [
        # A node down after the spec was reached (phase_of says Degraded).
        (
            {"phase": "Degraded", "ready_nodes": 3},
            "NodesNotReady",
            "3/4 storage nodes ready",
            "yellow",
        ),
        # Fewer ready nodes than copies: a chunk may have none left that answers.
        ({"phase": "Degraded", "ready_nodes": 1}, "NodesNotReady", "1/4", "red"),
        ({"phase": "Degraded", "manager_ready": False}, "ManagerNotReady", "manager", "red"),
        (
            {"stats": _stats(under=7)},
            "UnderReplicated",
            "7 chunks have fewer than 2 copies",
            "yellow",
        ),
        ({"stats": _stats(under=3, missing=2)}, "ChunksMissing", "2 chunks have no copy", "red"),
        (
            {"stats": _stats(used=870, capacity=1000)},
            "CapacityLow",
            "87% of the capacity used",
            "yellow",
        ),
        # The threshold is the spec's.
        (
            {"stats": _stats(used=870, capacity=1000), "capacity_warning_percent": 80},
            "CapacityLow",
            "warning at 80%",
            "yellow",
        ),
    ],
)
def test_each_degraded_reason_and_its_health(
    observed: dict[str, Any], reason: str, words: str, health: str
) -> None:
    status = build_status({}, _observed(**observed), now=T0)
    state, got_reason, message = _degraded(status)
    assert (state, got_reason) == ("True", reason)
    assert words in message
    assert status["healthStatus"] == health
    assert status["phase"] == "Degraded"


def test_below_the_threshold_nothing_is_degraded() -> None:
    status = build_status({}, _observed(stats=_stats(used=840, capacity=1000)), now=T0)
    assert _degraded(status) == ("False", "Healthy", "")
    assert (status["phase"], status["healthStatus"]) == ("Ready", "green")
    ready = condition(status["conditions"], "Ready")
    assert ready is not None and ready["status"] == "True"


def test_the_most_severe_reason_leads_and_the_message_lists_all() -> None:
    stats = _stats(under=5, used=950, capacity=1000)
    status = build_status({}, _observed(phase="Degraded", ready_nodes=3, stats=stats), now=T0)
    state, reason, message = _degraded(status)
    assert (state, reason) == ("True", "NodesNotReady")
    assert message == (
        "3/4 storage nodes ready; 5 chunks have fewer than 2 copies on ready nodes;"
        " 95% of the capacity used (950 of 1000; warning at 85%)"
    )


def test_data_faults_keep_ready_true_but_make_the_phase_degraded() -> None:
    status = build_status({}, _observed(stats=_stats(under=1)), now=T0)
    ready = condition(status["conditions"], "Ready")
    assert ready is not None and ready["status"] == "True"
    assert status["phase"] == "Degraded"


def test_a_refresh_judges_by_the_numbers_the_last_pass_recorded() -> None:
    before = build_status({}, _observed(stats=_stats(under=4)), now=T0)
    after = build_status(before, _observed(stats=None), now=T1)
    assert _degraded(after)[1] == "UnderReplicated"
    assert after["healthStatus"] == "yellow"
    assert "underReplicatedChunks" not in changed_fields(before, after)


@pytest.mark.parametrize(
    ("observed", "health"),
    [
        ({"phase": "Progressing", "ready_nodes": 2}, "yellow"),
        ({"phase": "ScalingDown"}, "yellow"),
        # Being created: the manager is not up yet.
        ({"phase": "Progressing", "manager_ready": False, "ready_nodes": 0}, "red"),
        # Scaling with too few nodes up for the copies.
        ({"phase": "Progressing", "ready_nodes": 1}, "red"),
    ],
)
def test_health_while_changing(observed: dict[str, Any], health: str) -> None:
    status = build_status({}, _observed(**observed), now=T0)
    assert status["healthStatus"] == health
    # Work in progress is not a fault.
    assert _degraded(status)[0] == "False"


def test_progressing_names_what_is_in_progress() -> None:
    scaling = build_status({}, _observed(phase="ScalingDown"), now=T0)
    progressing = condition(scaling["conditions"], "Progressing")
    assert progressing is not None
    assert (progressing["status"], progressing["reason"]) == ("True", "Draining")
    ready = build_status({}, _observed(), now=T0)
    progressing = condition(ready["conditions"], "Progressing")
    assert progressing is not None
    assert (progressing["status"], progressing["reason"]) == ("False", "Stable")


def test_events_of_degradation_and_recovery() -> None:
    healthy = build_status({}, _observed(), now=T0)
    down = build_status(healthy, _observed(phase="Degraded", ready_nodes=3), now=T1)
    assert status_events(healthy, down, desired=4) == [
        Event("Warning", "PhaseDegraded", "phase Ready -> Degraded: 3/4 storage nodes ready"),
        Event("Warning", "Degraded", "NodesNotReady: 3/4 storage nodes ready (health yellow)"),
    ]
    # The same fault again: nothing new to say.
    again = build_status(down, _observed(phase="Degraded", ready_nodes=3), now=T1)
    assert status_events(down, again, desired=4) == []
    # The node is back but its chunks are short of copies until repair: a new reason.
    short = build_status(again, _observed(stats=_stats(under=9)), now=T1)
    assert status_events(again, short, desired=4) == [
        Event(
            "Warning",
            "Degraded",
            "UnderReplicated: 9 chunks have fewer than 2 copies on ready nodes (health yellow)",
        )
    ]
    well = build_status(short, _observed(), now=T1)
    assert status_events(short, well, desired=4) == [
        Event("Normal", "PhaseReady", "phase Degraded -> Ready: 4/4 storage nodes ready"),
        Event("Normal", "Recovered", "no longer degraded (was UnderReplicated), health green"),
    ]


def test_a_first_status_posts_its_phase_only() -> None:
    status = build_status({}, _observed(phase="Progressing", ready_nodes=0), now=T0)
    assert status_events({}, status, desired=4) == [
        Event("Normal", "PhaseProgressing", "phase none -> Progressing: 0/4 storage nodes ready")
    ]

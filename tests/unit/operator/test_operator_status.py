"""Status documents and conditions."""

from __future__ import annotations

from datetime import UTC, datetime

from cofre.operator.decisions import ScalePlan
from cofre.operator.status import (
    Observed,
    build_status,
    changed_fields,
    condition,
    human_bytes,
    scaling_down,
    set_condition,
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
    assert status["underReplicatedChunks"] == 0
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

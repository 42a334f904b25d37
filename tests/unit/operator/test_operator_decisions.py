"""Scale plans (drain before removal, refuse below the minimum) and phases."""

from __future__ import annotations

import pytest

from cofre.operator.decisions import (
    DrainProgress,
    Event,
    Readiness,
    ScalePlan,
    drain_targets,
    phase_of,
    plan_scale,
    scale_events,
    statefulset_rolling_out,
)
from cofre.protocol.manager_api import NodeDrain

STS = "demo-storage"


def _drain(**nodes: tuple[bool, int]) -> DrainProgress:
    return DrainProgress(
        done=all(done for done, _ in nodes.values()),
        chunks_left=0,
        bytes_left=sum(b for _, b in nodes.values()),
        nodes={
            name.replace("_", "-"): NodeDrain(done=done, chunks_left=1 if b else 0, bytes_left=b)
            for name, (done, b) in nodes.items()
        },
    )


def _plan(desired: int, current: int | None, drain: DrainProgress | None, factor: int = 2):
    return plan_scale(
        statefulset=STS,
        desired=desired,
        current=current,
        replication_factor=factor,
        primary_keeps_copy=False,
        drain=drain,
    )


def test_drain_targets_are_the_highest_ordinals() -> None:
    assert drain_targets(STS, current=6, desired=3) == (
        "demo-storage-3",
        "demo-storage-4",
        "demo-storage-5",
    )
    assert drain_targets(STS, current=3, desired=3) == ()


def test_new_cluster_gets_the_spec() -> None:
    plan = _plan(4, None, None)
    assert (plan.replicas, plan.state, plan.send_drain) == (4, "steady", None)


def test_scale_up_is_immediate() -> None:
    plan = _plan(6, 4, _drain())
    assert (plan.replicas, plan.state, plan.send_drain) == (6, "steady", None)


def test_scale_down_starts_a_drain_and_keeps_the_pods() -> None:
    plan = _plan(3, 6, _drain())
    assert plan.replicas == 6
    assert plan.state == "draining"
    assert plan.send_drain == ("demo-storage-3", "demo-storage-4", "demo-storage-5")


def test_scale_down_waits_while_drain_is_in_progress() -> None:
    drain = _drain(demo_storage_3=(True, 0), demo_storage_4=(False, 4096), demo_storage_5=(True, 0))
    plan = _plan(3, 6, drain)
    assert plan.replicas == 6
    assert plan.state == "draining"
    assert plan.send_drain is None
    assert "4096 bytes left" in plan.message
    assert "2/3 done, 1 chunks" in plan.message


def test_scale_down_removes_only_when_every_target_is_done() -> None:
    drain = _drain(demo_storage_3=(True, 0), demo_storage_4=(True, 0), demo_storage_5=(True, 0))
    plan = _plan(3, 6, drain)
    assert (plan.replicas, plan.state) == (3, "removing")


def test_drain_covering_more_than_the_targets_still_counts() -> None:
    # 6 -> 3 was draining 3..5; the spec now says 4: 4 and 5 go once they are done.
    drain = _drain(demo_storage_3=(False, 1), demo_storage_4=(True, 0), demo_storage_5=(True, 0))
    plan = _plan(4, 6, drain)
    # 3 is kept now: it leaves the draining set.
    assert (plan.replicas, plan.state) == (4, "removing")
    assert plan.send_drain == ("demo-storage-4", "demo-storage-5")


def test_targets_missing_from_the_drain_are_sent_again() -> None:
    drain = _drain(demo_storage_5=(True, 0))
    plan = _plan(4, 6, drain)
    assert (plan.replicas, plan.state) == (6, "draining")
    assert plan.send_drain == ("demo-storage-4", "demo-storage-5")


def test_scale_down_without_manager_answer_removes_nothing() -> None:
    plan = _plan(3, 6, None)
    assert (plan.replicas, plan.state, plan.send_drain) == (6, "waiting", None)


@pytest.mark.parametrize(("factor", "desired"), [(2, 2), (2, 1), (3, 3)])
def test_scale_below_replication_minimum_is_refused(factor: int, desired: int) -> None:
    plan = _plan(desired, 4, _drain(), factor=factor)
    assert plan.state == "refused"
    assert plan.replicas == 4
    assert plan.send_drain is None
    assert "nothing was removed" in plan.message


def test_primary_keeping_a_copy_lowers_the_minimum() -> None:
    plan = plan_scale(
        statefulset=STS,
        desired=2,
        current=4,
        replication_factor=2,
        primary_keeps_copy=True,
        drain=_drain(),
    )
    assert plan.state == "draining"


def test_finished_drain_of_removed_pods_is_quiet() -> None:
    drain = _drain(demo_storage_3=(True, 0), demo_storage_4=(True, 0))
    plan = _plan(3, 3, drain)
    # The removed pods leave the draining set, so they take data if a scale-up brings them back.
    assert (plan.replicas, plan.state, plan.send_drain, plan.targets) == (3, "steady", (), ())


def test_kept_pods_still_draining_are_reported() -> None:
    drain = _drain(demo_storage_3=(False, 10))
    plan = _plan(4, 4, drain)
    assert (plan.state, plan.send_drain, plan.targets) == ("steady", (), ("demo-storage-3",))
    assert "take new data again" in plan.message


def test_drain_progress_from_manager_json() -> None:
    drain = DrainProgress.model_validate_json(
        b'{"done": false, "chunks_left": 2, "bytes_left": 300, "nodes": '
        b'{"demo-storage-3": {"done": false, "chunks_left": 2, "bytes_left": 300}}}'
    )
    assert drain.nodes["demo-storage-3"] == NodeDrain(done=False, chunks_left=2, bytes_left=300)


def _r(**kw: object) -> Readiness:
    base: dict[str, object] = {
        "desired": 4,
        "replicas": 4,
        "ready_nodes": 4,
        "rolling_out": False,
        "manager_ready": True,
        "draining": False,
        "was_ready": False,
    }
    base.update(kw)
    return Readiness(**base)  # type: ignore[arg-type]


def test_phases() -> None:
    assert phase_of(_r()) == "Ready"
    assert phase_of(_r(draining=True)) == "ScalingDown"
    assert phase_of(_r(ready_nodes=2)) == "Progressing"
    assert phase_of(_r(ready_nodes=3, was_ready=True)) == "Degraded"
    assert phase_of(_r(manager_ready=False, was_ready=True)) == "Degraded"
    assert phase_of(_r(ready_nodes=3, was_ready=True, rolling_out=True)) == "Progressing"
    assert phase_of(_r(manager_ready=False)) == "Progressing"


def test_statefulset_rolling_out() -> None:
    assert statefulset_rolling_out(None)
    steady = {
        "metadata": {"generation": 2},
        "spec": {"replicas": 3},
        "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3},
    }
    assert not statefulset_rolling_out(steady)
    assert statefulset_rolling_out({**steady, "metadata": {"generation": 3}})
    assert statefulset_rolling_out({**steady, "spec": {"replicas": 4}})


def _reasons(events: list[Event]) -> list[str]:
    return [e.reason for e in events]


def test_scale_up_posts_scaled_up() -> None:
    plan = _plan(6, 4, _drain())
    assert scale_events(plan, current=4, sent=False, previous_reason="Idle") == [
        Event("Normal", "ScaledUp", "storage nodes 4 -> 6")
    ]
    # A new cluster's StatefulSet is made, not scaled.
    assert scale_events(_plan(4, None, None), current=None, sent=False, previous_reason=None) == []


def test_a_scale_down_posts_drain_start_then_completion_once() -> None:
    start = _plan(3, 4, _drain())
    assert _reasons(scale_events(start, current=4, sent=True, previous_reason="Idle")) == [
        "DrainStarted"
    ]
    # The request did not reach the manager: nothing started.
    assert scale_events(start, current=4, sent=False, previous_reason="Idle") == []
    going = _plan(3, 4, _drain(demo_storage_3=(False, 10)))
    assert scale_events(going, current=4, sent=False, previous_reason="Draining") == []
    done = _plan(3, 4, _drain(demo_storage_3=(True, 0)))
    events = scale_events(done, current=4, sent=False, previous_reason="Draining")
    assert _reasons(events) == ["DrainCompleted", "ScaledDown"]
    assert events[1].message == "storage nodes 4 -> 3: removing demo-storage-3"
    assert scale_events(done, current=4, sent=False, previous_reason="RemovingDrainedNodes") == []


def test_a_cancelled_drain_posts_drain_ended() -> None:
    plan = ScalePlan(replicas=4, state="steady", send_drain=(), targets=("demo-storage-3",))
    assert _reasons(scale_events(plan, current=4, sent=True, previous_reason="Draining")) == [
        "DrainEnded"
    ]


def test_a_refused_scale_down_is_posted_once() -> None:
    plan = _plan(2, 4, _drain())
    assert _reasons(scale_events(plan, current=4, sent=False, previous_reason="Idle")) == [
        "ScaleDownRefused"
    ]
    assert (
        scale_events(plan, current=4, sent=False, previous_reason="BelowReplicationMinimum") == []
    )

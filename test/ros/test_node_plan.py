"""``~/plan`` (IRP refinement) of ``world_irp`` as a separate process: a GO result with feedback,
cancellation between iterations, one plan at a time, and ``~/rehearse`` answering during a plan.
"""
from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.ros

NS = "/irp_plan"  # of the shared ``node`` and ``client`` fixtures (conftest.py)
STATUS_SUCCEEDED, STATUS_CANCELED, STATUS_ABORTED = 4, 5, 6  # action_msgs/GoalStatus


@pytest.fixture(scope="module")
def client(client):
    # The forward model holds the GIL while it runs: on a loaded machine a plan step can keep the
    # node from taking in states for longer than the default 0.5 s, which would (rightly) make
    # requests during a plan NO_GO_STALE_STATE. Staleness is tested elsewhere.
    assert all(r.successful for r in client.set_params(state_timeout_s=10.0))
    return client


def test_plan_reaches_go_with_feedback(client):
    feedback: list = []
    handle = client.send_plan(client.plan_goal(population=32, max_iterations=15), feedback)
    result = client.wait_future(handle.get_result_async(), timeout=60.0, what="the plan result")
    r = result.result
    assert result.status == STATUS_SUCCEEDED, r.halt_reason
    assert r.go and r.verdict.code_name == "GO" and r.verdict.chosen
    assert r.iterations >= 1 and len(feedback) >= 1
    assert [f.iteration for f in feedback] == list(range(1, len(feedback) + 1))
    assert feedback[-1].best_energy == pytest.approx(r.energy)
    assert feedback[-1].feasible
    assert r.halt_reason in ("feasible_go", "slope<eps", "max_steps")
    assert r.action.type == r.action.TYPE_THROW and r.action.object_id == "stone"
    assert r.trajectory.action_id == r.action.id and len(r.trajectory.positions) > 10
    assert r.verdict.landing_point.x == pytest.approx(2.0, abs=0.25)
    # The plan's verdict also goes out on ~/verdict.
    [v] = client.verdicts_of(r.verdict.request_id, 1)
    assert v.go


def test_cancel_between_iterations(client, no_slope_halt):
    feedback: list = []
    # Cannot reach GO (target beyond the arm's reach): it would run all 5000 iterations.
    goal = client.plan_goal(target=(40.0, 0.0, 0.0), population=256, max_iterations=5000)
    handle = client.send_plan(goal, feedback)
    deadline = time.monotonic() + 60.0
    while not feedback and time.monotonic() < deadline:
        time.sleep(0.01)
    assert feedback, "no feedback before cancelling"
    client.wait_future(handle.cancel_goal_async(), what="the cancel answer")
    result = client.wait_future(handle.get_result_async(), timeout=30.0, what="the canceled result")
    assert result.status == STATUS_CANCELED
    assert result.result.halt_reason == "canceled"
    assert not result.result.go and result.result.verdict.code_name == "NO_GO_CANCELED"
    assert not result.result.verdict.chosen
    assert 1 <= result.result.iterations < 5000


@pytest.fixture
def no_slope_halt(client):
    """Plans that cannot reach GO run their whole budget (no stop on a flat energy)."""
    assert all(r.successful for r in client.set_params(plan_halt_eps=0.0))
    yield
    client.set_params(plan_halt_eps=1e-4)


@pytest.fixture
def long_plan(client, no_slope_halt):
    """A plan that cannot reach GO, with a budget of 5000 steps, running (its first feedback has
    arrived); canceled, and its result awaited, at the end of the test whatever happened."""
    feedback: list = []
    goal = client.plan_goal(target=(40.0, 0.0, 0.0), population=256, max_iterations=5000, num_samples=16)
    handle = client.send_plan(goal, feedback)
    deadline = time.monotonic() + 60.0
    while not feedback and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        assert feedback, "the long plan gave no feedback"
        yield handle
    finally:
        client.wait_future(handle.cancel_goal_async(), what="the cancel answer")
        result = client.wait_future(handle.get_result_async(), timeout=60.0, what="the canceled result")
        assert result.status == STATUS_CANCELED and result.result.halt_reason == "canceled"


@pytest.fixture
def settings(client):
    """``settings(**params)`` sets parameters for one test and restores them afterwards."""
    saved: dict = {}

    def apply(**values):
        for k in values:
            saved.setdefault(k, client.get_param(k))
        assert all(r.successful for r in client.set_params(**values))

    yield apply
    if saved:
        client.set_params(**saved)


def test_requests_go_before_plan_steps(client, settings, long_plan):
    """Busy rule: a request waiting for the rehearser is served before the plan's next step, so
    with a wait budget longer than one step (busy_wait_ms) every request is judged while a plan
    runs (the order itself is checked in test_node_conversions.py::test_gate_...)."""
    settings(busy_wait_ms=10000.0, deadline_ms=20000.0)
    # A second plan is refused with a reason, not queued behind the first.
    second = client.send_plan(client.plan_goal())
    res2 = client.wait_future(second.get_result_async(), what="the second plan's result")
    assert res2.status == STATUS_ABORTED and res2.result.verdict.code_name == "NO_GO_BUSY"
    answered = [client.rehearse([client.drop(f"during{i}")]).verdicts[0] for i in range(5)]
    assert [v.code_name for v in answered] == ["GO"] * 5, [list(v.reasons) for v in answered]
    assert long_plan.status in (1, 2)  # ACCEPTED / EXECUTING: the plan ran all along


def test_busy_policy_reject_answers_at_once(client, settings, long_plan):
    """With busy_policy 'reject' a request never waits for a plan step: it is judged when the
    rehearser is free and answered NO_GO_BUSY (with the reason) when it is not."""
    settings(busy_policy="reject", deadline_ms=20000.0)
    answers = []
    for i in range(10):
        t0 = time.monotonic()
        resp = client.rehearse([client.drop(f"r{i}")])
        answers.append((resp.verdicts[0].code_name, time.monotonic() - t0, resp.verdicts[0].reasons[0]))
    assert all(code in ("GO", "NO_GO_BUSY") for code, _, _ in answers), answers
    busy = [reason for code, _, reason in answers if code == "NO_GO_BUSY"]
    assert all("busy_policy 'reject'" in reason for reason in busy), busy
    # Never held for a plan step: only the GIL-bound step in progress can delay the answer.
    assert max(dt for _, dt, _ in answers) < 2.0, answers


def test_unknown_object_plan_is_refused_with_reason(client, node):
    handle = client.send_plan(client.plan_goal(object_id="nothing_here"))
    result = client.wait_future(handle.get_result_async(), what="the plan result")
    assert result.status == STATUS_ABORTED
    assert result.result.verdict.code_name == "NO_GO_UNKNOWN_OBJECT"
    assert "nothing_here" in result.result.verdict.reasons[0]
    assert node.alive()


def test_plan_population_is_held_to_max_rollouts(client, settings):
    """population x samples per iteration is bounded like a request's candidates x samples."""
    settings(max_rollouts=100)
    handle = client.send_plan(client.plan_goal(population=256))
    result = client.wait_future(handle.get_result_async(), what="the plan result")
    assert result.status == STATUS_ABORTED and not result.result.go
    assert result.result.verdict.code_name == "NO_GO_TOO_MANY_CANDIDATES"
    assert "max_rollouts 100" in result.result.verdict.reasons[0]

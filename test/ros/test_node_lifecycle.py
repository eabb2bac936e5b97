"""The lifecycle of ``world_irp`` driven from this process with ``lifecycle_msgs/srv/ChangeState``,
requests in every state, a failing configure, and ``use_sim_time`` staleness following ``/clock``.

The node starts without autostart, i.e. unconfigured. The tests run in order (one process).
"""
from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.ros

NS = "/irp_lifecycle"


# The shared ``node`` and ``client`` fixtures (conftest.py) start active and wait for the stone to
# be known; here the node starts unconfigured, where no request can confirm that.
@pytest.fixture(scope="module")
def node(start_world_irp):
    return start_world_irp(NS, autostart=False)


@pytest.fixture(scope="module")
def client(node, irp_client_factory):
    c = irp_client_factory(NS)
    c.perceive(c.sphere("stone"))
    return c


def codes(resp) -> list[str]:
    return [v.code_name for v in resp.verdicts]


def assert_not_active(client, state: str) -> None:
    """Every entry point answers NO_GO_NOT_ACTIVE (never silence) while not active."""
    from world_irp_ros.msg import RehearsalRequest

    resp = client.rehearse([client.drop("a"), client.drop("b")])
    assert codes(resp) == ["NO_GO_NOT_ACTIVE"] * 2
    assert f"node is {state}" in resp.verdicts[0].reasons[0]
    assert resp.best_index == -1
    msg = RehearsalRequest(request_id=f"stream-{state}", candidates=[client.drop("s")], criteria=client.criteria())
    client.requests_pub.publish(msg)
    [v] = client.verdicts_of(f"stream-{state}", 1)
    assert v.code_name == "NO_GO_NOT_ACTIVE" and not v.go
    handle = client.send_plan(client.plan_goal())
    result = client.wait_future(handle.get_result_async(), what="the plan result")
    assert result.result.verdict.code_name == "NO_GO_NOT_ACTIVE" and not result.result.go
    assert result.status == 6  # action_msgs/GoalStatus.STATUS_ABORTED


def test_unconfigured_answers_not_active(client):
    assert client.state() == "unconfigured"
    assert_not_active(client, "unconfigured")
    # Too many candidates are refused whole in every state: never more verdicts than the queue.
    limit = client.get_param("max_candidates")
    resp = client.rehearse([client.drop(f"c{i}") for i in range(limit + 1)])
    assert codes(resp) == ["NO_GO_TOO_MANY_CANDIDATES"] and resp.verdicts[0].action_id == ""


def test_configure_failure_is_reported(client, node):
    """A backend that is not registered (or cannot load) makes configure fail with its reason."""
    from world_irp_ros.backends import REGISTRY

    missing = next(b for b in ("learned", "pybullet", "analytic") if b not in REGISTRY)
    [ok] = client.set_params(backend=missing)  # allowed while unconfigured
    assert ok.successful
    assert not client.change_state("configure")
    assert client.state() == "unconfigured"
    node.wait_for_output(rf"configure failed: backend '{missing}'")
    resp = client.rehearse([client.drop("x")])
    assert codes(resp) == ["NO_GO_NOT_ACTIVE"] and "configure failed" in resp.verdicts[0].reasons[0]
    [ok] = client.set_params(backend="analytic")
    assert ok.successful


def test_configure_then_inactive(client, node):
    assert client.change_state("configure")
    assert client.state() == "inactive"
    node.wait_for_output(r"warmed up in")
    [bad] = client.set_params(device="cpu")  # backend and device need a reconfigure
    assert not bad.successful and "clean up" in bad.reason
    assert_not_active(client, "inactive")


def test_activate_then_go(client):
    assert client.change_state("activate")
    assert client.state() == "active"
    resp = client.rehearse_until(lambda r: r.verdicts[0].code_name != "NO_GO_UNKNOWN_OBJECT", [client.drop("go")])
    assert codes(resp) == ["GO"], (list(resp.verdicts[0].reasons), client.perception_gaps())


def test_deactivate_then_not_active(client):
    """A request still being rehearsed when the node is deactivated is answered NO_GO_NOT_ACTIVE,
    never with the GOs it was heading for; then every entry point says not active."""
    from world_irp_ros.srv import RehearseActions

    saved = {name: client.get_param(name) for name in ("deadline_ms", "state_timeout_s")}
    assert all(r.successful for r in client.set_params(deadline_ms=60000.0, state_timeout_s=60.0))
    request = RehearseActions.Request(candidates=[client.drop(f"d{i}") for i in range(1024)],
                                      criteria=client.criteria(), num_samples=64)
    pending = client.rehearse_client.call_async(request)      # 65,536 rollouts, packed: about a second
    time.sleep(0.2)                                           # under way
    assert client.change_state("deactivate")
    assert client.state() == "inactive"
    resp = client.wait_future(pending, what="the answer of the request in flight")
    assert set(codes(resp)) == {"NO_GO_NOT_ACTIVE"}, set(codes(resp))
    assert_not_active(client, "inactive")
    client.set_params(**saved)


def test_cleanup_releases_and_reconfigure_works(client):
    assert client.change_state("cleanup")
    assert client.state() == "unconfigured"
    assert_not_active(client, "unconfigured")
    [ok] = client.set_params(device="cpu")
    assert ok.successful
    assert client.change_state("configure") and client.change_state("activate")
    # Cleanup dropped the cached states: the object is known again once perceived again.
    resp = client.rehearse_until(lambda r: r.verdicts[0].code_name != "NO_GO_UNKNOWN_OBJECT", [client.drop("back")])
    assert codes(resp) == ["GO"] and resp.device == "cpu", (list(resp.verdicts[0].reasons),
                                                            client.perception_gaps())


def test_use_sim_time_staleness_follows_clock(client, node):
    """With use_sim_time the node's clock is /clock: a state stamped at sim time 1000 s is fresh
    at 1000.2 s and stale at 1005 s; verdict stamps are sim time too."""
    [ok] = client.set_params(use_sim_time=True)
    assert ok.successful
    try:
        client.forget("stone")
        sim = client.sphere("sim_stone")
        sim.header.stamp.sec = 1000
        client.perceive(sim, age_s=None)  # keep the sim-time stamp as it is
        client.publish_clock(1000.2)

        def fresh(r):
            client.publish_clock(1000.2)
            return r.verdicts[0].code_name == "GO"
        resp = client.rehearse_until(fresh, [client.drop("sim", "sim_stone")])
        assert 1000 <= resp.verdicts[0].header.stamp.sec <= 1001

        def stale(r):
            client.publish_clock(1005.0)
            return r.verdicts[0].code_name == "NO_GO_STALE_STATE"
        resp = client.rehearse_until(stale, [client.drop("sim", "sim_stone")])
        assert "5.000 s old (state_timeout_s 2)" in resp.verdicts[0].reasons[0], resp.verdicts[0].reasons
        assert resp.verdicts[0].header.stamp.sec == 1005
    finally:
        client.forget("sim_stone")
        [ok] = client.set_params(use_sim_time=False)
        assert ok.successful
    client.perceive(client.sphere("stone"))
    resp = client.rehearse_until(lambda r: r.verdicts[0].code_name == "GO", [client.drop("wall_clock")])
    assert node.alive()

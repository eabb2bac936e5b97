"""``world_irp`` as a separate process, over DDS: ``~/rehearse``, the streaming path, every NO-GO
cause, runtime parameters, ``~/markers`` and ``/diagnostics``. One node process for the module.

The scene: a sphere (r 3 cm, 0.2 kg) dropped from 0.5 m lands straight below the release point,
so a drop above the target centre is GO and one a metre away misses, whatever the drag model.
"""
from __future__ import annotations

import math
import re
import time

import pytest

pytestmark = pytest.mark.ros

NS = "/irp_rehearse"  # of the shared ``node`` and ``client`` fixtures (conftest.py)


def codes(resp) -> list[str]:
    return [v.code_name for v in resp.verdicts]


def test_go_answer_with_trajectory_and_verdict_topic(client):
    resp = client.rehearse([client.drop("over_target"), client.drop("far", at=(2.0, 0.0, 0.5))])
    assert codes(resp) == ["GO", "NO_GO_MISSES_TARGET"], [list(v.reasons) for v in resp.verdicts]
    assert resp.best_index == 0
    assert resp.backend == "analytic" and resp.device in ("cpu", "cuda")
    assert resp.latency_ms > 0.0
    go, miss = resp.verdicts
    assert go.go and go.chosen and not miss.go and not miss.chosen
    assert go.lands and abs(go.landing_point.x - 1.0) < 0.02 and go.success_probability == 1.0
    assert any("from the target centre" in r for r in miss.reasons)
    traj = resp.trajectories[0]
    assert traj.action_id == "over_target" and traj.object_id == "stone"
    assert len(traj.t_s) == len(traj.positions) == len(traj.velocities_mps) > 10
    assert traj.events and traj.events[0].kind == traj.events[0].KIND_GROUND
    assert traj.events[0].normal_speed_mps > 2.0  # ~sqrt(2 g 0.47 m) = 3 m/s
    # The same verdicts on ~/verdict, the chosen one flagged.
    request_id = go.request_id
    published = client.verdicts_of(request_id, 2)
    assert {v.action_id: (v.code_name, v.chosen) for v in published} == {
        "over_target": ("GO", True), "far": ("NO_GO_MISSES_TARGET", False)}
    arr = client.latest(client.trajectories, lambda m: m.request_id == request_id, what="the trajectories")
    assert [t.action_id for t in arr.trajectories] == ["over_target", "far"]


def test_keep_out_zone_gives_collision(client):
    zone = ("laptop", (0.9, -0.1, 0.1), (1.1, 0.1, 0.3))
    resp = client.rehearse([client.drop("through_zone")], client.criteria(keep_out=[zone]))
    assert codes(resp) == ["NO_GO_COLLISION"]
    assert "laptop" in resp.verdicts[0].reasons[0]
    assert resp.best_index == -1


def test_streaming_path_answers_on_verdict(client):
    from world_irp_ros.msg import RehearsalRequest

    msg = RehearsalRequest()
    msg.header.stamp = client.now_msg()
    msg.header.frame_id = "world"
    msg.request_id = "stream-test-1"
    msg.candidates = [client.drop("a"), client.drop("b", at=(3.0, 0.0, 0.5)), client.drop("c", "ghost")]
    msg.criteria = client.criteria()
    client.requests_pub.publish(msg)
    got = {v.action_id: v for v in client.verdicts_of("stream-test-1", 3)}
    assert got["a"].code_name == "GO" and got["a"].chosen
    assert got["b"].code_name == "NO_GO_MISSES_TARGET"
    assert got["c"].code_name == "NO_GO_UNKNOWN_OBJECT" and "ghost" in got["c"].reasons[0]


def test_unknown_object_only_affects_its_candidate(client):
    resp = client.rehearse([client.drop("ok"), client.drop("nobody", "no_such_object")])
    assert codes(resp) == ["GO", "NO_GO_UNKNOWN_OBJECT"]
    assert "no_such_object" in resp.verdicts[1].reasons[0] and "stone" in resp.verdicts[1].reasons[0]
    assert resp.best_index == 0
    assert len(resp.trajectories) == 2 and len(resp.trajectories[1].positions) == 0


def test_stale_state(client):
    client.perceive(client.sphere("old_stone"), age_s=5.0)
    resp = client.rehearse_until(lambda r: r.verdicts[0].code_name != "NO_GO_UNKNOWN_OBJECT",
                                 [client.drop("stale", "old_stone")])
    assert codes(resp) == ["NO_GO_STALE_STATE"]
    age = re.search(r"old_stone.* (\d+\.\d+) s old", resp.verdicts[0].reasons[0])
    assert age and float(age.group(1)) >= 5.0, resp.verdicts[0].reasons
    client.forget("old_stone")


def test_non_finite_numbers_are_invalid(client):
    bad = client.throw("nan_throw", (1.0, math.nan, 2.0))
    resp = client.rehearse([bad, client.drop("fine")])
    assert codes(resp) == ["NO_GO_INVALID_REQUEST", "GO"]
    assert "release_velocity_mps.y" in resp.verdicts[0].reasons[0]
    crit = client.criteria()
    crit.target.center.x = math.inf
    resp = client.rehearse([client.drop("x")], crit)
    assert codes(resp) == ["NO_GO_INVALID_REQUEST"] and "criteria.target.center.x" in resp.verdicts[0].reasons[0]
    # A perceived state with a NaN: requests naming that object are invalid, with the reason.
    broken = client.sphere("broken")
    broken.twist.linear.z = math.nan
    client.perceive(broken)
    resp = client.rehearse_until(lambda r: r.verdicts[0].code_name != "NO_GO_UNKNOWN_OBJECT",
                                 [client.drop("b", "broken")])
    assert codes(resp) == ["NO_GO_INVALID_REQUEST"]
    assert "twist.linear.z" in resp.verdicts[0].reasons[0]
    client.forget("broken")


def test_requests_refused_whole_get_one_verdict(client):
    """Too many candidates, or none: one NO-GO with an empty action_id answers the whole request,
    on the service and on the streaming path (never silence, never more verdicts than the
    ~/verdict queue holds)."""
    from world_irp_ros.msg import RehearsalRequest

    limit = client.get_param("max_candidates")
    resp = client.rehearse([client.drop(f"c{i}") for i in range(limit + 1)])
    assert codes(resp) == ["NO_GO_TOO_MANY_CANDIDATES"] and resp.verdicts[0].action_id == ""
    assert f"{limit + 1} candidates, more than max_candidates {limit}" in resp.verdicts[0].reasons[0]
    assert resp.best_index == -1 and len(resp.trajectories) == 1
    resp = client.rehearse([])
    assert codes(resp) == ["NO_GO_INVALID_REQUEST"] and "no candidates" in resp.verdicts[0].reasons[0]
    for request_id, count, code in (("stream-none", 0, "NO_GO_INVALID_REQUEST"),
                                    ("stream-many", limit + 1, "NO_GO_TOO_MANY_CANDIDATES")):
        msg = RehearsalRequest(request_id=request_id, criteria=client.criteria(),
                               candidates=[client.drop(f"s{i}") for i in range(count)])
        client.requests_pub.publish(msg)
        [v] = client.verdicts_of(request_id, 1)
        assert v.code_name == code and v.action_id == "" and not v.go
    time.sleep(0.5)  # anything more would have arrived by now
    assert len(client.verdicts_of("stream-many", 1)) == 1


def test_an_answer_packed_after_the_deadline_is_no_go_deadline(client):
    """Packing 1024 tracks of 601 points takes longer than rehearsing them: the deadline holds
    for the packed answer, so a response that leaves late never carries a GO."""
    [ok] = client.set_params(deadline_ms=150.0)
    try:
        resp = client.rehearse([client.drop(f"d{i}") for i in range(1024)], client.criteria(horizon_s=10.0),
                               timeout=120.0)
    finally:
        [restored] = client.set_params(deadline_ms=5000.0)
        assert restored.successful
    assert ok.successful and resp.latency_ms > 150.0
    assert set(codes(resp)) == {"NO_GO_DEADLINE"} and resp.best_index == -1
    assert "deadline" in resp.verdicts[0].reasons[0]


def test_the_state_table_keeps_the_newest_objects_only(client):
    """A tracker that hands out a new id per track must not grow the node's table (and every
    unknown-object reason) for ever: beyond MAX_KEPT_STATES the oldest-stamped states go."""
    from rclpy.duration import Duration
    from world_irp_ros.msg import ObjectStateArray
    from world_irp_ros.ros.node import MAX_KEPT_STATES, MAX_LISTED_IDS

    def publish(objects, age_s=0.0):
        stamp = (client.node.get_clock().now() - Duration(nanoseconds=int(age_s * 1e9))).to_msg()
        for o in objects:
            o.header.stamp = stamp
        client.states_pub.publish(ObjectStateArray(objects=objects))

    deadline = time.monotonic() + 20.0
    while codes(client.rehearse([client.drop("first", "first_track")])) != ["GO"]:
        assert time.monotonic() < deadline, "the node never took the first track"
        publish([client.sphere("first_track")], age_s=1.0)
        time.sleep(0.05)
    crowd = [client.sphere(f"track_{i:04d}") for i in range(MAX_KEPT_STATES + 64)]
    while True:  # best effort: publish until the node has forgotten the first (oldest) track
        for i in range(0, len(crowd), 128):
            publish(crowd[i:i + 128])
        resp = client.rehearse([client.drop("first", "first_track")])
        if codes(resp) == ["NO_GO_UNKNOWN_OBJECT"]:
            break
        assert time.monotonic() < deadline, f"the oldest state was never dropped: {codes(resp)}"
        time.sleep(0.1)
    reason = resp.verdicts[0].reasons[0]
    assert reason.count("track_") <= MAX_LISTED_IDS + 1 and "in all)" in reason, reason
    assert codes(client.rehearse([client.drop("still_known")])) == ["GO"]  # the perceived stone stays


def test_an_execution_that_never_happened_teaches_nothing(client, node):
    """The controller reports a drop that was never carried out: the object rests where it was.
    The comparison is still published (with its huge track error), but nothing is calibrated
    from a track that does not show the drag; a report with a zero stamp is refused with the
    reason."""
    from world_irp_ros.msg import ActionExecution, PredictionError
    from world_irp_ros.ros import conversions as conv
    from world_irp_ros.ros.qos import CANDIDATE_ACTIONS, VERDICT
    from world_irp_ros.scene import CandidateAction

    errors = []
    client.node.create_subscription(PredictionError, f"{client.base}/prediction_error", errors.append, VERDICT)
    executed = client.node.create_publisher(ActionExecution, f"{client.base}/executed_actions", CANDIDATE_ACTIONS)
    client.perceive_until_known(client.sphere("idle", position=(3.0, 3.0, 0.03)))
    deadline = time.monotonic() + 10.0
    while not executed.get_subscription_count():
        assert time.monotonic() < deadline, "world_irp does not listen on ~/executed_actions"
        time.sleep(0.05)
    report = ActionExecution(request_id="phantom")
    report.action = conv.action_to_msg(CandidateAction("phantom", "drop", "idle", (3.0, 3.0, 1.0)))
    executed.publish(report)                                  # zero stamp: refused
    node.wait_for_output(r"executed action 'phantom' not followed: its release stamp is zero")
    report.header.stamp = client.now_msg()
    executed.publish(report)
    deadline = time.monotonic() + 15.0                        # the 3 s horizon and 1 s of slack
    while not errors:
        assert time.monotonic() < deadline, "no PredictionError for the phantom drop"
        time.sleep(0.1)
    [err] = errors
    assert err.action_id == "phantom" and err.rms_track_error_m > 0.1
    assert list(err.calibrated_parameters) == []
    node.wait_for_output(r"phantom: calibration not applied: ")
    client.forget("idle")


def test_a_state_that_arrives_out_of_order_is_ignored(client):
    """States are kept by stamp, not by arrival: an older state arriving later leaves the newer
    one in place. A push with no impulse judges where the object rests (1 m: on the target)."""
    from rclpy.duration import Duration
    from world_irp_ros.msg import CandidateAction, ObjectStateArray

    push = CandidateAction(id="nudge", type=CandidateAction.TYPE_PUSH, object_id="ordered")
    push.release_pose.orientation.w = 1.0

    def publish(*states_and_ages):
        now = client.node.get_clock().now()
        out = ObjectStateArray()
        for o, age_s in states_and_ages:
            o.header.stamp = (now - Duration(nanoseconds=int(age_s * 1e9))).to_msg()
            out.objects.append(o)
        client.states_pub.publish(out)

    deadline = time.monotonic() + 20.0
    while codes(client.rehearse([push])) != ["GO"]:  # best effort: publish until the node has it
        assert time.monotonic() < deadline, "the node never took the state at 1 m"
        publish((client.sphere("ordered", position=(1.0, 0.0, 0.03)), 0.0))
        time.sleep(0.05)
    # Then a state 1 s older, 2 m away, in the same message as a probe object: once the probe is
    # known the old state has arrived too. The same for an older state in a wrong frame (invalid).
    wrong_frame = client.sphere("ordered_too", position=(1.0, 0.0, 0.03))
    wrong_frame.header.frame_id = "map"
    for _ in range(3):
        publish((client.sphere("ordered", position=(3.0, 0.0, 0.03)), 1.0),
                (client.sphere("order_probe", position=(0.0, 0.0, 1.0)), 0.0))
    client.rehearse_until(lambda r: codes(r) == ["GO"], [client.drop("probe", "order_probe")])
    assert codes(client.rehearse([push])) == ["GO"]
    wrong_frame.id = "ordered"
    for _ in range(3):  # the valid state refreshed, then an invalid one 10 s older
        publish((client.sphere("ordered", position=(1.0, 0.0, 0.03)), 0.0))
        publish((wrong_frame, 10.0), (client.sphere("order_probe2", position=(0.0, 0.0, 1.0)), 0.0))
    client.rehearse_until(lambda r: codes(r) == ["GO"], [client.drop("probe", "order_probe2")])
    assert codes(client.rehearse([push])) == ["GO"]  # the older, invalid state did not replace it


def test_a_request_beyond_the_models_bounds_is_invalid(client):
    """Every number is finite and valid, but the drag factor rho Cd A / (2 m) of a 1e-300 kg
    object with Cd 1e300 overflows: the forward model cannot compute it, and says so."""
    feather = client.sphere("feather", mass=1e-300)
    feather.drag_coefficient = 1e300
    resp = client.rehearse([client.drop("f", "feather")], scene_objects=[feather])
    assert codes(resp) == ["NO_GO_INVALID_REQUEST"], [list(v.reasons) for v in resp.verdicts]
    assert "outside what the model can compute: its numbers overflow" in resp.verdicts[0].reasons[0]


def test_backend_error_from_a_rollout_the_model_cannot_finish(client):
    """A perfectly elastic ball thrown up between the ground and a perfectly elastic shelf 1 mm
    above its top rattles faster than the model resolves (more events in one step than it
    handles): the rollout fails, and the answer is NO_GO_BACKEND_ERROR with the reason."""
    from world_irp_ros.msg import Environment, Obstacle

    ball = client.sphere("rattler", position=(0.0, 0.0, 0.0305))
    ball.restitution = 1.0
    env = Environment()
    env.gravity_mps2.z = -9.81
    env.air_density_kgpm3 = 1.225
    shelf = Obstacle(name="shelf", restitution=1.0, friction=0.5)
    shelf.min.x, shelf.min.y, shelf.min.z = -1.0, -1.0, 0.061
    shelf.max.x, shelf.max.y, shelf.max.z = 1.0, 1.0, 0.2
    env.obstacles = [shelf]
    resp = client.rehearse([client.throw("rattle", (0.1, 0.0, 5.0), "rattler", at=(0.0, 0.0, 0.0305))],
                           scene_objects=[ball], scene_environment=env)
    assert codes(resp) == ["NO_GO_BACKEND_ERROR"], [list(v.reasons) for v in resp.verdicts]
    assert "events inside one integration step" in resp.verdicts[0].reasons[0]


def test_deadline_via_runtime_parameter(client):
    [ok] = client.set_params(deadline_ms=0.001)
    assert ok.successful
    try:
        resp = client.rehearse([client.drop("late")])
        assert codes(resp) == ["NO_GO_DEADLINE"] and "deadline" in resp.verdicts[0].reasons[0]
    finally:
        [ok] = client.set_params(deadline_ms=5000.0)
        assert ok.successful
    assert codes(client.rehearse([client.drop("in_time")])) == ["GO"]


def test_scene_override(client):
    here = client.sphere("imagined", position=(5.0, 5.0, 1.0))
    resp = client.rehearse([client.drop("i", "imagined", at=(5.0, 5.0, 0.5))],
                           client.criteria(center=(5.0, 5.0, 0.0)), scene_objects=[here])
    assert codes(resp) == ["GO"]
    # The perceived objects are not part of an override scene.
    resp = client.rehearse([client.drop("s")], scene_objects=[here])
    assert codes(resp) == ["NO_GO_UNKNOWN_OBJECT"] and "scene_objects" in resp.verdicts[0].reasons[0]


def test_runtime_parameters_accepted_and_rejected(client):
    [ok] = client.set_params(num_samples=32)
    assert ok.successful and client.get_param("num_samples") == 32
    [bad] = client.set_params(min_success_probability=1.5)  # outside its range [0, 1]
    assert not bad.successful and "min_success_probability" in bad.reason
    [bad] = client.set_params(busy_policy="sometimes")
    assert not bad.successful and "wait, reject" in bad.reason
    [bad] = client.set_params(gravity_mps2=[0.0, 0.0, 9.81])
    assert not bad.successful and "negative" in bad.reason
    for name, value in (("backend", "pybullet"), ("frame_id", "map")):  # only while unconfigured
        [bad] = client.set_params(**{name: value})
        assert not bad.successful and "configure" in bad.reason, name
    assert client.get_param("min_success_probability") == 0.9
    assert client.get_param("backend") == "analytic"
    # dt_s and gravity together: a step may not outlast the shortest hop (20 ms at 15 m/s^2).
    [ok] = client.set_params(dt_s=0.025)
    [bad] = client.set_params(gravity_mps2=[0.0, 0.0, -15.0])
    client.set_params(dt_s=1.0 / 60.0)
    assert ok.successful and not bad.successful and "shortest hop" in bad.reason
    assert client.get_param("gravity_mps2")[2] == -9.81
    # max_candidates lowered at runtime takes effect on the next request.
    [ok] = client.set_params(max_candidates=2)
    try:
        assert codes(client.rehearse([client.drop(f"k{i}") for i in range(3)])) == ["NO_GO_TOO_MANY_CANDIDATES"]
    finally:
        client.set_params(max_candidates=1024, num_samples=64)


def test_response_trajectories_chosen_only(client):
    [ok] = client.set_params(response_trajectories="chosen")
    assert ok.successful
    try:
        resp = client.rehearse([client.drop("miss", at=(2.0, 0.0, 0.5)), client.drop("hit")])
        assert codes(resp) == ["NO_GO_MISSES_TARGET", "GO"] and resp.best_index == 1
        assert [t.action_id for t in resp.trajectories] == ["miss", "hit"]
        assert len(resp.trajectories[0].positions) == 0 and len(resp.trajectories[1].positions) > 10
    finally:
        client.set_params(response_trajectories="all")


def test_markers_when_visualize(client):
    [ok] = client.set_params(visualize=True)
    assert ok.successful
    try:
        resp = client.rehearse([client.drop("drawn")], client.criteria(keep_out=[("box", (3, 3, 0), (4, 4, 1))]))
        assert codes(resp) == ["GO"]
        arr = client.latest(client.markers, lambda m: any(k.ns == "tracks" for k in m.markers), what="markers")
        namespaces = {m.ns for m in arr.markers}
        assert {"target", "keep_out", "tracks", "landing"} <= namespaces
    finally:
        client.set_params(visualize=False)


def test_diagnostics(client):
    def ours(msg):
        return any(s.name == "world_irp: rehearsal" and s.hardware_id.startswith(NS) and
                   int(dict((kv.key, kv.value) for kv in s.values)["requests_total"]) > 0 for s in msg.status)
    msg = client.latest(client.diagnostics, ours, what="/diagnostics of the node")
    status = next(s for s in msg.status if s.hardware_id.startswith(NS))
    values = {kv.key: kv.value for kv in status.values}
    for key in ("request_rate_hz", "latency_p50_ms", "latency_p99_ms", "backend", "device", "newest_state_age_s"):
        assert key in values, key
    assert values["backend"] == "analytic" and values["lifecycle_state"] == "active"
    assert float(values["latency_p99_ms"]) >= float(values["latency_p50_ms"]) > 0.0
    assert float(values["newest_state_age_s"]) < 5.0
    assert int(values["verdicts_GO"]) > 0


def test_each_cause_logged_once_and_node_alive(client, node):
    for _ in range(3):
        client.rehearse([client.drop("again", "no_such_object")])
    time.sleep(0.2)
    out = node.output()
    for code in ("NO_GO_UNKNOWN_OBJECT", "NO_GO_STALE_STATE", "NO_GO_INVALID_REQUEST", "NO_GO_DEADLINE",
                 "NO_GO_BACKEND_ERROR", "NO_GO_TOO_MANY_CANDIDATES"):
        assert len(re.findall(rf"NO-GO {code}:", out)) == 1, (code, out)
    assert node.alive()
    assert codes(client.rehearse([client.drop("still_here")])) == ["GO"]

"""Message <-> library conversions of the node (no DDS, no node process), the parameter rules and
the rehearser gate's busy rule."""
from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def m():
    import world_irp_ros.msg as msg

    return msg


def sphere_msg(m, **kw):
    o = m.ObjectState(id="s", shape=m.ObjectState.SHAPE_SPHERE, dimensions_m=[0.03, 0.0, 0.0], mass_kg=0.2,
                      drag_coefficient=0.47, restitution=0.3, friction=0.5, rolling_resistance=0.02)
    o.pose.position.z = 1.0
    o.pose.orientation.w = 1.0
    for k, v in kw.items():
        setattr(o, k, v)
    return o


def test_object_from_msg_reorders_and_normalises_the_quaternion(m):
    from world_irp_ros.ros.conversions import object_from_msg

    o = sphere_msg(m)
    o.pose.orientation.x, o.pose.orientation.y, o.pose.orientation.z, o.pose.orientation.w = 0.0, 0.0, 2.0, 2.0
    o.position_std_m = [0.01, 0.02, 0.03]
    model = object_from_msg(o)
    assert model.orientation_wxyz == pytest.approx((math.sqrt(0.5), 0.0, 0.0, math.sqrt(0.5)))
    assert model.position_m == (0.0, 0.0, 1.0) and model.shape == "sphere"
    assert model.uncertainty.position_std_m == (0.01, 0.02, 0.03)


def test_object_round_trip(m):
    from world_irp_ros.ros.conversions import object_from_msg, object_to_msg
    from world_irp_ros.scene import ObjectModel, Uncertainty

    model = ObjectModel("box_1", "box", (0.1, 0.2, 0.3), 0.5, position_m=(1.0, 2.0, 3.0),
                        orientation_wxyz=(math.sqrt(0.5), 0.0, math.sqrt(0.5), 0.0), velocity_mps=(0.1, 0.0, -1.0),
                        uncertainty=Uncertainty((0.01, 0.0, 0.0), mass_rel_std=0.1), label="box")
    header = m.ObjectState().header
    header.frame_id = "world"
    msg = object_to_msg(model, header)
    assert msg.header.frame_id == "world" and msg.shape == m.ObjectState.SHAPE_BOX
    back = object_from_msg(msg)
    assert back == model


@pytest.mark.parametrize("change, field", [
    (lambda o: setattr(o.pose.position, "x", math.nan), "pose.position.x"),
    (lambda o: setattr(o.twist.angular, "z", math.inf), "twist.angular.z"),
    (lambda o: setattr(o, "shape", 7), "shape"),
    (lambda o: setattr(o, "mass_kg", 0.0), "mass"),
    (lambda o: setattr(o.pose, "orientation", type(o.pose.orientation)(w=0.0)), "pose.orientation"),
])
def test_object_from_msg_names_the_bad_field(m, change, field):
    from world_irp_ros.errors import ValidationError
    from world_irp_ros.ros.conversions import object_from_msg

    o = sphere_msg(m)
    change(o)
    with pytest.raises(ValidationError) as err:
        object_from_msg(o)
    assert err.value.field.startswith(field), err.value.field


def test_action_and_criteria_from_msg(m):
    from world_irp_ros.errors import ValidationError
    from world_irp_ros.ros.conversions import action_from_msg, criteria_from_msg

    a = m.CandidateAction(id="p", type=m.CandidateAction.TYPE_PUSH, object_id="s")
    a.release_pose.orientation.w = 1.0
    a.impulse_ns.x = 0.5
    push = action_from_msg(a)
    assert push.type == "push" and push.release_position_m is None and push.impulse_ns == (0.5, 0.0, 0.0)
    a.type = 9
    with pytest.raises(ValidationError, match="TYPE_THROW"):
        action_from_msg(a)
    c = m.Criteria()
    c.target.radius_m = 0.2
    c.max_collision_probability = 0.5
    crit = criteria_from_msg(c, horizon_s=2.5, min_success_probability=0.8, max_collision_probability=0.1)
    assert crit.horizon_s == 2.5 and crit.min_success_probability == 0.8
    assert crit.max_collision_probability == 0.1  # capped by the node
    assert crit.target.height_tolerance_m == 0.1 and crit.target.mode == "first_contact"
    c.target.radius_m = 0.0
    with pytest.raises(ValidationError) as err:
        criteria_from_msg(c, horizon_s=2.5, min_success_probability=0.8, max_collision_probability=0.1)
    assert err.value.field == "target.radius_m"
    c.target.radius_m = 0.2
    c.max_collision_probability = 1.5  # not silently capped: a probability above 1 is a mistake
    with pytest.raises(ValidationError) as err:
        criteria_from_msg(c, horizon_s=2.5, min_success_probability=0.8, max_collision_probability=0.1)
    assert err.value.field == "max_collision_probability" and "[0, 1]" in err.value.reason


def test_trajectory_and_verdict_to_msg(m):
    from builtin_interfaces.msg import Time
    from world_irp_ros.errors import VerdictCode
    from world_irp_ros.rehearsal import ContactEvent, Trajectory
    from world_irp_ros.ros.conversions import trajectory_to_msg, verdict_to_msg
    from world_irp_ros.verdicts import Verdict

    t = np.arange(4) / 30.0
    traj = Trajectory("a", t, np.zeros((4, 3)), np.tile([0.0, 0.0, -3.0], (4, 1)),
                      [ContactEvent(0.05, (1.0, 0.0, 0.03), "ground", "ground"),
                       ContactEvent(0.08, (1.0, 0.0, 0.5), "keep_out", "laptop"),
                       ContactEvent(0.1, (1.1, 0.0, 0.03), "rest", "rest")], (1.1, 0.0, 0.03), True)
    out = trajectory_to_msg(traj, action_id="a", object_id="s", stamp=Time(sec=3), frame_id="world")
    assert [e.kind for e in out.events] == [m.ContactEvent.KIND_GROUND, m.ContactEvent.KIND_KEEP_OUT_ENTRY,
                                            m.ContactEvent.KIND_REST]
    assert out.events[0].normal_speed_mps == pytest.approx(3.0 + 9.81 * (0.05 - 1 / 30), rel=1e-6)
    assert math.isnan(out.events[1].normal_speed_mps) and out.events[1].with_what == "laptop"
    assert out.comes_to_rest and out.final_position.x == 1.1 and len(out.positions) == 4
    empty = trajectory_to_msg(None, action_id="b", object_id="s", stamp=Time(), frame_id="world")
    assert empty.action_id == "b" and len(empty.positions) == 0
    v = Verdict("a", VerdictCode.NO_GO_STALE_STATE, ["old"])
    vm = verdict_to_msg(v, request_id="r", stamp=Time(sec=1), frame_id="world", latency_ms=2.0, backend="analytic")
    assert vm.code == m.Verdict.NO_GO_STALE_STATE and vm.code_name == "NO_GO_STALE_STATE" and not vm.go
    assert vm.landing_time_s == 0.0 and not vm.lands


def test_parameter_rules():
    from rclpy.parameter import Parameter
    from world_irp_ros.ros.params import SPEC_BY_NAME, descriptor, validate_changes

    assert validate_changes([Parameter("num_samples", value=8)], configured=True) is None
    assert "configure" in validate_changes([Parameter("backend", value="pybullet")], configured=True)
    assert validate_changes([Parameter("backend", value="pybullet")], configured=False) is None
    assert "one of" in validate_changes([Parameter("backend", value="magic")], configured=False)
    assert "negative" in validate_changes([Parameter("gravity_mps2", value=[0.0, 0.0, 1.0])], configured=False)
    assert validate_changes([Parameter("use_sim_time", value=True)], configured=True) is None
    # The kept states are in the configured frame: a new one waits for cleanup (which drops them).
    assert "configure" in validate_changes([Parameter("frame_id", value="map")], configured=True)
    assert validate_changes([Parameter("frame_id", value="map")], configured=False) is None
    assert descriptor(SPEC_BY_NAME["frame_id"]).additional_constraints == "only changeable while unconfigured"
    assert descriptor(SPEC_BY_NAME["backend"]).additional_constraints == \
        "one of: analytic, pybullet, learned; only changeable while unconfigured"


def test_readme_states_each_topics_qos():
    """The QoS column of the README's interface table is what ``qos.py`` declares."""
    import re
    from pathlib import Path

    from world_irp_ros.ros import qos

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    profiles = {"~/object_states": qos.OBJECT_STATES, "~/candidate_actions": qos.CANDIDATE_ACTIONS,
                "~/verdict": qos.VERDICT, "~/predicted_trajectories": qos.PREDICTED_TRAJECTORIES,
                "~/markers": qos.MARKERS, "/diagnostics": qos.DIAGNOSTICS,
                "~/executed_actions": qos.CANDIDATE_ACTIONS, "~/prediction_error": qos.VERDICT}
    for topic, profile in profiles.items():
        row = re.search(rf"^\| `{re.escape(topic)}` \((?:sub|pub)\) \| [^|]+ \| ([^|]+) \|", readme, re.M)
        assert row, topic
        assert row.group(1).strip() == qos.describe(profile), topic


def test_known_ids_in_a_reason_are_bounded():
    from world_irp_ros.ros.node import MAX_LISTED_IDS, known_ids

    assert known_ids([]) == "none" and known_ids({"b": 1, "a": 2}) == "a, b"
    many = known_ids(f"track_{i:04d}" for i in range(3000))
    assert many.startswith("track_0000, ") and many.endswith("... (3000 in all)")
    assert many.count("track_") == MAX_LISTED_IDS


def test_a_plan_that_did_not_finish_never_ends_in_go():
    from world_irp_ros.errors import VerdictCode
    from world_irp_ros.ros.plan_action import final_verdict
    from world_irp_ros.verdicts import Verdict

    go = Verdict("best", VerdictCode.GO, ["lands 0.02 m from the target centre"], 0.97, 0.0, True,
                 (2.0, 0.0, 0.03), 0.8)
    done = final_verdict(go, "feasible_go", None)
    assert done.go and done.chosen and not go.chosen  # a copy: the planner's state is not changed
    for halt, problem, code in (("canceled", None, VerdictCode.NO_GO_CANCELED),
                                ("node deactivated", None, VerdictCode.NO_GO_NOT_ACTIVE),
                                ("max_steps", (VerdictCode.NO_GO_STALE_STATE, "state of 'stone' is 0.9 s old"),
                                 VerdictCode.NO_GO_STALE_STATE)):
        v = final_verdict(go, halt, problem)
        assert v.code == code and not v.go and not v.chosen, halt
        assert v.success_probability == 0.97 and v.landing_point_m == (2.0, 0.0, 0.03)  # the prediction kept
        assert v.reasons[1:] == go.reasons and v.reasons[0]
    assert "end of planning" in final_verdict(go, "max_steps", (VerdictCode.NO_GO_STALE_STATE, "old")).reasons[0]


def test_gate_serves_requests_before_plan_steps():
    from world_irp_ros.ros.node import Gate

    gate = Gate()
    assert gate.acquire(0.0, "first")
    assert not gate.acquire(0.0, "reject at once")
    assert not gate.acquire(0.05, "wait a little")
    order: list[str] = []

    def take(who: str, priority: bool) -> None:
        assert gate.acquire(5.0, who, priority)
        order.append(who)
        time.sleep(0.01)
        gate.release()

    plan = threading.Thread(target=take, args=("plan", False))
    plan.start()
    time.sleep(0.05)
    request = threading.Thread(target=take, args=("request", True))
    request.start()
    time.sleep(0.05)
    gate.release()
    plan.join(5.0)
    request.join(5.0)
    assert order == ["request", "plan"]


def test_a_plan_canceled_while_waiting_for_its_first_rehearsal_ends_canceled():
    """The rehearser is busy with a long request when the plan's goal is canceled: the goal ends
    CANCELED with NO_GO_CANCELED (not ABORTED as if the node had stopped)."""
    import itertools
    import types

    from rclpy.clock import Clock
    from world_irp_ros.action import PlanAction
    from world_irp_ros.ros import plan_action
    from world_irp_ros.ros.node import Gate
    from world_irp_ros.ros.params import SPECS, Settings
    from world_irp_ros.scene import Environment, ObjectModel

    gate = Gate()
    assert gate.acquire(0.0, "a long request")
    stone = ObjectModel("stone", "sphere", (0.03, 0.0, 0.0), 0.2, position_m=(0.0, 0.0, 1.0))
    quiet = types.SimpleNamespace(info=lambda *_: None, warning=lambda *_: None, error=lambda *_: None)
    node = types.SimpleNamespace(
        _settings=Settings(**{spec.name: spec.default for spec in SPECS}), _gate=gate, _active=True,
        _rehearser=object(), _ids=itertools.count(1), _plan_lock=threading.Lock(), _log_once=lambda *_: None,
        _state_problem=lambda *_: (stone, None), _environment=Environment, get_clock=Clock,
        _stats=types.SimpleNamespace(record_plan=lambda: None), get_logger=lambda: quiet)
    goal = PlanAction.Goal(object_id="stone")
    goal.criteria.target.center.x, goal.criteria.target.radius_m = 2.0, 0.2
    goal.limits.release_position.z, goal.limits.max_release_speed_mps = 1.0, 8.0
    goal.limits.min_elevation_rad, goal.limits.max_elevation_rad = -1.5, 1.5
    goal.limits.min_azimuth_rad, goal.limits.max_azimuth_rad = -3.0, 3.0
    ended: list[str] = []
    handle = types.SimpleNamespace(request=goal, is_cancel_requested=True, publish_feedback=lambda _: None,
                                   canceled=lambda: ended.append("canceled"), abort=lambda: ended.append("aborted"),
                                   succeed=lambda: ended.append("succeeded"))
    result = plan_action.run_plan(node, handle)
    assert ended == ["canceled"]
    assert result.verdict.code_name == "NO_GO_CANCELED" and not result.go and result.halt_reason == "canceled"

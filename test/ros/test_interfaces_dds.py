"""The package's interfaces over real DDS, against a separate echo process, plus checks of the
interface files themselves (every field and constant commented; Verdict codes = VerdictCode).

Every message type is filled generically (every field, nested ones included, gets a value that
differs from its default), published to ``test/ros/echo_peer.py`` and compared field by field
with what comes back. The list of types comes from ``msg/*.msg`` and is checked against what the
build generated, so neither can go stale.
"""
from __future__ import annotations

import array
import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest

from world_irp_ros.errors import VerdictCode

REPO = Path(__file__).resolve().parents[2]
ECHO_PEER = Path(__file__).with_name("echo_peer.py")
# Under /irp_test, unique per test process: two runs that drew the same ROS_DOMAIN_ID do not
# echo each other's messages.
NS = f"/irp_test/run_{os.getpid()}"
MSG_NAMES = sorted(p.stem for p in (REPO / "msg").glob("*.msg"))
INTERFACE_FILES = sorted([*(REPO / "msg").glob("*.msg"), *(REPO / "srv").glob("*.srv"),
                          *(REPO / "action").glob("*.action")])
WAIT_S = 15.0  # bound of every single DDS wait


# --------------------------------------------------------------------------- generic filling


class Filler:
    """Gives every field of a message a value different from its default; each value differs
    from the previous one (a counter), so swapped fields are caught too."""

    def __init__(self) -> None:
        self.counter = 0

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    def value(self, slot):
        from rosidl_parser import definition as d

        if isinstance(slot, d.BasicType):
            k = self._next()
            t = slot.typename
            if t == d.BOOLEAN_TYPE:
                return True
            if t == d.OCTET_TYPE:
                return bytes([k % 255 + 1])
            if t in d.CHARACTER_TYPES:
                return chr(ord("a") + k % 26)
            if t in d.FLOATING_POINT_TYPES:
                return k + 0.25  # exact in float32 as well
            if t in d.SIGNED_INTEGER_TYPES:
                return -(k % 100 + 1)  # fits int8, and exercises the sign
            if t in d.UNSIGNED_INTEGER_TYPES:
                return k % 200 + 1  # fits uint8, never 0
            raise TypeError(f"unhandled basic type {t}")
        if isinstance(slot, (d.AbstractString, d.AbstractWString)):
            text = f"s{self._next()}-äß/€"
            limit = getattr(slot, "maximum_size", None)
            return text[:limit] if limit else text
        if isinstance(slot, d.NamespacedType):
            return self.fill(message_class(slot)())
        if isinstance(slot, d.Array):
            return [self.value(slot.value_type) for _ in range(slot.size)]
        if isinstance(slot, d.AbstractSequence):
            n = min(3, slot.maximum_size) if isinstance(slot, d.BoundedSequence) else 3
            return [self.value(slot.value_type) for _ in range(n)]
        raise TypeError(f"unhandled slot type {slot!r}")

    def fill(self, msg):
        for field, slot in fields_of(msg):
            setattr(msg, field, self.value(slot))
        return msg


def message_class(slot):
    """The Python class of a nested message type (e.g. geometry_msgs/msg/Pose)."""
    return getattr(importlib.import_module(".".join(slot.namespaces)), slot.name)


def fields_of(msg):
    names = list(msg.get_fields_and_field_types())
    assert len(names) == len(msg.SLOT_TYPES), type(msg)
    return list(zip(names, msg.SLOT_TYPES))


def is_message(value) -> bool:
    return hasattr(value, "get_fields_and_field_types") and hasattr(value, "SLOT_TYPES")


def as_list(value):
    if isinstance(value, (list, tuple, array.array)) or type(value).__name__ == "ndarray":
        return list(value)
    return None


def differences(expected, actual, path="msg") -> list[str]:
    """Every leaf where ``actual`` differs from ``expected``, as 'path: expected != actual'."""
    if is_message(expected):
        if type(expected) is not type(actual):
            return [f"{path}: type {type(expected).__name__} != {type(actual).__name__}"]
        out = []
        for field, _ in fields_of(expected):
            out += differences(getattr(expected, field), getattr(actual, field), f"{path}.{field}")
        return out
    exp_list, act_list = as_list(expected), as_list(actual)
    if exp_list is not None or act_list is not None:
        if exp_list is None or act_list is None:
            return [f"{path}: {expected!r} != {actual!r}"]
        if len(exp_list) != len(act_list):
            return [f"{path}: length {len(exp_list)} != {len(act_list)}"]
        out = []
        for i, (e, a) in enumerate(zip(exp_list, act_list)):
            out += differences(e, a, f"{path}[{i}]")
        return out
    return [] if expected == actual else [f"{path}: {expected!r} != {actual!r}"]


def unchanged_leaves(filled, default, path="msg") -> list[str]:
    """Leaves of ``filled`` that still hold their default value (should be none)."""
    if is_message(filled):
        out = []
        for field, _ in fields_of(filled):
            out += unchanged_leaves(getattr(filled, field), getattr(default, field),
                                    f"{path}.{field}")
        return out
    f_list, d_list = as_list(filled), as_list(default)
    if f_list is not None:
        if not f_list:
            return [f"{path}: empty"]
        if len(f_list) != len(d_list):  # a sequence (default empty) that got elements
            d_list = [None] * len(f_list)
            if is_message(f_list[0]):
                d_list = [type(f_list[0])() for _ in f_list]
        out = []
        for i, (fv, dv) in enumerate(zip(f_list, d_list)):
            out += unchanged_leaves(fv, dv, f"{path}[{i}]")
        return out
    return [f"{path}: {filled!r}"] if filled == default else []


def reliable_qos():
    """The echo peer's own QoS (reliable, transient local), taken from its file."""
    spec = importlib.util.spec_from_file_location("irp_echo_peer", ECHO_PEER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.echo_qos()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def echo_peer(start_process_module):
    return start_process_module([sys.executable, "-u", str(ECHO_PEER), "--namespace", NS],
                                name="echo_peer", ready=r"^READY ", ready_timeout=60.0)


@pytest.fixture(scope="module")
def echo_endpoints(echo_peer, ros_module_node, module_spin_until):
    """For every message type: a publisher to the peer's input and a subscription to its echo,
    all created at once and waited for together (matching a new endpoint can take ~3 s)."""
    msg_module = importlib.import_module("world_irp_ros.msg")
    qos = reliable_qos()
    endpoints = {}
    for name in MSG_NAMES:
        cls = getattr(msg_module, name)
        received = []
        pub = ros_module_node.create_publisher(cls, f"{NS}/in/{name}", qos)
        sub = ros_module_node.create_subscription(cls, f"{NS}/out/{name}", received.append, qos)
        endpoints[name] = (cls, pub, sub, received)

    def unmatched():
        return [n for n, (_, pub, sub, _) in endpoints.items()
                if pub.get_subscription_count() < 1 or sub.get_publisher_count() < 1]

    module_spin_until(lambda: not unmatched(), 2 * WAIT_S,
                      lambda: "the echo peer's endpoints; unmatched: " + ", ".join(unmatched()))
    return endpoints


# --------------------------------------------------------------------------- tests: files


@pytest.mark.ros
def test_generated_message_types_match_msg_files():
    msg_module = importlib.import_module("world_irp_ros.msg")
    generated = sorted(n for n, o in vars(msg_module).items()
                       if isinstance(o, type) and is_message(o) and not n.startswith("_"))
    assert generated == MSG_NAMES, "rebuild the interfaces: ./run exec true"
    assert len(MSG_NAMES) >= 1


def _field_lines(path: Path):
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or line == "---":
            continue
        yield number, line


def test_every_field_and_constant_is_commented():
    assert INTERFACE_FILES, "no interface files found"
    missing = []
    for path in INTERFACE_FILES:
        for number, line in _field_lines(path):
            if not re.search(r"\s#", line):
                missing.append(f"{path.relative_to(REPO)}:{number}: {line}")
    assert not missing, "fields or constants without a comment:\n" + "\n".join(missing)


def test_every_file_has_a_header_comment():
    for path in INTERFACE_FILES:
        assert path.read_text().lstrip().startswith("#"), f"{path.name}: no leading comment"


CONSTANT = re.compile(r"^\s*\w+\s+([A-Za-z][A-Za-z0-9_]*)\s*=\s*([^#\s]+)")


def test_verdict_constants_in_msg_file_match_verdict_code():
    text = (REPO / "msg" / "Verdict.msg").read_text()
    in_file = {m.group(1): int(m.group(2)) for m in map(CONSTANT.match, text.splitlines()) if m}
    assert in_file == {c.name: c.value for c in VerdictCode}


@pytest.mark.ros
def test_generated_verdict_constants_match_verdict_code():
    from world_irp_ros.msg import Verdict

    for code in VerdictCode:
        assert getattr(Verdict, code.name) == code.value, code.name
    generated = {k: v for k, v in type(Verdict).__prepare__("Verdict", ()).items()
                 if k.isupper()}
    assert generated == {c.name: c.value for c in VerdictCode}


# --------------------------------------------------------------------------- tests: over DDS


@pytest.mark.ros
def test_filler_sets_every_leaf():
    """The generic filler must really change every field, or the echo test proves little."""
    for name in MSG_NAMES:
        cls = getattr(importlib.import_module("world_irp_ros.msg"), name)
        filled = Filler().fill(cls())
        assert unchanged_leaves(filled, cls()) == [], name
        assert filled != cls()


@pytest.mark.ros
@pytest.mark.parametrize("name", MSG_NAMES)
def test_message_round_trip(name, echo_endpoints, module_spin_until):
    cls, pub, _, received = echo_endpoints[name]
    sent = Filler().fill(cls())
    pub.publish(sent)
    module_spin_until(lambda: received, WAIT_S, f"the echo of {name}")
    assert len(received) == 1
    echo = received[0]
    assert differences(sent, echo) == []
    assert echo == sent


@pytest.mark.ros
def test_service_round_trip(echo_peer, ros_node, spin_until):
    from world_irp_ros.srv import RehearseActions

    request = Filler().fill(RehearseActions.Request())
    assert len(request.candidates) == 3 and len(request.scene_objects) == 3
    client = ros_node.create_client(RehearseActions, f"{NS}/rehearse")
    spin_until(client.service_is_ready, WAIT_S, "the RehearseActions service")
    future = client.call_async(request)
    spin_until(future.done, WAIT_S, "the RehearseActions response")
    response = future.result()

    frame = request.criteria.header.frame_id
    assert response.best_index == len(request.candidates)
    assert response.backend == request.candidates[0].id
    assert response.device == frame
    assert response.latency_ms == float(request.num_samples)
    assert len(response.verdicts) == len(response.trajectories) == len(request.candidates)
    for cand, verdict, traj in zip(request.candidates, response.verdicts, response.trajectories):
        assert verdict.action_id == cand.id
        assert verdict.request_id == frame
        assert verdict.code == cand.type
        assert verdict.code_name == cand.object_id
        assert verdict.go is True  # use_scene_override was filled with True
        assert list(verdict.reasons) == [o.id for o in request.scene_objects]
        assert verdict.success_probability == cand.start_delay_s
        assert verdict.collision_probability == request.criteria.max_collision_probability
        assert differences(cand.release_pose.position, verdict.landing_point) == []
        assert differences(request.criteria.header, verdict.header) == []
        assert verdict.backend == "echo_peer"
        assert traj.action_id == cand.id and traj.object_id == cand.object_id
        assert list(traj.t_s) == list(cand.release_velocity_std_mps)
        assert differences([o.min for o in request.scene_environment.obstacles],
                           traj.positions) == []
        assert differences(cand.release_pose.position, traj.final_position) == []
    assert [v.chosen for v in response.verdicts] == [True, False, False]


@pytest.mark.ros
def test_action_round_trip(echo_peer, ros_node, spin_until):
    from rclpy.action import ActionClient

    from world_irp_ros.action import PlanAction

    goal = Filler().fill(PlanAction.Goal())
    goal.max_iterations = 4
    feedback = []
    client = ActionClient(ros_node, PlanAction, f"{NS}/plan")
    try:
        spin_until(client.server_is_ready, WAIT_S, "the PlanAction server")
        spin_until(lambda: ros_node.count_publishers(f"{NS}/plan/_action/feedback") >= 1,
                   WAIT_S, "the PlanAction feedback publisher")
        goal_future = client.send_goal_async(goal, feedback_callback=feedback.append)
        spin_until(goal_future.done, WAIT_S, "the goal response")
        goal_handle = goal_future.result()
        assert goal_handle.accepted
        result_future = goal_handle.get_result_async()
        spin_until(result_future.done, WAIT_S, "the PlanAction result")
    finally:
        client.destroy()

    from action_msgs.msg import GoalStatus

    wrapped = result_future.result()
    assert wrapped.status == GoalStatus.STATUS_SUCCEEDED
    result = wrapped.result
    n = goal.max_iterations
    radius = goal.criteria.target.radius_m

    assert len(feedback) >= 1
    iterations = [fb.feedback.iteration for fb in feedback]
    assert iterations == sorted(iterations) and set(iterations) <= set(range(1, n + 1))
    for fb in feedback:
        f = fb.feedback
        assert f.energy == pytest.approx(100.0 / f.iteration + radius)
        assert f.best_energy <= f.energy
        assert f.best_action.object_id == goal.object_id
        assert f.success_probability == pytest.approx(f.iteration / n)

    assert result.go is True
    assert result.iterations == n
    assert result.energy == pytest.approx(100.0 / n + radius)
    assert result.action.object_id == goal.object_id
    assert result.action.id == f"{goal.object_id}-{n}"
    assert differences(goal.limits.release_position, result.action.release_pose.position) == []
    assert result.verdict.action_id == result.action.id
    assert result.verdict.request_id == goal.criteria.header.frame_id
    assert result.trajectory.object_id == goal.object_id
    assert differences(goal.criteria.target.center, result.trajectory.final_position) == []
    assert result.halt_reason == (f"max_iterations={n} population={goal.population} "
                                  f"num_samples={goal.num_samples}")

"""Messages <-> library types. No node here: pure functions, so they are testable alone.

Inbound conversions raise ``ValidationError`` (code NO_GO_INVALID_REQUEST) naming the message
field at fault (``release_velocity_mps.x``), so a bad number becomes a NO-GO with a reason, never
an exception in a callback. Quaternions go through ``transforms3d`` (ROS orders them x, y, z, w;
``transforms3d`` and the library w, x, y, z); stamps through ``rclpy.time.Time``.

Conventions the messages leave open, decided here:
- ``CandidateAction``: a push starts where the object is (``release_pose`` is not used); throws
  and drops release at ``release_pose.position``. The release orientation is checked but not
  used (the forward model does not track rotation).
- ``Criteria``: ``horizon_s`` 0 and ``min_success_probability`` 0 take the node's defaults;
  ``max_collision_probability`` is capped by the node's ceiling (a request may be stricter,
  never looser); ``target.height_tolerance_m`` 0 means 0.1 m; ``target.radius_m`` must be > 0.
- ``Environment`` in a scene override: gravity (0, 0, 0) means "the node's configured
  environment" (a zero gravity vector is otherwise invalid).
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import transforms3d.quaternions as tq
from builtin_interfaces.msg import Time as TimeMsg
from geometry_msgs.msg import Point, Quaternion, Vector3
from rclpy.time import Time

from world_irp_ros import msg as irp_msg

from ..errors import ValidationError
from ..rehearsal import Trajectory
from ..scene import (Criteria, CandidateAction, DEFAULT_HEIGHT_TOLERANCE_M, Environment,
                     KeepOutZone, ObjectModel, Obstacle, TargetRegion, Uncertainty, field_prefix)
from ..verdicts import Verdict

ACTION_TYPES = {irp_msg.CandidateAction.TYPE_THROW: "throw", irp_msg.CandidateAction.TYPE_DROP: "drop",
                irp_msg.CandidateAction.TYPE_PUSH: "push"}
ACTION_TYPE_IDS = {v: k for k, v in ACTION_TYPES.items()}
SHAPES = {irp_msg.ObjectState.SHAPE_SPHERE: "sphere", irp_msg.ObjectState.SHAPE_BOX: "box",
          irp_msg.ObjectState.SHAPE_CYLINDER: "cylinder"}
SHAPE_IDS = {v: k for k, v in SHAPES.items()}
TARGET_MODES = {irp_msg.TargetRegion.MODE_FIRST_CONTACT: "first_contact",
                irp_msg.TargetRegion.MODE_REST: "rest"}
EVENT_KINDS = {"ground": irp_msg.ContactEvent.KIND_GROUND, "obstacle": irp_msg.ContactEvent.KIND_OBSTACLE,
               "keep_out": irp_msg.ContactEvent.KIND_KEEP_OUT_ENTRY, "rest": irp_msg.ContactEvent.KIND_REST}


# --------------------------------------------------------------------------- small pieces
def check_finite(name: str, values: Iterable[float]) -> None:
    """Raise ``ValidationError`` naming ``name`` (and the index) for a NaN or infinity."""
    for i, x in enumerate(values):
        if not math.isfinite(x):
            raise ValidationError(f"must be a finite number, got {x}", f"{name}[{i}]")


def xyz(v) -> tuple[float, float, float]:
    """(x, y, z) of a Point or Vector3."""
    return (v.x, v.y, v.z)


def finite_xyz(name: str, v) -> tuple[float, float, float]:
    """(x, y, z) of a Point or Vector3, every part finite, else ``ValidationError``."""
    out = (v.x, v.y, v.z)
    for axis, x in zip("xyz", out):
        if not math.isfinite(x):
            raise ValidationError(f"must be a finite number, got {x}", f"{name}.{axis}")
    return out


def point(p: Sequence[float] | None) -> Point:
    """A Point from three numbers; None gives the origin (for fields 'valid when ...')."""
    if p is None:
        return Point()
    return Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))


def vector3(v: Sequence[float]) -> Vector3:
    """A ``geometry_msgs/Vector3`` of three numbers."""
    return Vector3(x=float(v[0]), y=float(v[1]), z=float(v[2]))


def quaternion_wxyz(q: Quaternion, name: str = "orientation") -> tuple[float, float, float, float]:
    """A ROS quaternion (x, y, z, w) as a unit (w, x, y, z) tuple; zero or non-finite is invalid."""
    wxyz = np.array([q.w, q.x, q.y, q.z], dtype=np.float64)
    for axis, x in zip("wxyz", wxyz):
        if not math.isfinite(x):
            raise ValidationError(f"must be a finite number, got {x}", f"{name}.{axis}")
    norm = tq.qnorm(wxyz)
    if norm < 1e-6:
        raise ValidationError("quaternion must not be zero", name)
    return tuple(float(x) for x in wxyz / norm)


def quaternion_msg(wxyz: Sequence[float]) -> Quaternion:
    """A ROS quaternion from a (w, x, y, z) one."""
    w, x, y, z = (float(a) for a in wxyz)
    return Quaternion(x=x, y=y, z=z, w=w)


def time_of(stamp: TimeMsg, clock_type, name: str = "header.stamp") -> Time:
    """``rclpy.time.Time`` of a stamp on the node clock's type (so it compares with ``now()``);
    a negative stamp (``sec`` is signed) is a ``ValidationError``."""
    if stamp.sec < 0:
        raise ValidationError(f"must not be negative, got sec={stamp.sec}", name)
    return Time.from_msg(stamp, clock_type=clock_type)


def is_zero_stamp(stamp: TimeMsg) -> bool:
    """True for the stamp 0 (unset)."""
    return stamp.sec == 0 and stamp.nanosec == 0


# --------------------------------------------------------------------------- messages -> library
def object_from_msg(m: irp_msg.ObjectState) -> ObjectModel:
    """``ObjectModel`` of a perceived ``ObjectState`` (pose, velocity, properties, spreads)."""
    shape = SHAPES.get(m.shape)
    if shape is None:
        raise ValidationError(f"must be SHAPE_SPHERE (0), SHAPE_BOX (1) or SHAPE_CYLINDER (2), "
                              f"got {m.shape}", "shape")
    check_finite("dimensions_m", m.dimensions_m)
    finite_xyz("twist.angular", m.twist.angular)
    uncertainty_values = [m.mass_rel_std, m.drag_rel_std, m.restitution_std]
    check_finite("position_std_m", m.position_std_m)
    check_finite("velocity_std_mps", m.velocity_std_mps)
    with field_prefix("uncertainty"):
        uncertainty = Uncertainty(tuple(m.position_std_m), tuple(m.velocity_std_mps), *uncertainty_values)
    return ObjectModel(
        id=m.id, shape=shape, dimensions_m=tuple(float(x) for x in m.dimensions_m), mass_kg=m.mass_kg,
        drag_coefficient=m.drag_coefficient, restitution=m.restitution, friction=m.friction,
        rolling_resistance=m.rolling_resistance,
        position_m=finite_xyz("pose.position", m.pose.position),
        orientation_wxyz=quaternion_wxyz(m.pose.orientation, "pose.orientation"),
        velocity_mps=finite_xyz("twist.linear", m.twist.linear), uncertainty=uncertainty, label=m.label)


def obstacle_from_msg(m: irp_msg.Obstacle) -> Obstacle:
    """The library ``Obstacle`` of a message (validated; ``ValidationError`` names the field)."""
    if not m.name:
        raise ValidationError("must be a non-empty string", "name")
    return Obstacle(m.name, finite_xyz("min", m.min), finite_xyz("max", m.max), m.restitution, m.friction)


def environment_from_msg(m: irp_msg.Environment, default: Environment) -> Environment:
    """The scene-override environment; gravity (0, 0, 0) means ``default`` (the node's)."""
    g = finite_xyz("gravity_mps2", m.gravity_mps2)
    if g == (0.0, 0.0, 0.0):
        return default
    obstacles = []
    for i, o in enumerate(m.obstacles):
        with field_prefix(f"obstacles[{i}]"):
            obstacles.append(obstacle_from_msg(o))
    return Environment(g, m.air_density_kgpm3, m.ground_height_m, obstacles=tuple(obstacles))


def action_from_msg(m: irp_msg.CandidateAction) -> CandidateAction:
    """``CandidateAction`` of a candidate message (see the module docstring for release_pose)."""
    kind = ACTION_TYPES.get(m.type)
    if kind is None:
        raise ValidationError(f"must be TYPE_THROW (0), TYPE_DROP (1) or TYPE_PUSH (2), got {m.type}",
                              "type")
    release = finite_xyz("release_pose.position", m.release_pose.position)
    q = m.release_pose.orientation  # not used by the model: only checked (cheaply: no numpy here)
    for axis, x in zip("xyzw", (q.x, q.y, q.z, q.w)):
        if not math.isfinite(x):
            raise ValidationError(f"must be a finite number, got {x}", f"release_pose.orientation.{axis}")
    if q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w < 1e-12:
        raise ValidationError("quaternion must not be zero", "release_pose.orientation")
    check_finite("release_velocity_std_mps", m.release_velocity_std_mps)
    return CandidateAction(
        id=m.id, type=kind, object_id=m.object_id, release_position_m=None if kind == "push" else release,
        release_velocity_mps=finite_xyz("release_velocity_mps", m.release_velocity_mps),
        impulse_ns=finite_xyz("impulse_ns", m.impulse_ns), start_delay_s=m.start_delay_s,
        release_velocity_std_mps=tuple(m.release_velocity_std_mps))


def target_from_msg(m: irp_msg.TargetRegion) -> TargetRegion:
    """The library ``TargetRegion`` of a message (validated; ``ValidationError`` names the field)."""
    mode = TARGET_MODES.get(m.mode)
    if mode is None:
        raise ValidationError(f"must be MODE_FIRST_CONTACT (0) or MODE_REST (1), got {m.mode}", "mode")
    if not math.isfinite(m.height_tolerance_m):
        raise ValidationError(f"must be a finite number, got {m.height_tolerance_m}", "height_tolerance_m")
    tolerance = m.height_tolerance_m if m.height_tolerance_m != 0.0 else DEFAULT_HEIGHT_TOLERANCE_M
    with field_prefix("radius_m"):
        if m.radius_m == 0.0:
            raise ValidationError("must be > 0 (a target is required)")
    return TargetRegion(finite_xyz("center", m.center), m.radius_m, tolerance, mode)


def criteria_from_msg(m: irp_msg.Criteria, *, horizon_s: float, min_success_probability: float,
                      max_collision_probability: float) -> Criteria:
    """Library ``Criteria``: 0 for horizon or success threshold takes the node default passed in;
    the collision threshold is capped by the node's ``max_collision_probability``."""
    for name in ("horizon_s", "min_success_probability", "max_collision_probability"):
        value = getattr(m, name)
        if not math.isfinite(value):
            raise ValidationError(f"must be a finite number, got {value}", name)
        if name.endswith("probability") and not 0.0 <= value <= 1.0:
            raise ValidationError(f"must be in [0, 1], got {value}", name)
    with field_prefix("target"):
        target = target_from_msg(m.target)
    zones = []
    for i, z in enumerate(m.keep_out):
        with field_prefix(f"keep_out[{i}]"):
            if not z.name:
                raise ValidationError("must be a non-empty string", "name")
            zones.append(KeepOutZone(z.name, finite_xyz("min", z.min), finite_xyz("max", z.max)))
    return Criteria(target=target, keep_out=tuple(zones),
                    horizon_s=m.horizon_s if m.horizon_s != 0.0 else horizon_s,
                    min_success_probability=(m.min_success_probability if m.min_success_probability != 0.0
                                             else min_success_probability),
                    max_collision_probability=min(m.max_collision_probability, max_collision_probability))


# --------------------------------------------------------------------------- library -> messages
def verdict_to_msg(v: Verdict, *, request_id: str, stamp: TimeMsg, frame_id: str, latency_ms: float,
                   backend: str) -> irp_msg.Verdict:
    """The ``Verdict`` message of a library verdict ("valid when lands" fields are 0 otherwise)."""
    out = irp_msg.Verdict()
    out.header.stamp = stamp
    out.header.frame_id = frame_id
    out.request_id = request_id
    out.action_id = v.action_id
    out.go = bool(v.go)
    out.code = int(v.code)
    out.code_name = v.code.name
    out.reasons = [str(r) for r in v.reasons]
    out.success_probability = float(v.success_probability)
    out.collision_probability = float(v.collision_probability)
    out.lands = bool(v.lands)
    out.landing_point = point(v.landing_point_m if v.lands else None)
    out.landing_time_s = float(v.landing_time_s) if v.lands and math.isfinite(v.landing_time_s) else 0.0
    out.rest_point = point(v.rest_point_m)
    out.chosen = bool(v.chosen)
    out.latency_ms = float(latency_ms)
    out.backend = backend
    return out


def _points(rows: np.ndarray) -> list[Point]:
    return [Point(x=a, y=b, z=c) for a, b, c in np.asarray(rows, dtype=np.float64).tolist()]


def _vectors(rows: np.ndarray) -> list[Vector3]:
    return [Vector3(x=a, y=b, z=c) for a, b, c in np.asarray(rows, dtype=np.float64).tolist()]


def _normal_speed(t: Trajectory, time_s: float, kind: str, gravity_z: float) -> float:
    """Speed into the ground just before a ground impact, from the last sample before it carried
    forward under gravity (samples are 1/30 s apart; drag over that span is neglected). The
    library reports no impact velocity, so other surfaces (any face of a box) give NaN."""
    if kind != "ground" or t.t_s.size == 0:
        return float("nan")
    k = int(np.searchsorted(t.t_s, time_s, side="right")) - 1
    if k < 0:
        return float("nan")
    vz = float(t.velocities_mps[k, 2]) + gravity_z * (time_s - float(t.t_s[k]))
    return max(0.0, -vz)


def trajectory_to_msg(t: Trajectory | None, *, action_id: str, object_id: str, stamp: TimeMsg,
                      frame_id: str, gravity_z: float = -9.81) -> irp_msg.PredictedTrajectory:
    """``PredictedTrajectory`` of a nominal track; None (a candidate not rehearsed) gives an empty
    one carrying only the ids."""
    out = irp_msg.PredictedTrajectory()
    out.header.stamp = stamp
    out.header.frame_id = frame_id
    out.action_id = action_id
    out.object_id = object_id
    if t is None:
        return out
    out.t_s = np.asarray(t.t_s, dtype=np.float64).tolist()
    out.positions = _points(t.positions_m)
    out.velocities_mps = _vectors(t.velocities_mps)
    events = []
    for e in t.events:
        ev = irp_msg.ContactEvent()
        ev.kind = EVENT_KINDS.get(e.kind, irp_msg.ContactEvent.KIND_REST)
        ev.time_s = float(e.time_s)
        ev.position = point(e.position_m)
        ev.with_what = e.with_what if e.kind != "rest" else ""
        ev.normal_speed_mps = _normal_speed(t, e.time_s, e.kind, gravity_z)
        events.append(ev)
    out.events = events
    out.comes_to_rest = bool(t.at_rest)
    final = t.final_position_m if t.final_position_m is not None else (
        tuple(t.positions_m[-1]) if len(t.positions_m) else None)
    out.final_position = point(final)
    return out


def object_to_msg(o: ObjectModel, header=None) -> irp_msg.ObjectState:
    """``ObjectState`` of a library object (a simulator's "perception"); ``header`` (stamp and
    frame) is copied in when given. Inverse of ``object_from_msg``."""
    out = irp_msg.ObjectState()
    if header is not None:
        out.header.stamp = header.stamp
        out.header.frame_id = header.frame_id
    out.id = o.id
    out.label = o.label
    out.shape = SHAPE_IDS[o.shape]
    out.dimensions_m = [float(x) for x in o.dimensions_m]
    out.pose.position = point(o.position_m)
    out.pose.orientation = quaternion_msg(o.orientation_wxyz)
    out.twist.linear = vector3(o.velocity_mps)
    out.mass_kg = float(o.mass_kg)
    out.drag_coefficient = float(o.drag_coefficient)
    out.restitution = float(o.restitution)
    out.friction = float(o.friction)
    out.rolling_resistance = float(o.rolling_resistance)
    u = o.uncertainty
    out.position_std_m = [float(x) for x in u.position_std_m]
    out.velocity_std_mps = [float(x) for x in u.velocity_std_mps]
    out.mass_rel_std = float(u.mass_rel_std)
    out.drag_rel_std = float(u.drag_rel_std)
    out.restitution_std = float(u.restitution_std)
    return out


def action_to_msg(a: CandidateAction) -> irp_msg.CandidateAction:
    """Candidate message of a library action (the plan result)."""
    out = irp_msg.CandidateAction()
    out.id = a.id
    out.type = ACTION_TYPE_IDS[a.type]
    out.object_id = a.object_id
    if a.release_position_m is not None:
        out.release_pose.position = point(a.release_position_m)
    out.release_velocity_mps = vector3(a.release_velocity_mps)
    out.impulse_ns = vector3(a.impulse_ns)
    out.start_delay_s = float(a.start_delay_s)
    out.release_velocity_std_mps = [float(x) for x in a.release_velocity_std_mps]
    return out

"""The cerebellum's error signal inside ``world_irp``: predict, watch, compare, recalibrate.

On ``~/executed_actions`` (``ActionExecution``, sent by the motor controller as it acts) the node
predicts the action's nominal track with what it believes now, records the object's perceived
track from ``~/object_states`` until it rests (or the horizon passes), then publishes
``~/prediction_error`` (``PredictionError``) and refits the object's drag coefficient (and
restitution when it bounced) with ``calibration.calibrate``. The fitted values, with their reduced
uncertainty, replace the perceived ones in every later rehearsal of that object, for the life of
the node, and are saved to ``calibration_file`` when one is set.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from world_irp_ros import msg as irp_msg

from ..calibration import CalibrationResult, CalibrationStore, ObservedTrack, calibrate, compare
from ..scene import CandidateAction, Criteria, Environment, ObjectModel, RehearsalRequest, Scene
from . import conversions as conv
from . import qos

# The object counts as settled once slower than this (m/s) for SETTLE_S after its first contact.
SETTLE_SPEED_MPS = 0.03
SETTLE_S = 0.3
# The track starts at the first sample this close to the commanded release point (m): the first
# sample after the release may already be a frame's flight away from it.
RELEASE_MATCH_M = 0.3
# A calibration is kept only when its fit explains the flight to within this RMS (m) and every
# fitted value is known to within this fraction of itself.
MAX_FIT_RMS_M = 0.03
MAX_RELATIVE_STD = 0.3


@dataclass
class _Watch:
    action: CandidateAction
    model: ObjectModel
    release_s: float
    prediction: object
    t_s: list = field(default_factory=list)
    positions_m: list = field(default_factory=list)
    speeds_mps: list = field(default_factory=list)


class ExecutionMonitor:
    """Watches executed actions for one node; all ROS plumbing goes through ``node``."""

    def __init__(self, node, store: CalibrationStore, calibration_file: str, horizon_s: float, callback_group):
        self._node = node
        self.store = store
        self.calibration_file = calibration_file
        self._horizon_s = horizon_s
        self._lock = threading.Lock()
        self._watches: dict[str, _Watch] = {}
        self._pub = node.create_publisher(irp_msg.PredictionError, "~/prediction_error", qos.VERDICT)
        node.create_subscription(irp_msg.ActionExecution, "~/executed_actions", self._on_execution,
                                 qos.CANDIDATE_ACTIONS, callback_group=callback_group)
        node.create_timer(0.1, self._check, callback_group=callback_group)

    def _on_execution(self, m: irp_msg.ActionExecution) -> None:
        try:
            action = conv.action_from_msg(m.action)
            model = self._node.current_model(action.object_id)
            if model is None:
                raise ValueError(f"no usable state of {action.object_id!r} to predict from")
            scene = Scene(self._node.environment(), {model.id: model})
            request = RehearsalRequest(scene, (action,), Criteria(horizon_s=self._horizon_s))
            prediction = self._node.rehearser().rehearse(request, samples=1).trajectories[0]
        except Exception as err:  # a bad report must not stop the node; say why it is ignored
            self._node.get_logger().error(f"executed action {m.action.id!r} not followed: {err}")
            return
        release_s = m.header.stamp.sec + m.header.stamp.nanosec * 1e-9
        with self._lock:
            self._watches[action.object_id] = _Watch(action, model, release_s, prediction)

    def on_state(self, object_id: str, position_m, velocity_mps, stamp_s: float) -> None:
        """Feed one perceived state (called by the node for every kept state)."""
        with self._lock:
            watch = self._watches.get(object_id)
            if watch is None or stamp_s < watch.release_s:
                return
            watch.t_s.append(stamp_s - watch.release_s)
            watch.positions_m.append(tuple(position_m))
            watch.speeds_mps.append(float(np.linalg.norm(velocity_mps)))

    def _settled(self, w: _Watch) -> bool:
        if not w.t_s:
            return False
        if w.t_s[-1] >= self._horizon_s:
            return True
        t = np.array(w.t_s)
        moving = np.nonzero(np.array(w.speeds_mps) >= SETTLE_SPEED_MPS)[0]
        return t[-1] > SETTLE_S and moving.size > 0 and t[-1] - t[moving[-1]] >= SETTLE_S

    def _check(self) -> None:
        with self._lock:
            done = [oid for oid, w in self._watches.items() if self._settled(w)]
            finished = [self._watches.pop(oid) for oid in done]
        for w in finished:
            try:
                self._finish(w)
            except Exception as err:  # never let one comparison take the node down
                self._node.get_logger().error(f"prediction error of {w.action.id!r}: {type(err).__name__}: {err}")

    def _finish(self, w: _Watch) -> None:
        t, p = np.array(w.t_s), np.array(w.positions_m)
        # Samples stamped after the command but taken before the object left the hand's release
        # point (latency) show it where it was: the track starts where it is at the release point.
        start = w.action.release_position_m or w.model.position_m
        near = np.nonzero(np.linalg.norm(p - np.array(start), axis=1) < RELEASE_MATCH_M)[0]
        if near.size:
            t, p = t[near[0]:], p[near[0]:]
        observed = ObservedTrack(t, p)
        env: Environment = self._node.environment()
        floor = env.ground_height_m + float(w.model.half_extents_m()[2])
        cmp = compare(w.prediction, observed, floor)
        scene = Scene(env, {w.model.id: w.model})
        result = calibrate(self._node.rehearser().backend, scene, w.action, observed)
        if result.rms_after_m > MAX_FIT_RMS_M or any(
                s > MAX_RELATIVE_STD * max(abs(a), 1e-9) for a, s in zip(result.after, result.std_after)):
            # A fit that explains the track badly (a disturbed or truncated track) teaches nothing.
            self._node.get_logger().warning(
                f"{w.action.id}: calibration rejected (fit RMS {result.rms_after_m * 100:.1f} cm)")
            result = CalibrationResult()
        else:
            self.store.update(w.model.id, result)
            if self.calibration_file:
                self.store.save(self.calibration_file)
        m = irp_msg.PredictionError()
        m.header.stamp = self._node.get_clock().now().to_msg()
        m.header.frame_id = self._node.frame_id()
        m.action_id, m.object_id = w.action.id, w.model.id
        m.rms_track_error_m = cmp.rms_track_error_m
        m.landing_error_m = float(cmp.landing_error_m) if np.isfinite(cmp.landing_error_m) else float("nan")
        m.landing_time_error_s = float(cmp.landing_time_error_s)
        m.predicted_landing = conv.point(np.nan_to_num(cmp.predicted_landing_m))
        m.observed_landing = conv.point(np.nan_to_num(cmp.observed_landing_m))
        m.t_s = [float(t) for t in cmp.t_s]
        m.predicted_positions = [conv.point(p) for p in cmp.predicted_m]
        m.observed_positions = [conv.point(p) for p in cmp.observed_m]
        m.calibrated_parameters = list(result.names)
        m.values_before = [float(x) for x in result.before]
        m.values_after = [float(x) for x in result.after]
        m.std_after = [float(x) for x in result.std_after]
        self._pub.publish(m)
        fitted = ", ".join(f"{n} {b:.3f} -> {a:.3f} ± {s:.3f}"
                           for n, b, a, s in zip(result.names, result.before, result.after, result.std_after))
        self._node.get_logger().info(f"{w.action.id}: landing error {cmp.landing_error_m * 100:.1f} cm, "
                                     f"RMS track error {cmp.rms_track_error_m * 100:.1f} cm; {fitted}")

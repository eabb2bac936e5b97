"""The cerebellum's error signal inside ``world_irp``: predict, watch, compare, recalibrate.

On ``~/executed_actions`` (``ActionExecution``, sent by the motor controller as it acts) the node
predicts the action's nominal track with what it believes now, records the object's perceived
track from ``~/object_states`` until it rests (or the horizon passes), then publishes
``~/prediction_error`` (``PredictionError``) and refits the parameters the track determines with
``calibration.calibrate``: after a throw or drop the drag coefficient (and the restitution when it
bounced), after a push the mass and the friction or rolling resistance. The fitted values, with
their reduced uncertainty, replace the perceived ones in every later rehearsal of that object,
for the life of the node, and are saved to ``calibration_file`` when one is set.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from world_irp_ros import msg as irp_msg

from ..calibration import (CalibrationResult, CalibrationStore, ObservedTrack, calibrate, compare,
                           contact_surfaces)
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
# How far a release stamp may lie in the future (clock offsets between machines), and how long
# after the horizon a watch waits for late states before it is compared with what it has (s).
STAMP_SLACK_S = 1.0


@dataclass
class _Watch:
    action: CandidateAction
    model: ObjectModel
    release_s: float
    prediction: object
    horizon_s: float        # the node's horizon when the action was reported (it may change later)
    t_s: list = field(default_factory=list)
    positions_m: list = field(default_factory=list)
    speeds_mps: list = field(default_factory=list)


class ExecutionMonitor:
    """Watches executed actions for one node; all ROS plumbing goes through ``node``."""

    def __init__(self, node, store: CalibrationStore, calibration_file: str, callback_group):
        self._node = node
        self.store = store
        self.calibration_file = calibration_file
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
            horizon_s = self._node.horizon_s()
            request = RehearsalRequest(scene, (action,), Criteria(horizon_s=horizon_s))
            prediction = self._node.rehearser().rehearse(request, samples=1).trajectories[0]
        except Exception as err:  # a bad report must not stop the node; say why it is ignored
            self._node.get_logger().error(f"executed action {m.action.id!r} not followed: {err}")
            return
        release_s = m.header.stamp.sec + m.header.stamp.nanosec * 1e-9
        age_s = self._now_s() - release_s
        if release_s <= 0.0 or not -STAMP_SLACK_S <= age_s <= horizon_s:
            # A track is matched to the action by its release time: a wrong stamp matches nothing.
            when = "zero" if release_s <= 0.0 else f"{age_s:.3f} s old, not within the last {horizon_s:g} s"
            self._node.get_logger().error(f"executed action {action.id!r} not followed: its release stamp is {when}")
            return
        with self._lock:
            replaced = self._watches.get(action.object_id)
            self._watches[action.object_id] = _Watch(action, model, release_s, prediction, horizon_s)
        if replaced is not None:
            self._node.get_logger().warning(f"executed action {replaced.action.id!r} of {action.object_id!r} "
                                            f"not compared: {action.id!r} moved the object before it settled")

    def _now_s(self) -> float:
        return self._node.get_clock().now().nanoseconds * 1e-9

    def on_state(self, object_id: str, position_m, velocity_mps, stamp_s: float) -> None:
        """Feed one perceived state (called by the node for every kept state)."""
        with self._lock:
            watch = self._watches.get(object_id)
            if watch is None or stamp_s < watch.release_s or (watch.t_s and stamp_s - watch.release_s <= watch.t_s[-1]):
                return  # before the release, or a repeat of a stamp already recorded
            watch.t_s.append(stamp_s - watch.release_s)
            watch.positions_m.append(tuple(position_m))
            watch.speeds_mps.append(float(np.linalg.norm(velocity_mps)))

    def _settled(self, w: _Watch) -> bool:
        if not w.t_s:
            return False
        if w.t_s[-1] >= w.horizon_s:
            return True
        t = np.array(w.t_s)
        moving = np.nonzero(np.array(w.speeds_mps) >= SETTLE_SPEED_MPS)[0]
        return t[-1] > SETTLE_S and moving.size > 0 and t[-1] - t[moving[-1]] >= SETTLE_S

    def _check(self) -> None:
        now_s = self._now_s()
        with self._lock:
            # Settled, or past the horizon (plus slack for late states) whatever arrived.
            done = [oid for oid, w in self._watches.items()
                    if self._settled(w) or now_s - w.release_s > w.horizon_s + STAMP_SLACK_S]
            finished = [self._watches.pop(oid) for oid in done]
        for w in finished:
            try:
                self._finish(w)
            except Exception as err:  # never let one comparison take the node down
                self._node.get_logger().error(f"prediction error of {w.action.id!r}: {type(err).__name__}: {err}")

    def _calibration(self, w: _Watch, scene: Scene, observed: ObservedTrack) -> tuple[CalibrationResult, str]:
        """The refit of the watched object, applied (and saved) when it is trustworthy; else an
        empty result and why not."""
        try:
            result = calibrate(self._node.rehearser().backend, scene, w.action, observed)
        except Exception as err:  # a track the fit cannot use (too short, no motion, ...)
            return CalibrationResult(), f"{type(err).__name__}: {err}"
        # A fit that explains the track badly (a disturbed or truncated track), or that the track
        # does not pin down (the drag of an object that hardly moved), teaches nothing.
        if not result.rms_after_m <= MAX_FIT_RMS_M:
            return CalibrationResult(), (f"the fit leaves {result.rms_after_m * 100:.1f} cm RMS, more than "
                                         f"{MAX_FIT_RMS_M * 100:.0f} cm")
        kept = [i for i, (a, sd) in enumerate(zip(result.after, result.std_after))
                if sd <= MAX_RELATIVE_STD * max(abs(a), 1e-9)]
        vague = "; ".join(f"{result.names[i]} {result.after[i]:.3g} is known only to ± {result.std_after[i]:.3g}, "
                          f"more than {MAX_RELATIVE_STD:.0%} of it"
                          for i in range(len(result.names)) if i not in kept)
        if not kept:
            return CalibrationResult(), vague
        if vague:  # the well-determined parameters are still learnt
            self._node.get_logger().warning(f"{w.action.id}: not calibrated: {vague}")
            result = CalibrationResult([result.names[i] for i in kept], [result.before[i] for i in kept],
                                       [result.after[i] for i in kept], [result.std_after[i] for i in kept],
                                       result.rms_before_m, result.rms_after_m)
        self.store.update(w.model.id, result)
        if self.calibration_file:
            try:
                self.store.save(self.calibration_file)
            except OSError as err:
                self._node.get_logger().error(f"{w.action.id}: calibration applied but not saved to "
                                              f"{self.calibration_file}: {err}")
        return result, ""

    def _finish(self, w: _Watch) -> None:
        if len(w.t_s) < 3:
            self._node.get_logger().error(f"executed action {w.action.id!r} not compared: {len(w.t_s)} state(s) "
                                          f"of {w.model.id!r} arrived within the {w.horizon_s:g} s horizon")
            return
        t, p = np.array(w.t_s), np.array(w.positions_m).reshape(-1, 3)
        # Samples stamped after the command but taken before the object left the hand's release
        # point (latency) show it where it was: the track starts where it is at the release point.
        start = w.action.release_position_m or w.model.position_m
        near = np.nonzero(np.linalg.norm(p - np.array(start), axis=1) < RELEASE_MATCH_M)[0]
        if near.size:
            t, p = t[near[0]:], p[near[0]:]
        observed = ObservedTrack(t, p)
        env: Environment = self._node.environment()
        scene = Scene(env, {w.model.id: w.model})
        floor, _ = contact_surfaces(scene, w.model, observed.positions_m)
        cmp = compare(w.prediction, observed, floor)
        # The comparison is published whatever becomes of the calibration.
        result, why = self._calibration(w, scene, observed)
        if why:
            self._node.get_logger().warning(f"{w.action.id}: calibration not applied: {why}")
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

"""``world_irp``: the managed (lifecycle) node that rehearses actions before a robot takes them.

Interfaces (names relative to the node, ``~/``; QoS in ``qos.py``):
- in: ``~/object_states`` (``ObjectStateArray``) kept as the newest state per object id by its
  stamp (at most ``MAX_KEPT_STATES`` objects); ``~/candidate_actions`` (``RehearsalRequest``), the
  streaming path.
- service ``~/rehearse`` (``RehearseActions``); action ``~/plan`` (``PlanAction``, IRP refinement
  with feedback every iteration, cancellable between iterations).
- out: ``~/verdict`` (one ``Verdict`` per candidate of every rehearsal, the chosen one flagged),
  ``~/predicted_trajectories``, ``~/markers`` (when ``visualize``), ``/diagnostics``.
- the error signal (``error_signal.py``): in ``~/executed_actions`` (``ActionExecution``), out
  ``~/prediction_error`` (``PredictionError``) after the object settled, and recalibration.

Lifecycle: ``on_configure`` creates the backend and warms it up (compilation and a first real
rehearsal), so the first request pays no start-up cost; ``on_activate`` activates the publishers
and lets requests through; ``on_deactivate`` and ``on_cleanup`` undo that (cleanup drops the
backend and the cached states). The service, the action and the subscriptions exist in every
state so that a request is never met with silence: while not active each one is answered
``NO_GO_NOT_ACTIVE`` (on ``~/verdict`` for the streaming path, which is therefore a plain
publisher; the trajectory and marker publishers are lifecycle publishers).

Fail-safe: every problem is a NO-GO with its own code and a reason (stale state, unknown object,
non-finite numbers, too many candidates, backend exception, deadline, busy, not active), logged
once per cause (``/diagnostics`` counts every one); an unexpected exception in a request path is
answered NO_GO_BACKEND_ERROR, never raised into the executor.

Busy rule: one rehearsal runs at a time (``Gate``). ``~/rehearse`` (reentrant callback group) and
``~/candidate_actions`` wait for it at most ``busy_wait_ms`` and never past their deadline
(``busy_policy: wait``), or not at all (``reject``), then answer ``NO_GO_BUSY``. ``~/plan`` takes
the rehearser one refinement step at a time and yields to waiting requests between steps, so a
long plan delays a request by at most one step; one plan runs at a time, a second goal is
answered ``NO_GO_BUSY``. A multi-threaded executor (``executor.Executor``) with one callback group
per interface keeps perception, lifecycle, parameters and diagnostics responsive meanwhile.
"""
from __future__ import annotations

import gc
import itertools
from pathlib import Path
import threading
import time
from dataclasses import dataclass, field
from typing import Sequence

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.exceptions import InvalidHandle
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.time import Time
from diagnostic_msgs.msg import DiagnosticArray
from visualization_msgs.msg import MarkerArray

from world_irp_ros import msg as irp_msg
from world_irp_ros.action import PlanAction
from world_irp_ros.srv import RehearseActions

from ..backends import create_backend
from ..errors import PROBLEM_CODES, BackendError, ValidationError, VerdictCode, WorldIrpError
from ..rehearsal import Rehearser, Trajectory
from ..scene import (CandidateAction, Criteria, Environment, KeepOutZone, ObjectModel, Obstacle,
                     RehearsalRequest, Scene, TargetRegion)
from ..verdicts import Verdict, choose_best, no_go, no_go_all
from ..calibration import CalibrationStore
from . import conversions as conv
from .error_signal import ExecutionMonitor
from .executor import Executor
from . import qos
from .diagnostics import NodeStatus, RequestStats, diagnostic_array
from .markers import rehearsal_markers
from .params import Settings, check_settings, declare, validate_changes

NODE_NAME = "world_irp"
EXECUTOR_THREADS = 6
# Perceived states kept at most (the oldest go first), and object ids a reason lists at most.
MAX_KEPT_STATES = 1024
MAX_LISTED_IDS = 10


def known_ids(ids) -> str:
    """The known object ids for a reason: sorted, at most ``MAX_LISTED_IDS`` of them."""
    names = sorted(ids)
    if len(names) > MAX_LISTED_IDS:
        return f"{', '.join(names[:MAX_LISTED_IDS])}, ... ({len(names)} in all)"
    return ", ".join(names) or "none"


# --------------------------------------------------------------------------- the rehearser gate
class Gate:
    """One user of the rehearser at a time; requests go before plan steps.

    ``acquire(timeout_s)`` waits at most that long (0: do not wait) and returns False when the
    gate stayed taken. A plan step (``priority=False``) also waits while any request waits.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held = False
        self._waiting = 0
        self.holder = ""

    def acquire(self, timeout_s: float, who: str, priority: bool = True) -> bool:
        """Take the gate for ``who`` within ``timeout_s``; False when it stayed taken."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            if priority:
                self._waiting += 1
            try:
                while self._held or (not priority and self._waiting):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0.0:
                        return False
                    self._cond.wait(remaining)
                self._held = True
                self.holder = who
                return True
            finally:
                if priority:
                    self._waiting -= 1
                    self._cond.notify_all()

    def release(self) -> None:
        """Give the gate back and wake the waiters."""
        with self._cond:
            self._held = False
            self.holder = ""
            self._cond.notify_all()


# --------------------------------------------------------------------------- per-request data
@dataclass
class StateEntry:
    """Latest perceived state of one object: the model, or why the message was unusable."""

    model: ObjectModel | None
    stamp: Time
    error: str = ""


@dataclass
class Answer:
    """Everything one rehearsal answers, in request order."""

    request_id: str
    stamp: Time
    verdicts: list[Verdict]
    trajectories: list[Trajectory | None]
    actions: list[CandidateAction | None]
    object_ids: list[str]
    best_index: int = -1
    backend: str = ""
    device: str = ""
    latency_ms: float = 0.0
    criteria: Criteria | None = None
    gravity_z: float = -9.81
    problems: list[tuple[VerdictCode, str]] = field(default_factory=list)
    trajectory_msgs: list | None = None   # built once, shared by the response and the topic
    verdict_msgs: list | None = None
    # The parameters the request is judged with, read once: a change arriving meanwhile must not
    # mix (one parameter's old value with another's new one).
    settings: Settings | None = None


class WorldIrpNode(LifecycleNode):
    """The managed node ``world_irp`` (see the module docstring)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        declare(self)
        self._settings = Settings.from_node(self)
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._parameters_set)

        self._lifecycle = "unconfigured"
        self._active = False
        self._rehearser: Rehearser | None = None
        self._problem = ""
        self._gate = Gate()
        self._plan_lock = threading.Lock()
        self._states: dict[str, StateEntry] = {}
        self._states_lock = threading.Lock()
        self._newest_stamp: Time | None = None
        self._stats = RequestStats()
        self._logged: set[str] = set()
        self._logged_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._obstacles: tuple[Obstacle, ...] = ()
        self._calibration = CalibrationStore()

        # One callback group per interface: a long plan never holds up a request, perception,
        # the lifecycle services (default group) or the diagnostics timer.
        self._cg_states = MutuallyExclusiveCallbackGroup()
        self._cg_rehearse = ReentrantCallbackGroup()
        self._cg_stream = MutuallyExclusiveCallbackGroup()
        self._cg_plan = ReentrantCallbackGroup()
        self._cg_timer = MutuallyExclusiveCallbackGroup()

        self._verdict_pub = self.create_publisher(irp_msg.Verdict, "~/verdict", qos.VERDICT)
        self._traj_pub = self.create_lifecycle_publisher(
            irp_msg.PredictedTrajectoryArray, "~/predicted_trajectories", qos.PREDICTED_TRAJECTORIES)
        self._marker_pub = self.create_lifecycle_publisher(MarkerArray, "~/markers", qos.MARKERS)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", qos.DIAGNOSTICS)
        self.create_subscription(irp_msg.ObjectStateArray, "~/object_states", self._on_object_states,
                                 qos.OBJECT_STATES, callback_group=self._cg_states)
        self.create_subscription(irp_msg.RehearsalRequest, "~/candidate_actions", self._on_candidate_actions,
                                 qos.CANDIDATE_ACTIONS, callback_group=self._cg_stream)
        self.create_service(RehearseActions, "~/rehearse", self._on_rehearse, callback_group=self._cg_rehearse)
        self._plan_server = ActionServer(
            self, PlanAction, "~/plan", self._execute_plan, callback_group=self._cg_plan,
            goal_callback=lambda _goal: GoalResponse.ACCEPT,
            cancel_callback=lambda _request: CancelResponse.ACCEPT)
        self.create_timer(self._settings.diagnostics_period_s, self._publish_diagnostics,
                          callback_group=self._cg_timer)
        self._monitor = ExecutionMonitor(self, self._calibration, "", MutuallyExclusiveCallbackGroup())
        self.get_logger().info("world_irp: unconfigured (configure and activate it, or set autostart)")

    # ------------------------------------------------------------------ parameters
    def _validate_parameters(self, params) -> SetParametersResult:
        reason = validate_changes(params, configured=self._lifecycle in ("inactive", "active"))
        if not reason:
            reason = check_settings(Settings.from_node(self, params))
        if reason:
            self.get_logger().warning(f"parameter change refused: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _parameters_set(self, params) -> None:
        self._settings = Settings.from_node(self)
        rehearser = self._rehearser
        if rehearser is not None:
            rehearser.dt_s = self._settings.dt_s
        self.get_logger().info("parameters set: " + ", ".join(f"{p.name}={p.value!r}" for p in params))

    def _environment(self, s: Settings | None = None) -> Environment:
        s = s or self._settings
        return Environment(s.gravity_mps2, s.air_density_kgpm3, s.ground_height_m, obstacles=self._obstacles)

    # Used by the error signal (error_signal.ExecutionMonitor).
    def environment(self) -> Environment:
        """The configured environment."""
        return self._environment()

    def rehearser(self) -> Rehearser:
        """The configured rehearser (raises when unconfigured)."""
        if self._rehearser is None:
            raise RuntimeError("the node is not configured")
        return self._rehearser

    def frame_id(self) -> str:
        """The world frame."""
        return self._settings.frame_id

    def horizon_s(self) -> float:
        """The prediction horizon of requests that do not set one (s)."""
        return self._settings.horizon_s

    def current_model(self, object_id: str) -> ObjectModel | None:
        """The latest valid (calibrated) model of an object, whatever its age."""
        with self._states_lock:
            entry = self._states.get(object_id)
        return None if entry is None else entry.model

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        s = self._settings
        start = time.perf_counter()
        try:
            problem = check_settings(s)       # parameters from a file were never checked together
            if problem:
                raise ValueError(problem)
            self._obstacles = s.obstacles()
            self._calibration = (CalibrationStore.load(s.calibration_file)
                                 if s.calibration_file and Path(s.calibration_file).is_file() else CalibrationStore())
        except Exception as err:  # the obstacle parameters, or the calibration file (names the field)
            self._problem = f"configure failed: {err}" if isinstance(err, ValueError) else \
                f"configure failed: {type(err).__name__}: {err}"
            self.get_logger().error(self._problem)
            return TransitionCallbackReturn.FAILURE
        try:
            backend = create_backend(s.backend, s.device)
            backend.warmup()
            rehearser = Rehearser(backend, dt_s=s.dt_s)
            self._warm_up(rehearser)
        except Exception as err:  # configure must fail with a reason, not an exception
            reason = err.reason if isinstance(err, WorldIrpError) else f"{type(err).__name__}: {err}"
            self._problem = f"configure failed: backend {s.backend!r} on {s.device!r}: {reason}"
            self.get_logger().error(self._problem)
            return TransitionCallbackReturn.FAILURE
        self._rehearser = rehearser
        self._monitor.store, self._monitor.calibration_file = self._calibration, s.calibration_file
        self._problem = ""
        self._lifecycle = "inactive"
        # Everything allocated so far (modules, compiled kernels, the warm-up) lives as long as
        # the process: moving it out of the collector's reach keeps full collections, triggered
        # by the many small message objects of each request, from pausing requests for 100+ ms.
        gc.collect()
        gc.freeze()
        self.get_logger().info(
            f"world_irp: configured, backend {backend.name!r} on {backend.device}, warmed up in "
            f"{(time.perf_counter() - start):.2f} s")
        return super().on_configure(state)

    def _warm_up(self, rehearser: Rehearser) -> None:
        """Run the whole request path (batch building, rollout, judging, conversions) on small
        scenes, so no request pays a first-call cost. A compiled backend specialises on array
        layouts that change with the batch size (one rollout, a few, more than one parallel
        block) and with empty or non-empty obstacle and zone lists: each variant runs once here
        (a variant first met by a request would compile for seconds inside its deadline)."""
        g = self._settings.gravity_mps2
        obj = ObjectModel("warmup", "sphere", (0.03, 0.0, 0.0), 0.2, position_m=(0.0, 0.0, 1.0))
        environments = (Environment(g), Environment(g, obstacles=(Obstacle("box", (2.0, -0.5, 0.0), (2.5, 0.5, 0.5)),
                                                                   Obstacle("shelf", (3.0, 1.0, 0.0), (3.5, 2.0, 1.0)))))
        zones = ((), (KeepOutZone("z", (5.0, 5.0, 0.0), (6.0, 6.0, 1.0)),),
                 (KeepOutZone("y", (7.0, 5.0, 0.0), (8.0, 6.0, 1.0)), KeepOutZone("x", (9.0, 5.0, 0.0), (9.5, 6.0, 1.0))))
        actions = tuple(CandidateAction(f"a{i}", "throw", "warmup", (0.0, 0.0, 1.0), (1.0 + i, 0.0, 2.0))
                        for i in range(4))
        outcome = None
        for env in environments:
            for keep_out in zones:
                criteria = Criteria(TargetRegion((1.0, 0.0, 0.0), 0.3), keep_out, horizon_s=2.0)
                for n_actions, samples in ((1, 1), (4, 1), (4, 16), (4, 64)):
                    request = RehearsalRequest(Scene(env, {"warmup": obj}), actions[:n_actions], criteria,
                                               request_id="warmup")
                    outcome = rehearser.rehearse(request, samples=samples)
                    failed = [v for v in outcome.verdicts if v.code in PROBLEM_CODES]
                    if failed:  # a node that cannot rehearse the warm-up scene must not go active
                        raise BackendError(f"warm-up rehearsal failed: {'; '.join(failed[0].reasons)}")
        stamp = self.get_clock().now().to_msg()
        for v, t in zip(outcome.verdicts, outcome.trajectories):
            conv.verdict_to_msg(v, request_id="warmup", stamp=stamp, frame_id="", latency_ms=0.0, backend="")
            conv.trajectory_to_msg(t, action_id=v.action_id, object_id="warmup", stamp=stamp, frame_id="")

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = True
        self._lifecycle = "active"
        rehearser = self._rehearser
        self.get_logger().info(
            f"world_irp: active (backend {rehearser.backend.name!r} on {rehearser.backend.device})"
            if rehearser else "world_irp: active")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._lifecycle = "inactive"
        self.get_logger().info("world_irp: inactive (requests are answered NO_GO_NOT_ACTIVE)")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("world_irp: unconfigured (backend released)")
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._lifecycle = "finalized"
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"world_irp: error during a transition from {state.label}; cleaning up")
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        self._active = False
        self._lifecycle = "unconfigured"
        rehearser, self._rehearser = self._rehearser, None
        close = getattr(rehearser.backend, "close", None) if rehearser is not None else None
        if close is not None:
            close()  # e.g. the PyBullet backend's worker processes
        with self._states_lock:
            self._states.clear()
            self._newest_stamp = None
        with self._logged_lock:
            self._logged.clear()

    @property
    def lifecycle_state(self) -> str:
        """"unconfigured", "inactive", "active" or "finalized"."""
        return self._lifecycle

    def stop_requests(self) -> None:
        """Process shutdown: answer NOT_ACTIVE from now on and let a running plan stop."""
        self._active = False

    # ------------------------------------------------------------------ logging
    def _log_once(self, code: VerdictCode, reason: str) -> None:
        """Log a problem the first time its code is seen (until the next cleanup)."""
        with self._logged_lock:
            if code.name in self._logged:
                return
            self._logged.add(code.name)
        self.get_logger().warning(f"NO-GO {code.name}: {reason} (logged once per cause; every one is "
                               f"counted in /diagnostics)")

    # ------------------------------------------------------------------ perception
    def _on_object_states(self, msg: irp_msg.ObjectStateArray) -> None:
        try:
            self._keep_states(msg)
        except Exception as err:  # a subscription callback must never take the node down
            self.get_logger().error(f"object_states: {type(err).__name__}: {err}")

    def _keep_states(self, msg: irp_msg.ObjectStateArray) -> None:
        if self._lifecycle not in ("inactive", "active"):
            return  # states are kept only while configured; cleanup drops them
        frame = self._settings.frame_id
        clock = self.get_clock()
        clock_type = clock.clock_type
        now = clock.now()
        with self._states_lock:
            kept = {o.id: self._states.get(o.id) for o in msg.objects}
        entries = {}
        for i, o in enumerate(msg.objects):
            if not o.id:
                self._log_once(VerdictCode.NO_GO_INVALID_REQUEST, f"object_states: objects[{i}] has no id; ignored")
                continue
            stamp = Time(clock_type=clock_type)  # 0: such an entry is stale, whatever its fault
            try:
                stamp = conv.time_of(msg.header.stamp if conv.is_zero_stamp(o.header.stamp) else o.header.stamp,
                                     clock_type)
                old = kept[o.id]
                if old is not None and stamp < old.stamp <= now:
                    continue  # arrived out of order, valid or not: the newer state stays (unless the clock jumped back)
                state_frame = o.header.frame_id or msg.header.frame_id or frame
                if state_frame != frame:
                    raise ValidationError(f"frame {state_frame!r} is not the node's frame {frame!r} "
                                          f"(no tf2 lookup: publish states in {frame!r})", "header.frame_id")
                entries[o.id] = StateEntry(self._calibration.apply(conv.object_from_msg(o)), stamp)
                self._monitor.on_state(o.id, conv.xyz(o.pose.position), conv.xyz(o.twist.linear),
                                       stamp.nanoseconds * 1e-9)
            except Exception as err:  # this object's state is unusable; the others in the message are not
                entries[o.id] = StateEntry(None, stamp, str(err) if isinstance(err, ValidationError)
                                           else f"{type(err).__name__}: {err}")
        with self._states_lock:
            self._states.update(entries)
            for e in entries.values():
                if e.model is not None and (self._newest_stamp is None or e.stamp > self._newest_stamp):
                    self._newest_stamp = e.stamp
            if len(self._states) > MAX_KEPT_STATES:
                self._forget_oldest()

    def _forget_oldest(self) -> None:
        """Drop the oldest-stamped states down to ``MAX_KEPT_STATES`` (a tracker that hands out a
        new id per track would otherwise grow the table for the life of the node). Holds
        ``_states_lock``."""
        by_age = sorted(self._states, key=lambda k: self._states[k].stamp.nanoseconds)
        for object_id in by_age[:len(self._states) - MAX_KEPT_STATES]:
            del self._states[object_id]

    def _state_problem(self, object_id: str, now: Time, timeout_s: float):
        """(model, None) for a usable state, else (None, (code, reason))."""
        with self._states_lock:
            entry = self._states.get(object_id)
            known = list(self._states)
        if entry is None:
            return None, (VerdictCode.NO_GO_UNKNOWN_OBJECT,
                          f"no state known for object {object_id!r} (known: {known_ids(known)})")
        if entry.model is None:
            return None, (VerdictCode.NO_GO_INVALID_REQUEST,
                          f"the latest state of object {object_id!r} is invalid: {entry.error}")
        age = (now - entry.stamp).nanoseconds * 1e-9
        if age > timeout_s:
            return None, (VerdictCode.NO_GO_STALE_STATE,
                          f"state of object {object_id!r} is {age:.3f} s old (state_timeout_s {timeout_s:g})")
        if age < -timeout_s:
            return None, (VerdictCode.NO_GO_STALE_STATE,
                          f"state of object {object_id!r} is stamped {-age:.3f} s in the future "
                          f"(clock mismatch? state_timeout_s {timeout_s:g})")
        return entry.model, None

    # ------------------------------------------------------------------ rehearsal
    def _not_active_reason(self) -> str:
        if self._lifecycle == "unconfigured" and self._problem:
            return f"node is unconfigured: {self._problem}"
        return f"node is {self._lifecycle}, not active: activate it (lifecycle) before asking"

    def _rehearse(self, candidates: Sequence[irp_msg.CandidateAction], criteria_msg: irp_msg.Criteria,
                  num_samples: int, override, request_id: str, receipt: float, stamp: Time) -> Answer:
        """Judge ``candidates``: validation and state checks per candidate, then one rehearsal of
        the usable ones; every failure is a NO-GO with its code (see the module docstring)."""
        s = self._settings
        rehearser = self._rehearser
        ids = [c.id for c in candidates]
        answer = Answer(request_id, stamp, [], [None] * len(ids), [None] * len(ids),
                        [c.object_id for c in candidates], gravity_z=s.gravity_mps2[2], settings=s)
        if rehearser is not None:
            answer.backend, answer.device = rehearser.backend.name, rehearser.backend.device

        def reject_all(code: VerdictCode, reason: str) -> Answer:
            answer.verdicts = no_go_all(ids, code, reason)
            answer.problems.append((code, reason))
            return answer

        def reject_request(code: VerdictCode, reason: str) -> Answer:
            # One verdict with an empty action_id stands for the whole request: a request with no
            # candidates still gets an answer, and one over max_candidates is not answered with
            # more messages than the verdict queue holds.
            answer.trajectories, answer.actions, answer.object_ids = [None], [None], [""]
            answer.verdicts = [no_go("", code, reason)]
            answer.problems.append((code, reason))
            return answer

        if not ids:
            return reject_request(VerdictCode.NO_GO_INVALID_REQUEST, "candidates: the request holds no candidates")
        if len(ids) > s.max_candidates:
            return reject_request(VerdictCode.NO_GO_TOO_MANY_CANDIDATES,
                                  f"{len(ids)} candidates, more than max_candidates {s.max_candidates}")
        if not self._active or rehearser is None:
            return reject_all(VerdictCode.NO_GO_NOT_ACTIVE, self._not_active_reason())
        frame = criteria_msg.header.frame_id
        if frame not in ("", s.frame_id):
            return reject_all(VerdictCode.NO_GO_INVALID_REQUEST,
                              f"criteria.header.frame_id {frame!r} is not the node's frame {s.frame_id!r} "
                              f"(no tf2 lookup: express the request in {s.frame_id!r})")
        try:
            criteria = conv.criteria_from_msg(criteria_msg, horizon_s=s.horizon_s,
                                              min_success_probability=s.min_success_probability,
                                              max_collision_probability=s.max_collision_probability)
        except ValidationError as err:
            return reject_all(VerdictCode.NO_GO_INVALID_REQUEST, f"criteria.{err}")
        answer.criteria = criteria

        environment = self._environment(s)
        scene_objects: dict[str, ObjectModel] | None = None
        if override is not None:
            objects_msg, env_msg = override
            scene_objects = {}
            try:
                for i, o in enumerate(objects_msg):
                    with_prefix = f"scene_objects[{i}]"
                    if o.header.frame_id not in ("", s.frame_id):
                        raise ValidationError(f"frame {o.header.frame_id!r} is not the node's frame "
                                              f"{s.frame_id!r}", f"{with_prefix}.header.frame_id")
                    try:
                        model = conv.object_from_msg(o)
                    except ValidationError as err:
                        raise ValidationError(err.reason, f"{with_prefix}.{err.field}") from None
                    if model.id in scene_objects:
                        raise ValidationError(f"duplicate object id {model.id!r}", f"{with_prefix}.id")
                    scene_objects[model.id] = model
                try:
                    environment = conv.environment_from_msg(env_msg, environment)
                except ValidationError as err:
                    raise ValidationError(err.reason, f"scene_environment.{err.field}") from None
            except ValidationError as err:
                return reject_all(VerdictCode.NO_GO_INVALID_REQUEST, str(err))
        answer.gravity_z = environment.gravity_mps2[2]

        now = self.get_clock().now()
        verdicts: list[Verdict | None] = [None] * len(ids)
        models: dict[str, ObjectModel] = {}
        seen: set[str] = set()
        for i, c in enumerate(candidates):
            try:
                action = conv.action_from_msg(c)
            except ValidationError as err:
                verdicts[i] = no_go(c.id, VerdictCode.NO_GO_INVALID_REQUEST, f"candidates[{i}].{err}")
                continue
            if action.id in seen:
                verdicts[i] = no_go(c.id, VerdictCode.NO_GO_INVALID_REQUEST,
                                    f"candidates[{i}].id: duplicate candidate id {action.id!r}")
                continue
            seen.add(action.id)
            answer.actions[i] = action
            if scene_objects is not None:
                model = scene_objects.get(action.object_id)
                problem = None if model is not None else (
                    VerdictCode.NO_GO_UNKNOWN_OBJECT,
                    f"object {action.object_id!r} is not in scene_objects "
                    f"(known: {known_ids(scene_objects)})")
            else:
                model, problem = self._state_problem(action.object_id, now, s.state_timeout_s)
            if problem is not None:
                verdicts[i] = no_go(c.id, *problem)
                answer.actions[i] = None
                continue
            models[action.object_id] = model
        for v in verdicts:
            if v is not None:
                answer.problems.append((v.code, v.reasons[0]))

        usable = [i for i, v in enumerate(verdicts) if v is None]
        if usable:
            outcome_verdicts, trajectories = self._run_rehearsal(
                rehearser, [answer.actions[i] for i in usable], Scene(environment, models), criteria,
                num_samples, request_id, receipt, answer)
            for k, i in enumerate(usable):
                verdicts[i] = outcome_verdicts[k]
                answer.trajectories[i] = trajectories[k] if k < len(trajectories) else None
        answer.verdicts = [v for v in verdicts if v is not None]
        answer.best_index = choose_best(answer.verdicts)
        return answer

    def _run_rehearsal(self, rehearser: Rehearser, actions: list[CandidateAction], scene: Scene,
                       criteria: Criteria, num_samples: int, request_id: str, receipt: float,
                       answer: Answer) -> tuple[list[Verdict], list[Trajectory]]:
        """One rehearsal of validated actions under the busy rule and the deadline."""
        s = answer.settings
        ids = [a.id for a in actions]

        def fail(code: VerdictCode, reason: str):
            answer.problems.append((code, reason))
            return no_go_all(ids, code, reason), []

        try:
            request = RehearsalRequest(scene, tuple(actions), criteria,
                                       samples=int(num_samples) if num_samples else None,
                                       request_id=request_id)
        except ValidationError as err:
            return fail(err.code, f"{err}")
        samples = int(num_samples) if num_samples else (1 if request.is_deterministic else s.num_samples)
        if samples * len(actions) > s.max_rollouts:
            return fail(VerdictCode.NO_GO_TOO_MANY_CANDIDATES,
                        f"{len(actions)} candidates x {samples} samples = {samples * len(actions)} rollouts, "
                        f"more than max_rollouts {s.max_rollouts}")
        elapsed_ms = (time.perf_counter() - receipt) * 1e3
        wait_ms = 0.0 if s.busy_policy == "reject" else min(s.busy_wait_ms, max(0.0, s.deadline_ms - elapsed_ms))
        if not self._gate.acquire(wait_ms * 1e-3, who=f"request {request_id}"):
            holder = self._gate.holder or "another request"
            return fail(VerdictCode.NO_GO_BUSY,
                        f"rehearser busy ({holder}) for more than {wait_ms:.1f} ms "
                        f"(busy_policy {s.busy_policy!r}, busy_wait_ms {s.busy_wait_ms:g})")
        try:
            remaining_ms = s.deadline_ms - (time.perf_counter() - receipt) * 1e3
            if remaining_ms <= 0.0:
                return fail(VerdictCode.NO_GO_DEADLINE,
                            f"deadline of {s.deadline_ms:g} ms passed before the rehearsal could start")
            outcome = rehearser.rehearse(request, deadline_ms=remaining_ms, samples=samples)
        except Exception as err:  # the library maps backend failures itself; this is the last net
            return fail(VerdictCode.NO_GO_BACKEND_ERROR, f"rehearsal failed: {type(err).__name__}: {err}")
        finally:
            self._gate.release()
        answer.backend, answer.device = outcome.backend, outcome.device
        for v in outcome.verdicts:
            if v.code in PROBLEM_CODES:
                answer.problems.append((v.code, v.reasons[0] if v.reasons else v.code.name))
                break
        return outcome.verdicts, outcome.trajectories

    def _finish(self, answer: Answer, receipt: float, respond: bool) -> None:
        """Pack the answer, hold it to the deadline, log problems once, count the request, publish
        verdicts, trajectories and markers. ``respond``: a service response will carry the
        trajectories (else they are packed only for subscribers)."""
        if respond or (self._active and self._traj_pub.get_subscription_count() > 0):
            self._trajectory_msgs(answer)
        if respond or self._verdict_pub.get_subscription_count() > 0:
            # Carries the latency up to here (packing the verdicts of 1024 candidates: ~10 ms).
            answer.latency_ms = (time.perf_counter() - receipt) * 1e3
            self._verdict_msgs(answer)
        if not self._active:      # deactivated, cleaned up or shut down while this was rehearsed
            self._replace_judged(answer, VerdictCode.NO_GO_NOT_ACTIVE,
                                 f"the node became {self._lifecycle} before the answer was ready")
        self._hold_to_deadline(answer, receipt)
        latency_ms = (time.perf_counter() - receipt) * 1e3
        answer.latency_ms = latency_ms
        for code, reason in answer.problems:
            self._log_once(code, reason)
        self._stats.record(latency_ms, [v.code for v in answer.verdicts])
        try:
            self._publish(answer, latency_ms)
        except Exception as err:  # e.g. during shutdown; the answer itself still goes out
            self.get_logger().error(f"request {answer.request_id}: publishing failed: {type(err).__name__}: {err}")

    def _hold_to_deadline(self, answer: Answer, receipt: float) -> None:
        """Replace every judged outcome by NO_GO_DEADLINE when the answer, packed, is later than
        ``deadline_ms``: packing large requests takes as long as rehearsing them. Verdicts that
        report a problem of the request itself keep their code."""
        deadline_ms = (answer.settings or self._settings).deadline_ms
        total_ms = (time.perf_counter() - receipt) * 1e3
        if total_ms > deadline_ms:
            self._replace_judged(answer, VerdictCode.NO_GO_DEADLINE,
                                 f"answer ready {total_ms:.1f} ms after receipt, over the {deadline_ms:g} ms deadline")

    @staticmethod
    def _replace_judged(answer: Answer, code: VerdictCode, reason: str) -> None:
        """Every judged outcome of ``answer`` becomes NO-GO ``code``; verdicts that report a
        problem of the request itself keep theirs."""
        judged = [i for i, v in enumerate(answer.verdicts) if v.code not in PROBLEM_CODES]
        if not judged:
            return
        for i in judged:
            answer.verdicts[i] = no_go(answer.verdicts[i].action_id, code, reason)
        answer.best_index = -1
        answer.verdict_msgs = None
        answer.problems.append((code, reason))

    def _publish(self, answer: Answer, latency_ms: float) -> None:
        # Converting a message costs time whether or not anyone listens (about 0.1 ms per
        # trajectory): topics nobody subscribes to are skipped.
        if self._verdict_pub.get_subscription_count() > 0:
            for m in self._verdict_msgs(answer):
                self._verdict_pub.publish(m)
        if self._active:
            if self._traj_pub.get_subscription_count() > 0:
                self._traj_pub.publish(self._trajectory_array(answer))
            if self._settings.visualize and self._marker_pub.get_subscription_count() > 0:
                self._marker_pub.publish(rehearsal_markers(
                    stamp=self.get_clock().now().to_msg(), frame_id=self._settings.frame_id,
                    criteria=answer.criteria, actions=answer.actions, verdicts=answer.verdicts,
                    trajectories=answer.trajectories))

    def _verdict_msgs(self, answer: Answer) -> list[irp_msg.Verdict]:
        """The verdict messages of an answer (built once: the topic and the response share them)."""
        if answer.verdict_msgs is None:
            stamp = self.get_clock().now().to_msg()
            answer.verdict_msgs = [conv.verdict_to_msg(v, request_id=answer.request_id, stamp=stamp,
                                                       frame_id=self._settings.frame_id,
                                                       latency_ms=answer.latency_ms, backend=answer.backend)
                                   for v in answer.verdicts]
        return answer.verdict_msgs

    def _trajectory_msgs(self, answer: Answer) -> list[irp_msg.PredictedTrajectory]:
        """One per candidate; only the ones ``response_trajectories`` asks for carry the track."""
        if answer.trajectory_msgs is None:
            stamp = answer.stamp.to_msg()
            mode = self._settings.response_trajectories
            answer.trajectory_msgs = [
                conv.trajectory_to_msg(t if mode == "all" or (mode == "chosen" and v.chosen) else None,
                                       action_id=v.action_id, object_id=oid, stamp=stamp,
                                       frame_id=self._settings.frame_id, gravity_z=answer.gravity_z)
                for t, v, oid in zip(answer.trajectories, answer.verdicts, answer.object_ids)]
        return answer.trajectory_msgs

    def _trajectory_array(self, answer: Answer) -> irp_msg.PredictedTrajectoryArray:
        out = irp_msg.PredictedTrajectoryArray()
        out.header.stamp = answer.stamp.to_msg()
        out.header.frame_id = self._settings.frame_id
        out.request_id = answer.request_id
        out.trajectories = self._trajectory_msgs(answer)
        return out

    def _safe_rehearse(self, candidates, criteria, num_samples, override, request_id, receipt, stamp) -> Answer:
        try:
            return self._rehearse(candidates, criteria, num_samples, override, request_id, receipt, stamp)
        except Exception as err:  # never raise into the executor: answer NO-GO instead
            reason = f"internal error: {type(err).__name__}: {err}"
            self.get_logger().error(f"request {request_id}: {reason}")
            ids = [c.id for c in candidates]
            answer = Answer(request_id, stamp, no_go_all(ids, VerdictCode.NO_GO_BACKEND_ERROR, reason),
                            [None] * len(ids), [None] * len(ids), [c.object_id for c in candidates])
            answer.problems.append((VerdictCode.NO_GO_BACKEND_ERROR, reason))
            return answer

    # ------------------------------------------------------------------ service and streaming path
    def _on_rehearse(self, request: RehearseActions.Request,
                     response: RehearseActions.Response) -> RehearseActions.Response:
        receipt = time.perf_counter()
        stamp = self.get_clock().now()
        request_id = f"rehearse-{next(self._ids)}"
        override = (request.scene_objects, request.scene_environment) if request.use_scene_override else None
        answer = self._safe_rehearse(request.candidates, request.criteria, request.num_samples, override,
                                     request_id, receipt, stamp)
        self._finish(answer, receipt, respond=True)
        response.verdicts = self._verdict_msgs(answer)
        response.trajectories = self._trajectory_msgs(answer)
        response.best_index = int(answer.best_index)
        response.backend = answer.backend
        response.device = answer.device
        response.latency_ms = (time.perf_counter() - receipt) * 1e3
        return response

    def _on_candidate_actions(self, msg: irp_msg.RehearsalRequest) -> None:
        receipt = time.perf_counter()
        now = self.get_clock().now()
        stamp = now
        if not conv.is_zero_stamp(msg.header.stamp) and msg.header.stamp.sec >= 0:
            stamp = conv.time_of(msg.header.stamp, self.get_clock().clock_type)
        request_id = msg.request_id or f"stream-{next(self._ids)}"
        criteria = msg.criteria
        if not criteria.header.frame_id and msg.header.frame_id:
            criteria.header.frame_id = msg.header.frame_id
        answer = self._safe_rehearse(msg.candidates, criteria, msg.num_samples, None, request_id, receipt, stamp)
        self._finish(answer, receipt, respond=False)

    # ------------------------------------------------------------------ plan action
    def _execute_plan(self, goal_handle):
        from .plan_action import run_plan  # the IRP adapter (imports the planner on first use)

        return run_plan(self, goal_handle)

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        now = self.get_clock().now()
        with self._states_lock:
            newest = self._newest_stamp
            known = len(self._states)
        rehearser = self._rehearser
        s = self._settings
        status = NodeStatus(
            lifecycle_state=self._lifecycle,
            backend=rehearser.backend.name if rehearser else s.backend,
            device=rehearser.backend.device if rehearser else s.device,
            objects_known=known,
            newest_state_age_s=None if newest is None else (now - newest).nanoseconds * 1e-9,
            state_timeout_s=s.state_timeout_s, problem=self._problem)
        self._diag_pub.publish(diagnostic_array(now.to_msg(), f"{self.get_fully_qualified_name()}",
                                                self._stats.snapshot(), status))


def spin(executor: Executor, node: WorldIrpNode) -> None:
    """``executor.spin()`` that survives rclpy's race between destroying an entity in one thread
    and building the wait set in another (ros2/rclpy#1284, #1355): switching ``use_sim_time``
    off at runtime destroys the ``/clock`` subscription from the parameter callback's thread,
    and the executor may then raise ``InvalidHandle`` for its event handler. The next spin
    builds the wait set without it, so the node spins on instead of dying."""
    while rclpy.ok(context=executor.context):
        try:
            executor.spin()
            return
        except InvalidHandle as err:
            node.get_logger().warning(f"executor: {err} (an entity destroyed while waiting); spinning on")


def main(argv: list[str] | None = None) -> int:
    """Run the node until Ctrl-C / SIGTERM; with parameter ``autostart`` it configures and
    activates itself (for running without a lifecycle manager)."""
    rclpy.init(args=argv)
    node = None
    executor = None
    try:
        node = WorldIrpNode()
        if node.get_parameter("autostart").value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().error("autostart: configure failed; staying unconfigured (see above)")
            elif node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().error("autostart: activate failed")
        executor = Executor(num_threads=EXECUTOR_THREADS)
        executor.add_node(node)
        spin(executor, node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.stop_requests()  # a running plan ends at its next step instead of racing teardown
        if executor is not None:
            executor.shutdown(timeout_sec=5.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``~/plan``: the IRP refinement (``WorldIRP``) behind the ``PlanAction`` action.

The goal names an object from the perceived states (checked like a rehearsal: unknown, invalid or
stale gives a NO-GO result), the criteria and the actuator limits. ``WorldIRP.iterate`` runs the
cross-entropy refinement one step at a time; after every step a feedback message goes out
(energy of the step's best, best energy so far, the best action, its probabilities, whether it
is GO), and the goal is checked for cancellation and the node for deactivation. The result is
GO only for a plan that finished with a GO while the object's state is still fresh
(``final_verdict``); population x samples is held to ``max_rollouts`` like a request.

Every rehearsal of the planner goes through the node's ``Gate`` with low priority (see
``node.py``): a request waiting for the rehearser is served before the next refinement step, so
a long plan delays ``~/rehearse`` by one step at most. One plan runs at a time: another goal is
answered at once with ``NO_GO_BUSY``.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

from world_irp_ros import msg as irp_msg
from world_irp_ros.action import PlanAction

from ..errors import PROBLEM_CODES, ValidationError, VerdictCode
from ..irp import WorldIRP
from ..planning import ActuatorLimits, ThrowProblem
from ..scene import Scene
from ..verdicts import Verdict, no_go
from . import conversions as conv

if TYPE_CHECKING:
    from .node import WorldIrpNode

GATE_POLL_S = 0.05


class PlanInterrupted(Exception):
    """The goal was canceled or the node deactivated while a step waited for the rehearser."""


class _GatedRehearser:
    """What the planner sees as its rehearser: the node's, taken through the gate (low priority),
    giving up when the goal is canceled or the node stops being active."""

    def __init__(self, node: "WorldIrpNode", goal_handle, request_id: str):
        self._node = node
        self._goal = goal_handle
        self._who = f"plan {request_id}"

    def rehearse(self, request, deadline_ms=None, samples=None):
        node = self._node
        while not node._gate.acquire(GATE_POLL_S, who=self._who, priority=False):
            if self._goal.is_cancel_requested or not node._active:
                raise PlanInterrupted()
        try:
            rehearser = node._rehearser
            if rehearser is None or not node._active:
                raise PlanInterrupted()
            return rehearser.rehearse(request, deadline_ms=deadline_ms, samples=samples)
        finally:
            node._gate.release()


class _NodeIRP(WorldIRP):
    """``WorldIRP`` planning on the node's rehearser (through the gate) instead of its own."""

    def __init__(self, config: dict, rehearser: _GatedRehearser):
        super().__init__(config)
        self._gated = rehearser

    @property
    def rehearser(self):  # type: ignore[override]
        return self._gated


def limits_from_msg(m: irp_msg.ActuatorLimits) -> ActuatorLimits:
    """Planning ``ActuatorLimits`` of the message (all validated by the library)."""
    return ActuatorLimits(conv.finite_xyz("release_position", m.release_position), m.max_release_speed_mps,
                          m.min_release_speed_mps, m.min_elevation_rad, m.max_elevation_rad,
                          m.min_azimuth_rad, m.max_azimuth_rad)


def _result(node: "WorldIrpNode", verdict: Verdict, halt_reason: str, request_id: str, *, candidate=None,
            iterations: int = 0, energy: float = float("inf"), object_id: str = "", gravity_z: float = -9.81,
            latency_ms: float = 0.0, backend: str = "") -> PlanAction.Result:
    stamp = node.get_clock().now().to_msg()
    frame = node._settings.frame_id
    result = PlanAction.Result()
    result.go = bool(verdict.go)
    result.verdict = conv.verdict_to_msg(verdict, request_id=request_id, stamp=stamp, frame_id=frame,
                                         latency_ms=latency_ms, backend=backend)
    if candidate is not None:
        result.action = conv.action_to_msg(candidate.action)
        result.trajectory = conv.trajectory_to_msg(candidate.trajectory, action_id=candidate.action.id,
                                                   object_id=object_id, stamp=stamp, frame_id=frame,
                                                   gravity_z=gravity_z)
    result.iterations = int(iterations)
    result.energy = float(energy)
    result.halt_reason = halt_reason
    return result


def final_verdict(verdict: Verdict, halt_reason: str, state_problem: tuple[VerdictCode, str] | None) -> Verdict:
    """The verdict a plan ends with: its best candidate's (chosen when GO), unless the plan was
    canceled, the node deactivated, or the object's state went stale while planning
    (``state_problem``: the node's check at the end); then a NO-GO with that code that keeps the
    prediction. A plan that did not finish never sends a GO to ``~/verdict``."""
    if halt_reason == "canceled":
        state_problem = (VerdictCode.NO_GO_CANCELED, "the plan was canceled before it finished")
    elif halt_reason == "node deactivated":
        state_problem = (VerdictCode.NO_GO_NOT_ACTIVE, "the node was deactivated while planning")
    elif state_problem is not None:
        state_problem = (state_problem[0], f"{state_problem[1]} at the end of planning")
    if state_problem is None:
        return replace(verdict, chosen=verdict.go)
    return replace(verdict, code=state_problem[0], reasons=[state_problem[1], *verdict.reasons], chosen=False)


def run_plan(node: "WorldIrpNode", goal_handle) -> PlanAction.Result:
    """Execute one ``~/plan`` goal (the action server's execute callback)."""
    receipt = time.perf_counter()
    goal = goal_handle.request
    request_id = f"plan-{next(node._ids)}"

    def refuse(code: VerdictCode, reason: str) -> PlanAction.Result:
        node._log_once(code, reason)
        goal_handle.abort()
        return _result(node, no_go(goal.object_id or "plan", code, reason), f"refused: {code.name}", request_id)

    if not node._active or node._rehearser is None:
        return refuse(VerdictCode.NO_GO_NOT_ACTIVE, node._not_active_reason())
    if not node._plan_lock.acquire(blocking=False):
        return refuse(VerdictCode.NO_GO_BUSY, "another plan is running (one plan at a time)")
    try:
        return _run_locked(node, goal_handle, goal, request_id, receipt, refuse)
    except Exception as err:  # never raise into the executor
        reason = f"plan failed: {type(err).__name__}: {err}"
        node.get_logger().error(reason)
        return refuse(VerdictCode.NO_GO_BACKEND_ERROR, reason)
    finally:
        node._plan_lock.release()


def _run_locked(node, goal_handle, goal, request_id, receipt, refuse) -> PlanAction.Result:
    s = node._settings
    frame = goal.criteria.header.frame_id
    if frame not in ("", s.frame_id):
        return refuse(VerdictCode.NO_GO_INVALID_REQUEST,
                      f"criteria.header.frame_id {frame!r} is not the node's frame {s.frame_id!r}")
    model, problem = node._state_problem(goal.object_id, node.get_clock().now(), s.state_timeout_s)
    if problem is not None:
        return refuse(*problem)
    try:
        criteria = conv.criteria_from_msg(goal.criteria, horizon_s=s.horizon_s,
                                          min_success_probability=s.min_success_probability,
                                          max_collision_probability=s.max_collision_probability)
    except ValidationError as err:
        return refuse(VerdictCode.NO_GO_INVALID_REQUEST, f"criteria.{err}")
    try:
        limits = limits_from_msg(goal.limits)
    except ValidationError as err:
        return refuse(VerdictCode.NO_GO_INVALID_REQUEST, f"limits.{err}")
    environment = node._environment()
    max_iterations = int(goal.max_iterations) or s.plan_max_iterations
    try:
        problem = ThrowProblem(
            scene=Scene(environment, {model.id: model}), criteria=criteria, object_id=model.id, limits=limits,
            population=int(goal.population) or s.plan_population, max_iterations=max_iterations,
            samples=int(goal.num_samples) or s.num_samples, request_id=request_id)
    except ValidationError as err:
        return refuse(VerdictCode.NO_GO_INVALID_REQUEST, f"{err}")
    rollouts = problem.population * problem.samples_per_candidate
    if rollouts > s.max_rollouts:
        return refuse(VerdictCode.NO_GO_TOO_MANY_CANDIDATES,
                      f"population {problem.population} x {problem.samples_per_candidate} samples = {rollouts} "
                      f"rollouts per iteration, more than max_rollouts {s.max_rollouts}")

    rehearser = _GatedRehearser(node, goal_handle, request_id)
    irp = _NodeIRP({"max_iterations": max_iterations, "halt_eps": s.plan_halt_eps, "backend": s.backend,
                    "device": s.device}, rehearser)
    history: list = []
    node._stats.record_plan()
    node.get_logger().info(f"{request_id}: planning a throw of {model.id!r}, population {problem.population}, "
                           f"at most {max_iterations} iterations")
    halt_reason = ""
    try:
        for state in irp.iterate(problem, history=history):
            x = state.x
            feedback = PlanAction.Feedback()
            feedback.iteration = int(state.step_idx)
            feedback.energy = float(x.step_best.energy)
            feedback.best_energy = float(x.best.energy)
            feedback.best_action = conv.action_to_msg(x.best.action)
            feedback.success_probability = float(x.best.verdict.success_probability)
            feedback.collision_probability = float(x.best.verdict.collision_probability)
            feedback.feasible = bool(x.best.verdict.go)
            goal_handle.publish_feedback(feedback)
            if goal_handle.is_cancel_requested:
                halt_reason = "canceled"
                break
            if not node._active:
                halt_reason = "node deactivated"
                break
    except PlanInterrupted:
        halt_reason = "canceled" if goal_handle.is_cancel_requested else "node deactivated"
    if not history:
        reason = f"plan stopped before its first rehearsal ({halt_reason})"
        if halt_reason == "canceled":
            goal_handle.canceled()
            return _result(node, no_go(model.id, VerdictCode.NO_GO_CANCELED, reason), halt_reason, request_id)
        return refuse(VerdictCode.NO_GO_NOT_ACTIVE, reason)
    last = history[-1]
    best = last.x.best
    halt_reason = halt_reason or irp.get_halt_reason(history)
    _, state_problem = node._state_problem(model.id, node.get_clock().now(), s.state_timeout_s)
    verdict = final_verdict(best.verdict, halt_reason, state_problem)
    latency_ms = (time.perf_counter() - receipt) * 1e3
    result = _result(node, verdict, halt_reason, request_id, candidate=best, iterations=last.step_idx,
                     energy=float(best.energy), object_id=model.id, gravity_z=environment.gravity_mps2[2],
                     latency_ms=latency_ms, backend=last.x.backend)
    node._verdict_pub.publish(result.verdict)
    if node._active:
        out = irp_msg.PredictedTrajectoryArray()
        out.header = result.trajectory.header
        out.request_id = request_id
        out.trajectories = [result.trajectory]
        node._traj_pub.publish(out)
    if halt_reason == "canceled":
        goal_handle.canceled()
    elif halt_reason == "backend_error" or verdict.code in PROBLEM_CODES:
        goal_handle.abort()
    else:
        goal_handle.succeed()
    node.get_logger().info(f"{request_id}: {halt_reason} after {last.step_idx} iteration(s), best "
                           f"{verdict.code.name}, energy {best.energy:.4f}, {latency_ms:.0f} ms")
    return result

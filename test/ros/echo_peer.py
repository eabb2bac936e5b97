#!/usr/bin/env python3
"""Echo peer for the interface tests, run as a separate process.

- For every message type in ``world_irp_ros.msg`` it subscribes to ``<ns>/in/<Name>`` and
  republishes each message unchanged on ``<ns>/out/<Name>`` (reliable, transient-local, so a
  message published before discovery finished is still delivered).
- Service ``<ns>/rehearse`` (``world_irp_ros/srv/RehearseActions``) answers with a response
  derived field by field from the request (see ``rehearse``), so a caller can check that every
  part of the request arrived.
- Action ``<ns>/plan`` (``world_irp_ros/action/PlanAction``) sends ``max(2, max_iterations)``
  (at most 20) feedback messages carrying energies, then a result derived from the goal.

Prints ``READY <n> message types`` once everything is created; exits 0 on SIGINT.
Usage: python test/ros/echo_peer.py [--namespace /irp_test]
"""
from __future__ import annotations

import argparse
import sys
import time


def message_types() -> dict[str, type]:
    """Every message class the package generated, by name."""
    import world_irp_ros.msg as msg_module

    return {name: obj for name, obj in sorted(vars(msg_module).items())
            if isinstance(obj, type) and not name.startswith("_")
            and hasattr(obj, "get_fields_and_field_types")}


def echo_qos():
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def feedback_energy(iteration: int, goal) -> float:
    """Energy reported in feedback ``iteration`` (1-based): decreasing, offset by the target radius."""
    return 100.0 / iteration + goal.criteria.target.radius_m


def rehearse(request, response):
    """RehearseActions: echo the request into the response in a checkable way."""
    from world_irp_ros.msg import PredictedTrajectory, Verdict

    frame = request.criteria.header.frame_id
    response.best_index = len(request.candidates)
    response.backend = request.candidates[0].id if request.candidates else ""
    response.device = frame
    response.latency_ms = float(request.num_samples)
    for i, cand in enumerate(request.candidates):
        verdict = Verdict()
        verdict.header = request.criteria.header
        verdict.request_id = frame
        verdict.action_id = cand.id
        verdict.code = cand.type
        verdict.code_name = cand.object_id
        verdict.go = bool(request.use_scene_override)
        verdict.reasons = [obj.id for obj in request.scene_objects]
        verdict.success_probability = cand.start_delay_s
        verdict.collision_probability = request.criteria.max_collision_probability
        verdict.landing_point = cand.release_pose.position
        verdict.chosen = i == 0
        verdict.backend = "echo_peer"
        response.verdicts.append(verdict)

        traj = PredictedTrajectory()
        traj.header = request.criteria.header
        traj.action_id = cand.id
        traj.object_id = cand.object_id
        traj.t_s = [float(v) for v in cand.release_velocity_std_mps]
        traj.positions = [obstacle.min for obstacle in request.scene_environment.obstacles]
        traj.final_position = cand.release_pose.position
        traj.comes_to_rest = True
        response.trajectories.append(traj)
    return response


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", default="/irp_test")
    args = parser.parse_args(argv)
    ns = args.namespace.rstrip("/")

    import rclpy
    from rclpy.action import ActionServer, GoalResponse
    from rclpy.callback_groups import ReentrantCallbackGroup
    from rclpy.executors import ExternalShutdownException

    from world_irp_ros.action import PlanAction
    from world_irp_ros.ros.executor import Executor
    from world_irp_ros.srv import RehearseActions

    rclpy.init()
    node = rclpy.create_node("irp_echo_peer")
    qos = echo_qos()
    keep = []  # publishers and subscriptions must stay referenced
    types = message_types()
    for name, cls in types.items():
        pub = node.create_publisher(cls, f"{ns}/out/{name}", qos)
        sub = node.create_subscription(cls, f"{ns}/in/{name}",
                                       lambda msg, pub=pub: pub.publish(msg), qos)
        keep += [pub, sub]

    node.create_service(RehearseActions, f"{ns}/rehearse", rehearse)

    feedback_topic = f"{ns}/plan/_action/feedback"

    def execute(goal_handle):
        goal = goal_handle.request
        n = max(2, min(int(goal.max_iterations), 20))
        # Feedback is a plain topic: let the client's feedback subscription be discovered first.
        deadline = time.monotonic() + 5.0
        while node.count_subscribers(feedback_topic) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        best = float("inf")
        for i in range(1, n + 1):
            feedback = PlanAction.Feedback()
            feedback.iteration = i
            feedback.energy = feedback_energy(i, goal)
            best = min(best, feedback.energy)
            feedback.best_energy = best
            feedback.best_action.id = f"{goal.object_id}-{i}"
            feedback.best_action.object_id = goal.object_id
            feedback.success_probability = i / n
            feedback.collision_probability = 1.0 - i / n
            feedback.feasible = i == n
            goal_handle.publish_feedback(feedback)
            time.sleep(0.02)
        goal_handle.succeed()
        result = PlanAction.Result()
        result.go = True
        result.iterations = n
        result.energy = best
        result.action.id = f"{goal.object_id}-{n}"
        result.action.object_id = goal.object_id
        result.action.release_pose.position = goal.limits.release_position
        result.verdict.action_id = result.action.id
        result.verdict.request_id = goal.criteria.header.frame_id
        result.verdict.go = True
        result.trajectory.object_id = goal.object_id
        result.trajectory.final_position = goal.criteria.target.center
        result.halt_reason = f"max_iterations={n} population={goal.population} num_samples={goal.num_samples}"
        return result

    group = ReentrantCallbackGroup()
    ActionServer(node, PlanAction, f"{ns}/plan", execute_callback=execute,
                 goal_callback=lambda goal: GoalResponse.ACCEPT, callback_group=group)

    executor = Executor(num_threads=2)
    executor.add_node(node)
    print(f"READY {len(types)} message types: {' '.join(types)}", flush=True)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
    print("echo_peer: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

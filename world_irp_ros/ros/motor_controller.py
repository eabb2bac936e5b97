"""``motor_controller``: an example controller that acts only on GO.

For each trial it asks ``world_irp`` to plan a throw of ``object_id`` into the target
(``/world_irp/plan``), executes the result through the simulator (``/world_sim/execute``) only when
the verdict is GO, and refuses with the verdict's code and reason otherwise. After a throw it
records the observed track until the stone rests, waits for ``world_irp``'s ``PredictionError``
(the error signal that recalibrates the stone), and at the end writes a summary JSON.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.action import ActionClient
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from std_msgs.msg import UInt32

from world_irp_ros import msg as irp_msg
from world_irp_ros.action import PlanAction

from ..calibration import first_contact
from ..simulation import SimScene
from .error_signal import RELEASE_MATCH_M, SETTLE_S, SETTLE_SPEED_MPS
from .executor import Executor
from .qos import CANDIDATE_ACTIONS, LAPTOP_CONTACTS, OBJECT_STATES


class MotorController(Node):
    """Plans with ``world_irp``, executes only GO actions, and reports what happened."""

    def __init__(self) -> None:
        super().__init__("motor_controller")
        p = self.declare_parameter
        self.object_id = str(p("object_id", "pumice").value)
        self.trials = int(p("trials", 10).value)
        demo = SimScene()       # the defaults are the demo world's
        self.target_center = list(p("target_center_m", list(demo.target.center_m)).value)
        self.target_radius = float(p("target_radius_m", demo.target.radius_m).value)
        self.keep_out_name = str(p("keep_out_name", demo.laptop_zone.name).value)
        self.keep_out_box = list(p("keep_out_box_m", [*demo.laptop_zone.min_m, *demo.laptop_zone.max_m]).value)
        self.release = list(p("release_position_m", list(demo.release_position_m)).value)
        self.speed_range = list(p("release_speed_range_mps", [2.0, 9.0]).value)
        self.elevation_range = list(p("elevation_range_rad", [0.0, 1.2]).value)
        self.azimuth_range = list(p("azimuth_range_rad", [-0.6, 0.6]).value)
        self.max_iterations = int(p("plan_max_iterations", 20).value)
        self.population = int(p("plan_population", 64).value)
        self.num_samples = int(p("num_samples", 32).value)
        self.settle_timeout_s = float(p("settle_timeout_s", 5.0).value)
        # world_irp's servers exist from its start but answer only after its warm-up, which compiles
        # the kernel on a cold cache (tens of seconds on a fresh machine).
        self.server_timeout_s = float(p("server_timeout_s", 240.0).value)
        self.summary_file = str(p("summary_file", "out/closed_loop/summary.json").value)
        group = ReentrantCallbackGroup()
        self.plan_client = ActionClient(self, PlanAction, "/world_irp/plan", callback_group=group)
        self.execute_pub = self.create_publisher(irp_msg.ActionExecution, "/world_sim/execute", CANDIDATE_ACTIONS)
        self.executed_pub = self.create_publisher(irp_msg.ActionExecution, "/world_irp/executed_actions",
                                                  CANDIDATE_ACTIONS)
        self.create_subscription(irp_msg.ObjectStateArray, "/world_sim/object_states", self._on_states,
                                 OBJECT_STATES, callback_group=group)
        self.create_subscription(irp_msg.PredictionError, "/world_irp/prediction_error", self._on_error,
                                 CANDIDATE_ACTIONS, callback_group=group)
        self.create_subscription(UInt32, "/world_sim/laptop_contacts", self._on_contacts, LAPTOP_CONTACTS,
                                 callback_group=group)
        self._lock = threading.Lock()
        self._track: list[tuple[float, list[float], float]] | None = None
        self._errors: dict[str, irp_msg.PredictionError] = {}
        self.laptop_contacts = 0

    # ----------------------------------------------------------------------------- callbacks
    def _on_states(self, m: irp_msg.ObjectStateArray) -> None:
        for o in m.objects:
            if o.id != self.object_id:
                continue
            t = o.header.stamp.sec + o.header.stamp.nanosec * 1e-9
            v = o.twist.linear
            with self._lock:
                if self._track is not None:
                    self._track.append((t, [o.pose.position.x, o.pose.position.y, o.pose.position.z],
                                        float(np.sqrt(v.x * v.x + v.y * v.y + v.z * v.z))))

    def _on_error(self, m: irp_msg.PredictionError) -> None:
        with self._lock:
            self._errors[m.action_id] = m

    def _on_contacts(self, m: UInt32) -> None:
        self.laptop_contacts = int(m.data)

    # ---------------------------------------------------------------------------------- loop
    def _goal(self) -> PlanAction.Goal:
        goal = PlanAction.Goal()
        goal.object_id = self.object_id
        c = goal.criteria
        c.header.frame_id = "world"
        c.target.center.x, c.target.center.y, c.target.center.z = self.target_center
        c.target.radius_m = self.target_radius
        zone = irp_msg.KeepOutZone()
        zone.name = self.keep_out_name
        zone.min.x, zone.min.y, zone.min.z = self.keep_out_box[:3]
        zone.max.x, zone.max.y, zone.max.z = self.keep_out_box[3:]
        c.keep_out = [zone]
        lim = goal.limits
        lim.release_position.x, lim.release_position.y, lim.release_position.z = self.release
        lim.min_release_speed_mps, lim.max_release_speed_mps = self.speed_range
        lim.min_elevation_rad, lim.max_elevation_rad = self.elevation_range
        lim.min_azimuth_rad, lim.max_azimuth_rad = self.azimuth_range
        goal.max_iterations = self.max_iterations
        goal.population = self.population
        goal.num_samples = self.num_samples
        return goal

    def _wait(self, future, timeout_s: float):
        deadline = time.monotonic() + timeout_s
        while not future.done():
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from world_irp")
            time.sleep(0.01)
        return future.result()

    def _plan(self) -> PlanAction.Result:
        if not self.plan_client.wait_for_server(timeout_sec=self.server_timeout_s):
            raise TimeoutError("/world_irp/plan is not available")
        handle = self._wait(self.plan_client.send_goal_async(self._goal()), self.server_timeout_s)
        if not handle.accepted:
            raise RuntimeError("world_irp rejected the plan goal")
        return self._wait(handle.get_result_async(), 120.0).result

    def _observe_until_rest(self) -> list[tuple[float, list[float], float]]:
        start = time.monotonic()
        still_since = None
        while time.monotonic() - start < self.settle_timeout_s:
            time.sleep(0.05)
            with self._lock:
                track = list(self._track or [])
            if len(track) > 10 and track[-1][2] < SETTLE_SPEED_MPS:
                still_since = still_since or time.monotonic()
                if time.monotonic() - still_since > SETTLE_S:
                    break
            else:
                still_since = None
        with self._lock:
            track, self._track = list(self._track or []), None
        return track

    def _wait_for_listeners(self, timeout_s: float = 20.0) -> None:
        # A reliable message sent before discovery has matched the subscriber is simply lost.
        deadline = time.monotonic() + timeout_s
        while (self.execute_pub.get_subscription_count() == 0
               or self.executed_pub.get_subscription_count() == 0):
            if time.monotonic() > deadline:
                raise TimeoutError("world_sim or world_irp does not listen for executed actions")
            time.sleep(0.05)

    def run_trials(self) -> dict:
        """Run every trial and return the summary (also written to ``summary_file``)."""
        self._wait_for_listeners()
        trials = []
        for k in range(self.trials):
            result = self._plan()
            verdict = result.verdict
            entry = {"trial": k, "go": bool(result.go), "code": verdict.code_name, "reasons": list(verdict.reasons),
                     "iterations": int(result.iterations), "energy": float(result.energy),
                     "success_probability": verdict.success_probability,
                     "collision_probability": verdict.collision_probability}
            if not result.go:
                self.get_logger().warning(f"trial {k}: REFUSED ({verdict.code_name}): {'; '.join(verdict.reasons)}")
                trials.append(entry)
                continue
            action = result.action
            action.id = f"trial{k}"
            execution = irp_msg.ActionExecution()
            execution.header.stamp = self.get_clock().now().to_msg()
            execution.header.frame_id = "world"
            execution.request_id = f"closed_loop_{k}"
            execution.action = action
            with self._lock:
                self._track = []
            self.executed_pub.publish(execution)
            self.execute_pub.publish(execution)
            release = execution.header.stamp.sec + execution.header.stamp.nanosec * 1e-9
            track = self._observe_until_rest()
            error = self._await_error(action.id)
            own = self._landing_error(result.trajectory, track, release)
            v = action.release_velocity_mps
            entry.update({
                "action": {"release_velocity_mps": [v.x, v.y, v.z]},
                "predicted_t_s": list(result.trajectory.t_s),
                "predicted_positions_m": [[q.x, q.y, q.z] for q in result.trajectory.positions],
                "observed_t_s": [t - release for t, _, _ in track],
                "observed_positions_m": [p for _, p, _ in track],
                # Measured on the controller's own complete recording of the throw; None when the
                # landing could not be seen in it.
                "landing_error_m": own,
                "world_irp_landing_error_m": (error.landing_error_m if error and np.isfinite(error.landing_error_m)
                                              else None),
                "rms_track_error_m": error.rms_track_error_m if error else None,
                "landing_time_error_s": error.landing_time_error_s if error else None,
                "calibrated": ({n: [b, a, s] for n, b, a, s in zip(error.calibrated_parameters, error.values_before,
                                                                     error.values_after, error.std_after)}
                               if error else {}),
            })
            landing = entry["landing_error_m"]
            self.get_logger().info(f"trial {k}: GO {verdict.reasons[0] if verdict.reasons else ''}; landing error "
                                   + ("not observed" if landing is None else f"{landing:.3f} m"))
            trials.append(entry)
        summary = {"object_id": self.object_id, "trials": trials, "laptop_contacts": self.laptop_contacts,
                   "target_center_m": self.target_center, "target_radius_m": self.target_radius,
                   "keep_out_box_m": self.keep_out_box}
        path = Path(self.summary_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=1))
        return summary

    @staticmethod
    def _landing_error(predicted: irp_msg.PredictedTrajectory, track, release_s: float) -> float | None:
        """Distance between the predicted first contact and the observed one (m)."""
        contact = next((e for e in predicted.events if e.kind in (e.KIND_GROUND, e.KIND_OBSTACLE)), None)
        if contact is None or len(track) < 4:
            return None
        t = np.array([s - release_s for s, _, _ in track])
        p = np.array([q for _, q, _ in track])
        start = np.array([predicted.positions[0].x, predicted.positions[0].y, predicted.positions[0].z])
        near = np.nonzero(np.linalg.norm(p - start, axis=1) < RELEASE_MATCH_M)[0]
        if near.size == 0:
            return None
        _, landing = first_contact(t[near[0]:], p[near[0]:], contact.position.z)
        error = float(np.linalg.norm(landing - np.array([contact.position.x, contact.position.y, contact.position.z])))
        return error if np.isfinite(error) else None

    def _await_error(self, action_id: str, timeout_s: float = 15.0) -> irp_msg.PredictionError | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if action_id in self._errors:
                    return self._errors[action_id]
            time.sleep(0.05)
        self.get_logger().error(f"no PredictionError for {action_id!r} within {timeout_s:g} s")
        return None


def main(argv: list[str] | None = None) -> int:
    """Run the trials, write the summary, exit 0 when every trial got an answer."""
    rclpy.init(args=argv if argv is not None else sys.argv)
    node = MotorController()
    executor = Executor(num_threads=3)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        node.run_trials()
        return 0
    except (KeyboardInterrupt, ExternalShutdownException):
        return 130
    except Exception as err:
        node.get_logger().error(f"motor_controller stopped: {err}")
        return 1
    finally:
        # Stop the spinning thread before tearing down what it spins.
        rclpy.try_shutdown()
        spinner.join(timeout=5.0)
        executor.shutdown()
        node.destroy_node()

"""``world_sim``: the simulated world as a ROS 2 node (a thin adapter over ``simulation.SimWorld``).

- out: ``~/object_states`` (``ObjectStateArray``, sensor-data QoS) at ``rate_hz`` with perception
  noise and ``latency_s`` of delay: each message carries the stamp of the instant it shows;
  ``~/laptop_contacts`` (``std_msgs/UInt32``, transient local): physics steps in which a stone
  touched the laptop — the thing no GO may ever cause.
- in: ``~/execute`` (``ActionExecution``, reliable): the motor controller's commands.
The world keeps up with the node's clock (a wall timer steps it to the current time, not by one
timer period: a late tick on a busy machine would otherwise slow the world down against its
stamps); perception reports biased parameters (see ``simulation.default_stones``).
"""
from __future__ import annotations

import collections
import sys

import rclpy
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from std_msgs.msg import UInt32

from world_irp_ros import msg as irp_msg

from ..simulation import SimWorld
from . import conversions as conv
from .qos import CANDIDATE_ACTIONS, LAPTOP_CONTACTS, OBJECT_STATES

# Longest stretch of simulated time one tick may step to catch up with the clock (s).
MAX_CATCH_UP_S = 0.25


class WorldSimNode(Node):
    """Steps a ``SimWorld`` in real time, publishes what perception sees, executes commands."""

    def __init__(self) -> None:
        super().__init__("world_sim")
        self.rate_hz = float(self.declare_parameter("rate_hz", 60.0).value)
        self.latency_s = float(self.declare_parameter("latency_s", 0.02).value)
        self.frame_id = str(self.declare_parameter("frame_id", "world").value)
        seed = int(self.declare_parameter("seed", 0).value)
        if not (1.0 <= self.rate_hz <= 1000.0) or not (0.0 <= self.latency_s <= 1.0):
            raise ValueError("rate_hz must lie in [1, 1000] and latency_s in [0, 1]")
        self.world = SimWorld(seed=seed)
        self.states_pub = self.create_publisher(irp_msg.ObjectStateArray, "~/object_states", OBJECT_STATES)
        self.contacts_pub = self.create_publisher(UInt32, "~/laptop_contacts", LAPTOP_CONTACTS)
        self.create_subscription(irp_msg.ActionExecution, "~/execute", self._on_execute, CANDIDATE_ACTIONS)
        # Perception latency: snapshots wait in this queue until they are latency_s old.
        self._pending: collections.deque = collections.deque()
        self._contacts_sent = -1
        self._epoch = self.get_clock().now()        # the world's time 0
        self.create_timer(1.0 / self.rate_hz, self._tick)
        self.get_logger().info(f"world_sim up: {len(self.world.stones)} stones at {self.rate_hz:g} Hz, "
                               f"latency {self.latency_s * 1e3:.0f} ms")

    def _tick(self) -> None:
        now = self.get_clock().now()
        behind_s = self.world.advance_to((now - self._epoch).nanoseconds * 1e-9, MAX_CATCH_UP_S)
        if behind_s > MAX_CATCH_UP_S:    # stalled for long: restart the world's clock, say so
            self._epoch = now - Duration(nanoseconds=int(self.world.time_s * 1e9))
            self.get_logger().warning(f"world_sim fell {behind_s:.2f} s behind the clock; skipped that time")
        self._pending.append((now, self.world.perceived()))
        while self._pending and (now - self._pending[0][0]).nanoseconds * 1e-9 >= self.latency_s - 1e-9:
            stamp, objects = self._pending.popleft()
            out = irp_msg.ObjectStateArray()
            out.header.stamp = stamp.to_msg()
            out.header.frame_id = self.frame_id
            out.objects = [conv.object_to_msg(o, out.header) for o in objects]
            self.states_pub.publish(out)
        if self.world.laptop_contacts != self._contacts_sent:
            self._contacts_sent = self.world.laptop_contacts
            self.contacts_pub.publish(UInt32(data=self._contacts_sent))

    def _on_execute(self, m: irp_msg.ActionExecution) -> None:
        try:
            action = conv.action_from_msg(m.action)
            if action.object_id not in self.world.stones:
                raise ValueError(f"unknown object {action.object_id!r}")
        except Exception as err:  # a bad command is refused loudly, the sim keeps running
            self.get_logger().error(f"refused command {m.action.id!r}: {err}")
            return
        self.world.execute(action)
        self.get_logger().info(f"executed {action.type} {action.id!r} of {action.object_id!r}")

    def destroy_node(self) -> None:
        """Disconnect the simulated world, then destroy the node."""
        self.world.close()
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    """Run ``world_sim`` until shut down."""
    rclpy.init(args=argv if argv is not None else sys.argv)
    node = WorldSimNode()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0

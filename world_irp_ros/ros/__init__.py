"""ROS 2 adapters of world_irp_ros: the only subpackage that imports rclpy.

- ``node``: ``WorldIrpNode``, the managed (lifecycle) node ``world_irp``, and ``main``.
- ``params``: its parameters (descriptions, ranges, runtime validation).
- ``conversions``: messages <-> library types.
- ``plan_action``: ``~/plan`` (``WorldIRP`` behind the action).
- ``qos``, ``diagnostics``, ``markers``: QoS profiles, ``/diagnostics`` and ``~/markers``.
- ``executor``: the multi-threaded executor the nodes spin in (works around ros2/rclpy#1452).

Nothing is imported here, so ``import world_irp_ros.ros.conversions`` does not start a node.
"""

__all__ = ["conversions", "diagnostics", "executor", "markers", "node", "params", "plan_action", "qos"]

"""ROS 2 adapters of world_irp_ros: the only subpackage that imports rclpy.

- ``node``: ``WorldIrpNode``, the managed (lifecycle) node ``world_irp``, and ``main``.
- ``params``: its parameters (descriptions, ranges, runtime validation).
- ``conversions``: messages <-> library types.
- ``plan_action``: ``~/plan`` (``WorldIRP`` behind the action).
- ``error_signal``: ``~/executed_actions`` -> ``~/prediction_error`` and recalibration.
- ``qos``, ``diagnostics``, ``markers``: QoS profiles, ``/diagnostics`` and ``~/markers``.
- ``executor``: the multi-threaded executor the nodes spin in (works around ros2/rclpy#1452).
- ``sim_node``, ``motor_controller``: the closed-loop demo's simulated world (PyBullet) and
  robot controller (``world-irp closed-loop`` starts them with ``world_irp``).

Nothing is imported here, so ``import world_irp_ros.ros.conversions`` does not start a node.
"""

__all__ = ["conversions", "diagnostics", "error_signal", "executor", "markers", "motor_controller", "node", "params",
           "plan_action", "qos", "sim_node"]

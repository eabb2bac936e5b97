"""The physics model of world_irp_ros, written once (``model``) on portable helpers (``ops``).

``model`` holds the equations, constants and event rules (docs/physics.md describes them); the
backends run these very functions, inlined into a numba kernel on the CPU or on torch tensors on
a GPU. Importing this package imports numba but neither torch nor rclpy.
"""
from . import model, ops

__all__ = ["model", "ops"]

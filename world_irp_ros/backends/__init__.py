"""Registry of forward-model backends, keyed by name.

Adding a backend: write one module with a class that satisfies ``base.Backend`` and add one line
to ``REGISTRY``. Modules are imported on first use, so a backend's heavy dependencies (PyBullet,
a trained network) cost nothing until it is asked for.
"""
from __future__ import annotations

import importlib
from typing import Any

from ..errors import BackendError, ValidationError
from .base import Backend, RolloutBatch, RolloutResult

REGISTRY: dict[str, str] = {
    "analytic": "world_irp_ros.backends.analytic:AnalyticBackend",
    "pybullet": "world_irp_ros.backends.pybullet_backend:PyBulletBackend",
}

# Names the command line and the node's parameter accept without an implementation here: the
# CLI contract names a learned backend, which this build does not ship (asking for it fails with
# that reason, it is never faked).
NOT_SHIPPED = ("learned",)
# Every backend name the CLI and the node accept.
NAMES = tuple(dict.fromkeys((*sorted(REGISTRY), *NOT_SHIPPED)))

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> str:
    """Map ``auto``/``cpu``/``cuda`` to the device used; ``cuda`` without a GPU is an error."""
    if device not in DEVICES:
        raise ValidationError(f"must be one of {', '.join(DEVICES)}, got {device!r}", "device")
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise BackendError("device 'cuda' was asked for but no CUDA device is available", "device")
    return "cpu"


def create_backend(name: str, device: str = "auto", **options: Any) -> Backend:
    """Instantiate the backend registered as ``name`` on ``device`` (resolved here, once)."""
    if name in NOT_SHIPPED and name not in REGISTRY:
        raise BackendError(f"this build does not ship backend {name!r} (registered: "
                           f"{', '.join(sorted(REGISTRY))})", "backend")
    if name not in REGISTRY:
        raise ValidationError(f"unknown backend {name!r} (known: {', '.join(sorted(REGISTRY))})", "backend")
    module_name, class_name = REGISTRY[name].split(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except ImportError as err:
        raise BackendError(f"backend {name!r} cannot be loaded: {err}", "backend") from err
    return cls(device=resolve_device(device), **options)


__all__ = ["Backend", "DEVICES", "NAMES", "RolloutBatch", "RolloutResult", "REGISTRY", "create_backend",
           "resolve_device"]

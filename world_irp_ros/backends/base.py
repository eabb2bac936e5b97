"""The backend protocol: roll a batch of N independent objects forward and report what happened.

Arrays put the rollout index last (shape ``(..., N)``): N is the inner, vectorised dimension.
A rehearsal of C candidates with S uncertainty samples is one batch of N = S * C rollouts, rollout
``s * C + c`` being sample ``s`` of candidate ``c``. Every backend implements the equations of
``world_irp_ros.physics.model`` (written down in docs/physics.md) on these arrays.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

import numpy as np

# Kinds of recorded contact events (``RolloutResult.event_kind``).
EVENT_GROUND = 0      # impact on the ground plane
EVENT_OBSTACLE = 1    # impact on an obstacle box (``event_index`` = obstacle index)
EVENT_KEEP_OUT = 2    # first entry into a keep-out zone (``event_index`` = zone index)
EVENT_REST = 3        # came to rest
EVENT_NAMES = {EVENT_GROUND: "ground", EVENT_OBSTACLE: "obstacle", EVENT_KEEP_OUT: "keep_out", EVENT_REST: "rest"}
MAX_EVENTS = 8        # events kept per rollout; later ones are counted but not stored

# Motion modes (``RolloutResult.final_mode``).
MODE_FLIGHT = 0
MODE_SUPPORTED = 1    # sliding or rolling on a surface
MODE_REST = 2


@dataclass
class RolloutBatch:
    """Initial states, per-rollout parameters and the shared static world of one batch (float64).

    Per rollout (last axis N): ``position_m``/``velocity_mps`` (3, N) at release, ``release_time_s``
    (N,) when motion starts (start delay; before it the object sits at ``position_m``),
    ``half_extent_m`` (3, N) world-AABB half extents, ``radius_m`` (N,) rolling radius,
    ``rolls`` (N,) 1.0 for spheres, 0.0 for sliders, ``drag_k_per_m`` (N,) = rho Cd A / (2 m),
    ``restitution``, ``friction``, ``rolling_resistance`` (N,).
    Shared: ``gravity_mps2`` (3,), ``ground_height_m``, ``ground_restitution`` and
    ``ground_friction`` (factors on the object's own), ``obstacle_min_m``/``obstacle_max_m`` (3, K),
    ``obstacle_restitution``/``obstacle_friction`` (K,) (effective = object's x obstacle's),
    ``keep_out_min_m``/``keep_out_max_m`` (3, Z), ``sample_times_s`` (T,) ascending in
    [0, horizon_s], ``horizon_s``, ``dt_s`` integration step.
    """

    position_m: np.ndarray
    velocity_mps: np.ndarray
    release_time_s: np.ndarray
    half_extent_m: np.ndarray
    radius_m: np.ndarray
    rolls: np.ndarray
    drag_k_per_m: np.ndarray
    restitution: np.ndarray
    friction: np.ndarray
    rolling_resistance: np.ndarray
    gravity_mps2: np.ndarray
    ground_height_m: float
    ground_restitution: float
    ground_friction: float
    obstacle_min_m: np.ndarray
    obstacle_max_m: np.ndarray
    obstacle_restitution: np.ndarray
    obstacle_friction: np.ndarray
    keep_out_min_m: np.ndarray
    keep_out_max_m: np.ndarray
    sample_times_s: np.ndarray
    horizon_s: float
    dt_s: float = 1.0 / 60.0

    @property
    def size(self) -> int:
        """Number of rollouts N."""
        return int(self.position_m.shape[1])

    def validate(self) -> None:
        """Raise ``ValueError`` on wrong shapes or non-finite numbers (a backend's first line)."""
        shapes = self._shapes()
        arrays = [getattr(self, name) for name in shapes]
        # The common case in two NumPy calls (a call per field cost a few microseconds each for a
        # single rollout); a failure is reported by the field-by-field loop, in its order.
        if any(arr.shape != shape or min(shape) < 0 for arr, shape in zip(arrays, shapes.values())) or \
                not np.isfinite(np.concatenate(arrays, axis=None)).all():
            for name, shape in shapes.items():
                arr = getattr(self, name)
                if arr.shape != shape or min(shape) < 0:
                    raise ValueError(f"{name} has shape {arr.shape}, expected {shape}")
                if not np.all(np.isfinite(arr)):
                    raise ValueError(f"{name} holds non-finite numbers")
        t = self.sample_times_s
        if t.ndim != 1 or t.size == 0 or (t[1:] <= t[:-1]).any() or t[0] < 0 or t[-1] > self.horizon_s + 1e-12:
            raise ValueError("sample_times_s must be ascending within [0, horizon_s]")
        if not (0.0 < self.dt_s <= 0.1) or not (0.0 < self.horizon_s <= 10.0):
            raise ValueError("dt_s must lie in (0, 0.1] and horizon_s in (0, 10]")

    def _shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape each array field must have (-1: a malformed box array, never matched)."""
        n = self.size
        k = self.obstacle_min_m.shape[1] if self.obstacle_min_m.ndim == 2 else -1
        z = self.keep_out_min_m.shape[1] if self.keep_out_min_m.ndim == 2 else -1
        return {"position_m": (3, n), "velocity_mps": (3, n), "release_time_s": (n,), "half_extent_m": (3, n),
                "radius_m": (n,), "rolls": (n,), "drag_k_per_m": (n,), "restitution": (n,), "friction": (n,),
                "rolling_resistance": (n,), "gravity_mps2": (3,), "obstacle_min_m": (3, k), "obstacle_max_m": (3, k),
                "obstacle_restitution": (k,), "obstacle_friction": (k,), "keep_out_min_m": (3, z),
                "keep_out_max_m": (3, z)}


@dataclass
class RolloutResult:
    """What happened to each rollout (last axis N), as NumPy arrays.

    ``positions_m``/``velocities_mps`` (T, 3, N) at ``sample_times_s``; ``landing_time_s`` (N,)
    first contact with the ground or an obstacle (NaN if none within the horizon) and
    ``landing_point_m`` (3, N) the object centre then; ``rest_time_s`` (N,) (NaN if still moving at
    the horizon) and ``final_position_m`` (3, N) where it rests or is at the horizon,
    ``final_mode`` (N,) one of ``MODE_*``; ``keep_out_entry_time_s`` (Z, N) first time the
    object's extent overlaps zone z (NaN if never) and ``keep_out_clearance_m`` (Z, N) the smallest
    gap between extent and zone over the horizon (0 when it entered); ``event_count`` (N,),
    ``event_kind``/``event_index`` (E, N) ints, ``event_time_s`` (E, N), ``event_position_m``
    (E, 3, N) for the first ``E = MAX_EVENTS`` events in time order (unused slots: kind -1).
    ``failed`` (N,) bool: rollouts the backend could not compute (their other values mean
    nothing; ``failure`` says why), so that one of them does not sink the batch; None: none.
    """

    sample_times_s: np.ndarray
    positions_m: np.ndarray
    velocities_mps: np.ndarray
    landing_time_s: np.ndarray
    landing_point_m: np.ndarray
    rest_time_s: np.ndarray
    final_position_m: np.ndarray
    final_mode: np.ndarray
    keep_out_entry_time_s: np.ndarray
    keep_out_clearance_m: np.ndarray
    event_count: np.ndarray
    event_kind: np.ndarray
    event_index: np.ndarray
    event_time_s: np.ndarray
    event_position_m: np.ndarray
    failed: np.ndarray | None = None
    failure: str = ""

    def mark_failed(self, rows: np.ndarray, why: str) -> None:
        """Add the rollouts ``rows`` ((N,) bool) to ``failed``, saying ``why`` in ``failure``."""
        if not rows.any():
            return
        self.failed = rows.copy() if self.failed is None else self.failed | rows
        self.failure = f"{self.failure}; {why}" if self.failure else why

    def mark_non_finite(self, buffer: Callable[[int], np.ndarray] = np.empty) -> None:
        """Mark the rollouts whose numbers broke down (non-finite) as failed. Such a number never
        recovers, so it shows at the end: the final position, the last sample and the clearances
        are checked, in one pass when all is well (over ``buffer(size)``, a float64 array: a
        backend may hand out a reused one)."""
        checks = (self.final_position_m, self.positions_m[-1], self.velocities_mps[-1], self.keep_out_clearance_m)
        flat = buffer(sum(c.size for c in checks))
        if np.isfinite(np.concatenate(checks, axis=None, out=flat)).all():
            return
        finite = np.all([np.isfinite(c.reshape(-1, c.shape[-1])).all(axis=0) for c in checks], axis=0)
        self.mark_failed(~finite, "its numbers broke down (non-finite)")

    def failed_candidates(self, candidates: int) -> np.ndarray:
        """(C,) bool: the candidates (rollout ``s * C + c``) with a rollout in ``failed``."""
        if self.failed is None:
            return np.zeros(candidates, dtype=bool)
        return self.failed.reshape(-1, candidates).any(axis=0)


@runtime_checkable
class Backend(Protocol):
    """A forward model. ``name`` is its registry key; ``device`` where it runs (``cpu``/``cuda``)."""

    name: str
    device: str

    def rollout(self, batch: RolloutBatch) -> RolloutResult:
        """Roll every member of ``batch`` forward to its horizon; raise when the batch cannot be
        computed, mark rollouts that could not be in ``failed``; never guess."""
        ...

    def warmup(self) -> None:
        """Pay start-up costs (compilation, caches, worker start) now, not on the first request."""
        ...

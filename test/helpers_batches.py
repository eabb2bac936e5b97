"""Build ``RolloutBatch`` objects for tests with little typing (shared by test/physics, test/backends).

``make_batch(position, velocity, ...)`` takes one rollout as 3-vectors or N rollouts as (N, 3)
rows; every per-rollout parameter is a scalar (broadcast) or a length-N sequence; ``half_extent`` is
a scalar, a 3-vector for all, N cube half sizes or (N, 3) rows. Obstacles are
``(min, max)`` or ``(min, max, restitution_factor, friction_factor)``; keep-out zones ``(min, max)``.
Defaults: a 3 cm sphere in vacuum (no drag), e = 0.5, mu = 0.5, no rolling resistance, ground at
z = 0 with factors 1, 2 s horizon, RK4 step 1/60 s, samples every 1/30 s.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from world_irp_ros.backends.base import RolloutBatch
from world_irp_ros.scene import ObjectModel

G = 9.81


def _rows(x: Any, n: int | None = None) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if n is not None and a.shape[0] == 1 and n > 1:
        a = np.repeat(a, n, axis=0)
    return a


def _per(x: Any, n: int) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    return np.full(n, float(a)) if a.ndim == 0 else a.astype(np.float64).reshape(n)


def make_batch(position: Any, velocity: Any = (0.0, 0.0, 0.0), *, release: Any = 0.0, half_extent: Any = 0.03,
               rolls: Any = 1.0, drag: Any = 0.0, restitution: Any = 0.5, friction: Any = 0.5,
               rolling_resistance: Any = 0.0, radius: Any = None, gravity: Sequence[float] = (0.0, 0.0, -G),
               ground: float = 0.0, ground_restitution: float = 1.0, ground_friction: float = 1.0,
               obstacles: Sequence[tuple] = (), keep_out: Sequence[tuple] = (), horizon: float = 2.0,
               dt: float = 1.0 / 60.0, sample_times: Any = None) -> RolloutBatch:
    """A float64 ``RolloutBatch`` (rollout index last) from friendly per-rollout values."""
    pos = _rows(position)
    vel = _rows(velocity, pos.shape[0])
    pos = _rows(pos, vel.shape[0])
    n = pos.shape[0]
    he = np.asarray(half_extent, dtype=np.float64)
    if he.ndim == 0:
        hext = np.full((3, n), float(he))
    elif he.ndim == 1 and he.shape[0] == 3:          # one 3-vector for every rollout
        hext = np.repeat(he[:, None], n, axis=1)
    elif he.ndim == 1:                               # one cube half size per rollout
        hext = np.repeat(he[None, :], 3, axis=0).copy()
    else:
        hext = np.asarray(he, dtype=np.float64).reshape(n, 3).T.copy()
    rad = hext.min(axis=0) if radius is None else _per(radius, n)
    k = len(obstacles)
    omin = np.zeros((3, k))
    omax = np.zeros((3, k))
    oe = np.ones(k)
    omu = np.ones(k)
    for i, ob in enumerate(obstacles):
        omin[:, i], omax[:, i] = ob[0], ob[1]
        if len(ob) > 2:
            oe[i], omu[i] = ob[2], ob[3]
    z = len(keep_out)
    zmin = np.zeros((3, z))
    zmax = np.zeros((3, z))
    for i, zone in enumerate(keep_out):
        zmin[:, i], zmax[:, i] = zone[0], zone[1]
    if sample_times is None:
        sample_times = np.linspace(0.0, horizon, int(round(horizon * 30)) + 1)
    return RolloutBatch(
        position_m=np.ascontiguousarray(pos.T), velocity_mps=np.ascontiguousarray(vel.T),
        release_time_s=_per(release, n), half_extent_m=hext, radius_m=rad, rolls=_per(rolls, n),
        drag_k_per_m=_per(drag, n), restitution=_per(restitution, n), friction=_per(friction, n),
        rolling_resistance=_per(rolling_resistance, n), gravity_mps2=np.asarray(gravity, dtype=np.float64),
        ground_height_m=float(ground), ground_restitution=float(ground_restitution),
        ground_friction=float(ground_friction), obstacle_min_m=omin, obstacle_max_m=omax,
        obstacle_restitution=oe, obstacle_friction=omu, keep_out_min_m=zmin, keep_out_max_m=zmax,
        sample_times_s=np.asarray(sample_times, dtype=np.float64), horizon_s=float(horizon), dt_s=float(dt))


def sphere_drag(radius_m: float = 0.03, mass_kg: float = 0.2, cd: float = 0.47, rho: float = 1.225) -> float:
    """Drag factor k of a sphere, from the scene model (``ObjectModel.drag_k_per_m``)."""
    obj = ObjectModel("ball", "sphere", (radius_m, 0.0, 0.0), mass_kg, drag_coefficient=cd)
    return obj.drag_k_per_m(rho)


def subset(batch: RolloutBatch, index: Any) -> RolloutBatch:
    """The rollouts ``index`` (an index array, in that order) of ``batch`` as a new batch."""
    idx = np.asarray(index)
    fields = {}
    for name in RolloutBatch.__dataclass_fields__:
        value = getattr(batch, name)
        if name in ("position_m", "velocity_mps", "half_extent_m"):
            value = np.ascontiguousarray(value[:, idx])
        elif name in ("release_time_s", "radius_m", "rolls", "drag_k_per_m", "restitution", "friction",
                      "rolling_resistance"):
            value = np.ascontiguousarray(value[idx])
        fields[name] = value
    return RolloutBatch(**fields)


def result_columns(result: Any, index: Any) -> dict[str, np.ndarray]:
    """Every per-rollout array of a ``RolloutResult``, restricted to rollouts ``index``."""
    idx = np.asarray(index)
    out = {}
    for name in result.__dataclass_fields__:
        if name == "failure":  # the text of why rollouts failed, not per rollout
            continue
        value = getattr(result, name)
        if name == "failed" and value is None:  # None: none failed
            value = np.zeros(result.landing_time_s.shape, dtype=bool)
        value = np.asarray(value)
        if name == "sample_times_s":
            out[name] = value
        else:
            out[name] = value[..., idx]
    return out


def torch_rollout(batch: RolloutBatch, mode: str) -> Any:
    """``batch`` through the analytic backend's torch engine on the CPU in ``mode`` ("eager", or
    "fixed": the sync-free loop the CUDA path captures into a graph)."""
    from world_irp_ros.backends import _torch_rollout
    from world_irp_ros.backends.analytic import allocate, finish, prepare

    prep = prepare(batch)
    out = allocate(prep)
    return finish(prep, _torch_rollout.run(prep, out, "cpu", mode))

"""The analytic backend: the equations of ``physics.model`` integrated exactly as written.

``AnalyticBackend(device="cpu")`` runs the fused numba kernel (``_numba_kernel``);
``device="cuda"`` runs the same model functions on torch tensors on the GPU (``_torch_rollout``).
``engine="torch"`` on the CPU runs that torch path too, which is how the CUDA path's equations are
checked on machines without a GPU. Deterministic: no randomness anywhere.
"""
from __future__ import annotations

import math
import sys
import threading
import time
from typing import Any

import numpy as np

from ..errors import BackendError, ValidationError
from ..physics.model import BIG, MAX_SEGMENTS, UNSET, max_samples_per_step, max_step_s
from .base import MAX_EVENTS, RolloutBatch, RolloutResult

ENGINES = ("numba", "torch")


# Per-rollout inputs, packed as rows of one (15, N) float64 array (prepare's keys are views of its
# rows): then one min and one max per row check them all, instead of one NumPy call per field
# (each a few microseconds for a single rollout). Rows: key, batch field, first row, row count,
# and the largest magnitude allowed (None: no bound) -- bounded inputs keep every intermediate
# finite, so the result needs no full NaN scan.
_ROWS = (("pos0", "position_m", 0, 3, (1e6, "m")), ("vel0", "velocity_mps", 3, 3, (1e4, "m/s")),
         ("rolls", "rolls", 6, 1, None), ("t_rel", "release_time_s", 7, 1, None),
         ("hext", "half_extent_m", 8, 3, (1e3, "m")), ("kdrag", "drag_k_per_m", 11, 1, (1e3, "1/m")),
         ("rest_c", "restitution", 12, 1, None), ("fric", "friction", 13, 1, None),
         ("crr", "rolling_resistance", 14, 1, None))
_N_ROWS = 15
_FIRST_ROW = {key: first for key, _name, first, _count, _limit in _ROWS}
_NON_NEGATIVE = ("t_rel", "hext", "kdrag", "rest_c", "fric", "crr")
_WORLD = {"omin": "obstacle_min_m", "omax": "obstacle_max_m", "oe": "obstacle_restitution",
          "omu": "obstacle_friction", "zmin": "keep_out_min_m", "zmax": "keep_out_max_m",
          "tsamp": "sample_times_s", "gravity": "gravity_mps2"}
_SCALARS = ("ground_height_m", "ground_restitution", "ground_friction", "horizon_s", "dt_s")
_world_cache: dict[tuple, dict[str, Any]] = {}
_WORLD_CACHE_SIZE = 64


def _world(batch: RolloutBatch) -> dict[str, Any]:
    """The checked shared world of a batch as engine inputs (float64 copies), with the largest
    number of samples in one step; cached by value (a planner sends the same world again and
    again, and its checks cost tens of microseconds)."""
    arrays = [getattr(batch, name) for name in _WORLD.values()]
    scalars = tuple(float(getattr(batch, name)) for name in _SCALARS)
    key = (scalars, *((a.dtype.str, a.shape, a.tobytes()) for a in arrays))
    world = _world_cache.get(key)
    if world is None:
        world = {k: np.array(a, dtype=np.float64) for k, a in zip(_WORLD, arrays)}   # copies: the key's values
        _check_world(world, scalars)
        ground, e_g, mu_g, horizon, dt = scalars
        world.update(ground=ground, e_g=e_g, mu_g=mu_g, horizon=horizon, dt=dt,
                     nsmax=int(max_samples_per_step(world["tsamp"], dt)))
        if len(_world_cache) >= _WORLD_CACHE_SIZE:
            _world_cache.clear()
        _world_cache[key] = world
    return world


def _check_world(world: dict[str, np.ndarray], scalars: tuple[float, ...]) -> None:
    for key, limit in (("gravity", 1e3), ("omin", 1e6), ("omax", 1e6), ("zmin", 1e6), ("zmax", 1e6)):
        if world[key].size and np.abs(world[key]).max() > limit:
            unit = "m/s^2" if key == "gravity" else "m"
            raise ValidationError(f"{_WORLD[key]} exceeds {limit:g} {unit} in magnitude", f"batch.{_WORLD[key]}")
    if world["gravity"][2] >= 0.0:
        raise ValidationError("gravity must have a negative z component", "batch.gravity_mps2")
    dt_max = max_step_s(world["gravity"][2])
    if scalars[4] > dt_max:
        raise ValidationError(f"dt_s {scalars[4]:g} s is longer than the shortest hop, 2 V_BOUNCE_STOP / |g_z| = "
                              f"{dt_max:g} s", "batch.dt_s")
    for name, value in zip(_SCALARS, scalars):
        if not math.isfinite(value) or (name != "ground_height_m" and value < 0.0):
            raise ValidationError(f"{name} must be finite{'' if name == 'ground_height_m' else ' and >= 0'}",
                                  f"batch.{name}")
    if (world["omin"].size and np.any(world["omax"] <= world["omin"])) or \
            (world["zmin"].size and np.any(world["zmax"] <= world["zmin"])):
        raise ValidationError("boxes need max > min on every axis", "batch")
    if world["oe"].size and (world["oe"].min() < 0.0 or world["omu"].min() < 0.0):
        raise ValidationError("obstacle restitution and friction must be >= 0", "batch")


def prepare(batch: RolloutBatch) -> dict[str, Any]:
    """Validated, contiguous float64 inputs of the engines plus the step grid.

    Beyond ``RolloutBatch.validate`` the model needs: release times, half extents, drag,
    restitution, friction and rolling resistance >= 0, gravity pointing down (z < 0), finite
    ground values and boxes with max > min.
    """
    try:
        batch.validate()
    except ValueError as err:
        raise ValidationError(f"invalid rollout batch: {err}", "batch") from err
    except Exception as err:  # e.g. an attribute that is not an array at all
        raise ValidationError(f"invalid rollout batch: {type(err).__name__}: {err}", "batch") from err
    n = batch.size
    rows = np.empty((_N_ROWS, n))
    prep: dict[str, Any] = {}
    for key, name, first, count, _limit in _ROWS:
        rows[first:first + count] = getattr(batch, name)
        prep[key] = rows[first:first + count] if count > 1 else rows[first]
    if n:
        lows, highs = rows.min(axis=1).tolist(), rows.max(axis=1).tolist()
        for key, name, first, count, _limit in _ROWS:
            if key in _NON_NEGATIVE and min(lows[first:first + count]) < 0.0:
                raise ValidationError(f"{name} must be >= 0", f"batch.{name}")
        for key, name, first, count, limit in _ROWS:
            if limit and max(max(highs[first:first + count]), -min(lows[first:first + count])) > limit[0]:
                raise ValidationError(f"{name} exceeds {limit[0]:g} {limit[1]} in magnitude", f"batch.{name}")
    world = _world(batch)
    prep.update(world)
    horizon, dt = world["horizon"], world["dt"]
    t_min = lows[_FIRST_ROW["t_rel"]] if n else horizon
    n_steps = int(math.ceil((horizon - t_min) / dt)) + 1 if t_min < horizon else 0
    prep["offs"] = dt * np.arange(1, n_steps + 1, dtype=np.float64)
    return prep


_POOL_LOCK = threading.Lock()
_POOL: dict[tuple, list[np.ndarray]] = {}       # (output name, shape, dtype) -> arrays
# Smaller arrays come from the heap at no page-fault cost (glibc maps 128 KiB and more afresh).
_POOL_MIN_BYTES = 1 << 17
_POOL_MAX_BYTES = 256 << 20        # keep at most this much for reuse
_POOL_PER_KEY = 3


def _pooled(name: str, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
    """An uninitialised float64 (or int64) array for output ``name``.

    Large ones come from a small pool of arrays that no result references any more: a fresh one
    is mapped afresh on every call, and its first touch costs a page fault per 4 KiB, inside the
    parallel kernel one the threads queue for (N = 8192: about 1,800 faults, 5 ms of a 22 ms call).
    """
    size = math.prod(shape) * 8                 # float64 or int64
    if size < _POOL_MIN_BYTES:
        return np.empty(shape, dtype)
    key = (name, shape, dtype)
    with _POOL_LOCK:
        arrays = _POOL.setdefault(key, [])
        for array in arrays:
            if sys.getrefcount(array) <= 3:      # held by the pool list, this loop and the call only
                return array
        array = np.empty(shape, dtype)
        held = sum(a.nbytes for kept in _POOL.values() for a in kept)
        if len(arrays) < _POOL_PER_KEY and held + size <= _POOL_MAX_BYTES:
            arrays.append(array)
        return array


def _filled(name: str, shape: tuple[int, ...], value: float) -> np.ndarray:
    """Output ``name`` holding ``value`` everywhere (written here, outside the parallel kernel)."""
    array = _pooled(name, shape)
    array.fill(value)
    return array


def allocate(prep: dict[str, Any]) -> dict[str, np.ndarray]:
    """Output arrays of the engines for the prepared batch ``prep``, holding their "unset" values."""
    n, n_t, n_z = prep["pos0"].shape[1], prep["tsamp"].shape[0], prep["zmin"].shape[1]
    e = MAX_EVENTS
    return {
        # Samples are written rollout by rollout: rollout-major memory (an (N, T, 3) array seen as
        # (T, 3, N)) keeps each rollout's writes in one place instead of one page per value.
        # Every sample is written exactly once (before release, by a segment, or after the last
        # step by ``finish``), so they need no filling.
        "pos_s": _pooled("pos_s", (n, n_t, 3)).transpose(1, 2, 0),
        "vel_s": _pooled("vel_s", (n, n_t, 3)).transpose(1, 2, 0),
        "land_t": _filled("land_t", (n,), UNSET), "land_p": _filled("land_p", (3, n), 0.0),
        "rest_t": _filled("rest_t", (n,), UNSET), "ko_t": _filled("ko_t", (n_z, n), UNSET),
        "ko_c": _filled("ko_c", (n_z, n), BIG), "ev_kind": _filled("ev_kind", (e, n), -1.0),
        "ev_idx": _filled("ev_idx", (e, n), -1.0), "ev_t": _filled("ev_t", (e, n), UNSET),
        "ev_p": _filled("ev_p", (e, 3, n), 0.0), "ev_cnt": _filled("ev_cnt", (n,), 0.0),
        "fin_p": _filled("fin_p", (3, n), 0.0), "fin_v": _filled("fin_v", (3, n), 0.0),
        "fin_mode": _filled("fin_mode", (n,), 0.0), "ks_out": _filled("ks_out", (n,), 0.0),
        "status": _filled("status", (n,), 0.0),
    }


def _as_int(name: str, values: np.ndarray) -> np.ndarray:
    """``values`` (whole numbers stored as float) as int64, in a pooled array if large."""
    if values.nbytes < _POOL_MIN_BYTES:
        return values.astype(np.int64)
    out = _pooled(name, values.shape, np.int64)
    np.copyto(out, values, casting="unsafe")
    return out


def _nan_where_unset(values: np.ndarray, unset: np.ndarray) -> np.ndarray:
    """``values``, NaN where ``unset`` holds (in place; ``unset`` broadcasts: a boolean-index
    assignment through a transposed view cost 56 us for the event positions at N = 1024)."""
    np.copyto(values, np.nan, where=unset)
    return values


def finish(prep: dict[str, Any], o: dict[str, np.ndarray]) -> RolloutResult:
    """Engine outputs -> RolloutResult: NaN for "never", samples after the last step, int kinds."""
    n_t = prep["tsamp"].shape[0]
    pos, vel = o["pos_s"], o["vel_s"]
    if o["ks_out"].size and o["ks_out"].min() < n_t:        # samples after the last step (not released)
        later = np.arange(n_t)[:, None] >= o["ks_out"][None, :]
        pos = np.where(later[:, None, :], o["fin_p"][None], pos)
        vel = np.where(later[:, None, :], o["fin_v"][None], vel)
    not_landed = o["land_t"] < 0.0
    unused = o["ev_kind"] < 0.0
    result = RolloutResult(
        sample_times_s=prep["tsamp"].copy(),
        positions_m=pos,
        velocities_mps=vel,
        landing_time_s=_nan_where_unset(o["land_t"], not_landed),
        landing_point_m=_nan_where_unset(o["land_p"], not_landed),
        rest_time_s=_nan_where_unset(o["rest_t"], o["rest_t"] < 0.0),
        final_position_m=o["fin_p"],
        final_mode=_as_int("final_mode", o["fin_mode"]),
        keep_out_entry_time_s=_nan_where_unset(o["ko_t"], o["ko_t"] < 0.0),
        keep_out_clearance_m=o["ko_c"],
        event_count=_as_int("event_count", o["ev_cnt"]),
        event_kind=_as_int("event_kind", o["ev_kind"]),
        event_index=_as_int("event_index", o["ev_idx"]),
        event_time_s=_nan_where_unset(o["ev_t"], unused),
        event_position_m=_nan_where_unset(o["ev_p"], unused[:, None, :]),
    )
    # Rollouts that could not be computed are marked, not raised, so one of them does not sink the
    # batch: too many events inside one step (status), or numbers that broke down.
    result.mark_failed(o["status"] != 0.0, f"more than {MAX_SEGMENTS} events inside one integration step")
    stiff = _drag_step(prep) > MAX_DRAG_STEP
    result.mark_failed(stiff, f"drag too strong for the integration step: dt k |v| > {MAX_DRAG_STEP} "
                              "(use a smaller dt_s)")
    result.mark_non_finite(lambda size: _pooled("checks", (size,)))
    return result


# RK4 integrates the drag deceleration k |v| v accurately while dt k |v| stays small: measured
# against dt = 1/2400 s, the landing error is 0.2 mm at 0.25, 2 mm at 0.5 (the accuracy target),
# 4 cm at 1 and metres (unstable) from 2.5 -- a balloon batted at 15 m/s reaches 2.5 at 1/60 s.
MAX_DRAG_STEP = 0.5


def _drag_step(prep: dict[str, Any]) -> np.ndarray:
    """(N,) the largest dt k |v| of each rollout: at its release speed (drag only slows it), or at
    its terminal speed sqrt(|g_z| / k) (where gravity speeds it up to)."""
    k = prep["kdrag"]
    speed = np.sqrt((prep["vel0"] ** 2).sum(axis=0))
    return prep["dt"] * np.maximum(k * speed, np.sqrt(k * abs(float(prep["gravity"][2]))))


def _tiny_batch(n: int) -> RolloutBatch:
    """The first ``n`` (1 or 2) rollouts of a batch touching every code path (flight, bounce,
    slide, roll, table, keep-out). numba specialises on array layouts: the (T, 3, N) sample views
    are C-contiguous for one rollout and strided for more, so warming up takes both."""
    def per(values) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(values, dtype=np.float64)[..., :n])

    return RolloutBatch(
        position_m=per([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]]),
        velocity_mps=per([[3.0, 2.0], [0.0, 0.5], [1.0, 2.0]]),
        release_time_s=per([0.0, 0.1]), half_extent_m=per(np.full((3, 2), 0.03)),
        radius_m=per([0.03, 0.03]), rolls=per([1.0, 0.0]), drag_k_per_m=per([0.01, 0.02]),
        restitution=per([0.5, 0.3]), friction=per([0.4, 0.5]), rolling_resistance=per([0.02, 0.02]),
        gravity_mps2=np.array([0.0, 0.0, -9.81]), ground_height_m=0.0, ground_restitution=1.0, ground_friction=1.0,
        obstacle_min_m=np.array([[0.8], [-0.5], [0.0]]), obstacle_max_m=np.array([[1.6], [0.5], [0.7]]),
        obstacle_restitution=np.array([0.3]), obstacle_friction=np.array([0.5]),
        keep_out_min_m=np.array([[2.0], [-0.2], [0.0]]), keep_out_max_m=np.array([[2.3], [0.2], [0.3]]),
        sample_times_s=np.linspace(0.0, 1.0, 11), horizon_s=1.0, dt_s=1.0 / 60.0)


class AnalyticBackend:
    """Exact-as-written forward model; ``rollout`` is deterministic and thread-safe.

    Options: ``engine`` ("numba", the CPU default, or "torch", the CUDA default), ``fast_path``
    (False sends every step through the shared slow path; for tests), ``warm`` (False skips the
    start-up warm-up, which loads or compiles the kernel).
    """

    name = "analytic"

    def __init__(self, device: str = "cpu", engine: str | None = None, fast_path: bool = True,
                 warm: bool = True, **options: Any):
        if options:
            raise ValidationError(f"unknown option(s) {', '.join(sorted(options))}", "backend_options")
        if device not in ("cpu", "cuda"):
            raise ValidationError(f"must be 'cpu' or 'cuda', got {device!r}", "device")
        engine = engine or ("numba" if device == "cpu" else "torch")
        if engine not in ENGINES:
            raise ValidationError(f"must be one of {', '.join(ENGINES)}, got {engine!r}", "engine")
        if engine == "numba" and device != "cpu":
            raise ValidationError("the numba engine runs on the CPU only", "engine")
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise BackendError("device 'cuda' was asked for but no CUDA device is available", "device")
        self.device = device
        self.engine = engine
        self.fast_path = bool(fast_path)
        self.warmup_s: float | None = None
        if warm:
            self.warmup()

    def warmup(self) -> None:
        """Load (or compile, first time per source version) the kernels for every array layout a
        request can bring, and run tiny batches."""
        start = time.perf_counter()
        if self.engine == "numba":
            # Strided layouts first: the first call of each kernel compiles the block function
            # on its own (``_numba_kernel._load_block``). One rollout never runs parallel.
            for n, parallel in ((2, False), (2, True), (1, False)):
                prep = prepare(_tiny_batch(n))
                self._run_numba(prep, allocate(prep), parallel)
        self.rollout(_tiny_batch(2))
        self.warmup_s = time.perf_counter() - start

    def rollout(self, batch: RolloutBatch) -> RolloutResult:
        """Roll every member of ``batch`` forward to the horizon (see docs/physics.md)."""
        prep = prepare(batch)
        out = allocate(prep)
        if batch.size == 0:
            return finish(prep, out)
        try:
            if self.engine == "numba":
                self._run_numba(prep, out)
            else:
                from . import _torch_rollout

                out = _torch_rollout.run(prep, out, self.device, "graph" if self.device == "cuda" else "eager")
        except (BackendError, ValidationError):
            raise
        except Exception as err:
            raise BackendError(f"{self.engine} engine failed: {type(err).__name__}: {err}", "analytic") from err
        return finish(prep, out)

    def _run_numba(self, prep: dict[str, Any], o: dict[str, np.ndarray], parallel: bool | None = None) -> None:
        from . import _numba_kernel

        if parallel is None:    # one block: no threads to start or wake
            parallel = prep["pos0"].shape[1] > _numba_kernel.BLOCK
        gx, gy, gz = (float(x) for x in prep["gravity"])
        _numba_kernel.run(parallel, prep["pos0"], prep["vel0"], prep["t_rel"], prep["hext"], prep["rolls"],
                          prep["kdrag"], prep["rest_c"], prep["fric"], prep["crr"], gx, gy, gz, prep["ground"],
                          prep["e_g"], prep["mu_g"], prep["omin"], prep["omax"], prep["oe"], prep["omu"],
                          prep["zmin"], prep["zmax"], prep["tsamp"], prep["offs"], prep["horizon"], prep["nsmax"],
                          self.fast_path, o["pos_s"], o["vel_s"], o["land_t"], o["land_p"], o["rest_t"], o["ko_t"],
                          o["ko_c"], o["ev_kind"], o["ev_idx"], o["ev_t"], o["ev_p"], o["ev_cnt"], o["fin_p"],
                          o["fin_v"], o["fin_mode"], o["ks_out"], o["status"])

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
from ..physics.model import BIG, MAX_SEGMENTS, UNSET, max_samples_per_step
from .base import MAX_EVENTS, RolloutBatch, RolloutResult

ENGINES = ("numba", "torch")


def _f64(a: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float64))


_PER_ROLLOUT = {"pos0": "position_m", "vel0": "velocity_mps", "t_rel": "release_time_s", "hext": "half_extent_m",
                "rolls": "rolls", "kdrag": "drag_k_per_m", "rest_c": "restitution", "fric": "friction",
                "crr": "rolling_resistance"}
_WORLD = {"omin": "obstacle_min_m", "omax": "obstacle_max_m", "oe": "obstacle_restitution",
          "omu": "obstacle_friction", "zmin": "keep_out_min_m", "zmax": "keep_out_max_m",
          "tsamp": "sample_times_s", "gravity": "gravity_mps2"}
_NON_NEGATIVE = ("t_rel", "hext", "kdrag", "rest_c", "fric", "crr")
_nsmax_cache: dict[tuple[bytes, float], int] = {}


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
    prep: dict[str, Any] = {key: _f64(getattr(batch, name)) for key, name in _PER_ROLLOUT.items()}
    prep.update({key: _f64(getattr(batch, name)) for key, name in _WORLD.items()})
    n = batch.size
    if n:
        for key in _NON_NEGATIVE:
            if prep[key].min() < 0.0:
                raise ValidationError(f"{_PER_ROLLOUT[key]} must be >= 0", f"batch.{_PER_ROLLOUT[key]}")
    for key, limit, unit in (("pos0", 1e6, "m"), ("vel0", 1e4, "m/s"), ("hext", 1e3, "m"), ("kdrag", 1e3, "1/m"),
                             ("gravity", 1e3, "m/s^2"), ("omin", 1e6, "m"), ("omax", 1e6, "m"), ("zmin", 1e6, "m"),
                             ("zmax", 1e6, "m")):
        # Bounded inputs keep every intermediate finite, so the result needs no full NaN scan.
        if prep[key].size and np.abs(prep[key]).max() > limit:
            name = _PER_ROLLOUT.get(key) or _WORLD[key]
            raise ValidationError(f"{name} exceeds {limit:g} {unit} in magnitude", f"batch.{name}")
    if prep["gravity"][2] >= 0.0:
        raise ValidationError("gravity must have a negative z component", "batch.gravity_mps2")
    for name in ("ground_height_m", "ground_restitution", "ground_friction", "horizon_s", "dt_s"):
        value = float(getattr(batch, name))
        if not math.isfinite(value) or (name != "ground_height_m" and value < 0.0):
            raise ValidationError(f"{name} must be finite{'' if name == 'ground_height_m' else ' and >= 0'}",
                                  f"batch.{name}")
    if (prep["omin"].size and np.any(prep["omax"] <= prep["omin"])) or \
            (prep["zmin"].size and np.any(prep["zmax"] <= prep["zmin"])):
        raise ValidationError("boxes need max > min on every axis", "batch")
    if prep["oe"].size and (prep["oe"].min() < 0.0 or prep["omu"].min() < 0.0):
        raise ValidationError("obstacle restitution and friction must be >= 0", "batch")
    dt = float(batch.dt_s)
    horizon = float(batch.horizon_s)
    t_min = float(prep["t_rel"].min()) if n else horizon
    n_steps = int(math.ceil((horizon - t_min) / dt)) + 1 if t_min < horizon else 0
    key = (prep["tsamp"].tobytes(), dt)
    nsmax = _nsmax_cache.get(key)
    if nsmax is None:
        nsmax = int(max_samples_per_step(prep["tsamp"], dt))
        if len(_nsmax_cache) > 64:
            _nsmax_cache.clear()
        _nsmax_cache[key] = nsmax
    prep.update(ground=float(batch.ground_height_m), e_g=float(batch.ground_restitution),
                mu_g=float(batch.ground_friction), horizon=horizon, nsmax=nsmax,
                offs=dt * np.arange(1, n_steps + 1, dtype=np.float64))
    return prep


_POOL_LOCK = threading.Lock()
_POOL: dict[tuple[int, int], list[np.ndarray]] = {}
_POOL_MIN_BYTES = 1 << 20          # smaller sample buffers are simply allocated
_POOL_MAX_BYTES = 256 << 20        # keep at most this much for reuse
_POOL_PER_SHAPE = 3


def _sample_buffer(n: int, n_t: int) -> np.ndarray:
    """An uninitialised (T, 3, N) sample array in rollout-major memory (a transposed (N, T, 3) array).

    Large buffers come from a small pool of buffers that no result references any more: touching
    fresh memory inside the parallel kernel costs page faults that the threads queue for (measured
    at N = 8192: 27 ms per call with fresh buffers, 10 ms with reused ones).
    """
    size = n * n_t * 3 * 8
    if size < _POOL_MIN_BYTES:
        return np.empty((n, n_t, 3)).transpose(1, 2, 0)
    key = (n, n_t)
    with _POOL_LOCK:
        bases = _POOL.setdefault(key, [])
        for base in bases:
            if sys.getrefcount(base) <= 3:      # held by the pool list, this loop and the call only
                return base.transpose(1, 2, 0)
        base = np.empty((n, n_t, 3))
        held = sum(b.nbytes for bs in _POOL.values() for b in bs)
        if len(bases) < _POOL_PER_SHAPE and held + size <= _POOL_MAX_BYTES:
            bases.append(base)
        return base.transpose(1, 2, 0)


def allocate(n: int, n_t: int, n_z: int) -> dict[str, np.ndarray]:
    """Output arrays of the engines, holding their "unset" values."""
    e = MAX_EVENTS
    return {
        # Samples are written rollout by rollout: rollout-major memory (seen as (T, 3, N)) keeps
        # each rollout's writes in one place instead of one page per value.
        # Every sample is written exactly once (before release, by a segment, or after the last
        # step by ``finish``), so they need no zeroing.
        "pos_s": _sample_buffer(n, n_t), "vel_s": _sample_buffer(n, n_t),
        "land_t": np.full(n, UNSET), "land_p": np.zeros((3, n)), "rest_t": np.full(n, UNSET),
        "ko_t": np.full((n_z, n), UNSET), "ko_c": np.full((n_z, n), BIG),
        "ev_kind": np.full((e, n), -1.0), "ev_idx": np.full((e, n), -1.0), "ev_t": np.full((e, n), UNSET),
        "ev_p": np.zeros((e, 3, n)), "ev_cnt": np.zeros(n), "fin_p": np.zeros((3, n)), "fin_v": np.zeros((3, n)),
        "fin_mode": np.zeros(n), "ks_out": np.zeros(n), "status": np.zeros(n),
    }


def _nan_where_unset(values: np.ndarray, unset: np.ndarray) -> np.ndarray:
    values[unset] = np.nan
    return values


def finish(prep: dict[str, Any], o: dict[str, np.ndarray]) -> RolloutResult:
    """Engine outputs -> RolloutResult: NaN for "never", samples after the last step, int kinds."""
    if o["status"].size and o["status"].max() != 0.0:
        bad = int(np.flatnonzero(o["status"])[0])
        raise BackendError(f"rollout {bad}: more than {MAX_SEGMENTS} events inside one integration step",
                           "analytic")
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
        landing_point_m=_nan_where_unset(o["land_p"].T, not_landed).T,
        rest_time_s=_nan_where_unset(o["rest_t"], o["rest_t"] < 0.0),
        final_position_m=o["fin_p"],
        final_mode=o["fin_mode"].astype(np.int64),
        keep_out_entry_time_s=_nan_where_unset(o["ko_t"], o["ko_t"] < 0.0),
        keep_out_clearance_m=o["ko_c"],
        event_count=o["ev_cnt"].astype(np.int64),
        event_kind=o["ev_kind"].astype(np.int64),
        event_index=o["ev_idx"].astype(np.int64),
        event_time_s=_nan_where_unset(o["ev_t"], unused),
        event_position_m=_nan_where_unset(o["ev_p"].transpose(0, 2, 1), unused).transpose(0, 2, 1),
    )
    # A non-finite number never recovers, so it would show at the end: check the final state and
    # the last sample of every rollout (O(N)), not every sample.
    for name, value in (("final_position_m", o["fin_p"]), ("final velocity", o["fin_v"]),
                        ("positions_m", pos[-1]), ("velocities_mps", vel[-1]),
                        ("keep_out_clearance_m", o["ko_c"])):
        if value.size and not (math.isfinite(value.min()) and math.isfinite(value.max())):
            raise BackendError(f"non-finite {name} in the result", "analytic")
    return result


def _tiny_batch() -> RolloutBatch:
    """A two-rollout batch touching every code path (flight, bounce, slide, roll, table, keep-out)."""
    return RolloutBatch(
        position_m=np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]]),
        velocity_mps=np.array([[3.0, 2.0], [0.0, 0.5], [1.0, 2.0]]),
        release_time_s=np.array([0.0, 0.1]), half_extent_m=np.full((3, 2), 0.03),
        radius_m=np.array([0.03, 0.03]), rolls=np.array([1.0, 0.0]), drag_k_per_m=np.array([0.01, 0.02]),
        restitution=np.array([0.5, 0.3]), friction=np.array([0.4, 0.5]), rolling_resistance=np.array([0.02, 0.02]),
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
        """Load (or compile, first time per source version) the kernels and run a tiny batch."""
        start = time.perf_counter()
        batch = _tiny_batch()
        if self.engine == "numba":
            for parallel in (False, True):
                prep = prepare(batch)
                self._run_numba(prep, allocate(batch.size, prep["tsamp"].shape[0], prep["zmin"].shape[1]), parallel)
        self.rollout(batch)
        self.warmup_s = time.perf_counter() - start

    def rollout(self, batch: RolloutBatch) -> RolloutResult:
        """Roll every member of ``batch`` forward to the horizon (see docs/physics.md)."""
        prep = prepare(batch)
        out = allocate(batch.size, prep["tsamp"].shape[0], prep["zmin"].shape[1])
        if batch.size == 0:
            return finish(prep, out)
        try:
            if self.engine == "numba":
                self._run_numba(prep, out)
            else:
                from . import _torch_rollout

                out = _torch_rollout.run(prep, out, self.device)
        except (BackendError, ValidationError):
            raise
        except Exception as err:
            raise BackendError(f"{self.engine} engine failed: {type(err).__name__}: {err}", "analytic") from err
        return finish(prep, out)

    def _run_numba(self, prep: dict[str, Any], o: dict[str, np.ndarray], parallel: bool | None = None) -> None:
        from . import _numba_kernel

        if parallel is None:    # one block: no threads to start or wake
            parallel = prep["pos0"].shape[1] > _numba_kernel.BLOCK
        kern = _numba_kernel.kernel(parallel)
        gx, gy, gz = (float(x) for x in prep["gravity"])
        with _numba_kernel.CALL_LOCK:
            kern(prep["pos0"], prep["vel0"], prep["t_rel"], prep["hext"], prep["rolls"], prep["kdrag"],
                 prep["rest_c"], prep["fric"], prep["crr"], gx, gy, gz, prep["ground"], prep["e_g"], prep["mu_g"],
                 prep["omin"], prep["omax"], prep["oe"], prep["omu"], prep["zmin"], prep["zmax"],
                 prep["tsamp"], prep["offs"], prep["horizon"], prep["nsmax"], self.fast_path,
                 o["pos_s"], o["vel_s"], o["land_t"], o["land_p"], o["rest_t"], o["ko_t"], o["ko_c"],
                 o["ev_kind"], o["ev_idx"], o["ev_t"], o["ev_p"], o["ev_cnt"], o["fin_p"], o["fin_v"],
                 o["fin_mode"], o["ks_out"], o["status"])

"""Rehearsal: turn a request into one batched rollout, judge it, and never answer GO by accident.

``Rehearser.rehearse`` is the one entry point the CLI, the IRP plugin and the ROS node share. It
samples the uncertainty of every candidate (sample 0 is the nominal prediction), runs all
``samples x candidates`` rollouts in one backend call (candidates inner), judges them, and maps
every failure (backend exception, deadline) to NO-GO verdicts with their codes.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from .backends import Backend
from .backends.base import EVENT_GROUND, EVENT_KEEP_OUT, EVENT_NAMES, EVENT_OBSTACLE, RolloutBatch, RolloutResult
from .errors import VerdictCode
from .scene import RehearsalRequest
from .verdicts import Verdict, choose_best, judge, no_go_all

DEFAULT_DT_S = 1.0 / 60.0
DEFAULT_SAMPLE_DT_S = 1.0 / 30.0


@dataclass
class ContactEvent:
    """Something that happened along a nominal trajectory: ``kind`` is ground, obstacle,
    keep_out or rest; ``with_what`` names the surface or zone."""

    time_s: float
    position_m: tuple[float, float, float]
    kind: str
    with_what: str


@dataclass
class Trajectory:
    """Nominal predicted track of one candidate at fixed sample times."""

    action_id: str
    t_s: np.ndarray                     # (T,)
    positions_m: np.ndarray             # (T, 3)
    velocities_mps: np.ndarray          # (T, 3)
    events: list[ContactEvent] = field(default_factory=list)
    final_position_m: tuple[float, float, float] | None = None
    at_rest: bool = False

    def to_dict(self) -> dict:
        """JSON-ready form (CLI result)."""
        return {"action_id": self.action_id, "t": [round(float(t), 6) for t in self.t_s],
                "positions": [[float(x) for x in p] for p in self.positions_m],
                "events": [{"time_s": e.time_s, "position": list(e.position_m), "kind": e.kind,
                            "with": e.with_what} for e in self.events]}


@dataclass
class RehearsalOutcome:
    """Everything a rehearsal answers; ``best_index`` is -1 when no candidate is GO."""

    request_id: str
    verdicts: list[Verdict]
    trajectories: list[Trajectory]
    best_index: int
    backend: str
    device: str
    latency_ms: float
    samples: int


def build_batch(request: RehearsalRequest, samples: int, dt_s: float = DEFAULT_DT_S,
                sample_dt_s: float = DEFAULT_SAMPLE_DT_S) -> RolloutBatch:
    """The rollout batch of ``samples x len(actions)`` (rollout ``s * C + c``); sample 0 is
    nominal, the others draw the object's and the action's noise from ``request.seed``."""
    scene, env = request.scene, request.scene.environment
    actions = request.actions
    objs = [scene.object(a.object_id) for a in actions]
    c_count = len(actions)

    def per_candidate(values) -> np.ndarray:
        return np.asarray(values, dtype=np.float64).T  # (C, k) -> (k, C)

    mass = per_candidate([o.mass_kg for o in objs])
    drag_cd = per_candidate([o.drag_coefficient for o in objs])
    area = per_candidate([o.cross_section_m2() for o in objs])
    restitution = per_candidate([o.restitution for o in objs])
    position = per_candidate([a.release_position_m if a.release_position_m is not None else o.position_m
                              for a, o in zip(actions, objs)])
    release_velocity = per_candidate([a.release_velocity_mps if a.type == "throw" else
                                      (0.0, 0.0, 0.0) for a in actions])
    impulse = per_candidate([a.impulse_ns if a.type == "push" else (0.0, 0.0, 0.0) for a in actions])
    pos_std = per_candidate([o.uncertainty.position_std_m for o in objs])
    vel_std = np.sqrt(per_candidate([o.uncertainty.velocity_std_mps for o in objs]) ** 2
                      + per_candidate([a.release_velocity_std_mps for a in actions]) ** 2)
    mass_std = per_candidate([o.uncertainty.mass_rel_std for o in objs])
    drag_std = per_candidate([o.uncertainty.drag_rel_std for o in objs])
    rest_std = per_candidate([o.uncertainty.restitution_std for o in objs])

    rng = np.random.default_rng(request.seed)
    noise = rng.standard_normal((9, samples, c_count))
    noise[:, 0, :] = 0.0  # sample 0: the nominal prediction
    # Mass and drag spreads are clipped so a sample never gets a non-physical value.
    m = mass * np.clip(1.0 + mass_std * noise[6], 0.5, 1.5)
    cd = drag_cd * np.clip(1.0 + drag_std * noise[7], 0.0, None)
    e = np.clip(restitution + rest_std * noise[8], 0.0, 1.0)
    p = position[:, None, :] + pos_std[:, None, :] * noise[0:3]
    v = release_velocity[:, None, :] + impulse[:, None, :] / m + vel_std[:, None, :] * noise[3:6]

    def tile(x: np.ndarray) -> np.ndarray:
        return np.broadcast_to(x, (samples, c_count)).reshape(-1).copy()

    half = np.stack([o.half_extents_m() for o in objs], axis=1)  # (3, C)
    obstacles = env.obstacles
    zones = request.criteria.keep_out
    horizon = request.criteria.horizon_s
    n_samples_t = int(np.floor(horizon / sample_dt_s + 1e-9)) + 1
    return RolloutBatch(
        position_m=p.reshape(3, -1), velocity_mps=v.reshape(3, -1),
        release_time_s=tile(np.array([a.start_delay_s for a in actions])),
        half_extent_m=np.stack([tile(half[i]) for i in range(3)]),
        radius_m=tile(np.array([o.radius_m for o in objs])),
        rolls=tile(np.array([1.0 if o.rolls else 0.0 for o in objs])),
        drag_k_per_m=(env.air_density_kgpm3 * cd * area / (2.0 * m)).reshape(-1),
        restitution=e.reshape(-1), friction=tile(np.array([o.friction for o in objs])),
        rolling_resistance=tile(np.array([o.rolling_resistance for o in objs])),
        gravity_mps2=np.asarray(env.gravity_mps2, dtype=np.float64),
        ground_height_m=env.ground_height_m, ground_restitution=env.ground_restitution,
        ground_friction=env.ground_friction,
        obstacle_min_m=np.array([o.min_m for o in obstacles], dtype=np.float64).reshape(-1, 3).T,
        obstacle_max_m=np.array([o.max_m for o in obstacles], dtype=np.float64).reshape(-1, 3).T,
        obstacle_restitution=np.array([o.restitution for o in obstacles], dtype=np.float64),
        obstacle_friction=np.array([o.friction for o in obstacles], dtype=np.float64),
        keep_out_min_m=np.array([z.min_m for z in zones], dtype=np.float64).reshape(-1, 3).T,
        keep_out_max_m=np.array([z.max_m for z in zones], dtype=np.float64).reshape(-1, 3).T,
        sample_times_s=np.minimum(np.arange(n_samples_t) * sample_dt_s, horizon),
        horizon_s=horizon, dt_s=dt_s)


def nominal_trajectories(request: RehearsalRequest, result: RolloutResult) -> list[Trajectory]:
    """The nominal (sample 0) track of each candidate with its named events."""
    obstacle_names = [o.name for o in request.scene.environment.obstacles]
    zone_names = [z.name for z in request.criteria.keep_out]
    out = []
    for c, action in enumerate(request.actions):
        events = []
        for j in range(min(int(result.event_count[c]), result.event_kind.shape[0])):
            kind = int(result.event_kind[j, c])
            index = int(result.event_index[j, c])
            with_what = {EVENT_GROUND: "ground", EVENT_OBSTACLE: obstacle_names[index] if kind == EVENT_OBSTACLE else "",
                         EVENT_KEEP_OUT: zone_names[index] if kind == EVENT_KEEP_OUT else ""}.get(kind, "rest")
            events.append(ContactEvent(float(result.event_time_s[j, c]),
                                       tuple(float(x) for x in result.event_position_m[j, :, c]),
                                       EVENT_NAMES.get(kind, "unknown"), with_what))
        out.append(Trajectory(action.id, result.sample_times_s.copy(), result.positions_m[:, :, c].copy(),
                              result.velocities_mps[:, :, c].copy(), events,
                              tuple(float(x) for x in result.final_position_m[:, c]),
                              bool(np.isfinite(result.rest_time_s[c]))))
    return out


class Rehearser:
    """Rehearses requests on one backend, with an optional fallback backend.

    Thread-safe: calls are serialised (the compiled kernels use every core already).
    """

    def __init__(self, backend: Backend, fallback: Backend | None = None, dt_s: float = DEFAULT_DT_S,
                 sample_dt_s: float = DEFAULT_SAMPLE_DT_S):
        self.backend = backend
        self.fallback = fallback
        self.dt_s = dt_s
        self.sample_dt_s = sample_dt_s
        self._lock = threading.Lock()

    def rehearse(self, request: RehearsalRequest, deadline_ms: float | None = None,
                 samples: int | None = None) -> RehearsalOutcome:
        """Judge every candidate of ``request``. ``deadline_ms`` (from the call) turns a late answer
        into NO_GO_DEADLINE; a backend failure gives NO_GO_BACKEND_ERROR (after trying the
        fallback, which is then named in the reasons and in ``backend``)."""
        start = time.perf_counter()
        s_count = samples or request.num_samples
        ids = [a.id for a in request.actions]
        backend, result, notes = self.backend, None, []
        try:
            batch = build_batch(request, s_count, self.dt_s, self.sample_dt_s)
        except Exception as err:  # a request the model cannot express: NO-GO, never a crash
            batch = None
            notes.append(f"could not build the rollout batch: {type(err).__name__}: {err}")
        with self._lock:
            for candidate in (self.backend, self.fallback):
                if batch is None or candidate is None:
                    break
                backend = candidate
                try:
                    result = backend.rollout(batch)
                    if candidate is self.fallback:
                        notes.append(f"answered by fallback backend {backend.name!r}")
                    break
                except Exception as err:  # any backend failure must become NO-GO, never a crash
                    role = "fallback backend" if candidate is self.fallback else "backend"
                    notes.append(f"{role} {backend.name!r} failed: {type(err).__name__}: {err}")
        latency_ms = (time.perf_counter() - start) * 1e3
        if result is None:
            verdicts = no_go_all(ids, VerdictCode.NO_GO_BACKEND_ERROR, "; ".join(notes))
            return RehearsalOutcome(request.request_id, verdicts, [], -1, backend.name, backend.device,
                                    latency_ms, s_count)
        zone_names = [z.name for z in request.criteria.keep_out]
        half_height = np.broadcast_to(
            np.array([request.scene.object(a.object_id).half_extents_m()[2] for a in request.actions]),
            (s_count, len(ids))).reshape(-1)
        verdicts = judge(ids, result, half_height, request.criteria, s_count, zone_names)
        for v in verdicts:
            v.reasons.extend(notes)
        latency_ms = (time.perf_counter() - start) * 1e3
        if deadline_ms is not None and latency_ms > deadline_ms:
            verdicts = no_go_all(ids, VerdictCode.NO_GO_DEADLINE,
                                 f"rehearsal took {latency_ms:.1f} ms, over the {deadline_ms:.1f} ms deadline")
            for v in verdicts:
                v.reasons.extend(notes)
        best = choose_best(verdicts)
        return RehearsalOutcome(request.request_id, verdicts, nominal_trajectories(request, result), best,
                                backend.name, backend.device, latency_ms, s_count)

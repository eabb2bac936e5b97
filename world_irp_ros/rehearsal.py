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
from .errors import ValidationError, VerdictCode
from .scene import Environment, RehearsalRequest, drag_factor_per_m
from .verdicts import Verdict, choose_best, judge, keep_out_margin_m, no_go, no_go_all

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
        return {"action_id": self.action_id, "t": [round(t, 6) for t in np.asarray(self.t_s, dtype=float).tolist()],
                "positions": np.asarray(self.positions_m, dtype=float).tolist(),
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
    nominal, the others draw the object's and the action's noise from ``request.seed``, the same
    draws for every candidate."""
    scene, env = request.scene, request.scene.environment
    actions = request.actions
    c_count = len(actions)
    # Object properties are read once per object, then indexed per candidate (most requests
    # rehearse many actions of one object).
    row = {object_id: k for k, object_id in enumerate(dict.fromkeys(a.object_id for a in actions))}
    models = [scene.object(object_id) for object_id in row]
    of_candidate = np.array([row[a.object_id] for a in actions], dtype=np.int64)

    def per_object(values) -> np.ndarray:
        return np.asarray(values, dtype=np.float64).T[..., of_candidate]  # (U, k) -> (k, C)

    def per_candidate(values) -> np.ndarray:
        return np.asarray(values, dtype=np.float64).T  # (C, k) -> (k, C)

    mass = per_object([o.mass_kg for o in models])
    drag_cd = per_object([o.drag_coefficient for o in models])
    area = per_object([o.cross_section_m2() for o in models])
    restitution = per_object([o.restitution for o in models])
    position = per_candidate([a.release_position_m if a.release_position_m is not None else
                              models[row[a.object_id]].position_m for a in actions])
    # A push adds its impulse to the object's perceived motion; a drop releases from rest.
    release_velocity = per_candidate([a.release_velocity_mps if a.type == "throw" else
                                      models[row[a.object_id]].velocity_mps if a.type == "push" else
                                      (0.0, 0.0, 0.0) for a in actions])
    impulse = per_candidate([a.impulse_ns if a.type == "push" else (0.0, 0.0, 0.0) for a in actions])
    pos_std = per_object([o.uncertainty.position_std_m for o in models])
    vel_std = np.sqrt(per_object([o.uncertainty.velocity_std_mps for o in models]) ** 2
                      + per_candidate([a.release_velocity_std_mps for a in actions]) ** 2)
    mass_std = per_object([o.uncertainty.mass_rel_std for o in models])
    drag_std = per_object([o.uncertainty.drag_rel_std for o in models])
    rest_std = per_object([o.uncertainty.restitution_std for o in models])

    # Common random numbers: sample s draws the same standard normals for every candidate (scaled
    # by each one's spreads), so a candidate's verdict does not depend on which others share the
    # request, and candidates are compared under the same disturbances.
    rng = np.random.default_rng(request.seed)
    noise = rng.standard_normal((9, samples, 1))
    noise[:, 0, :] = 0.0  # sample 0: the nominal prediction
    # Mass and drag spreads are clipped so a sample never gets a non-physical value.
    m = mass * np.clip(1.0 + mass_std * noise[6], 0.5, 1.5)
    cd = drag_cd * np.clip(1.0 + drag_std * noise[7], 0.0, None)
    e = np.clip(restitution + rest_std * noise[8], 0.0, 1.0)
    p = position[:, None, :] + pos_std[:, None, :] * noise[0:3]
    v = release_velocity[:, None, :] + impulse[:, None, :] / m + vel_std[:, None, :] * noise[3:6]

    def tile(x: np.ndarray) -> np.ndarray:
        return np.broadcast_to(x, (samples, c_count)).reshape(-1).copy()

    half = per_object([o.half_extents_m() for o in models])  # (3, C)
    obstacles = env.obstacles
    zones = request.criteria.keep_out
    horizon = request.criteria.horizon_s
    n_samples_t = int(np.floor(horizon / sample_dt_s + 1e-9)) + 1
    return RolloutBatch(
        position_m=p.reshape(3, -1), velocity_mps=v.reshape(3, -1),
        release_time_s=tile(np.array([a.start_delay_s for a in actions])),
        half_extent_m=np.stack([tile(half[i]) for i in range(3)]),
        radius_m=tile(per_object([o.radius_m for o in models])),
        rolls=tile(per_object([1.0 if o.rolls else 0.0 for o in models])),
        drag_k_per_m=drag_factor_per_m(env.air_density_kgpm3, cd, area, m).reshape(-1),
        restitution=e.reshape(-1), friction=tile(per_object([o.friction for o in models])),
        rolling_resistance=tile(per_object([o.rolling_resistance for o in models])),
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
    """The nominal (sample 0) track of each candidate with its named events (empty for a candidate
    the backend could not compute).

    Tracks are views into one read-only, candidate-major copy of the nominal samples (never the
    backend's buffers, which it may reuse); per-candidate numbers are read with one ``tolist`` per
    array: a copy and NumPy scalar reads per candidate cost about 10 us, 10 ms at 1024 candidates.
    """
    c_count = len(request.actions)
    names = {EVENT_OBSTACLE: [o.name for o in request.scene.environment.obstacles],
             EVENT_KEEP_OUT: [z.name for z in request.criteria.keep_out]}
    t_s = _read_only(result.sample_times_s.copy())
    positions = _read_only(np.array(result.positions_m[:, :, :c_count].transpose(2, 0, 1), order="C"))
    velocities = _read_only(np.array(result.velocities_mps[:, :, :c_count].transpose(2, 0, 1), order="C"))
    # The events each candidate recorded, candidate by candidate, in one flat list per field.
    counts = np.minimum(result.event_count[:c_count], result.event_kind.shape[0])
    used = (np.arange(result.event_kind.shape[0])[None, :] < counts[:, None])         # (C, E)
    kinds = result.event_kind[:, :c_count].T[used].tolist()
    indices = result.event_index[:, :c_count].T[used].tolist()
    times = result.event_time_s[:, :c_count].T[used].tolist()
    points = result.event_position_m[:, :, :c_count].transpose(2, 0, 1)[used].tolist()
    ends = np.cumsum(counts).tolist()
    finals = result.final_position_m[:, :c_count].T.tolist()
    at_rest = np.isfinite(result.rest_time_s[:c_count]).tolist()
    failed = result.failed_candidates(c_count).tolist()
    out = []
    start = 0
    for c, action in enumerate(request.actions):
        events = [ContactEvent(times[j], tuple(points[j]), EVENT_NAMES.get(kinds[j], "unknown"),
                               _partner(kinds[j], indices[j], names)) for j in range(start, ends[c])]
        start = ends[c]
        if failed[c]:  # what the backend could not compute is no track
            out.append(Trajectory(action.id, t_s[:0], positions[c, :0], velocities[c, :0]))
        else:
            out.append(Trajectory(action.id, t_s, positions[c], velocities[c], events, tuple(finals[c]), at_rest[c]))
    return out


def _partner(kind: int, index: int, names: dict[int, list[str]]) -> str:
    """What an event touched: "ground", the obstacle or keep-out zone by name, or "rest"."""
    if kind == EVENT_GROUND:
        return "ground"
    return names[kind][index] if kind in names else "rest"


def _read_only(a: np.ndarray) -> np.ndarray:
    """``a``, no longer writable: the trajectories of a rehearsal share it."""
    a.flags.writeable = False
    return a


def impossible_releases(environment: Environment, release_m: np.ndarray) -> list[tuple[int, str]]:
    """Candidates whose nominal release (3, C) puts the object's centre below the ground or inside
    an obstacle, with the reason. The model moves a released object out of what it overlaps (an
    object perceived a few millimetres inside its table sits on it), but a centre inside is a pose
    that cannot be, not noise: such a candidate is NO_GO_INVALID_REQUEST."""
    held = environment.solid_holding(release_m)
    return [(int(c), f"release position {tuple(round(float(x), 4) for x in release_m[:, c])} puts the object's "
                     f"centre {held[c]}") for c in np.flatnonzero(held != "")]


def late_starts(batch: RolloutBatch, candidates: int) -> list[tuple[int, str]]:
    """Candidates whose motion starts at or after the horizon, with the reason: none of it would be
    rehearsed, and a candidate nothing was learnt about must not pass for GO."""
    start = batch.release_time_s[:candidates]
    return [(int(c), f"start_delay_s {start[c]:g} s is not before the horizon {batch.horizon_s:g} s: none of "
                     "its motion would be rehearsed") for c in np.flatnonzero(start >= batch.horizon_s)]


# A nominal track whose centre gets this deep into an obstacle's box went through it: a contact
# keeps the centre at least the object's half extent away from the box.
PASS_THROUGH_M = 0.005


def tracks_through_obstacles(environment: Environment, result: RolloutResult, candidates: int) -> list[tuple[int, str]]:
    """Candidates whose nominal track takes the object's centre into an obstacle, with the reason:
    a contact the model missed (docs/physics.md, "Known limitations"), whose prediction must not
    be judged as if the obstacle were not there. The straight lines between samples are tested,
    not only the samples: a thin wall lies between two of them. (The centre, not the object's box:
    PyBullet's ball rounding a table's edge legitimately passes through the corner of the box
    grown by its radius, and sinks millimetres into surfaces.)"""
    # Candidate-major: the backends store samples rollout by rollout, so this view is contiguous.
    pos = result.positions_m[:, :, :candidates].transpose(2, 0, 1)   # (C, T, 3)
    a, b = pos[:, :-1], pos[:, 1:]                                   # segments (C, T-1, 3)
    seg_lo, seg_hi = np.minimum(a, b), np.maximum(a, b)
    problems: dict[int, str] = {}
    for ob in environment.obstacles:
        box_lo = np.array(ob.min_m) + PASS_THROUGH_M
        box_hi = np.array(ob.max_m) - PASS_THROUGH_M
        # Segments whose bounding box meets the box (axis by axis: (C, T-1) masks, no (C, T-1, 3)
        # temporaries), then the exact test on those few (slabs).
        near = (seg_hi[..., 0] > box_lo[0]) & (seg_lo[..., 0] < box_hi[0])
        for k in (1, 2):
            near &= (seg_hi[..., k] > box_lo[k]) & (seg_lo[..., k] < box_hi[k])
        c_idx, t_idx = np.nonzero(near)
        if c_idx.size == 0:
            continue
        p0, d = a[c_idx, t_idx], b[c_idx, t_idx] - a[c_idx, t_idx]       # (M, 3)
        moving = d != 0.0
        safe = np.where(moving, d, 1.0)
        t0, t1 = (box_lo - p0) / safe, (box_hi - p0) / safe
        # An axis without motion: the bounding-box test above already put it inside the slab.
        enter = np.where(moving, np.minimum(t0, t1), -np.inf).max(axis=1)
        leave = np.where(moving, np.maximum(t0, t1), np.inf).min(axis=1)
        for c in np.unique(c_idx[(enter < leave) & (enter < 1.0) & (leave > 0.0)]):
            problems.setdefault(int(c), f"the predicted track passes through obstacle {ob.name!r}: the model "
                                        "missed a contact there, so the prediction cannot be trusted")
    return sorted(problems.items())


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
        fallback, which is then named in the reasons and in ``backend``), a request outside what
        the model can compute (numbers that overflow the batch, or a backend's ``ValidationError``:
        a speed or a drag factor beyond the model's bounds) NO_GO_INVALID_REQUEST."""
        start = time.perf_counter()
        s_count = samples or request.num_samples
        ids = [a.id for a in request.actions]
        backend, result, notes, errors = self.backend, None, [], []
        try:
            with np.errstate(over="raise", invalid="raise"):  # e.g. a mass of 1e308 times its spread
                batch = build_batch(request, s_count, self.dt_s, self.sample_dt_s)
        except Exception as err:  # a request the model cannot express: NO-GO, never a crash
            batch = None
            errors.append(err)
            notes.append(f"outside what the model can compute: its numbers overflow ({err})"
                         if isinstance(err, FloatingPointError) else
                         f"could not build the rollout batch: {type(err).__name__}: {err}")
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
                    errors.append(err)
                    if isinstance(err, ValidationError):
                        notes.append(f"outside what {role} {backend.name!r} can compute: {err.reason}")
                    else:
                        notes.append(f"{role} {backend.name!r} failed: {type(err).__name__}: {err}")
        latency_ms = (time.perf_counter() - start) * 1e3
        if result is None:
            domain = bool(errors) and all(isinstance(e, (ValidationError, FloatingPointError)) for e in errors)
            code = VerdictCode.NO_GO_INVALID_REQUEST if domain else VerdictCode.NO_GO_BACKEND_ERROR
            verdicts = no_go_all(ids, code, "; ".join(notes))
            return RehearsalOutcome(request.request_id, verdicts, [], -1, backend.name, backend.device,
                                    latency_ms, s_count)
        zone_names = [z.name for z in request.criteria.keep_out]
        verdicts = judge(ids, result, batch.half_extent_m[2], keep_out_margin_m(batch), request.criteria, s_count,
                         zone_names)
        env = request.scene.environment
        for c, reason in tracks_through_obstacles(env, result, len(ids)):
            verdicts[c] = no_go(ids[c], VerdictCode.NO_GO_BACKEND_ERROR, reason)
        for c, reason in impossible_releases(env, batch.position_m[:, :len(ids)]) + late_starts(batch, len(ids)):
            verdicts[c] = no_go(ids[c], VerdictCode.NO_GO_INVALID_REQUEST, reason)
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

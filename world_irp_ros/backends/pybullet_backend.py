"""PyBullet backend: the physics model of docs/physics.md rolled out by Bullet's rigid-body solver.

Each rollout gets a fresh PyBullet DIRECT world (``resetSimulation``): the ground plane and the
obstacle boxes as static bodies, the object as a sphere of ``radius_m`` (``rolls`` = 1) or a box of
``half_extent_m`` that does not rotate. Rollouts run in worker processes, each with its own DIRECT
client, in contiguous chunks; a batch of ``inprocess_max`` rollouts or fewer runs in this process.
How the model maps onto PyBullet, and what it costs, is in docs/pybullet-backend.md:

- linear and angular damping are 0; drag ``-k |v| v`` is an external force at the centre of mass,
  applied before every PyBullet step (the object's mass is 1 kg: the batch only gives ``k``);
- PyBullet's semi-implicit Euler step is ``dt_s / ceil(dt_s / max_step_s)`` (1/960 s for the
  default 1/60 s batch step), short enough for a landing point within 2 cm of an exact solution;
- restitution and friction combine as products (Bullet's rule): the object carries its own
  coefficients, each surface its factor; rolling resistance is a force at the centre while a
  sphere rolls (or, with ``rolling="bullet"``, Bullet's anisotropic rolling friction);
- events (first contact, keep-out entry, rest) are located inside the PyBullet step from the
  states before and after it, never rounded to the step; keep-out zones are not bodies, they are
  tested geometrically every step and never deflect the object.

``device`` is always ``cpu``: PyBullet has no GPU solver. Asked for ``cuda``, the backend runs on
the CPU, logs a warning and reports ``cpu``.
"""
from __future__ import annotations

import logging
import math
import os
import pickle
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass

import numpy as np
import pybullet as pb

from ..errors import BackendError, ValidationError
from ..physics.model import MOVE_EPS, SPIN_RATE, V_BOUNCE_STOP, V_REST, box_distance, chord_min_distance
from .analytic import prepare as validated
from .base import (EVENT_GROUND, EVENT_KEEP_OUT, EVENT_OBSTACLE, EVENT_REST, MAX_EVENTS, MODE_FLIGHT, MODE_REST,
                   MODE_SUPPORTED, RolloutBatch, RolloutResult)

log = logging.getLogger(__name__)

DEFAULT_MAX_STEP_S = 1.0 / 960.0
TOUCH_TOLERANCE_M = 1e-4     # a surface closer than this counts as touching (Bullet keeps ~1e-5)
CONTACT_CHECK_M = 1e-3       # contacts are read when a surface is this close (a slow rebound lifts less)
BODY_MASS_KG = 1.0           # the batch carries accelerations only; any mass gives the same motion
ROLLING_MASS_FACTOR = 1.0 + 1.0 / SPIN_RATE  # (m + I / r^2) / m of the model's solid sphere (7/5)
ROLL_SLIP_MPS = 1e-3         # a sphere whose contact point slips slower than this rolls,
ROLL_SLIP_HOLD_MPS = 0.1     # and keeps rolling while Bullet's contact lets it slip less than this
NO_ROTATION_INERTIA = 1e6    # kg m^2 for boxes: sliders never rotate (the model tracks no rotation)

ENGINE_PARAMETERS = {"numSubSteps": 0, "deterministicOverlappingPairs": 1, "useSplitImpulse": 1,
                     "splitImpulsePenetrationThreshold": 1e9, "contactBreakingThreshold": 0.0,
                     "erp": 1.0, "contactERP": 1.0}

# Columns of the per-rollout parameter table sent to the workers.
_X, _V, _T_REL, _HALF, _RADIUS, _ROLLS, _K, _E, _MU, _CRR = 0, 3, 6, 7, 10, 11, 12, 13, 14, 15
_COLUMNS = 16


@dataclass(frozen=True)
class _World:
    """What every rollout of a batch shares (picklable, sent with each chunk)."""

    gravity: tuple[float, float, float]
    ground_height: float
    ground_restitution: float
    ground_friction: float
    obstacles: tuple[tuple[tuple[float, ...], tuple[float, ...], float, float], ...]  # (min, max, e, mu)
    zones: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...]                    # (min, max)
    sample_times: tuple[float, ...]
    horizon: float
    step: float
    bullet_rolling: bool  # rolling resistance by Bullet's rolling friction, not by a force


# ----------------------------------------------------------------------------- one rollout
def _build_world(cid: int, world: _World, r: np.ndarray, start: tuple[float, float, float],
                 velocity: tuple[float, float, float]) -> int:
    """Reset the client and build the static world and the object of rollout ``r`` at ``start``
    moving at ``velocity``; the object's body id (the surfaces are bodies 0 .. K)."""
    kw = {"physicsClientId": cid}
    pb.resetSimulation(**kw)
    pb.setGravity(*world.gravity, **kw)
    # Split impulse keeps penetration recovery out of the velocity (else it added up to 27 % to the
    # restitution); no contact breaking threshold: a contact exists only once the shapes overlap,
    # so the solver applies the restitution of the model to every impact, fast or slow.
    pb.setPhysicsEngineParameter(fixedTimeStep=world.step, restitutionVelocityThreshold=V_BOUNCE_STOP,
                                 **ENGINE_PARAMETERS, **kw)
    mu_obj, crr = float(r[_MU]), float(r[_CRR])
    rolls = r[_ROLLS] > 0.5
    radius = float(r[_RADIUS])
    # Bullet combines rolling friction as roll_a * mu_b + roll_b * mu_a and resists rolling with a
    # torque of that times the normal force; the object's own rolling friction is 0 and each
    # surface carries what gives a deceleration of crr * g on a rolling sphere (see the docs).
    # Only with ``bullet_rolling``: Bullet clamps that torque per world axis (anisotropic).
    roll_torque_arm = crr * radius * ROLLING_MASS_FACTOR if rolls and world.bullet_rolling else 0.0
    surface_roll = roll_torque_arm / mu_obj if mu_obj > 0.0 else 0.0
    # Static bodies in maximal coordinates: contacts between two rigid bodies go through Bullet's
    # sequential-impulse path, which honours split impulse (with a multibody plane it changed nothing).
    plane = pb.createCollisionShape(pb.GEOM_PLANE, **kw)
    ground = pb.createMultiBody(0.0, plane, basePosition=(0.0, 0.0, world.ground_height),
                                useMaximalCoordinates=True, **kw)
    pb.changeDynamics(ground, -1, restitution=world.ground_restitution, lateralFriction=world.ground_friction,
                      rollingFriction=surface_roll, **kw)
    for lo, hi, e, mu in world.obstacles:
        half = [(b - a) / 2.0 for a, b in zip(lo, hi)]
        centre = [(a + b) / 2.0 for a, b in zip(lo, hi)]
        box = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=half, **kw)
        body = pb.createMultiBody(0.0, box, basePosition=centre, useMaximalCoordinates=True, **kw)
        pb.changeDynamics(body, -1, restitution=e, lateralFriction=mu, rollingFriction=surface_roll, **kw)
    if rolls:
        shape = pb.createCollisionShape(pb.GEOM_SPHERE, radius=radius, **kw)
    else:
        shape = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=[float(h) for h in r[_HALF:_HALF + 3]], **kw)
    body = pb.createMultiBody(BODY_MASS_KG, shape, basePosition=start, useMaximalCoordinates=True, **kw)
    dyn = {"restitution": float(r[_E]), "lateralFriction": mu_obj, "rollingFriction": 0.0,
           "spinningFriction": 0.0, "linearDamping": 0.0, "angularDamping": 0.0}
    # The model's solid sphere (I = m r^2 / SPIN_RATE) and sliders that never rotate.
    # PyBullet zeroes the mass of a maximal-coordinates body whose inertia is set without it.
    inertia = BODY_MASS_KG * radius * radius / SPIN_RATE if rolls else NO_ROTATION_INERTIA
    dyn.update(mass=BODY_MASS_KG, localInertiaDiagonal=(inertia,) * 3)
    pb.changeDynamics(body, -1, **dyn, **kw)
    pb.resetBaseVelocity(body, velocity, (0.0, 0.0, 0.0), **kw)
    return body


def _grown(lo, hi, he) -> tuple[float, float, float, float, float, float]:
    """The box [lo, hi] grown by the object's half extents ``he``: the object's extent overlaps
    [lo, hi] exactly when its centre lies inside this box. (x0, y0, z0, x1, y1, z1)."""
    return (lo[0] - he[0], lo[1] - he[1], lo[2] - he[2], hi[0] + he[0], hi[1] + he[1], hi[2] + he[2])


def _separation(c, b) -> float:
    """Largest signed per-axis separation of the point ``c`` from the grown box ``b``: < 0 inside."""
    return max(b[0] - c[0], c[0] - b[3], b[1] - c[1], c[1] - b[4], b[2] - c[2], c[2] - b[5])


def _zone_entry(p0, p1, b) -> float | None:
    """Fraction in [0, 1] of the chord p0 -> p1 at which it is first inside the open grown box ``b``
    (the model's slab test: touching is not entering), or None when it is not inside along it."""
    t_in, t_out = -math.inf, math.inf
    for a in range(3):
        lo, hi, q0, d = b[a], b[a + 3], p0[a], p1[a] - p0[a]
        if abs(d) <= MOVE_EPS:
            if not lo < q0 < hi:
                return None
            continue
        ta, tb = (lo - q0) / d, (hi - q0) / d
        t_in, t_out = max(t_in, min(ta, tb)), min(t_out, max(ta, tb))
    if t_in < t_out and t_in <= 1.0 and t_out > 0.0:
        return max(t_in, 0.0)
    return None


def _gap3(c, b) -> tuple[float, float, float]:
    """Per-axis gaps from the point ``c`` to the grown box ``b`` (``physics.model.gap3``)."""
    return (max(b[0] - c[0], 0.0) - max(c[0] - b[3], 0.0), max(b[1] - c[1], 0.0) - max(c[1] - b[4], 0.0),
            max(b[2] - c[2], 0.0) - max(c[2] - b[5], 0.0))


def _chord_clearance(p0, p1, b, best: float) -> float:
    """The smaller of ``best`` and the smallest distance from the chord p0 -> p1 to the grown box
    ``b``. As in the model (``zone_chord``): the distance along a chord is convex, with an interior
    minimum only when the chord approaches at its start and recedes at its end, and no lower than
    (D0 + D1 - L) / 2; only then is it searched for (``chord_min_distance``)."""
    e0, e1 = _gap3(p0, b), _gap3(p1, b)
    d = (p1[0] - p0[0], p1[1] - p0[1], p1[2] - p0[2])
    d1 = math.sqrt(e1[0] * e1[0] + e1[1] * e1[1] + e1[2] * e1[2])
    best = min(best, d1)
    approaching = e0[0] * d[0] + e0[1] * d[1] + e0[2] * d[2] > 0.0
    receding = e1[0] * d[0] + e1[1] * d[1] + e1[2] * d[2] < 0.0
    if approaching and receding:
        d0 = math.sqrt(e0[0] * e0[0] + e0[1] * e0[1] + e0[2] * e0[2])
        if 0.5 * (d0 + d1 - math.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])) < best:
            best = min(best, chord_min_distance(*p0, *p1, *b))
    return best


def _release(x, he, world: _World) -> tuple[float, float, float]:
    """The model's release position (``physics.model.init_rollout``): lifted onto the ground if
    below it, moved out of an obstacle it overlaps through the nearest face (ties: the top; not
    through the bottom into the ground)."""
    ground = world.ground_height + he[2]
    px, py, pz = x[0], x[1], max(x[2], ground)
    for lo, hi, _, _ in world.obstacles:
        b = _grown(lo, hi, he)
        if b[0] < px < b[3] and b[1] < py < b[4] and b[2] < pz < b[5]:
            # Distances to the faces x-, x+, y-, y+, z-; the top z+ wins ties.
            moves = [(b[5] - pz, 2, b[5]), (px - b[0], 0, b[0]), (b[3] - px, 0, b[3]), (py - b[1], 1, b[1]),
                     (b[4] - py, 1, b[4])] + ([(pz - b[2], 2, b[2])] if b[2] >= ground else [])
            best = min(moves, key=lambda m: m[0])
            q = [px, py, pz]
            q[best[1]] = best[2]
            px, py, pz = q
    return px, py, max(pz, ground)


def _on_top(c, gaps: list[float], tops: list[float]) -> bool:
    """Whether the object touches a surface from above (the ground, an obstacle's top face)."""
    return any(g <= TOUCH_TOLERANCE_M and c[2] >= top - TOUCH_TOLERANCE_M for g, top in zip(gaps, tops))


def _normal_force(contact: tuple) -> float:
    return contact[9]


def _lerp(a, b, f: float) -> tuple[float, float, float]:
    return (a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f)


def _simulate(cid: int, world: _World, r: np.ndarray, out: dict[str, np.ndarray], j: int) -> None:
    """Roll rollout ``r`` forward and write its results into column ``j`` of the ``out`` arrays."""
    he = (float(r[_HALF]), float(r[_HALF + 1]), float(r[_HALF + 2]))
    x0 = _release((float(r[_X]), float(r[_X + 1]), float(r[_X + 2])), he, world)
    v0 = (float(r[_V]), float(r[_V + 1]), float(r[_V + 2]))
    k = float(r[_K])
    t_rel = float(r[_T_REL])
    h = world.step
    times = world.sample_times
    n_t = len(times)
    n_surf = 1 + len(world.obstacles)

    positions, velocities = out["positions_m"], out["velocities_mps"]
    si = 0
    while si < n_t and times[si] < t_rel:  # before the release the object sits still
        positions[si, :, j] = x0
        velocities[si, :, j] = 0.0
        si += 1

    # Surfaces as grown boxes: the ground is the half space below its plane (unbounded but in z).
    inf = math.inf
    surfaces = [(-inf, -inf, -inf, inf, inf, world.ground_height + he[2])]
    surfaces += [_grown(lo, hi, he) for lo, hi, _, _ in world.obstacles]
    zone_boxes = [_grown(lo, hi, he) for lo, hi in world.zones]

    def gaps(c) -> list[float]:
        a, b, z = c
        return [max(s0 - a, a - s3, s1 - b, b - s4, s2 - z, z - s5) for s0, s1, s2, s3, s4, s5 in surfaces]

    # Keep-out status at release (time 0, as in the model).
    events: list[tuple[float, int, int, tuple[float, float, float]]] = []
    zone_entry = [math.nan] * len(zone_boxes)
    zone_clear = [box_distance(*x0, *b) for b in zone_boxes]
    for z, b in enumerate(zone_boxes):
        if _separation(x0, b) < 0.0:
            zone_entry[z], zone_clear[z] = 0.0, 0.0
            events.append((0.0, EVENT_KEEP_OUT, z, x0))

    x, v = x0, v0
    g_prev = gaps(x)
    touching = False  # as in the model, an object is in flight until a step finds its support
    rest_time = math.nan
    final_x = x0
    n_steps = max(0, math.ceil((world.horizon - t_rel) / h - 1e-9))
    if n_steps:
        body = _build_world(cid, world, r, x, v)
        kw = {"physicsClientId": cid}
        step, get_pos, get_vel, push = (pb.stepSimulation, pb.getBasePositionAndOrientation, pb.getBaseVelocity,
                                        pb.applyExternalForce)
        get_contacts, reset_vel = pb.getContactPoints, pb.resetBaseVelocity
        reset_pose = pb.resetBasePositionAndOrientation
        frame = pb.WORLD_FRAME
        fk = -BODY_MASS_KG * k
        # Rolling resistance as a force at the centre, opposing the horizontal motion while the
        # sphere rolls on a top face: the contact friction turns it into a centre deceleration of
        # crr |g_z| (the mass of the spin shares it), the same in every direction.
        radius = float(r[_RADIUS])
        roll_mass = BODY_MASS_KG * ROLLING_MASS_FACTOR
        roll_force = (roll_mass * float(r[_CRR]) * abs(world.gravity[2])
                      if r[_ROLLS] > 0.5 and not world.bullet_rolling else 0.0)
        tops = [b[5] for b in surfaces]
        w = (0.0, 0.0, 0.0)
        speed = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
        rolls_now = False
        for i in range(n_steps):
            t = t_rel + i * h
            f = fk * speed
            force = (f * v[0], f * v[1], f * v[2])
            if roll_force > 0.0 and touching:
                s_h = math.hypot(v[0], v[1])
                slip = math.hypot(v[0] - radius * w[1], v[1] + radius * w[0])
                # Hysteresis: Bullet's contact keeps a rolling sphere's slip at a few cm/s of noise
                # in some directions, which switched the resistance on and off (up to 20 % long).
                rolls_now = (s_h > 0.0 and slip < (ROLL_SLIP_HOLD_MPS if rolls_now else ROLL_SLIP_MPS)
                             and _on_top(x, g_prev, tops))
                if rolls_now:
                    f_roll = min(roll_force, roll_mass * s_h / h) / s_h  # never reverses the motion
                    force = (force[0] - f_roll * v[0], force[1] - f_roll * v[1], force[2])
            else:
                rolls_now = False
            push(body, -1, force, x, frame, **kw)
            step(**kw)
            x1, q1 = get_pos(body, **kw)
            v1, w1 = get_vel(body, **kw)
            # The last step ends at the horizon: t + h can fall an ulp short of it.
            t1 = world.horizon if i == n_steps - 1 else t + h
            g1 = gaps(x1)
            g_min = min(g1)
            if g_min <= CONTACT_CHECK_M:
                # The model's end of bouncing: a rebound off a top (the ground, a table) slower
                # than V_BOUNCE_STOP is cancelled, the object stays on the surface. Bullet's own
                # threshold (set to the same speed) acts on the approach speed, which is 1/e times
                # higher: this catches the rebounds between the two. The object is put back onto
                # the surface, where the rebound of this step had lifted it.
                contacts = get_contacts(body, **kw)
                if contacts:
                    contact = max(contacts, key=_normal_force)
                    n = contact[7]  # normal on the surface (body B), towards the object
                    vn = v1[0] * n[0] + v1[1] * n[1] + v1[2] * n[2]
                    if n[2] > 0.5 and 0.0 < vn < V_BOUNCE_STOP:
                        v1 = (v1[0] - vn * n[0], v1[1] - vn * n[1], v1[2] - vn * n[2])
                        lift = g1[contact[2]]  # surfaces were created first: body id = surface index
                        if lift > 0.0:
                            x1 = (x1[0] - lift * n[0], x1[1] - lift * n[1], x1[2] - lift * n[2])
                            reset_pose(body, x1, q1, **kw)  # (this zeroes the velocities)
                            g1 = gaps(x1)
                            g_min = min(g1)
                        reset_vel(body, v1, w1, **kw)
            speed1 = math.sqrt(v1[0] * v1[0] + v1[1] * v1[1] + v1[2] * v1[2])
            new: list[tuple[float, int, int, tuple[float, float, float]]] = []
            # Contacts: a surface apart at the start of the step and reached in it; the time is
            # where the gap crosses zero on the step's straight path (Euler's own path). An object
            # released on a surface (gap 0) touches it at once, as in the model.
            if g_min <= 0.0:
                for s in range(n_surf):
                    if g1[s] <= 0.0 < g_prev[s] or (i == 0 and g1[s] < 0.0 == g_prev[s]):
                        f_hit = g_prev[s] / (g_prev[s] - g1[s])
                        new.append((t + f_hit * h, EVENT_GROUND if s == 0 else EVENT_OBSTACLE, s - 1,
                                    _lerp(x, x1, f_hit)))
            touching = g_min <= TOUCH_TOLERANCE_M
            g_prev = g1
            # Keep-out zones: geometric tests only, the zones are not bodies. The chord can only
            # enter a zone, or come closer than the clearance so far, from near enough.
            seg = max(abs(x1[0] - x[0]), abs(x1[1] - x[1]), abs(x1[2] - x[2]))
            for z, b in enumerate(zone_boxes):
                if not math.isnan(zone_entry[z]):
                    continue  # entered already (clearance 0 alone may be a touch at the release)
                sep = _separation(x1, b)
                if sep - seg < zone_clear[z]:
                    f_in = _zone_entry(x, x1, b) if sep <= seg else None
                    if f_in is not None:
                        zone_entry[z] = t + f_in * h
                        zone_clear[z] = 0.0
                        new.append((zone_entry[z], EVENT_KEEP_OUT, z, _lerp(x, x1, f_in)))
                    else:
                        zone_clear[z] = _chord_clearance(x, x1, b, zone_clear[z])
            # Rest: supported and slower than the model's threshold (speed interpolated in the step).
            if touching and speed1 < V_REST:
                f_rest = (speed - V_REST) / (speed - speed1) if speed > V_REST else 0.0
                rest_time = t + f_rest * h
                final_x = _lerp(x, x1, f_rest)
                new.append((rest_time, EVENT_REST, -1, final_x))
            end = rest_time if not math.isnan(rest_time) else t1
            while si < n_t and times[si] <= end:
                f_s = (times[si] - t) / h
                positions[si, :, j] = _lerp(x, x1, f_s)
                velocities[si, :, j] = _lerp(v, v1, f_s)
                si += 1
            if new:
                events.extend(sorted(e for e in new if e[0] <= world.horizon))
            if not math.isnan(rest_time):
                break
            if t1 >= world.horizon:
                final_x = _lerp(x, x1, (world.horizon - t) / h)
                break
            x, v, w, speed = x1, v1, w1, speed1
    while si < n_t:  # at rest, or released at or after the horizon
        positions[si, :, j] = final_x
        velocities[si, :, j] = 0.0
        si += 1

    out["final_position_m"][:, j] = final_x
    out["rest_time_s"][j] = rest_time
    out["final_mode"][j] = MODE_REST if not math.isnan(rest_time) else (MODE_SUPPORTED if touching else MODE_FLIGHT)
    out["keep_out_entry_time_s"][:, j] = zone_entry
    out["keep_out_clearance_m"][:, j] = zone_clear
    landing = next((e for e in events if e[1] in (EVENT_GROUND, EVENT_OBSTACLE)), None)
    if landing is not None:
        out["landing_time_s"][j] = landing[0]
        out["landing_point_m"][:, j] = landing[3]
    out["event_count"][j] = len(events)
    for m, (t_e, kind, index, p_e) in enumerate(events[:MAX_EVENTS]):
        out["event_time_s"][m, j] = t_e
        out["event_kind"][m, j] = kind
        out["event_index"][m, j] = index
        out["event_position_m"][m, :, j] = p_e


# --------------------------------------------------------------------------- chunks and workers
_CLIENT: int | None = None


def _client() -> int:
    """This process's DIRECT client (connected on first use, kept for the process's life)."""
    global _CLIENT
    if _CLIENT is None or not pb.isConnected(_CLIENT):
        _CLIENT = pb.connect(pb.DIRECT)
    return _CLIENT


def _empty(n: int, n_t: int, n_z: int) -> dict[str, np.ndarray]:
    return {"positions_m": np.zeros((n_t, 3, n)), "velocities_mps": np.zeros((n_t, 3, n)),
            "landing_time_s": np.full(n, np.nan), "landing_point_m": np.full((3, n), np.nan),
            "rest_time_s": np.full(n, np.nan), "final_position_m": np.zeros((3, n)),
            "final_mode": np.zeros(n, dtype=np.int64),
            "keep_out_entry_time_s": np.full((n_z, n), np.nan), "keep_out_clearance_m": np.full((n_z, n), np.inf),
            "event_count": np.zeros(n, dtype=np.int64), "event_kind": np.full((MAX_EVENTS, n), -1, dtype=np.int64),
            "event_index": np.full((MAX_EVENTS, n), -1, dtype=np.int64),
            "event_time_s": np.full((MAX_EVENTS, n), np.nan), "event_position_m": np.full((MAX_EVENTS, 3, n), np.nan)}


def _run_chunk(world: _World, params: np.ndarray) -> dict[str, np.ndarray]:
    """Roll out the rows of ``params`` (n, _COLUMNS) in this process; arrays with n last."""
    cid = _client()
    out = _empty(params.shape[0], len(world.sample_times), len(world.zones))
    for j in range(params.shape[0]):
        _simulate(cid, world, params[j], out, j)
    return out


def _world_of(batch: RolloutBatch, step: float, bullet_rolling: bool) -> _World:
    def boxes(lo: np.ndarray, hi: np.ndarray) -> list[tuple[tuple[float, ...], tuple[float, ...]]]:
        return [(tuple(map(float, lo[:, i])), tuple(map(float, hi[:, i]))) for i in range(lo.shape[1])]

    obstacles = tuple((lo, hi, float(e), float(mu)) for (lo, hi), e, mu in
                      zip(boxes(batch.obstacle_min_m, batch.obstacle_max_m), batch.obstacle_restitution,
                          batch.obstacle_friction))
    return _World(tuple(map(float, batch.gravity_mps2)), float(batch.ground_height_m),
                  float(batch.ground_restitution), float(batch.ground_friction), obstacles,
                  tuple(boxes(batch.keep_out_min_m, batch.keep_out_max_m)),
                  tuple(map(float, batch.sample_times_s)), float(batch.horizon_s), step, bullet_rolling)


def _params_of(batch: RolloutBatch) -> np.ndarray:
    n = batch.size
    table = np.empty((n, _COLUMNS))
    table[:, _X:_X + 3] = batch.position_m.T
    table[:, _V:_V + 3] = batch.velocity_mps.T
    table[:, _T_REL] = batch.release_time_s
    table[:, _HALF:_HALF + 3] = batch.half_extent_m.T
    table[:, _RADIUS] = batch.radius_m
    table[:, _ROLLS] = batch.rolls
    table[:, _K] = batch.drag_k_per_m
    table[:, _E] = batch.restitution
    table[:, _MU] = batch.friction
    table[:, _CRR] = batch.rolling_resistance
    return table


# A worker is a fresh interpreter started with this code: it answers on a pipe of its own (fd in
# argv), so nothing printed to stdout (PyBullet's banner) can mix into the replies, and it imports
# only this module, never the caller's main script.
_WORKER_CODE = """
import os, pickle, sys
replies = os.fdopen(int(sys.argv[1]), "wb")
sys.path[:] = pickle.load(sys.stdin.buffer)
from world_irp_ros.backends.pybullet_backend import _serve
_serve(sys.stdin.buffer, replies)
"""


def _serve(requests, replies) -> None:
    """Worker loop: ``("ready", pid)`` once connected, then one reply per ``(world, params)``
    request, ``("ok", arrays)`` or ``("error", text)``, until the request pipe closes."""
    _client()
    pickle.dump(("ready", os.getpid()), replies)
    replies.flush()
    while True:
        try:
            world, params = pickle.load(requests)
        except EOFError:
            return
        try:
            reply = ("ok", _run_chunk(world, params))
        except Exception as err:  # reported to the caller, which raises BackendError
            reply = ("error", f"{type(err).__name__}: {err}")
        pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()


class _Worker:
    """One worker process and its two pipes."""

    def __init__(self):
        read_fd, write_fd = os.pipe()
        try:
            self.proc = subprocess.Popen([sys.executable, "-c", _WORKER_CODE, str(write_fd)], stdin=subprocess.PIPE,
                                         stdout=subprocess.DEVNULL, pass_fds=(write_fd,), close_fds=True)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self.replies = os.fdopen(read_fd, "rb")
        self.ready = False
        self.send(list(sys.path))

    def send(self, message) -> None:
        pickle.dump(message, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self.proc.stdin.flush()

    def receive(self):
        """The next reply; ``BackendError`` when the worker is gone."""
        try:
            kind, payload = pickle.load(self.replies)
        except (EOFError, OSError, pickle.UnpicklingError) as err:
            code = self.proc.poll()
            raise BackendError(f"PyBullet worker {self.proc.pid} died (exit code {code}): {err!r}",
                               "backend") from err
        if kind == "error":
            raise BackendError(f"PyBullet worker {self.proc.pid} failed: {payload}", "backend")
        return payload

    def wait_ready(self) -> None:
        if not self.ready:
            self.receive()
            self.ready = True

    def run(self, world: _World, params: np.ndarray) -> dict[str, np.ndarray]:
        self.wait_ready()
        try:
            self.send((world, params))
        except (BrokenPipeError, OSError) as err:
            raise BackendError(f"PyBullet worker {self.proc.pid} died: {err!r}", "backend") from err
        return self.receive()

    def close(self, wait: bool = True) -> None:
        """End the worker: EOF on its requests (it exits), then, with ``wait``, SIGKILL if it has
        not exited within 5 s."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        if wait:
            try:
                self.proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.replies.close()


# ------------------------------------------------------------------------------------ backend
class PyBulletBackend:
    """Rolls batches out in PyBullet (CPU only), in parallel over a pool of worker processes.

    ``workers``: processes in the pool (default: the CPU count); 0 runs everything in this
    process. ``max_step_s``: longest PyBullet step; the batch step ``dt_s`` is split into
    ``ceil(dt_s / max_step_s)`` equal steps. ``inprocess_max``: batches this small run in this
    process (cheaper than a round trip to the pool). ``chunks_per_worker``: chunks each worker
    gets, for load balance. ``rolling``: how rolling resistance is applied, ``"force"`` (default:
    a force at the centre against the motion, as the model has it) or ``"bullet"`` (Bullet's
    rolling friction, which clamps per world axis: diagonal rolls stop early and turn towards an
    axis; see docs/pybullet-backend.md). The pool starts in the constructor; ``warmup`` waits for it.

    Workers are fresh interpreters (never forked: the node has threads) that import only this
    module, so any script or node may create the backend, with or without a main guard.
    """

    name = "pybullet"

    def __init__(self, device: str = "cpu", workers: int | None = None, max_step_s: float = DEFAULT_MAX_STEP_S,
                 inprocess_max: int = 1, chunks_per_worker: int = 4, rolling: str = "force", **options):
        if options:
            raise ValidationError(f"unknown option(s) {', '.join(sorted(options))}", "backend_options")
        if device not in ("cpu", "cuda"):
            raise ValidationError(f"must be 'cpu' or 'cuda', got {device!r}", "device")
        if device != "cpu":
            log.warning("pybullet backend: device %r asked for; PyBullet has no GPU solver, running on the CPU",
                        device)
        if not 0.0 < max_step_s <= 0.1:
            raise ValidationError(f"must lie in (0, 0.1] s, got {max_step_s!r}", "max_step_s")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
            raise ValidationError(f"must be an integer >= 0, got {workers!r}", "workers")
        if rolling not in ("force", "bullet"):
            raise ValidationError(f"must be 'force' or 'bullet', got {rolling!r}", "rolling")
        self.device = "cpu"
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self.max_step_s = float(max_step_s)
        self.inprocess_max = int(inprocess_max)
        self.chunks_per_worker = max(1, int(chunks_per_worker))
        self.rolling = rolling
        self._lock = threading.Lock()  # one rollout at a time: the workers and this process's client
        self._pool: list[_Worker] = []
        self._start_pool()

    def _start_pool(self) -> None:
        if self.workers > 0 and not self._pool:
            self._pool = [_Worker() for _ in range(self.workers)]

    def _stop_pool(self) -> None:
        pool, self._pool = self._pool, []
        for worker in pool:
            worker.close()

    def warmup(self) -> None:
        """Connect this process's client and wait until every worker has started and connected."""
        with self._lock:
            _client()
            self._start_pool()
            try:
                for worker in self._pool:
                    worker.wait_ready()
            except BackendError:
                self._stop_pool()
                raise

    def step_s(self, dt_s: float) -> float:
        """The PyBullet step used for a batch step of ``dt_s``."""
        return dt_s / math.ceil(dt_s / self.max_step_s - 1e-9)

    def rollout(self, batch: RolloutBatch) -> RolloutResult:
        """Roll the batch forward (see ``base.Backend``): rollouts split into contiguous chunks over
        the workers, results joined in order; a dead worker raises ``BackendError``, a rollout whose
        numbers broke down is marked in ``failed``."""
        validated(batch)  # the analytic backend's checks: the same input domain, the same errors
        world = _world_of(batch, self.step_s(batch.dt_s), self.rolling == "bullet")
        params = _params_of(batch)
        n = batch.size
        with self._lock:
            self._start_pool()
            if not self._pool or n <= self.inprocess_max:
                out = _run_chunk(world, params)
            else:
                chunks = min(n, self.workers * self.chunks_per_worker)
                bounds = np.linspace(0, n, chunks + 1).round().astype(int)
                parts = self._map(world, [params[a:b] for a, b in zip(bounds, bounds[1:])])
                out = {key: np.concatenate([p[key] for p in parts], axis=-1) for key in parts[0]}
        result = RolloutResult(sample_times_s=batch.sample_times_s.copy(), **out)
        # An explicit drag force on a light, fast object can outgrow the step (k v dt > 2): then
        # its numbers break down, and that rollout alone is marked.
        result.mark_non_finite()
        return result

    def _map(self, world: _World, chunks: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Chunks over the workers (each takes the next one when done), results in chunk order.
        A failed worker fails the call with ``BackendError`` and the pool is started afresh."""
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(len(chunks)):
            todo.put(i)
        parts: list[dict[str, np.ndarray] | None] = [None] * len(chunks)
        errors: list[BackendError] = []

        def drive(worker: _Worker) -> None:
            while not errors:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    parts[i] = worker.run(world, chunks[i])
                except BackendError as err:
                    errors.append(err)

        threads = [threading.Thread(target=drive, args=(w,), daemon=True) for w in self._pool]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            self._stop_pool()
            raise errors[0]
        return parts  # type: ignore[return-value]

    def close(self) -> None:
        """End the worker processes (idempotent); a later rollout starts them again."""
        with self._lock:
            self._stop_pool()

    def __enter__(self) -> "PyBulletBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        for worker in getattr(self, "_pool", []):
            worker.close(wait=False)

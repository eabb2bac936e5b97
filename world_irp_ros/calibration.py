"""The error signal: compare a prediction with what happened, and refit the object's parameters.

After an action is executed the observed track of the object is compared with the nominal
prediction (RMS track error, landing error, landing-time error). The flight part of the track
then refits what free flight makes observable: the release state and the drag factor
k = rho Cd A / (2 m) (reported as a drag coefficient for the known mass and size); a bounce makes
the restitution observable, and the track of a push with a known impulse the mass and the
resistance to rolling or sliding. The fit is Gauss-Newton on
the same forward model the rehearsal uses, each iteration one batched rollout of the nominal and
its finite-difference perturbations, so "what the model predicts" and "what it learnt" never
disagree about the physics.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .backends import Backend
from .backends.base import RolloutBatch
from .errors import ValidationError
from .rehearsal import Trajectory, build_batch
from .scene import CandidateAction, Criteria, ObjectModel, RehearsalRequest, Scene

# Perception noise floor assumed when the fit residual is smaller (m): keeps the reported
# parameter uncertainty from collapsing to zero on a perfect fit.
POSITION_NOISE_FLOOR_M = 0.002


@dataclass
class ObservedTrack:
    """Observed object centre positions at times relative to the release (s, m)."""

    t_s: np.ndarray          # (T,) ascending
    positions_m: np.ndarray  # (T, 3)

    def __post_init__(self) -> None:
        self.t_s = np.asarray(self.t_s, dtype=np.float64)
        self.positions_m = np.asarray(self.positions_m, dtype=np.float64).reshape(-1, 3)
        if self.t_s.shape[0] != self.positions_m.shape[0] or self.t_s.shape[0] < 3:
            raise ValueError("an observed track needs at least 3 samples with one position each")
        if np.any(np.diff(self.t_s) <= 0) or not np.all(np.isfinite(self.positions_m)):
            raise ValueError("observed times must ascend and positions must be finite")


@dataclass
class TrackComparison:
    """Prediction versus observation of one executed action (SI units)."""

    t_s: np.ndarray
    predicted_m: np.ndarray
    observed_m: np.ndarray
    rms_track_error_m: float
    predicted_landing_m: np.ndarray
    observed_landing_m: np.ndarray
    landing_error_m: float
    landing_time_error_s: float


@dataclass
class CalibrationResult:
    """Parameters refitted from one observed flight: names, values before/after, 1-sigma after."""

    names: list[str] = field(default_factory=list)
    before: list[float] = field(default_factory=list)
    after: list[float] = field(default_factory=list)
    std_after: list[float] = field(default_factory=list)
    rms_before_m: float = float("nan")
    rms_after_m: float = float("nan")

    def value(self, name: str) -> float:
        """Fitted value of a parameter by name."""
        return self.after[self.names.index(name)]

    def std(self, name: str) -> float:
        """1-sigma of a fitted parameter by name."""
        return self.std_after[self.names.index(name)]


# A bounce shows as a sample lower than both neighbours after a descent of more than this over the
# two samples before it (m): perception noise on a resting object does not qualify.
BOUNCE_DROP_M = 0.02
# A step between samples this many times the usual one is a gap (dropped frames): a landing
# inside it is not observed.
MAX_GAP_FACTOR = 3.0


def _bounces(z: np.ndarray) -> np.ndarray:
    """Indices of the samples where a sampled height track turns up after a real descent."""
    if z.size < 4:
        return np.zeros(0, dtype=int)
    mid = z[2:-1]
    low = (mid < z[1:-2]) & (mid <= z[3:]) & (z[:-3] - mid > BOUNCE_DROP_M)
    return np.nonzero(low)[0] + 2


def contact_surfaces(scene: Scene, obj: ObjectModel, positions_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per sample of a track (T, 3): the centre height at which the object would touch the surface
    beneath it, and that surface's restitution factor. The surface is the highest obstacle top
    whose footprint (grown by the object's half extents) holds the sample and that lies below it
    (2 cm of slack for a sample just past the contact), else the ground."""
    env = scene.environment
    half = obj.half_extents_m()
    x, y, z = positions_m[:, 0], positions_m[:, 1], positions_m[:, 2]
    height = np.full(z.shape, env.ground_height_m + half[2])
    factor = np.full(z.shape, env.ground_restitution)
    for ob in env.obstacles:
        top = ob.max_m[2] + half[2]
        over = ((x > ob.min_m[0] - half[0]) & (x < ob.max_m[0] + half[0]) & (y > ob.min_m[1] - half[1])
                & (y < ob.max_m[1] + half[1]) & (z >= top - 0.02) & (top > height))
        height = np.where(over, top, height)
        factor = np.where(over, ob.restitution, factor)
    return height, factor


def first_contact(t_s: np.ndarray, positions_m: np.ndarray, floor_z_m: float | np.ndarray) -> tuple[float, np.ndarray]:
    """Time and point where a sampled track first reaches ``floor_z_m`` (object centre height; one
    number, or one per sample: ``contact_surfaces``); (nan, nan) when it never does. A bounce
    usually falls between samples, so the first sample near the floor or the first low turning
    point ends the descent, and a parabola through the last descending samples is extended to the
    floor."""
    z = positions_m[:, 2]
    floors = np.broadcast_to(np.asarray(floor_z_m, dtype=np.float64), z.shape)
    near = np.nonzero(z <= floors + 0.01)[0]
    turns = _bounces(z)
    ends = [x[0] for x in (near, turns) if x.size]
    if not ends or min(ends) == 0:
        return float("nan"), np.full(3, np.nan)
    i = min(ends)
    floor_z_m = float(floors[i])  # the surface hit
    dt = np.diff(t_s)
    if dt[i - 1] > MAX_GAP_FACTOR * np.median(dt):
        return float("nan"), np.full(3, np.nan)  # the landing fell into a gap of the track
    if z[i] <= floor_z_m or i < 3:
        # Crossed between samples i-1 and i (or too few samples to fit): linear interpolation.
        k = i if z[i] <= floor_z_m else i + 1
        if k >= z.size or z[k] > floor_z_m:
            return float(t_s[i]), positions_m[i].copy()
        f = (z[k - 1] - floor_z_m) / (z[k - 1] - z[k]) if z[k - 1] != z[k] else 1.0
        return float(t_s[k - 1] + f * (t_s[k] - t_s[k - 1])), positions_m[k - 1] + f * (positions_m[k] - positions_m[k - 1])
    pre = np.arange(max(0, i - 4), i + (1 if z[i] > z[i - 1] else 0))
    pre = pre[np.r_[True, np.diff(z[pre]) < 0]]  # the descending samples only
    coef = np.polyfit(t_s[pre], z[pre] - floor_z_m, 2 if pre.size >= 3 else 1)
    roots = [r.real for r in np.roots(coef) if abs(r.imag) < 1e-9 and r.real >= t_s[pre[-1]] - 1e-9]
    if not roots:
        return float(t_s[i]), positions_m[i].copy()
    tc = min(roots)
    xy = [np.polyval(np.polyfit(t_s[pre], positions_m[pre, a], 1), tc) for a in (0, 1)]
    return float(tc), np.array([xy[0], xy[1], floor_z_m])


def compare(predicted: Trajectory, observed: ObservedTrack, floor_z_m: float | np.ndarray) -> TrackComparison:
    """Compare a nominal prediction with an observed track on the observed sample times.

    ``floor_z_m`` is the centre height at contact with the surface beneath the observed samples
    (``contact_surfaces``; one number: the ground everywhere).
    """
    t = observed.t_s[observed.t_s <= predicted.t_s[-1]]
    pred = np.stack([np.interp(t, predicted.t_s, predicted.positions_m[:, i]) for i in range(3)], axis=1)
    obs = observed.positions_m[: t.shape[0]]
    rms = float(np.sqrt(np.mean(np.sum((pred - obs) ** 2, axis=1))))
    contact = next((e for e in predicted.events if e.kind in ("ground", "obstacle")), None)
    tp, lp = ((contact.time_s, np.array(contact.position_m)) if contact is not None
              else first_contact(predicted.t_s, predicted.positions_m, np.min(floor_z_m)))
    to, lo = first_contact(observed.t_s, observed.positions_m, floor_z_m)
    return TrackComparison(t, pred, obs, rms, lp, lo, float(np.linalg.norm(lp - lo)), to - tp)


def _replicate(batch: RolloutBatch, n: int) -> RolloutBatch:
    """The one-rollout ``batch`` repeated ``n`` times (per-rollout arrays only)."""
    per_rollout = ("position_m", "velocity_mps", "release_time_s", "half_extent_m", "radius_m", "rolls",
                   "drag_k_per_m", "restitution", "friction", "rolling_resistance")
    return replace(batch, **{k: np.repeat(getattr(batch, k), n, axis=-1) for k in per_rollout})


def _rms(r: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum(r.reshape(-1, 3) ** 2, axis=1))))


def _gauss_newton(positions_of, theta: np.ndarray, steps: np.ndarray, obs: np.ndarray, iterations: int,
                  max_step: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Levenberg-damped Gauss-Newton of sampled positions against ``obs`` (T, 3).

    ``positions_of(cols)`` rolls out one parameter vector per column of ``cols`` (P, P + 1) in one
    batch and returns the positions (T, 3, P + 1): the nominal and its forward-difference
    perturbations by ``steps``. Each update is clipped to ``max_step``. Returns the parameters,
    their variances (from the final residual, at least the perception noise floor) and the RMS
    position error (m) before and after."""
    n_p = theta.shape[0]

    def residuals_and_jacobian(th: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cols = np.tile(th[:, None], (1, n_p + 1))
        cols[np.arange(n_p), np.arange(1, n_p + 1)] += steps
        pos = positions_of(cols)
        r0 = (pos[:, :, 0] - obs).reshape(-1)
        jac = np.stack([(pos[:, :, j + 1] - pos[:, :, 0]).reshape(-1) / steps[j] for j in range(n_p)], axis=1)
        return r0, jac

    r, jac = residuals_and_jacobian(theta)
    rms_before = _rms(r)
    damping = 1e-9
    for _ in range(iterations):
        jtj = jac.T @ jac
        delta = np.linalg.solve(jtj + damping * np.diag(np.diag(jtj) + 1e-12), -jac.T @ r)
        delta = np.clip(delta, -max_step, max_step)
        trial = theta + delta
        r_new, jac_new = residuals_and_jacobian(trial)
        if r_new @ r_new <= r @ r:
            theta, r, jac, damping = trial, r_new, jac_new, damping * 0.1
            if np.max(np.abs(delta / steps)) < 1e-2:
                break
        else:
            damping *= 10.0
    rms_after = _rms(r)
    sigma = max(rms_after / np.sqrt(3.0), POSITION_NOISE_FLOOR_M)
    return theta, _variances(jac) * sigma ** 2, rms_before, rms_after


def _variances(jac: np.ndarray) -> np.ndarray:
    """(P,) diagonal of (J^T J)^-1: infinite for a parameter with a share in a direction the
    track does not determine (a singular value below 1e-8 of the largest), e.g. the drag of an
    object that never moved. A pseudo-inverse would report 0 there: a confident, arbitrary value."""
    _, sv, vt = np.linalg.svd(jac, full_matrices=False)
    determined = sv > 1e-8 * max(float(sv.max(initial=0.0)), 1e-300)
    weight = vt ** 2                                             # (direction, parameter)
    per_direction = np.where(determined[:, None], weight / np.where(determined, sv, 1.0)[:, None] ** 2,
                             np.where(weight > 1e-12, np.inf, 0.0))
    return per_direction.sum(axis=0)


def _log_fit_std(value: float, var: np.ndarray, i: int) -> float:
    """1-sigma of ``value`` fitted as a log-scale, parameter ``i`` of the variances ``var``."""
    return value * float(np.sqrt(max(var[i], 0.0)))


def _base_batch(scene: Scene, action: CandidateAction, t: np.ndarray) -> RolloutBatch:
    """The nominal one-rollout batch of ``action`` sampled at the observed times ``t``."""
    request = RehearsalRequest(scene, (action,), Criteria(horizon_s=float(min(10.0, t[-1] + 1e-3))))
    return replace(build_batch(request, 1), sample_times_s=t)


K_START_PER_M = 1e-3


def fit_flight(backend: Backend, scene: Scene, action: CandidateAction, observed: ObservedTrack,
               iterations: int = 8) -> CalibrationResult:
    """Refit release position, release velocity and the drag factor to the flight part of an
    observed track (before its first contact) by Gauss-Newton; report the drag coefficient."""
    obj = scene.object(action.object_id)
    floor, _ = contact_surfaces(scene, obj, observed.positions_m)
    t_land, _ = first_contact(observed.t_s, observed.positions_m, floor)
    keep = observed.t_s < (t_land if np.isfinite(t_land) else np.inf)
    t, obs = observed.t_s[keep], observed.positions_m[keep]
    t = t[t > 0.0]
    obs = obs[-t.shape[0]:] if t.shape[0] else obs[:0]
    if t.shape[0] < 6:
        raise ValueError("too few flight samples to calibrate (need 6 after release, before landing)")
    base = _base_batch(scene, action, t)
    # Parameters: p0 (3), v0 (3), log k. Steps for finite differences are small against the noise.
    # k starts at no less than K_START_PER_M: log k moves by at most 1 per iteration, so a start
    # far below the stones' 0.005-0.05 1/m (a drag coefficient perceived as 0) would never get there.
    theta = np.concatenate([base.position_m[:, 0], base.velocity_mps[:, 0],
                            [np.log(max(base.drag_k_per_m[0], K_START_PER_M))]])

    def positions_of(cols: np.ndarray) -> np.ndarray:
        batch = _replicate(base, cols.shape[1])
        batch.position_m = cols[0:3].copy()
        batch.velocity_mps = cols[3:6].copy()
        batch.drag_k_per_m = np.exp(cols[6])
        return backend.rollout(batch).positions_m

    # k changes by at most a factor e per iteration
    theta, var, rms_before, rms_after = _gauss_newton(
        positions_of, theta, np.array([1e-4] * 6 + [1e-3]), obs, iterations, np.array([np.inf] * 6 + [1.0]))
    cd_after = obj.drag_coefficient_of(float(np.exp(theta[6])), scene.environment.air_density_kgpm3)
    if cd_after is None:        # in a vacuum the flight says nothing about the drag coefficient
        return CalibrationResult(rms_before_m=rms_before, rms_after_m=rms_after)
    return CalibrationResult(["drag_coefficient"], [obj.drag_coefficient], [cd_after],
                             [_log_fit_std(cd_after, var, 6)], rms_before, rms_after)


# An object has started to move once it is this far (m) from where it rested: several times the
# perception noise, a frame's travel at a gentle push.
ONSET_M = 0.006


def motion_onset(observed: ObservedTrack) -> float:
    """When a resting object started to move (s on the track's clock): the first sample farther
    than ``ONSET_M`` from the rest position, moved back along its speed to zero distance. The
    command's stamp is not the moment of the push: the actuator and perception lag behind it."""
    t, p = observed.t_s, observed.positions_m
    moved = np.linalg.norm(p - p[0], axis=1) > ONSET_M
    if not moved.any():
        raise ValueError(f"the object never moved more than {ONSET_M * 1e3:.0f} mm")
    i = max(int(np.argmax(moved)), 1)
    rest = p[:i].mean(axis=0)
    d = np.linalg.norm(p[i:i + 2] - rest, axis=1)
    if d.shape[0] < 2 or d[1] <= d[0]:
        return float(t[i - 1])
    speed = (d[1] - d[0]) / (t[i + 1] - t[i])
    return float(np.clip(t[i] - d[0] / speed, t[0], t[i]))


def fit_push(backend: Backend, scene: Scene, action: CandidateAction, observed: ObservedTrack,
             iterations: int = 8) -> CalibrationResult:
    """Refit the mass and the resistance to motion from the track of a push with a known impulse.

    The push changes the object's velocity by ``impulse / mass``, so the early track fixes the
    mass; how it slows fixes the rolling resistance (an object that rolls) or the sliding friction
    (one that slides). Both are fitted as log-scales of the perceived values (the drag factor,
    which holds 1/m, follows the mass), together with the moment the object started to move: the
    command's stamp is not it (the actuator and perception lag), and ``motion_onset`` is the first
    guess."""
    obj = scene.object(action.object_id)
    keep = observed.t_s >= 0.0
    t, obs = observed.t_s[keep], observed.positions_m[keep]
    t_on = motion_onset(ObservedTrack(t, obs))
    if np.count_nonzero(t > t_on) < 6:
        raise ValueError("too few samples after the push to calibrate (need 6)")
    base = _base_batch(scene, action, t)
    resistance = "rolling_resistance" if obj.rolls else "friction"   # an ObjectModel and a batch field
    r0 = max(float(getattr(obj, resistance)), 1e-4)

    # The object rested before the push (``motion_onset`` finds when it started to move): its
    # perceived velocity then is noise, and left in, it would be fitted as mass.
    impulse_v = base.velocity_mps - np.asarray(obj.velocity_mps, dtype=np.float64)[:, None]

    def positions_of(cols: np.ndarray) -> np.ndarray:
        batch = _replicate(base, cols.shape[1])
        inv_mass = np.exp(-cols[0])            # m / m_perceived = exp(theta_0)
        batch.velocity_mps = impulse_v * inv_mass
        batch.drag_k_per_m = batch.drag_k_per_m * inv_mass
        setattr(batch, resistance, r0 * np.exp(cols[1]))
        batch.release_time_s = np.maximum(cols[2], 0.0)
        return backend.rollout(batch).positions_m

    theta, var, rms_before, rms_after = _gauss_newton(
        positions_of, np.array([0.0, 0.0, t_on]), np.array([1e-3, 1e-3, 1e-3]), obs, iterations,
        np.array([0.5, 1.0, 0.02]))
    mass = obj.mass_kg * float(np.exp(theta[0]))
    res = r0 * float(np.exp(theta[1]))
    return CalibrationResult(["mass", resistance], [obj.mass_kg, float(getattr(obj, resistance))], [mass, res],
                             [_log_fit_std(mass, var, 0), _log_fit_std(res, var, 1)],
                             rms_before, rms_after)


def bounce_restitution(observed: ObservedTrack, floor_z_m: float | np.ndarray) -> tuple[float, int] | None:
    """The rebound ratio of the first bounce and the index of its lowest sample: parabolas fitted
    to the samples before and after that point give the vertical speeds where each meets the
    floor there (``floor_z_m``: one number, or one per sample; the impact usually falls between
    samples). None when the track shows no clean bounce."""
    t, z = observed.t_s, observed.positions_m[:, 2]
    dz = np.diff(z)
    turns = _bounces(z)
    if turns.size == 0:
        return None
    i = turns[0]
    floor_z_m = float(np.broadcast_to(np.asarray(floor_z_m, dtype=np.float64), z.shape)[i])
    before = np.arange(max(0, i - 12), i)
    later = np.nonzero(dz[i:] <= 0)[0]
    apex = i + (later[0] if later.size else dz.size - i)
    after = np.arange(i + 1, min(apex + 1, i + 13))
    if before.size < 4 or after.size < 4:
        return None
    cb = np.polyfit(t[before], z[before] - floor_z_m, 2)
    ca = np.polyfit(t[after], z[after] - floor_z_m, 2)
    roots_b = [r.real for r in np.roots(cb) if abs(r.imag) < 1e-9 and t[before[-1]] - 1e-9 <= r.real]
    roots_a = [r.real for r in np.roots(ca) if abs(r.imag) < 1e-9 and r.real <= t[after[0]] + 1e-9]
    if not roots_b or not roots_a:
        return None
    vin = np.polyval(np.polyder(cb), min(roots_b))
    vout = np.polyval(np.polyder(ca), max(roots_a))
    if vin >= 0 or vout <= 0:
        return None
    return float(np.clip(-vout / vin, 0.0, 1.0)), int(i)


# One bounce is a single noisy ratio of two fitted speeds: its 1-sigma spread is taken as this.
BOUNCE_RESTITUTION_STD = 0.05


def calibrate(backend: Backend, scene: Scene, action: CandidateAction, observed: ObservedTrack) -> CalibrationResult:
    """Everything the observed track makes observable: after a push the mass and the resistance
    to motion; after a throw or drop the drag coefficient from the flight, and the restitution from
    the first bounce when there is one."""
    if action.type == "push":
        return fit_push(backend, scene, action, observed)
    result = fit_flight(backend, scene, action, observed)
    obj = scene.object(action.object_id)
    floor, factor = contact_surfaces(scene, obj, observed.positions_m)
    bounce = bounce_restitution(observed, floor)
    # The rebound ratio is the object's restitution times the surface's factor (docs/physics.md).
    if bounce is not None and factor[bounce[1]] > 0.0:
        result.names.append("restitution")
        result.before.append(obj.restitution)
        result.after.append(min(bounce[0] / float(factor[bounce[1]]), 1.0))
        result.std_after.append(BOUNCE_RESTITUTION_STD)
    return result


def calibrated_object(obj: ObjectModel, result: CalibrationResult) -> ObjectModel:
    """The object with its fitted parameters and their reduced relative uncertainty."""
    changes: dict = {}
    unc = obj.uncertainty
    if "drag_coefficient" in result.names:
        cd = result.value("drag_coefficient")
        changes["drag_coefficient"] = max(cd, 0.0)
        rel_std = result.std("drag_coefficient") / max(cd, 1e-9)
        unc = replace(unc, drag_rel_std=float(min(unc.drag_rel_std or 1.0, rel_std)))
    if "restitution" in result.names:
        changes["restitution"] = float(np.clip(result.value("restitution"), 0.0, 1.0))
        unc = replace(unc, restitution_std=float(result.std("restitution")))
    if "mass" in result.names:
        mass = result.value("mass")
        changes["mass_kg"] = mass
        unc = replace(unc, mass_rel_std=float(min(unc.mass_rel_std or 0.49, result.std("mass") / mass)))
    for name in ("friction", "rolling_resistance"):
        if name in result.names:
            changes[name] = max(result.value(name), 0.0)
    return replace(obj, uncertainty=unc, **changes)


# Calibrated parameter names and the ObjectModel fields they set.
MODEL_FIELDS = {"drag_coefficient": "drag_coefficient", "restitution": "restitution", "mass": "mass_kg",
                "friction": "friction", "rolling_resistance": "rolling_resistance"}


class CalibrationStore:
    """Calibrated parameters per object id, applied to every later rehearsal of that object.

    Lives for the life of the node; ``save``/``load`` keep it in a JSON file between runs.
    """

    def __init__(self) -> None:
        self._fits: dict[str, CalibrationResult] = {}

    def __contains__(self, object_id: str) -> bool:
        return object_id in self._fits

    def update(self, object_id: str, result: CalibrationResult) -> None:
        """Merge a new fit of an object into what is known of it, parameter by parameter.

        A flight observes the drag factor k = rho Cd A / (2 m), stored as a drag coefficient for
        the mass known then; a later mass fit rescales that coefficient so k stays as observed."""
        known = self._fits.get(object_id)
        if known is None:
            self._fits[object_id] = result
            return
        fits = {n: [b, a, s] for n, b, a, s in zip(known.names, known.before, known.after, known.std_after)}
        if "mass" in result.names and "drag_coefficient" in fits and "drag_coefficient" not in result.names:
            i = result.names.index("mass")
            ratio = result.after[i] / result.before[i]
            fits["drag_coefficient"][1:] = [v * ratio for v in fits["drag_coefficient"][1:]]
        fits.update({n: [b, a, s] for n, b, a, s in zip(result.names, result.before, result.after, result.std_after)})
        names = list(fits)
        self._fits[object_id] = CalibrationResult(names, [fits[n][0] for n in names], [fits[n][1] for n in names],
                                                  [fits[n][2] for n in names], result.rms_before_m, result.rms_after_m)

    def apply(self, obj: ObjectModel) -> ObjectModel:
        """The object with its calibrated values (unchanged when never calibrated)."""
        fit = self._fits.get(obj.id)
        return obj if fit is None else calibrated_object(obj, fit)

    def to_dict(self) -> dict:
        """JSON-ready form: ``{object_id: {name: {"value": v, "std": s}}}``."""
        return {oid: {n: {"value": a, "std": s} for n, a, s in zip(r.names, r.after, r.std_after)}
                for oid, r in self._fits.items()}

    def save(self, path) -> None:
        """Write the store as JSON (parent folders created)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path) -> "CalibrationStore":
        """Read a store written by ``save``; raises ``ValueError`` naming the file, the object and
        the parameter of the first thing wrong (an unknown name, a value the object model refuses,
        a negative or non-finite std)."""
        store = cls()
        try:
            data = json.loads(Path(path).read_text())
            for oid, params in data.items():
                names = sorted(params)
                values = [float(params[n]["value"]) for n in names]
                stds = [float(params[n]["std"]) for n in names]
                for name, value, std in zip(names, values, stds):
                    if name not in MODEL_FIELDS:
                        raise ValueError(f"{oid}.{name}: unknown parameter (known: {', '.join(MODEL_FIELDS)})")
                    try:  # the object model's own checks (mass > 0, restitution in [0, 1], ...)
                        ObjectModel("check", "sphere", (0.03, 0.0, 0.0), **{"mass_kg": 1.0, MODEL_FIELDS[name]: value})
                    except ValidationError as err:
                        raise ValueError(f"{oid}.{name}: {err.reason}") from None
                    if not 0.0 <= std < math.inf:
                        raise ValueError(f"{oid}.{name}: std must be finite and >= 0, got {std}")
                store.update(str(oid), CalibrationResult(names, list(values), values, stds))
        except (OSError, KeyError, TypeError, AttributeError, ValueError, ArithmeticError, RecursionError) as err:
            raise ValueError(f"calibration file {path}: {type(err).__name__}: {err}"
                             if not isinstance(err, ValueError) else f"calibration file {path}: {err}") from err
        return store

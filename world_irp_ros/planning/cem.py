"""Cross-entropy planning of a throw over its release velocity (speed, elevation, azimuth).

Two layers, kept apart:

- ``CrossEntropyMethod`` is a plain box-bounded CEM over ``(P, D)`` parameter arrays. It samples a
  population from a diagonal Gaussian, refits the Gaussian on the elite of an energy vector and
  knows nothing about physics, actions or backends.
- ``ThrowPlanner`` turns parameters into throw actions, rehearses the whole population with ONE
  ``rehearse`` call per iteration (any object with ``Rehearser.rehearse``'s signature), scores the
  verdicts with ``candidate_energy`` and keeps the best candidate found so far.

Parameters are ``(speed_mps, elevation_rad, azimuth_rad)``; the release velocity is
``speed * (cos(el) cos(az), cos(el) sin(az), sin(el))``: elevation above the horizontal, azimuth
about +z from +x. Everything is deterministic for a seed: iteration ``i`` draws from
``numpy.random.default_rng([seed, i])`` and the rehearsal's own samples use the problem's seed
(the same noise for every iteration: common random numbers make candidates comparable).
Azimuth is not wrapped: keep its limits inside one turn that does not straddle the cut you care
about (the default [-pi, pi] straddles -x).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, Sequence

import numpy as np

from ..errors import OUTCOME_CODES, ValidationError
from ..scene import CandidateAction, Criteria, RehearsalRequest, Scene, finite_number
from ..verdicts import Verdict

PARAM_NAMES = ("speed_mps", "elevation_rad", "azimuth_rad")
# Faster than any arm throws, and beyond it a light object's drag outruns the model's step
# (RK4 at 1/60 s diverges once k |v| dt passes about 1.4): a plan would explore nonsense.
MAX_RELEASE_SPEED_MPS = 100.0
HALF_PI = math.pi / 2.0


# ----------------------------------------------------------------------------- actuator limits
@dataclass(frozen=True)
class ActuatorLimits:
    """What the arm can do when it throws (mirrors ``msg/ActuatorLimits.msg``).

    ``release_position_m``: where the object leaves the hand. Speeds in m/s with
    ``0 <= min_release_speed_mps < max_release_speed_mps <= MAX_RELEASE_SPEED_MPS``; elevation
    above the horizontal within [-pi/2, pi/2]; azimuth about +z from +x, ``min <= max`` and at
    most one turn wide.
    """

    release_position_m: tuple[float, float, float]
    max_release_speed_mps: float
    min_release_speed_mps: float = 0.0
    min_elevation_rad: float = -HALF_PI
    max_elevation_rad: float = HALF_PI
    min_azimuth_rad: float = -math.pi
    max_azimuth_rad: float = math.pi

    def __post_init__(self) -> None:
        p = self.release_position_m
        if isinstance(p, (str, bytes)) or not hasattr(p, "__len__") or len(p) != 3:
            raise ValidationError(f"must be a list of 3 numbers, got {p!r}", "release_position")
        object.__setattr__(self, "release_position_m",
                           tuple(finite_number(f"release_position[{i}]", x) for i, x in enumerate(p)))
        vmax = finite_number("max_release_speed", self.max_release_speed_mps)
        if not 0.0 < vmax <= MAX_RELEASE_SPEED_MPS:
            raise ValidationError(f"must lie in (0, {MAX_RELEASE_SPEED_MPS:g}] m/s, got {vmax}", "max_release_speed")
        vmin = finite_number("min_release_speed", self.min_release_speed_mps)
        if vmin < 0.0:
            raise ValidationError(f"must be >= 0, got {vmin}", "min_release_speed")
        if vmin >= vmax:
            raise ValidationError(f"must be < max_release_speed ({vmax}), got {vmin}", "min_release_speed")
        emin = finite_number("min_elevation", self.min_elevation_rad)
        emax = finite_number("max_elevation", self.max_elevation_rad)
        for name, e in (("min_elevation", emin), ("max_elevation", emax)):
            if not -HALF_PI - 1e-12 <= e <= HALF_PI + 1e-12:
                raise ValidationError(f"must lie in [-pi/2, pi/2] rad, got {e}", name)
        if emax < emin:
            raise ValidationError(f"must be >= min_elevation ({emin}), got {emax}", "max_elevation")
        amin = finite_number("min_azimuth", self.min_azimuth_rad)
        amax = finite_number("max_azimuth", self.max_azimuth_rad)
        if amax < amin:
            raise ValidationError(f"must be >= min_azimuth ({amin}), got {amax}", "max_azimuth")
        if amax - amin > 2.0 * math.pi + 1e-9:
            raise ValidationError(f"azimuth range must be at most 2 pi wide, got {amax - amin}", "max_azimuth")
        for name, x in (("max_release_speed_mps", vmax), ("min_release_speed_mps", vmin),
                        ("min_elevation_rad", emin), ("max_elevation_rad", emax),
                        ("min_azimuth_rad", amin), ("max_azimuth_rad", amax)):
            object.__setattr__(self, name, x)

    @property
    def lower(self) -> np.ndarray:
        """Lower bounds of ``(speed, elevation, azimuth)``."""
        return np.array([self.min_release_speed_mps, self.min_elevation_rad, self.min_azimuth_rad])

    @property
    def upper(self) -> np.ndarray:
        """Upper bounds of ``(speed, elevation, azimuth)``."""
        return np.array([self.max_release_speed_mps, self.max_elevation_rad, self.max_azimuth_rad])

    def clamp(self, params: np.ndarray) -> np.ndarray:
        """``params`` (..., 3) clipped into the limits (a new array)."""
        return np.clip(np.asarray(params, dtype=np.float64), self.lower, self.upper)

    def contains(self, params: np.ndarray, tol: float = 1e-9) -> bool:
        """True when every row of ``params`` (..., 3) lies within the limits."""
        p = np.asarray(params, dtype=np.float64)
        return bool(np.all(p >= self.lower - tol) and np.all(p <= self.upper + tol))

    def contains_velocity(self, velocity_mps: Sequence[float], tol: float = 1e-6) -> bool:
        """True when a release velocity vector is one the arm can produce."""
        return self.contains(velocity_to_params(np.asarray(velocity_mps, dtype=np.float64)), tol)

    def to_dict(self) -> dict:
        """The plan-file form (``plan.limits``)."""
        return {"release_position": list(self.release_position_m),
                "max_release_speed": self.max_release_speed_mps, "min_release_speed": self.min_release_speed_mps,
                "min_elevation": self.min_elevation_rad, "max_elevation": self.max_elevation_rad,
                "min_azimuth": self.min_azimuth_rad, "max_azimuth": self.max_azimuth_rad}


def params_to_velocity(params: np.ndarray) -> np.ndarray:
    """Release velocity vectors (..., 3) from ``(speed, elevation, azimuth)`` rows (..., 3)."""
    p = np.asarray(params, dtype=np.float64)
    s, el, az = p[..., 0], p[..., 1], p[..., 2]
    return np.stack([s * np.cos(el) * np.cos(az), s * np.cos(el) * np.sin(az), s * np.sin(el)], axis=-1)


def velocity_to_params(velocity: np.ndarray) -> np.ndarray:
    """Inverse of ``params_to_velocity`` (azimuth in (-pi, pi]; 0 for a vertical throw)."""
    v = np.asarray(velocity, dtype=np.float64)
    s = np.linalg.norm(v, axis=-1)
    horizontal = np.hypot(v[..., 0], v[..., 1])
    return np.stack([s, np.arctan2(v[..., 2], horizontal), np.arctan2(v[..., 1], v[..., 0])], axis=-1)


# ------------------------------------------------------------------------------------ energy
@dataclass(frozen=True)
class EnergyWeights:
    """Weights of ``candidate_energy``. Every GO scores below every NO-GO; with the defaults,
    among NO-GOs every collision-free candidate scores below every certain collision, and a GO
    with margin scores well below a marginal GO."""

    success: float = 1.0
    collision: float = 10.0
    miss: float = 0.25
    miss_cap: float = 20.0              # the miss term saturates at this many target radii
    clearance: float = 1.0
    clearance_margin_m: float = 0.05    # keep-out clearance below this is penalised

    @property
    def span(self) -> float:
        """The largest sum of the weighted terms: a judged NO-GO adds it to its own, so that no
        NO-GO ever scores below a GO."""
        return self.success + self.collision + self.miss * self.miss_cap + self.clearance

    @property
    def worst(self) -> float:
        """The energy of a candidate that could not be judged (backend error, deadline)."""
        return 2.0 * self.span


def candidate_energy(verdict: Verdict, target_radius_m: float | None,
                     weights: EnergyWeights = EnergyWeights()) -> float:
    """Energy of one judged candidate; lower is better, never negative.

    ``E = w_s (1 - P_success) + w_c P_collision + w_m min(miss / R, cap)
    + w_k max(0, 1 - clearance / margin)``, plus ``weights.span`` for a NO-GO

    where ``miss`` is the nominal horizontal distance of the judged point from the target centre,
    ``R`` the target radius (no target: no miss term; no landing: the cap) and ``clearance`` the
    nominal smallest gap to any keep-out zone (no zones: no penalty). The offset keeps every GO
    ahead of every NO-GO (a GO the criteria allow some collision probability would otherwise lose
    to a collision-free but uncertain NO-GO). A verdict that was not judged on a prediction
    (backend error, deadline, ...) gets ``weights.worst``.
    """
    if verdict.code not in OUTCOME_CODES:
        return weights.worst
    e = 0.0 if verdict.go else weights.span
    e += weights.success * (1.0 - float(verdict.success_probability))
    e += weights.collision * float(verdict.collision_probability)
    if target_radius_m is not None:
        miss = float(verdict.miss_distance_m)
        ratio = miss / target_radius_m if math.isfinite(miss) else weights.miss_cap
        e += weights.miss * min(ratio, weights.miss_cap)
    clearance = float(verdict.clearance_m)
    if weights.clearance_margin_m > 0.0 and not math.isnan(clearance) and clearance < weights.clearance_margin_m:
        e += weights.clearance * (1.0 - max(clearance, 0.0) / weights.clearance_margin_m)
    return float(e)


def has_margin(verdict: Verdict, target_radius_m: float | None, clearance_margin_m: float,
               miss_fraction: float = 0.5) -> bool:
    """A GO that is not marginal: keep-out clearance at least ``clearance_margin_m`` and, with a
    target, a nominal miss within ``miss_fraction`` of its radius."""
    if not verdict.go or not float(verdict.clearance_m) >= clearance_margin_m:
        return False
    if target_radius_m is None:
        return True
    miss = float(verdict.miss_distance_m)
    return math.isfinite(miss) and miss <= miss_fraction * target_radius_m


# ------------------------------------------------------------------------ generic CEM machinery
@dataclass(frozen=True)
class Gaussian:
    """Diagonal Gaussian sampling distribution: ``mean`` and ``std``, both (D,)."""

    mean: np.ndarray
    std: np.ndarray


@dataclass(frozen=True)
class CEMConfig:
    """Settings of the cross-entropy method.

    ``population``: candidates per iteration (the current mean is always one of them);
    ``elite_fraction``: share of the population the distribution is refitted on (at least 2);
    ``smoothing``: weight of the new fit against the old distribution (1 = no memory);
    ``initial_std_fraction`` / ``min_std_fraction``: starting and smallest std as fractions of
    each parameter's range (the floor keeps a collapsed population exploring: with small
    populations the elite otherwise shrinks before it reaches the optimum); ``seed``: makes the whole run reproducible.
    """

    population: int = 64
    elite_fraction: float = 0.125
    smoothing: float = 0.8
    initial_std_fraction: float = 0.25
    min_std_fraction: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        p = self.population
        if isinstance(p, bool) or not isinstance(p, int) or not 2 <= p <= 4096:
            raise ValidationError(f"must be an integer in [2, 4096], got {self.population!r}", "population")
        if not 0.0 < finite_number("elite_fraction", self.elite_fraction) <= 1.0:
            raise ValidationError(f"must lie in (0, 1], got {self.elite_fraction}", "elite_fraction")
        if not 0.0 < finite_number("smoothing", self.smoothing) <= 1.0:
            raise ValidationError(f"must lie in (0, 1], got {self.smoothing}", "smoothing")
        if not 0.0 < finite_number("initial_std_fraction", self.initial_std_fraction) <= 1.0:
            raise ValidationError(f"must lie in (0, 1], got {self.initial_std_fraction}", "initial_std_fraction")
        if not 0.0 <= finite_number("min_std_fraction", self.min_std_fraction) <= 1.0:
            raise ValidationError(f"must lie in [0, 1], got {self.min_std_fraction}", "min_std_fraction")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValidationError(f"must be a non-negative integer, got {self.seed!r}", "seed")

    @property
    def n_elite(self) -> int:
        """Elite size: ``ceil(elite_fraction * population)``, at least 2 (at most the population)."""
        return min(self.population, max(2, math.ceil(self.elite_fraction * self.population - 1e-9)))


class CrossEntropyMethod:
    """Box-bounded CEM over (D,) parameter vectors; knows nothing about what it optimises."""

    def __init__(self, lower: Sequence[float], upper: Sequence[float], config: CEMConfig = CEMConfig()):
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        if self.lower.shape != self.upper.shape or self.lower.ndim != 1 or np.any(self.upper < self.lower):
            raise ValueError("lower and upper must be (D,) arrays with lower <= upper")
        self.config = config
        self.span = self.upper - self.lower

    def initial(self, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> Gaussian:
        """The starting distribution: ``mean`` (default the box centre, clipped into the box) and
        ``std`` (default ``initial_std_fraction`` of the range, never below the floor)."""
        m = (self.lower + self.upper) / 2.0 if mean is None else np.asarray(mean, dtype=np.float64)
        s = self.config.initial_std_fraction * self.span if std is None else np.asarray(std, dtype=np.float64)
        return Gaussian(self.project(m), np.maximum(s, self.min_std))

    @property
    def min_std(self) -> np.ndarray:
        """The smallest std kept per parameter (keeps some exploration alive)."""
        return self.config.min_std_fraction * self.span

    def project(self, params: np.ndarray) -> np.ndarray:
        """``params`` (..., D) clipped into the box."""
        return np.clip(np.asarray(params, dtype=np.float64), self.lower, self.upper)

    def sample(self, dist: Gaussian, iteration: int) -> np.ndarray:
        """``(population, D)`` candidates of ``iteration``: row 0 is the mean, the others are
        Gaussian draws clipped into the box (reproducible from seed and iteration)."""
        rng = np.random.default_rng([self.config.seed, iteration])
        n, d = self.config.population, self.lower.size
        draws = dist.mean + dist.std * rng.standard_normal((n - 1, d))
        return self.project(np.vstack([dist.mean[None, :], draws]))

    def refit(self, dist: Gaussian, samples: np.ndarray, energies: np.ndarray) -> Gaussian:
        """Refit on the ``n_elite`` lowest energies (NaN counts as +inf; ties keep sample order),
        blended with the old distribution by ``smoothing``; std kept within [floor, range]."""
        e = np.where(np.isnan(energies), np.inf, np.asarray(energies, dtype=np.float64))
        elite = samples[np.argsort(e, kind="stable")[: self.config.n_elite]]
        a = self.config.smoothing
        mean = self.project(a * elite.mean(axis=0) + (1.0 - a) * dist.mean)
        std = a * elite.std(axis=0) + (1.0 - a) * dist.std
        return Gaussian(mean, np.clip(std, self.min_std, np.maximum(self.span, self.min_std)))


# --------------------------------------------------------------------------- throw planning
@dataclass(frozen=True)
class ThrowProblem:
    """What to plan: throw ``object_id`` in ``scene`` to meet ``criteria`` within ``limits``.

    ``population`` candidates per iteration, at most ``max_iterations`` iterations, ``samples``
    uncertainty samples per candidate (1 when nothing in the scene is uncertain), ``seed`` for
    both the CEM draws and the rehearsal's samples. ``elite_fraction`` and
    ``clearance_margin_m`` (keep-out clearance a GO should keep) tune the planner.
    """

    scene: Scene
    criteria: Criteria
    object_id: str
    limits: ActuatorLimits
    population: int = 64
    max_iterations: int = 30
    samples: int = 16
    seed: int = 0
    elite_fraction: float = 0.125
    clearance_margin_m: float = 0.05
    request_id: str = ""

    def __post_init__(self) -> None:
        self.scene.object(self.object_id, "plan.object_id")
        [held] = self.scene.environment.solid_holding(np.array(self.limits.release_position_m))
        if held:
            raise ValidationError(f"puts the object's centre {held}", "plan.limits.release_position")
        for name, lo, hi in (("max_iterations", 1, 10000), ("samples", 1, 4096)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValidationError(f"must be an integer in [{lo}, {hi}], got {v!r}", f"plan.{name}")
        if self.clearance_margin_m < 0 or not math.isfinite(self.clearance_margin_m):
            raise ValidationError(f"must be >= 0, got {self.clearance_margin_m}", "plan.clearance_margin")
        try:
            self.cem_config
        except ValidationError as err:
            raise ValidationError(err.reason, f"plan.{err.field}") from None

    @property
    def cem_config(self) -> CEMConfig:
        """The CEM settings of this problem."""
        return CEMConfig(population=self.population, elite_fraction=self.elite_fraction, seed=self.seed)

    @property
    def target_radius_m(self) -> float | None:
        """Radius of the target region, None without a target."""
        return None if self.criteria.target is None else self.criteria.target.radius_m

    @property
    def samples_per_candidate(self) -> int:
        """Samples actually drawn: ``samples``, or 1 when nothing about the object is uncertain."""
        return self.samples if not self.scene.object(self.object_id).uncertainty.is_zero else 1

    def action(self, action_id: str, params: Sequence[float]) -> CandidateAction:
        """The throw action of one parameter row."""
        v = params_to_velocity(np.asarray(params, dtype=np.float64))
        return CandidateAction(action_id, "throw", self.object_id, self.limits.release_position_m,
                               tuple(float(x) for x in v))

    def request(self, actions: Sequence[CandidateAction]) -> RehearsalRequest:
        """The rehearsal request of a population of actions."""
        return RehearsalRequest(self.scene, tuple(actions), self.criteria, self.samples_per_candidate,
                                self.seed, self.request_id)

    def initial_guess(self) -> np.ndarray:
        """A drag-free ballistic aim at the target centre (the initial CEM mean).

        Azimuth points at the target; of the elevations within the limits, the one that needs the
        least speed (the least sensitive throw) is taken. Without a target, or when no elevation
        reaches it, the centre of the limits.
        """
        lo, hi = self.limits.lower, self.limits.upper
        centre = (lo + hi) / 2.0
        target = self.criteria.target
        if target is None:
            return centre
        p0 = np.asarray(self.limits.release_position_m)
        delta = np.asarray(target.center_m) - p0
        d = float(np.hypot(delta[0], delta[1]))
        obj = self.scene.object(self.object_id)
        drop = -(delta[2] + float(obj.half_extents_m()[2]))  # release height above the landing centre
        g = -float(self.scene.environment.gravity_mps2[2])
        azimuth = math.atan2(delta[1], delta[0]) if d > 1e-9 else centre[2]
        best = None
        for el in np.linspace(lo[1], hi[1], 61):
            denom = 2.0 * math.cos(el) ** 2 * (d * math.tan(el) + drop) if abs(el) < HALF_PI - 1e-6 else 0.0
            if denom <= 1e-12:
                continue
            speed = math.sqrt(g * d * d / denom)
            if lo[0] <= speed <= hi[0] and (best is None or speed < best[0]):
                best = (speed, float(el))
        if best is None:
            return centre
        return self.limits.clamp(np.array([best[0], best[1], azimuth]))


@dataclass(frozen=True)
class Candidate:
    """One rehearsed candidate: its parameters, action, verdict, energy and nominal track."""

    params: np.ndarray
    action: CandidateAction
    verdict: Verdict
    energy: float
    trajectory: Any = None            # rehearsal.Trajectory (nominal), when the backend answered
    iteration: int = 0
    feasible: bool = False            # GO with margin (``has_margin``)

    def to_dict(self) -> dict:
        """JSON-ready summary: action (request format), parameters, energy, verdict."""
        a = self.action
        return {"action": {"id": a.id, "type": a.type, "object_id": a.object_id,
                           "release_position": list(a.release_position_m or ()),
                           "release_velocity": list(a.release_velocity_mps)},
                "params": {k: float(v) for k, v in zip(PARAM_NAMES, self.params)},
                "energy": self.energy, "iteration": self.iteration, "feasible": self.feasible,
                "verdict": self.verdict.to_dict()}


@dataclass(frozen=True)
class PlannerState:
    """Where the planner stands after ``iteration`` iterations (0: only the initial guess).

    ``dist``: the sampling distribution for the next iteration; ``best``: the lowest-energy
    candidate so far; ``step_best``: the best of the last iteration; ``energies``: that
    iteration's energies; ``evaluations``: candidates rehearsed in all; ``backend``/``device``:
    what answered the last rehearsal; ``backend_failed``: no candidate of the last iteration's
    population could be judged; ``n_go``: GO candidates in the last iteration.
    """

    iteration: int
    dist: Gaussian
    best: Candidate
    step_best: Candidate
    energies: np.ndarray = field(repr=False)
    evaluations: int = 0
    backend: str = ""
    device: str = ""
    rehearsal_ms: float = 0.0
    backend_failed: bool = False
    n_go: int = 0


class RehearseFn(Protocol):
    """What the planner needs from a rehearser (``Rehearser.rehearse``)."""

    def rehearse(self, request: RehearsalRequest, deadline_ms: float | None = None,
                 samples: int | None = None) -> Any:
        """Judge every candidate of ``request`` (``rehearsal.Rehearser.rehearse``)."""
        ...


class ThrowPlanner:
    """CEM over throw release velocities, one batched rehearsal per iteration.

    ``initial_state()`` rehearses the ballistic guess alone; each ``step(state)`` samples the
    population (the current mean first), rehearses it in one call, scores it with
    ``candidate_energy``, refits the distribution on the elite and keeps the best candidate.
    """

    def __init__(self, rehearser: RehearseFn, problem: ThrowProblem, weights: EnergyWeights | None = None):
        self.rehearser = rehearser
        self.problem = problem
        self.weights = weights or EnergyWeights(clearance_margin_m=problem.clearance_margin_m)
        self.cem = CrossEntropyMethod(problem.limits.lower, problem.limits.upper, problem.cem_config)

    # -- helpers
    def _evaluate(self, params: np.ndarray, iteration: int) -> tuple[list[Candidate], Any]:
        actions = [self.problem.action(f"it{iteration:03d}-c{i:03d}", p) for i, p in enumerate(params)]
        outcome = self.rehearser.rehearse(self.problem.request(actions))
        radius = self.problem.target_radius_m
        trajectories = {t.action_id: t for t in outcome.trajectories}
        out = []
        for p, a, v in zip(params, actions, outcome.verdicts):
            out.append(Candidate(np.array(p, dtype=np.float64), a, v,
                                 candidate_energy(v, radius, self.weights), trajectories.get(a.id), iteration,
                                 has_margin(v, radius, self.problem.clearance_margin_m)))
        return out, outcome

    # -- the iteration
    def initial_state(self) -> PlannerState:
        """Rehearse the initial guess; the starting distribution is centred on it."""
        dist = self.cem.initial(self.problem.initial_guess())
        cands, outcome = self._evaluate(dist.mean[None, :], 0)
        c = cands[0]
        # backend_failed stays False: the guess alone failing (one rollout the model cannot finish)
        # says nothing about the backend; the first iteration's population does.
        return PlannerState(0, dist, c, c, np.array([c.energy]), 1, outcome.backend, outcome.device,
                            outcome.latency_ms, n_go=int(c.verdict.go))

    def step(self, state: PlannerState) -> PlannerState:
        """One CEM iteration: sample, rehearse the population in one batch, score, refit."""
        iteration = state.iteration + 1
        params = self.cem.sample(state.dist, iteration)
        cands, outcome = self._evaluate(params, iteration)
        energies = np.array([c.energy for c in cands])
        order = np.argsort(np.where(np.isnan(energies), np.inf, energies), kind="stable")
        step_best = cands[int(order[0])]
        best = step_best if step_best.energy < state.best.energy else state.best
        return PlannerState(iteration, self.cem.refit(state.dist, params, energies), best, step_best, energies,
                            state.evaluations + len(cands), outcome.backend, outcome.device, outcome.latency_ms,
                            all(c.verdict.code not in OUTCOME_CODES for c in cands), sum(c.verdict.go for c in cands))

    def project(self, state: PlannerState) -> PlannerState:
        """The state with its distribution (mean clipped, std at most the range) within limits."""
        dist = Gaussian(self.cem.project(state.dist.mean),
                        np.clip(state.dist.std, self.cem.min_std, np.maximum(self.cem.span, self.cem.min_std)))
        return replace(state, dist=dist)


__all__ = ["ActuatorLimits", "Candidate", "CEMConfig", "CrossEntropyMethod", "EnergyWeights", "Gaussian",
           "PARAM_NAMES", "PlannerState", "ThrowPlanner", "ThrowProblem", "candidate_energy", "has_margin",
           "params_to_velocity", "velocity_to_params"]

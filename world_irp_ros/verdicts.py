"""Go/no-go verdicts from rolled-out uncertainty samples, and NO-GO answers for every failure.

A candidate is GO only when its success probability reaches the threshold and its collision
probability stays at or below it. Anything else, including every error path, is NO-GO with a
code and a reason a person can read: the robot is never told GO by default.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from .backends.base import MODE_REST, RolloutBatch, RolloutResult
from .errors import VerdictCode
from .scene import Criteria


@dataclass
class Verdict:
    """The answer for one candidate. Points are object centres in metres; times in seconds from
    the request. ``miss_distance_m``: nominal horizontal distance from the target centre at the
    judged point (NaN without a target or landing); ``clearance_m``: nominal smallest gap to any
    keep-out zone (inf without zones, 0 once entered)."""

    action_id: str
    code: VerdictCode
    reasons: list[str]
    success_probability: float = 0.0
    collision_probability: float = 1.0
    lands: bool = False
    landing_point_m: tuple[float, float, float] | None = None
    landing_time_s: float = float("nan")
    rest_point_m: tuple[float, float, float] | None = None
    miss_distance_m: float = float("nan")
    clearance_m: float = float("inf")
    chosen: bool = False

    @property
    def go(self) -> bool:
        """True only for code GO."""
        return self.code == VerdictCode.GO

    def to_dict(self) -> dict:
        """JSON-ready form used by the CLI (see schemas/result.schema.json)."""
        def point(p):
            return None if p is None else [float(x) for x in p]

        def number(x):
            return float(x) if np.isfinite(x) else None

        return {"action_id": self.action_id, "go": self.go, "code": self.code.name, "reasons": list(self.reasons),
                "landing_point": point(self.landing_point_m), "landing_time_s": number(self.landing_time_s),
                "rest_point": point(self.rest_point_m), "success_probability": float(self.success_probability),
                "collision_probability": float(self.collision_probability), "chosen": self.chosen,
                "miss_distance_m": number(self.miss_distance_m), "clearance_m": number(self.clearance_m)}


def no_go(action_id: str, code: VerdictCode, reason: str) -> Verdict:
    """A NO-GO verdict for a candidate that could not be (or was not) judged on its outcome."""
    if code == VerdictCode.GO:
        raise ValueError("no_go needs a NO-GO code")
    return Verdict(action_id, code, [reason])


def no_go_all(action_ids: Iterable[str], code: VerdictCode, reason: str) -> list[Verdict]:
    """The same NO-GO for every candidate of a request (invalid request, backend error, ...)."""
    return [no_go(a, code, reason) for a in action_ids]


def keep_out_margin_m(batch: RolloutBatch) -> np.ndarray:
    """(N,) how far the chord of one integration step can lie from the curved path: ``|a| dt^2 / 8``
    with ``|a| <= |g| + k v^2``. Keep-out entries and clearances are found on chords, so a rollout
    that passes a zone closer than this may have grazed it unseen. The speed bound: in flight
    ``d|v|/dt <= |g|`` (``|v0| + |g| T``), and drag keeps a faster object slowing down towards its
    terminal speed ``sqrt(|g| / k)``; impacts and supported motion never speed it up."""
    g = float(np.linalg.norm(batch.gravity_mps2))
    k = batch.drag_k_per_m
    v0 = np.sqrt(np.sum(batch.velocity_mps ** 2, axis=0))
    with np.errstate(divide="ignore"):
        terminal = np.sqrt(g / k)                               # inf without drag
    v_max = np.minimum(np.maximum(v0, terminal), v0 + g * batch.horizon_s)
    return (g + k * v_max ** 2) * batch.dt_s ** 2 / 8.0


@dataclass
class SampleOutcomes:
    """Per-sample outcomes, shaped (S, C): sample 0 is the nominal prediction. ``zone_hit``
    (Z, S, C): the rollout entered the zone, or passed it closer than its keep-out margin."""

    success: np.ndarray
    collision: np.ndarray
    zone_hit: np.ndarray = field(repr=False)
    judged_point_m: np.ndarray = field(repr=False)  # (3, S, C) landing or rest point
    miss_distance_m: np.ndarray = field(repr=False)
    at_rest: np.ndarray = field(repr=False)  # (S, C) came to rest within the horizon


def sample_outcomes(result: RolloutResult, half_height_m: np.ndarray, keep_out_margin: np.ndarray | float,
                    criteria: Criteria, samples: int, candidates: int) -> SampleOutcomes:
    """Judge every rollout of a batch of ``samples * candidates`` (candidates inner).

    ``half_height_m`` (N,) is each rollout's vertical half extent: the target compares the
    object's bottom with the target surface height. ``keep_out_margin`` (N,) or a number, in m:
    a clearance below it counts as an entry (``keep_out_margin_m``: what the path's resolution
    cannot tell from one).
    """
    shape = (samples, candidates)
    zone_hit = np.isfinite(result.keep_out_entry_time_s) | (result.keep_out_clearance_m < keep_out_margin)
    collision = zone_hit.any(axis=0) if zone_hit.shape[0] else np.zeros(zone_hit.shape[1], bool)
    target = criteria.target
    if target is None:
        point = result.final_position_m
        reached = np.ones(point.shape[1], bool)
        miss = np.full(point.shape[1], np.nan)
    else:
        if target.mode == "rest":
            point = result.final_position_m
            reached = result.final_mode == MODE_REST
        else:
            point = result.landing_point_m
            reached = np.isfinite(result.landing_time_s)
        centre = np.asarray(target.center_m)
        with np.errstate(invalid="ignore"):
            miss = np.hypot(point[0] - centre[0], point[1] - centre[1])
            height_ok = np.abs(point[2] - half_height_m - centre[2]) <= target.height_tolerance_m
            reached = reached & (miss <= target.radius_m) & height_ok
        miss = np.where(np.isfinite(miss), miss, np.nan)
    return SampleOutcomes(reached.reshape(shape), collision.reshape(shape), zone_hit.reshape(-1, *shape),
                          point.reshape(3, *shape), miss.reshape(shape), (result.final_mode == MODE_REST).reshape(shape))


def judge(action_ids: list[str], result: RolloutResult, half_height_m: np.ndarray,
          keep_out_margin: np.ndarray | float, criteria: Criteria, samples: int,
          zone_names: list[str]) -> list[Verdict]:
    """Verdicts for C candidates from a batch of S x C rollouts (rollout ``s * C + c``); the
    arrays as in ``sample_outcomes``.

    Every per-candidate number is computed on arrays and read back with one ``tolist``: the loop
    only writes the reasons (NumPy scalar reads per candidate cost about 7 ms at 1024).
    """
    c_count = len(action_ids)
    out = sample_outcomes(result, half_height_m, keep_out_margin, criteria, samples, c_count)
    p_success = out.success.mean(axis=0).tolist()
    p_collision = out.collision.mean(axis=0).tolist()
    entry = result.keep_out_entry_time_s.reshape(-1, samples, c_count)
    clearance = result.keep_out_clearance_m.reshape(-1, samples, c_count)[:, 0]
    nominal_landing_time = result.landing_time_s.reshape(samples, c_count)[0]      # NaN: never landed
    lands = np.isfinite(nominal_landing_time).tolist()
    landing_time = nominal_landing_time.tolist()
    landing = result.landing_point_m.reshape(3, samples, c_count)[:, 0].T.tolist()
    final = result.final_position_m.reshape(3, samples, c_count)[:, 0].T.tolist()
    nominal_clearance = (clearance.min(axis=0) if clearance.shape[0] else np.full(c_count, np.inf)).tolist()
    zones_hit = out.zone_hit.any(axis=1).T.tolist()                             # (C, Z)
    first_entry = np.where(np.isfinite(entry), entry, np.inf).min(axis=(0, 1), initial=np.inf).tolist()
    margin = np.broadcast_to(keep_out_margin, result.landing_time_s.shape).reshape(samples, c_count)[0].tolist()
    nominal_success = out.success[0].tolist()
    miss = out.miss_distance_m[0].tolist()
    at_rest = out.at_rest[0].tolist()
    judged_z = out.judged_point_m[2, 0].tolist()
    failed = result.failed_candidates(c_count).tolist()
    verdicts = []
    for c, action_id in enumerate(action_ids):
        if failed[c]:  # a rollout of it the backend could not compute: no judgement at all
            verdicts.append(no_go(action_id, VerdictCode.NO_GO_BACKEND_ERROR,
                                  f"the forward model could not compute this candidate: {result.failure}"))
            continue
        reasons: list[str] = []
        if p_collision[c] > criteria.max_collision_probability:
            code = VerdictCode.NO_GO_COLLISION
            names = ", ".join(repr(zone_names[z]) for z, hit in enumerate(zones_hit[c]) if hit)
            share = f"in {p_collision[c]:.0%} of samples (max {criteria.max_collision_probability:.0%})"
            if math.isfinite(first_entry[c]):
                reasons.append(f"enters keep-out zone {names} {share}, first at t={first_entry[c]:.3f} s")
            else:  # only grazes: closer than the path is resolved to, so an entry cannot be ruled out
                reasons.append(f"passes keep-out zone {names} closer than the path is resolved to {share} "
                               f"(nominally {nominal_clearance[c] * 1e3:.2f} mm away, resolution "
                               f"{margin[c] * 1e3:.2f} mm)")
        elif p_success[c] < criteria.min_success_probability:
            if nominal_success[c]:
                code = VerdictCode.NO_GO_UNCERTAIN
                reasons.append(f"nominal throw reaches the target but P(success)={p_success[c]:.2f} "
                               f"< {criteria.min_success_probability:.2f}")
            else:
                code = VerdictCode.NO_GO_MISSES_TARGET
                reasons.append(_miss_reason(criteria, lands[c], at_rest[c], miss[c], judged_z[c]))
        else:
            code = VerdictCode.GO
            reasons.append(_go_reason(criteria, miss[c], landing_time[c], at_rest[c]))
        reasons.append(f"P(success)={p_success[c]:.2f}, P(collision)={p_collision[c]:.2f} over {samples} sample(s)")
        verdicts.append(Verdict(
            action_id, code, reasons, p_success[c], p_collision[c], lands[c],
            tuple(landing[c]) if lands[c] else None, landing_time[c],
            tuple(final[c]), miss[c], nominal_clearance[c]))
    return verdicts


def _miss_reason(criteria: Criteria, lands: bool, at_rest: bool, miss_m: float, judged_z_m: float) -> str:
    """Why a nominal prediction misses (``miss_m``, ``judged_z_m``: its judged point)."""
    target = criteria.target
    if target is None:
        return "no target given and the nominal prediction fails"
    if target.mode == "first_contact" and not lands:
        return f"does not touch any surface within the {criteria.horizon_s:g} s horizon"
    where = "comes to rest" if target.mode == "rest" else "first lands"
    if target.mode == "rest" and not at_rest:
        return f"does not come to rest within the {criteria.horizon_s:g} s horizon"
    if miss_m > target.radius_m:
        return f"{where} {miss_m:.3f} m from the target centre (target radius {target.radius_m:.3f} m)"
    return f"{where} at height {judged_z_m:.3f} m, outside the target's height tolerance"


def _go_reason(criteria: Criteria, miss_m: float, landing_time_s: float, at_rest: bool) -> str:
    target = criteria.target
    if target is None:       # judged within the horizon only: say so when the motion goes on
        return "stays clear of every keep-out zone" + (
            "" if at_rest else f" within the {criteria.horizon_s:g} s horizon, still moving at its end")
    if target.mode == "rest":
        return f"comes to rest {miss_m:.3f} m from the target centre (radius {target.radius_m:.3f} m)"
    return (f"lands {miss_m:.3f} m from the target centre (radius {target.radius_m:.3f} m) "
            f"at t={landing_time_s:.3f} s")


def choose_best(verdicts: list[Verdict]) -> int:
    """Index of the candidate to execute: the GO one with the highest success probability, then
    the lowest collision probability, the smallest miss, the largest clearance; -1 when none is
    GO. Marks it ``chosen``."""
    best, key = -1, None
    for i, v in enumerate(verdicts):
        if not v.go:
            continue
        miss = v.miss_distance_m if math.isfinite(v.miss_distance_m) else 0.0
        k = (-v.success_probability, v.collision_probability, miss, -v.clearance_m)
        if key is None or k < key:
            best, key = i, k
    for i, v in enumerate(verdicts):
        v.chosen = i == best
    return best

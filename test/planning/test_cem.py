"""planning/cem.py and plan_file.py: actuator limits, the energy of a verdict, the generic CEM, and
the throw planner on the real analytic backend (one batched rehearsal per iteration)."""
from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from world_irp_ros.backends import create_backend
from world_irp_ros.errors import UnknownObjectError, ValidationError, VerdictCode
from world_irp_ros.planning import (ActuatorLimits, CEMConfig, CrossEntropyMethod, EnergyWeights, Gaussian,
                                    ThrowPlanner, candidate_energy, has_margin, params_to_velocity,
                                    parse_plan, velocity_to_params)
from world_irp_ros.rehearsal import Rehearser
from world_irp_ros.verdicts import Verdict

REPO = Path(__file__).resolve().parents[2]
PLAN_SCHEMA = json.loads((REPO / "world_irp_ros" / "schemas" / "plan.schema.json").read_text())
STONE_PLAN = json.loads((REPO / "config" / "scenes" / "stone_throw_plan.json").read_text())

# A lamp (keep-out) hangs where the least-speed lob to the target would pass: the ballistic first
# guess collides, and the planner has to find a flatter throw under it.
LAMP_PLAN = {
    "objects": [{"id": "ball", "shape": "sphere", "radius": 0.03, "mass": 0.2}],
    "criteria": {"target": {"center": [3.0, 0.0, 0.0], "radius": 0.2},
                 "keep_out": [{"name": "lamp", "min": [0.9, -0.4, 1.3], "max": [1.9, 0.4, 3.0]}]},
    "horizon_s": 2.5,
    "plan": {"object_id": "ball",
             "limits": {"release_position": [0.0, 0.0, 1.0], "max_release_speed": 10.0, "min_release_speed": 1.0,
                        "min_elevation": -0.2, "max_elevation": 1.3, "min_azimuth": -0.5, "max_azimuth": 0.5},
             "population": 48, "max_iterations": 20, "samples": 1, "seed": 3},
}


@pytest.fixture(scope="module")
def rehearser() -> Rehearser:
    backend = create_backend("analytic", "cpu")
    backend.warmup()
    return Rehearser(backend)


class CountingRehearser:
    """Passes every call on to the real rehearser and records the requests."""

    def __init__(self, inner: Rehearser):
        self.inner = inner
        self.requests = []

    def rehearse(self, request, deadline_ms=None, samples=None):
        self.requests.append(request)
        return self.inner.rehearse(request, deadline_ms, samples)


LIMITS = ActuatorLimits((0.0, 0.0, 1.0), 10.0, 1.0, -0.2, 1.3, -0.5, 0.5)


# ----------------------------------------------------------------------------- ActuatorLimits
def test_limits_defaults_and_bounds():
    lim = ActuatorLimits((0, 0, 1), 5.0)
    assert lim.min_release_speed_mps == 0.0
    assert (lim.min_elevation_rad, lim.max_elevation_rad) == (-math.pi / 2, math.pi / 2)
    assert (lim.min_azimuth_rad, lim.max_azimuth_rad) == (-math.pi, math.pi)
    assert lim.release_position_m == (0.0, 0.0, 1.0)
    np.testing.assert_allclose(LIMITS.lower, [1.0, -0.2, -0.5])
    np.testing.assert_allclose(LIMITS.upper, [10.0, 1.3, 0.5])


@pytest.mark.parametrize("kwargs, field", [
    (dict(max_release_speed_mps=0.0), "max_release_speed"),
    (dict(max_release_speed_mps=-1.0), "max_release_speed"),
    (dict(max_release_speed_mps=float("nan")), "max_release_speed"),
    (dict(min_release_speed_mps=-0.1), "min_release_speed"),
    (dict(min_release_speed_mps=5.0), "min_release_speed"),     # not < max
    (dict(min_elevation_rad=-2.0), "min_elevation"),
    (dict(max_elevation_rad=1.6), "max_elevation"),
    (dict(min_elevation_rad=0.5, max_elevation_rad=0.2), "max_elevation"),
    (dict(min_azimuth_rad=0.5, max_azimuth_rad=0.2), "max_azimuth"),
    (dict(min_azimuth_rad=-4.0, max_azimuth_rad=4.0), "max_azimuth"),  # wider than a turn
    (dict(release_position_m=(0.0, 1.0)), "release_position"),
    (dict(release_position_m=(0.0, float("inf"), 1.0)), "release_position[1]"),
    (dict(max_release_speed_mps="5"), "max_release_speed"),
])
def test_limits_validation_names_the_field(kwargs, field):
    args = dict(release_position_m=(0.0, 0.0, 1.0), max_release_speed_mps=5.0)
    args.update(kwargs)
    with pytest.raises(ValidationError) as info:
        ActuatorLimits(**args)
    assert info.value.field == field


def test_limits_are_frozen():
    with pytest.raises(AttributeError):
        LIMITS.max_release_speed_mps = 20.0  # type: ignore[misc]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-50, 50), min_size=3, max_size=3))
def test_clamp_lands_within_limits(p):
    q = LIMITS.clamp(np.array(p))
    assert LIMITS.contains(q)
    if LIMITS.contains(np.array(p)):
        np.testing.assert_allclose(q, p)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.1, 20), st.floats(-1.5, 1.5), st.floats(-3.1, 3.1))
def test_velocity_parametrisation_round_trips(speed, el, az):
    v = params_to_velocity(np.array([speed, el, az]))
    assert np.linalg.norm(v) == pytest.approx(speed)
    np.testing.assert_allclose(velocity_to_params(v), [speed, el, az], atol=1e-9)


def test_velocity_direction_conventions():
    np.testing.assert_allclose(params_to_velocity([2.0, 0.0, 0.0]), [2.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(params_to_velocity([2.0, 0.0, math.pi / 2]), [0.0, 2.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(params_to_velocity([2.0, math.pi / 2, 0.0]), [0.0, 0.0, 2.0], atol=1e-12)
    assert LIMITS.contains_velocity(params_to_velocity([5.0, 0.3, 0.1]))
    assert not LIMITS.contains_velocity([0.0, 0.0, -5.0])


# ------------------------------------------------------------------------------------ energy
def v(code=VerdictCode.GO, ps=1.0, pc=0.0, miss=0.0, clearance=math.inf) -> Verdict:
    return Verdict("a", code, [], ps, pc, True, None, 0.5, None, miss, clearance)


def test_energy_prefers_a_go_with_margin():
    w = EnergyWeights()
    margin = candidate_energy(v(miss=0.01, clearance=0.3), 0.15, w)
    marginal = candidate_energy(v(ps=0.9, miss=0.14, clearance=0.005), 0.15, w)
    miss = candidate_energy(v(VerdictCode.NO_GO_MISSES_TARGET, ps=0.0, miss=0.5, clearance=0.3), 0.15, w)
    far_miss = candidate_energy(v(VerdictCode.NO_GO_MISSES_TARGET, ps=0.0, miss=50.0, clearance=2.0), 0.15, w)
    hit_laptop = candidate_energy(v(VerdictCode.NO_GO_COLLISION, ps=1.0, pc=1.0, miss=0.0, clearance=0.0), 0.15, w)
    error = candidate_energy(v(VerdictCode.NO_GO_BACKEND_ERROR, ps=0.0, pc=1.0), 0.15, w)
    risky_go = candidate_energy(v(ps=0.94, pc=0.125, miss=0.07, clearance=0.07), 0.15, w)
    uncertain = candidate_energy(v(VerdictCode.NO_GO_UNCERTAIN, ps=0.81, miss=0.05, clearance=0.3), 0.15, w)
    assert 0.0 <= margin < 0.1
    assert marginal > margin + 0.5          # clearly worse
    assert margin < marginal < miss < far_miss < hit_laptop < error
    # A GO the criteria allow some collision probability still beats a collision-free NO-GO.
    assert risky_go < uncertain
    assert error == w.worst


def test_energy_terms():
    w = EnergyWeights(success=1.0, collision=10.0, miss=0.25, miss_cap=20.0, clearance=1.0, clearance_margin_m=0.05)
    assert candidate_energy(v(ps=0.75, miss=0.1, clearance=0.025), 0.2, w) == pytest.approx(0.25 + 0.125 + 0.5)
    # A NO-GO adds the span of the terms (1 + 10 + 0.25 x 20 + 1 = 17), so it never beats a GO.
    assert w.span == 17.0
    assert candidate_energy(v(VerdictCode.NO_GO_COLLISION, pc=0.5, miss=0.0, clearance=0.0), 0.2, w) == \
        pytest.approx(17.0 + 5.0 + 1.0)
    # No landing: the miss term saturates; no target: no miss term at all.
    assert candidate_energy(v(VerdictCode.NO_GO_MISSES_TARGET, ps=0.0, miss=float("nan")), 0.2, w) == \
        pytest.approx(17.0 + 1.0 + 0.25 * 20.0)
    assert candidate_energy(v(miss=float("nan")), None, w) == 0.0


def test_has_margin():
    assert has_margin(v(miss=0.05, clearance=0.2), 0.15, 0.05)
    assert not has_margin(v(miss=0.1, clearance=0.2), 0.15, 0.05)         # beyond half the radius
    assert not has_margin(v(miss=0.0, clearance=0.01), 0.15, 0.05)        # too close to the keep-out
    assert not has_margin(v(VerdictCode.NO_GO_UNCERTAIN, ps=0.5), 0.15, 0.05)
    assert has_margin(v(miss=float("nan")), None, 0.05)


# ------------------------------------------------------------------------ the generic CEM
def test_cem_config_validation():
    assert CEMConfig(population=8, elite_fraction=0.01).n_elite == 2
    assert CEMConfig(population=64, elite_fraction=0.125).n_elite == 8
    for kwargs, field in ((dict(population=1), "population"), (dict(population=True), "population"),
                          (dict(elite_fraction=0.0), "elite_fraction"), (dict(smoothing=1.5), "smoothing"),
                          (dict(seed=-1), "seed")):
        with pytest.raises(ValidationError) as info:
            CEMConfig(**kwargs)
        assert info.value.field == field


def test_cem_sample_is_reproducible_and_bounded():
    cem = CrossEntropyMethod([0.0, -1.0], [1.0, 1.0], CEMConfig(population=200, seed=5))
    dist = Gaussian(np.array([0.9, 0.0]), np.array([0.5, 2.0]))
    a, b, c = cem.sample(dist, 1), cem.sample(dist, 1), cem.sample(dist, 2)
    assert a.shape == (200, 2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(a[0], dist.mean)  # the mean is always a candidate
    assert np.all(a >= cem.lower) and np.all(a <= cem.upper)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-100, 100), min_size=3, max_size=3), st.floats(0.0, 50.0), st.integers(0, 1000))
def test_cem_never_leaves_the_limits(mean, std, iteration):
    cem = CrossEntropyMethod(LIMITS.lower, LIMITS.upper, CEMConfig(population=16))
    dist = cem.initial(mean, [std, std, std])
    x = cem.sample(dist, iteration)
    assert LIMITS.contains(x)
    refit = cem.refit(dist, x, np.arange(16.0))
    assert LIMITS.contains(refit.mean) and np.all(refit.std >= cem.min_std)


def test_cem_refit_uses_the_elite_and_ignores_nan():
    cem = CrossEntropyMethod([-10.0], [10.0], CEMConfig(population=6, elite_fraction=0.33, smoothing=1.0))
    x = np.array([[5.0], [1.0], [2.0], [-3.0], [9.0], [0.0]])
    e = np.array([np.nan, 0.1, 0.2, 5.0, 7.0, np.nan])
    fit = cem.refit(Gaussian(np.zeros(1), np.ones(1)), x, e)
    assert fit.mean[0] == pytest.approx(1.5) and fit.std[0] == pytest.approx(0.5)


def test_cem_minimises_a_quadratic():
    cem = CrossEntropyMethod([-5.0, -5.0, -5.0], [5.0, 5.0, 5.0], CEMConfig(population=64, seed=1, min_std_fraction=1e-4))
    goal = np.array([1.0, -2.0, 3.5])
    dist = cem.initial()
    for i in range(1, 30):
        x = cem.sample(dist, i)
        dist = cem.refit(dist, x, ((x - goal) ** 2).sum(axis=1))
    np.testing.assert_allclose(dist.mean, goal, atol=0.02)


# -------------------------------------------------------------------------------- plan file
def test_stone_plan_file_parses_and_matches_the_schema():
    jsonschema.Draft202012Validator(PLAN_SCHEMA).validate(STONE_PLAN)
    problem = parse_plan(STONE_PLAN)
    assert problem.object_id == "stone" and problem.population == 64 and problem.max_iterations == 30
    assert problem.samples_per_candidate == 16  # the stone carries uncertainty
    assert problem.limits.to_dict()["max_release_speed"] == 9.0
    jsonschema.Draft202012Validator(PLAN_SCHEMA).validate(LAMP_PLAN)
    assert parse_plan(LAMP_PLAN).samples_per_candidate == 1


def test_plan_defaults():
    d = copy.deepcopy(LAMP_PLAN)
    d["plan"] = {"object_id": "ball", "limits": {"release_position": [0, 0, 1], "max_release_speed": 5}}
    p = parse_plan(d)
    assert (p.population, p.max_iterations, p.samples, p.seed) == (64, 30, 16, 0)
    assert p.elite_fraction == 0.125 and p.clearance_margin_m == 0.05
    assert p.limits.min_release_speed_mps == 0.0 and p.limits.max_azimuth_rad == math.pi


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["plan"].update(colour=1), "plan.colour"),
    (lambda d: d["plan"].pop("limits"), "plan.limits"),
    (lambda d: d["plan"]["limits"].update(max_release_speed=-1), "plan.limits.max_release_speed"),
    (lambda d: d["plan"]["limits"].update(min_release_speed=-1), "plan.limits.min_release_speed"),
    (lambda d: d["plan"]["limits"].update(max_elevation=2.0), "plan.limits.max_elevation"),
    (lambda d: d["plan"]["limits"].update(release_position=[0, 0]), "plan.limits.release_position"),
    (lambda d: d["plan"]["limits"].update(spin=1), "plan.limits.spin"),
    (lambda d: d["plan"].update(population=1), "plan.population"),
    (lambda d: d["plan"].update(max_iterations=0), "plan.max_iterations"),
    (lambda d: d["plan"].update(samples=1.5), "plan.samples"),
    (lambda d: d["plan"].update(elite_fraction=0), "plan.elite_fraction"),
    (lambda d: d["plan"].update(clearance_margin=-1), "plan.clearance_margin"),
    (lambda d: d["plan"].update(object_id=""), "plan.object_id"),
    (lambda d: d.update(samples=4), "samples"),
    (lambda d: d.update(actions=[]), "actions"),
    (lambda d: d["objects"][0].update(mass=0), "objects[0].mass"),
    (lambda d: d.update(horizon_s=20), "horizon_s"),
])
def test_plan_errors_name_the_field(edit, field):
    d = copy.deepcopy(LAMP_PLAN)
    edit(d)
    with pytest.raises(ValidationError) as info:
        parse_plan(d)
    assert info.value.field == field
    assert not jsonschema.Draft202012Validator(PLAN_SCHEMA).is_valid(d)


def test_plan_min_speed_must_stay_below_max():
    d = copy.deepcopy(LAMP_PLAN)
    d["plan"]["limits"]["min_release_speed"] = 11  # the schema cannot compare two keys; the parser does
    with pytest.raises(ValidationError) as info:
        parse_plan(d)
    assert info.value.field == "plan.limits.min_release_speed"


def test_plan_unknown_object():
    d = copy.deepcopy(LAMP_PLAN)
    d["plan"]["object_id"] = "rock"
    with pytest.raises(UnknownObjectError) as info:
        parse_plan(d)
    assert info.value.field == "plan.object_id"


# ------------------------------------------------------------------- the planner, for real
def test_initial_guess_aims_at_the_target(rehearser):
    d = copy.deepcopy(LAMP_PLAN)
    d["criteria"].pop("keep_out")
    d["environment"] = {"air_density": 0.0}  # the guess is drag-free ballistics
    problem = parse_plan(d)
    guess = problem.initial_guess()
    assert problem.limits.contains(guess)
    assert guess[2] == pytest.approx(0.0)  # straight down +x
    outcome = rehearser.rehearse(problem.request([problem.action("guess", guess)]))
    (verdict,) = outcome.verdicts
    assert verdict.go, verdict.reasons
    assert verdict.miss_distance_m < 0.02


def test_one_batched_rehearsal_per_iteration(rehearser):
    problem = parse_plan(LAMP_PLAN)
    spy = CountingRehearser(rehearser)
    planner = ThrowPlanner(spy, problem)
    state = planner.initial_state()
    assert len(spy.requests) == 1 and len(spy.requests[0].actions) == 1
    energies = [state.best.energy]
    for i in range(1, 4):
        state = planner.project(planner.step(state))
        assert len(spy.requests) == 1 + i
        request = spy.requests[-1]
        assert len(request.actions) == problem.population
        for a in request.actions:
            assert a.type == "throw" and a.object_id == "ball"
            assert a.release_position_m == problem.limits.release_position_m
            assert problem.limits.contains_velocity(a.release_velocity_mps)
        assert state.iteration == i and state.evaluations == 1 + i * problem.population
        energies.append(state.best.energy)
        assert problem.limits.contains(state.dist.mean)
    assert all(b <= a for a, b in zip(energies, energies[1:]))  # best-so-far never gets worse


def test_planner_finds_a_throw_under_the_lamp(rehearser):
    problem = parse_plan(LAMP_PLAN)
    planner = ThrowPlanner(rehearser, problem)
    state = planner.initial_state()
    assert state.best.verdict.code == VerdictCode.NO_GO_COLLISION  # the lob hits the lamp
    for _ in range(problem.max_iterations):
        state = planner.project(planner.step(state))
        if state.best.feasible:
            break
    best = state.best
    assert best.verdict.go and best.feasible, best.verdict.reasons
    assert best.energy < 0.2
    assert best.params[1] < 0.6  # a flat throw under the lamp, not the lob
    assert problem.limits.contains(best.params)


def test_planner_is_deterministic_for_a_seed(rehearser):
    def run(seed):
        d = copy.deepcopy(LAMP_PLAN)
        d["plan"]["seed"] = seed
        planner = ThrowPlanner(rehearser, parse_plan(d))
        state = planner.initial_state()
        for _ in range(3):
            state = planner.step(state)
        return state

    a, b, c = run(3), run(3), run(4)
    np.testing.assert_array_equal(a.best.params, b.best.params)
    np.testing.assert_array_equal(a.dist.mean, b.dist.mean)
    np.testing.assert_array_equal(a.energies, b.energies)
    assert not np.array_equal(a.energies, c.energies)


def test_project_pulls_the_distribution_into_the_limits(rehearser):
    planner = ThrowPlanner(rehearser, parse_plan(LAMP_PLAN))
    state = planner.initial_state()
    wild = dataclasses.replace(state, dist=Gaussian(np.array([50.0, -3.0, 4.0]), np.array([100.0, 9.0, 9.0])))
    fixed = planner.project(wild)
    assert planner.problem.limits.contains(fixed.dist.mean)
    assert np.all(fixed.dist.std <= planner.cem.span)
    x = planner.cem.sample(fixed.dist, 1)
    assert planner.problem.limits.contains(x)

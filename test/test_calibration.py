"""Calibration: the error signal refits drag and restitution from observed flights, and mass and
rolling resistance from pushes."""
from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest

from world_irp_ros.backends import create_backend
from world_irp_ros.calibration import (CalibrationResult, CalibrationStore, ObservedTrack, bounce_restitution,
                                       calibrate, compare, contact_surfaces, fit_flight, motion_onset)
from world_irp_ros.rehearsal import Rehearser
from world_irp_ros.scene import (CandidateAction, Criteria, Environment, ObjectModel, Obstacle, RehearsalRequest,
                                 Scene)
from world_irp_ros.simulation import SimWorld


@pytest.fixture(scope="module")
def backend():
    return create_backend("analytic", "cpu")


def _scene(cd: float) -> Scene:
    stone = ObjectModel("pumice", "sphere", (0.04, 0.0, 0.0), 0.08, drag_coefficient=cd, position_m=(0.0, 0.0, 1.2))
    return Scene(Environment(), {"pumice": stone})


THROW = CandidateAction("t", "throw", "pumice", (0.0, 0.0, 1.2), (6.0, 0.5, 3.0))


def _observed(backend, cd_true: float, noise_m: float, seed: int = 0) -> ObservedTrack:
    request = RehearsalRequest(_scene(cd_true), (THROW,), Criteria(horizon_s=1.5))
    traj = Rehearser(backend, sample_dt_s=1.0 / 60.0).rehearse(request).trajectories[0]
    rng = np.random.default_rng(seed)
    return ObservedTrack(traj.t_s, traj.positions_m + rng.normal(0.0, noise_m, traj.positions_m.shape))


def test_fit_recovers_the_true_drag_coefficient(backend):
    observed = _observed(backend, cd_true=0.62, noise_m=0.002)
    result = fit_flight(backend, _scene(0.47), THROW, observed)
    cd = result.value("drag_coefficient")
    assert cd == pytest.approx(0.62, rel=0.05)
    assert 0.0 < result.std_after[0] < 0.05
    assert result.rms_after_m < result.rms_before_m


def test_a_drag_coefficient_perceived_as_zero_is_still_learnt(backend):
    """The drag factor is fitted as a log-scale from the perceived one: a perceived Cd of 0 must
    not pin the fit at 0."""
    result = fit_flight(backend, _scene(0.0), THROW, _observed(backend, cd_true=0.62, noise_m=0.002))
    assert result.value("drag_coefficient") == pytest.approx(0.62, rel=0.05)
    assert 0.0 < result.std("drag_coefficient") < 0.05


def test_compare_of_identical_tracks_is_near_zero(backend):
    request = RehearsalRequest(_scene(0.47), (THROW,), Criteria(horizon_s=1.5))
    traj = Rehearser(backend).rehearse(request).trajectories[0]
    cmp = compare(traj, ObservedTrack(traj.t_s, traj.positions_m), floor_z_m=0.04)
    assert cmp.rms_track_error_m < 1e-9
    # The observed landing is estimated from 30 Hz samples (parabola to the floor): mm-accurate.
    assert cmp.landing_error_m < 0.003
    assert abs(cmp.landing_time_error_s) < 1e-3


def test_bounce_restitution_from_a_vacuum_drop():
    g, h0, e, r = 9.81, 1.0, 0.5, 0.04
    t_hit = np.sqrt(2 * (h0 - r) / g)
    v_out = e * g * t_hit
    t = np.arange(0.0, t_hit + 2 * v_out / g, 1.0 / 120.0)
    z = np.where(t < t_hit, h0 - 0.5 * g * t ** 2, r + v_out * (t - t_hit) - 0.5 * g * (t - t_hit) ** 2)
    track = ObservedTrack(t, np.stack([np.zeros_like(t), np.zeros_like(t), np.maximum(z, r)], axis=1))
    ratio, lowest = bounce_restitution(track, floor_z_m=r)
    assert ratio == pytest.approx(e, abs=0.03) and t[lowest] == pytest.approx(t_hit, abs=1.0 / 60.0)


TABLE = Obstacle("table", (0.5, -0.5, 0.0), (1.5, 0.5, 0.75), restitution=0.5)


def test_a_bounce_on_the_table_is_measured_on_the_table(backend):
    """A stone dropped onto a table lands 0.75 m above the floor: the landing, the flight that
    ends there and the rebound are measured against the table top (whose factor 0.5 scales the
    rebound), not extrapolated to the floor."""
    stone = ObjectModel("pumice", "sphere", (0.04, 0.0, 0.0), 0.08, restitution=0.6, position_m=(1.0, 0.0, 2.0))
    scene = Scene(Environment(air_density_kgpm3=0.0, obstacles=(TABLE,)), {"pumice": stone})
    drop = CandidateAction("d", "drop", "pumice", (1.0, 0.0, 2.0))
    traj = Rehearser(backend, sample_dt_s=1.0 / 120.0).rehearse(
        RehearsalRequest(scene, (drop,), Criteria(horizon_s=1.2))).trajectories[0]
    observed = ObservedTrack(traj.t_s, traj.positions_m)
    floor, factor = contact_surfaces(scene, stone, observed.positions_m)
    assert floor[0] == pytest.approx(0.79) and factor[0] == 0.5
    cmp = compare(traj, observed, floor)
    assert cmp.landing_error_m < 0.003 and abs(cmp.landing_time_error_s) < 2e-3
    result = calibrate(backend, scene, drop, observed)
    assert result.value("restitution") == pytest.approx(0.6, abs=0.03)


def test_a_track_that_does_not_show_the_drag_leaves_it_unknown(backend):
    """An object that never moved (an execution reported but not carried out) says little about its
    drag: the fit must report an uncertainty larger than the value (not a zero one), so that the
    node rejects it."""
    still = ObservedTrack(np.arange(8) / 30.0 + 1.0 / 30.0, np.tile([0.0, 0.0, 1.2], (8, 1)))
    result = fit_flight(backend, _scene(0.47), THROW, still)
    assert result.std("drag_coefficient") > 10 * result.value("drag_coefficient")
    # Nor does any flight in a vacuum: no drag coefficient is reported at all.
    vacuum = Scene(Environment(air_density_kgpm3=0.0), _scene(0.47).objects)
    assert fit_flight(backend, vacuum, THROW, _observed(backend, cd_true=0.62, noise_m=0.002)).names == []


def test_store_applies_saves_and_loads(tmp_path):
    store = CalibrationStore()
    store.update("pumice", CalibrationResult(["drag_coefficient"], [0.47], [0.6], [0.012]))
    stone = _scene(0.47).objects["pumice"]
    calibrated = store.apply(stone)
    assert calibrated.drag_coefficient == pytest.approx(0.6)
    assert calibrated.uncertainty.drag_rel_std == pytest.approx(0.02)
    path = tmp_path / "cal.json"
    store.save(path)
    again = CalibrationStore.load(path)
    assert again.apply(stone).drag_coefficient == pytest.approx(0.6)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError):
        CalibrationStore.load(path)
    # Values the object model refuses, unknown names and bad spreads name the object and field.
    for entry, message in (({"mass": {"value": 0.0, "std": 0.01}}, "pumice.mass: must be > 0"),
                           ({"restitution": {"value": 5.0, "std": 0.0}}, "pumice.restitution: must lie in [0, 1]"),
                           ({"colour": {"value": 1.0, "std": 0.0}}, "pumice.colour: unknown parameter"),
                           ({"drag_coefficient": {"value": 0.5, "std": -1.0}}, "pumice.drag_coefficient: std")):
        path.write_text(json.dumps({"pumice": entry}))
        with pytest.raises(ValueError, match=re.escape(message)):
            CalibrationStore.load(path)
    # JSON beyond Python's floats or nesting is a bad file too, not another exception.
    for text in ('{"pumice": {"mass": {"value": 1' + "0" * 400 + ', "std": 0}}}', "[" * 5000 + "]" * 5000):
        path.write_text(text)
        with pytest.raises(ValueError, match="calibration file"):
            CalibrationStore.load(path)


PUSH = CandidateAction("p", "push", "ball", impulse_ns=(0.12, 0.05, 0.0))


def _ball(mass_kg: float, crr: float) -> Scene:
    ball = ObjectModel("ball", "sphere", (0.03, 0.0, 0.0), mass_kg, rolling_resistance=crr, position_m=(0.0, 0.0, 0.03))
    return Scene(Environment(), {"ball": ball})


def test_push_fit_recovers_mass_and_rolling_resistance(backend):
    request = RehearsalRequest(_ball(0.26, 0.08), (PUSH,), Criteria(horizon_s=2.0))
    traj = Rehearser(backend, sample_dt_s=1.0 / 60.0).rehearse(request).trajectories[0]
    noisy = traj.positions_m + np.random.default_rng(3).normal(0.0, 0.002, traj.positions_m.shape)
    result = calibrate(backend, _ball(0.2, 0.05), PUSH, ObservedTrack(traj.t_s, noisy))
    assert result.names == ["mass", "rolling_resistance"]
    assert result.value("mass") == pytest.approx(0.26, rel=0.03)
    assert result.value("rolling_resistance") == pytest.approx(0.08, rel=0.1)
    assert result.rms_after_m < 0.004 < result.rms_before_m


def test_motion_onset_finds_the_push_between_frames():
    t = np.arange(0.0, 0.5, 1.0 / 60.0)
    x = np.where(t > 0.107, 0.5 * (t - 0.107), 0.0) + np.random.default_rng(0).normal(0.0, 0.001, t.shape)
    track = ObservedTrack(t, np.stack([x, np.zeros_like(t), np.full_like(t, 0.03)], axis=1))
    assert motion_onset(track) == pytest.approx(0.107, abs=0.005)


def test_a_push_in_the_simulator_shows_the_granite_is_heavier_than_it_looks(backend):
    world = SimWorld(seed=1)
    try:
        world.step(0.5)                                  # settle on the table
        granite = next(m for m in world.perceived() if m.id == "granite")
        true_mass = world.stones["granite"].true_mass_kg
        assert granite.mass_kg < 0.8 * true_mass
        push = CandidateAction("p", "push", "granite", impulse_ns=(0.12, 0.0, 0.0))
        world.execute(push)
        t, p = [], []
        for i in range(1, 120):
            world.step(1.0 / 60.0)
            t.append(i / 60.0)
            p.append(world.state("granite")[0] + world.rng.normal(0.0, 0.002, 3))
    finally:
        world.close()
    scene = Scene(world.scene.environment, {"granite": replace(granite, velocity_mps=(0.0, 0.0, 0.0))})
    result = calibrate(backend, scene, push, ObservedTrack(np.array(t), np.array(p)))
    # Actuator noise (4 % of this push) and PyBullet's contact (+3 % without noise; 0.258-0.286 kg
    # over seeds 0-7): 15 %.
    assert result.value("mass") == pytest.approx(true_mass, rel=0.15)


def test_store_merges_fits_and_a_mass_fit_keeps_the_observed_drag_factor():
    store = CalibrationStore()
    store.update("ball", CalibrationResult(["drag_coefficient", "restitution"], [0.47, 0.3], [0.6, 0.25],
                                           [0.012, 0.05]))
    store.update("ball", CalibrationResult(["mass", "rolling_resistance"], [0.2, 0.05], [0.26, 0.08], [0.002, 0.004]))
    ball = store.apply(_ball(0.2, 0.05).objects["ball"])
    assert ball.mass_kg == pytest.approx(0.26)
    assert ball.rolling_resistance == pytest.approx(0.08)
    assert ball.restitution == pytest.approx(0.25)
    # k = rho Cd A / (2 m) as observed in flight: Cd / m unchanged by learning the mass.
    assert ball.drag_coefficient / ball.mass_kg == pytest.approx(0.6 / 0.2)
    assert ball.uncertainty.mass_rel_std == pytest.approx(0.002 / 0.26)

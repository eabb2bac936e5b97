"""Calibration: the error signal refits drag and restitution from observed flights."""
from __future__ import annotations

import numpy as np
import pytest

from world_irp_ros.backends import create_backend
from world_irp_ros.calibration import (CalibrationResult, CalibrationStore, ObservedTrack, bounce_restitution,
                                       compare, fit_flight)
from world_irp_ros.rehearsal import Rehearser
from world_irp_ros.scene import CandidateAction, Environment, ObjectModel, RehearsalRequest, Scene, Criteria


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
    assert bounce_restitution(track, floor_z_m=r) == pytest.approx(e, abs=0.03)


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

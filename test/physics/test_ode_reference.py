"""Flight with quadratic drag against a high-precision ODE solution (SciPy DOP853, rtol 1e-10).

Accuracy target of docs/physics.md: landing point within 2 mm at the 95th percentile for throws
up to 12 m/s over 3 s with RK4 at dt = 1/60 s and the contact located inside the step.
"""
from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

from helpers_batches import sphere_drag

G = 9.81


def dop853_landing(p0, v0, k, hz, ground=0.0, horizon=3.0):
    """Landing time and centre position of p'' = g - k|v|v, first time p_z - hz reaches ``ground``."""
    def rhs(_t, y):
        v = y[3:]
        return np.concatenate([v, np.array([0.0, 0.0, -G]) - k * np.linalg.norm(v) * v])

    def hit(_t, y):
        return y[2] - hz - ground
    hit.terminal = True
    hit.direction = -1
    sol = solve_ivp(rhs, (0.0, horizon), np.concatenate([p0, v0]), method="DOP853", rtol=1e-10, atol=1e-12,
                    events=hit)
    assert sol.t_events[0].size == 1, "the reference throw must land within the horizon"
    return sol.t_events[0][0], sol.y_events[0][0][:3]


def test_landing_matches_dop853_with_drag(analytic, make_batch):
    rng = np.random.default_rng(20240611)
    n = 60
    speed = rng.uniform(2.0, 12.0, n)
    elevation = np.radians(rng.uniform(-20.0, 70.0, n))
    azimuth = rng.uniform(-np.pi, np.pi, n)
    vel = np.stack([speed * np.cos(elevation) * np.cos(azimuth), speed * np.cos(elevation) * np.sin(azimuth),
                    speed * np.sin(elevation)], axis=1)
    pos = np.stack([rng.uniform(-1, 1, n), rng.uniform(-1, 1, n), rng.uniform(0.3, 2.0, n)], axis=1)
    radius = rng.uniform(0.01, 0.1, n)
    k = np.array([sphere_drag(r, m) for r, m in zip(radius, rng.uniform(0.05, 1.0, n))])
    res = analytic.rollout(make_batch(pos, vel, drag=k, half_extent=radius, horizon=3.0))
    ref = [dop853_landing(pos[i], vel[i], k[i], radius[i]) for i in range(n)]
    t_ref = np.array([r[0] for r in ref])
    p_ref = np.array([r[1] for r in ref])
    point_err = np.linalg.norm(res.landing_point_m.T - p_ref, axis=1)
    time_err = np.abs(res.landing_time_s - t_ref)
    assert np.all(np.isfinite(res.landing_time_s))
    assert np.percentile(point_err, 95) <= 2e-3, np.percentile(point_err, [50, 95, 100])
    assert np.percentile(time_err, 95) <= 2e-4, np.percentile(time_err, [50, 95, 100])
    assert point_err.max() <= 5e-3 and time_err.max() <= 5e-4


def test_samples_follow_dop853_in_flight(analytic, make_batch):
    """Positions and velocities at sample times (Hermite-interpolated inside steps) before landing."""
    p0, v0, k, hz = np.array([0.0, 0.0, 1.5]), np.array([8.0, 1.0, 6.0]), sphere_drag(0.03, 0.2), 0.03
    times = np.linspace(0.0, 1.2, 97)              # not on the 1/60 s grid
    res = analytic.rollout(make_batch(p0, v0, drag=k, half_extent=hz, horizon=1.2, sample_times=times))

    def rhs(_t, y):
        v = y[3:]
        return np.concatenate([v, np.array([0.0, 0.0, -G]) - k * np.linalg.norm(v) * v])
    sol = solve_ivp(rhs, (0.0, 1.2), np.concatenate([p0, v0]), method="DOP853", rtol=1e-10, atol=1e-12,
                    t_eval=times)
    assert res.landing_time_s[0] > 1.2 or np.isnan(res.landing_time_s[0])
    np.testing.assert_allclose(res.positions_m[:, :, 0], sol.y[:3].T, atol=5e-4)
    np.testing.assert_allclose(res.velocities_mps[:, :, 0], sol.y[3:].T, atol=5e-3)

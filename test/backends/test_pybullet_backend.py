"""pybullet_backend.py: landing points against an exact ODE solution, agreement with the analytic
backend through the rehearsal, determinism, a drop onto a table that slides off, keep-out zones
that never deflect, and the pool/device plumbing.

One pool of two workers serves the whole module (it starts once, like in the node); batches come
from the shared ``make_batch`` fixture (test/helpers_batches.py)."""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from world_irp_ros.backends import create_backend
from world_irp_ros.backends.base import EVENT_GROUND, EVENT_KEEP_OUT, EVENT_OBSTACLE, MODE_REST
from world_irp_ros.backends.pybullet_backend import PyBulletBackend
from world_irp_ros.errors import BackendError, ValidationError
from world_irp_ros.rehearsal import Rehearser
from world_irp_ros.scene import (CandidateAction, Criteria, Environment, KeepOutZone, ObjectModel, Obstacle,
                                 RehearsalRequest, Scene, TargetRegion)

G = np.array([0.0, 0.0, -9.81])
TABLE = ((-0.4, -0.6, 0.0), (0.4, 0.6, 0.75))


@pytest.fixture(scope="module")
def backend():
    with PyBulletBackend("cpu", workers=2) as b:
        b.warmup()
        yield b


def random_throws(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, 3) release points 0.3-2.5 m up, (n, 3) velocities up to 12 m/s, (n,) drag factors."""
    rng = np.random.default_rng(seed)
    speed = rng.uniform(2.0, 12.0, n)
    elevation = rng.uniform(-0.6, 1.2, n)
    azimuth = rng.uniform(0.0, 2 * np.pi, n)
    v = speed[:, None] * np.stack([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                                   np.sin(elevation)], axis=1)
    x = np.stack([rng.uniform(-1, 1, n), rng.uniform(-1, 1, n), rng.uniform(0.3, 2.5, n)], axis=1)
    return x, v, rng.uniform(0.0, 0.05, n)


def dop853_landing(x0, v0, k, bottom_m) -> tuple[float, np.ndarray]:
    """Time and centre of the first ground contact (centre height ``bottom_m``), SciPy DOP853 with
    rtol 1e-10 and a terminal event; (nan, nans) if none within 3 s."""
    def rhs(_t, y):
        v = y[3:]
        return np.concatenate([v, G - k * np.linalg.norm(v) * v])

    def ground(_t, y):
        return y[2] - bottom_m

    ground.terminal, ground.direction = True, -1
    sol = solve_ivp(rhs, (0.0, 3.0), np.concatenate([x0, v0]), method="DOP853", rtol=1e-10, atol=1e-12,
                    events=ground)
    if not sol.t_events[0].size:
        return float("nan"), np.full(3, np.nan)
    return float(sol.t_events[0][0]), sol.y_events[0][0][:3]


# ------------------------------------------------------------------------------ (a) accuracy
def test_landing_points_match_dop853_within_2cm(backend, make_batch):
    x, v, k = random_throws(32, seed=7)
    result = backend.rollout(make_batch(x, v, drag=k, horizon=3.0))
    errors = []
    for i in range(len(x)):
        t_ref, p_ref = dop853_landing(x[i], v[i], k[i], 0.03)
        assert np.isnan(t_ref) == np.isnan(result.landing_time_s[i]), i
        if np.isfinite(t_ref):
            errors.append(np.linalg.norm(result.landing_point_m[:, i] - p_ref))
            assert abs(result.landing_time_s[i] - t_ref) < 0.005, i
    assert len(errors) >= 20
    assert max(errors) < 0.02, f"landing error p50 {np.median(errors):.4f} m, max {max(errors):.4f} m"


# ------------------------------------------------------------------ (b) against the analytic
@pytest.fixture(scope="module")
def analytic():
    return create_backend("analytic", "cpu")


def _scene() -> Scene:
    env = Environment(obstacles=(Obstacle("table", *TABLE, restitution=0.3, friction=0.6),))
    objects = {"ball": ObjectModel("ball", "sphere", (0.03, 0.0, 0.0), 0.2, position_m=(0.0, 0.0, 1.2)),
               "cube": ObjectModel("cube", "box", (0.08, 0.08, 0.08), 0.5, position_m=(0.0, 0.0, 1.2))}
    return Scene(env, objects)


def _throws(seed: int, count: int) -> tuple[CandidateAction, ...]:
    """Throws of the ball and the cube from above the table (some land on it, roll or slide
    and fall off) or from beside it, 0.5-7 m/s."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        speed, elevation, azimuth = rng.uniform(0.5, 7.0), rng.uniform(-0.3, 1.0), rng.uniform(-0.5, 0.5)
        v = speed * np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                              np.sin(elevation)])
        start = (rng.uniform(-0.35, 0.6), rng.uniform(-0.3, 0.3), 1.2)
        out.append(CandidateAction(f"t{i}", "throw", "ball" if i % 2 == 0 else "cube",
                                   release_position_m=start, release_velocity_mps=tuple(v)))
    return tuple(out)


@pytest.mark.parametrize("mode, centre", [("first_contact", (2.0, 0.0, 0.0)), ("rest", (1.5, 0.0, 0.0))])
def test_agrees_with_the_analytic_backend(backend, analytic, mode, centre):
    target = TargetRegion(centre, 0.4, mode=mode)
    zone = KeepOutZone("lamp", (1.0, -0.7, 0.0), (1.2, -0.3, 0.9))
    request = RehearsalRequest(_scene(), _throws(3, 48), Criteria(target, (zone,), horizon_s=3.0))
    ours = Rehearser(backend).rehearse(request)
    theirs = Rehearser(analytic).rehearse(request)
    landing_errors, compared = [], 0
    for a, b in zip(ours.verdicts, theirs.verdicts):
        assert a.lands == b.lands, (a.action_id, a.reasons, b.reasons)
        if b.lands:
            landing_errors.append(np.linalg.norm(np.subtract(a.landing_point_m, b.landing_point_m)))
        # Verdicts must agree wherever the analytic prediction is clear of every decision boundary.
        near_target = np.isfinite(b.miss_distance_m) and abs(b.miss_distance_m - target.radius_m) <= 0.05
        near_zone = b.clearance_m <= 0.05
        if not (near_target or near_zone):
            compared += 1
            assert a.code == b.code, (a.action_id, a.reasons, b.reasons)
    assert compared >= 30
    assert any(v.go for v in theirs.verdicts) and not all(v.go for v in theirs.verdicts)
    assert max(landing_errors) <= 0.02, f"landing error p50 {np.median(landing_errors):.4f} m"


# ---------------------------------------------------------------------------- (c) determinism
def test_same_batch_same_result_whatever_the_chunking(backend, make_batch):
    x, v, k = random_throws(12, seed=3)
    batch = make_batch(x, v, drag=k, obstacles=(TABLE,), keep_out=(((1.0, -0.5, 0.0), (1.5, 0.5, 1.0)),),
                       horizon=3.0)
    first, again = backend.rollout(batch), backend.rollout(batch)
    with PyBulletBackend("cpu", workers=0) as local:
        inprocess = local.rollout(batch)
    for name in first.__dataclass_fields__:
        a = getattr(first, name)
        np.testing.assert_array_equal(a, getattr(again, name), err_msg=name)
        np.testing.assert_array_equal(a, getattr(inprocess, name), err_msg=name)


# ------------------------------------------------------------------ (d) table top, slide off
def test_drop_on_the_table_then_slide_off(backend, make_batch):
    # A cube let go 5 cm above the table top, moving 1.5 m/s towards the edge 0.3 m away.
    batch = make_batch([0.1, 0.0, 0.84], [1.5, 0.0, 0.0], half_extent=0.04, rolls=0.0, restitution=0.0,
                       friction=0.3, obstacles=((*TABLE, 0.5, 0.8),), horizon=3.0)
    r = backend.rollout(batch)
    kinds = list(r.event_kind[:r.event_count[0], 0])
    # First contact: the table top, at the free-fall time of 5 cm, centre one half-height up.
    assert kinds[0] == EVENT_OBSTACLE and r.event_index[0, 0] == 0
    assert r.landing_time_s[0] == pytest.approx(np.sqrt(2 * 0.05 / 9.81), abs=1e-3)
    assert r.landing_point_m[:, 0] == pytest.approx([0.1 + 1.5 * np.sqrt(0.1 / 9.81), 0.0, 0.79], abs=2e-3)
    # Then it slides off the edge and lands on the floor, beyond the table, and stops there.
    ground = [j for j, kind in enumerate(kinds) if kind == EVENT_GROUND]
    assert ground, kinds
    assert r.event_position_m[ground[0], 0, 0] > 0.4
    assert r.final_mode[0] == MODE_REST and r.final_position_m[2, 0] == pytest.approx(0.04, abs=2e-3)
    assert r.final_position_m[0, 0] > 0.4 + 0.04
    # The track slid along the table top: height 0.79 while over the table after landing.
    t = r.sample_times_s
    on_table = (t > r.landing_time_s[0] + 0.02) & (r.positions_m[:, 0, 0] < 0.4 - 0.04)
    assert on_table.any()
    np.testing.assert_allclose(r.positions_m[on_table, 2, 0], 0.79, atol=2e-3)


@pytest.mark.parametrize("rolling", ["force", "bullet"])
def test_a_sphere_slips_then_rolls_the_same_in_every_direction(rolling, make_batch):
    # Released on the floor without spin: slips at mu g while its spin gains 5/2 of that, rolls
    # from 5/7 of the speed on, then loses crr g. Closed form, no drag.
    v0, mu, crr, g = 2.0, 0.5, 0.05, 9.81
    t_slip = v0 / (3.5 * mu * g)
    distance = v0 * t_slip - 0.5 * mu * g * t_slip ** 2 + (5 / 7 * v0) ** 2 / (2 * crr * g)
    angles = np.radians([0.0, 30.0, 45.0])
    v = v0 * np.stack([np.cos(angles), np.sin(angles), np.zeros(3)], axis=1)
    with PyBulletBackend("cpu", workers=0, rolling=rolling) as b:
        r = b.rollout(make_batch([0.0, 0.0, 0.03], v, friction=mu, rolling_resistance=crr, horizon=5.0))
    travelled = np.hypot(r.final_position_m[0], r.final_position_m[1])
    heading = np.arctan2(r.final_position_m[1], r.final_position_m[0])
    assert np.all(r.final_mode == MODE_REST)
    if rolling == "force":
        np.testing.assert_allclose(travelled, distance, rtol=0.01)
        np.testing.assert_allclose(heading, angles, atol=1e-3)
    else:  # Bullet's rolling friction, clamped per world axis: the documented mismatch
        assert travelled[2] < 0.8 * distance and abs(heading[1] - angles[1]) > np.radians(5)


# -------------------------------------------------------------- (e) keep-out zones are ghosts
def test_keep_out_zone_never_deflects_the_path(backend, make_batch):
    x, v = [0.0, 0.0, 1.0], [4.0, 0.0, 2.0]
    zone = ((1.0, -0.5, 0.0), (1.4, 0.5, 3.0))  # a wall across the path
    free = backend.rollout(make_batch(x, v, drag=0.02, horizon=3.0))
    walled = backend.rollout(make_batch(x, v, drag=0.02, keep_out=(zone,), horizon=3.0))
    np.testing.assert_array_equal(walled.positions_m, free.positions_m)
    np.testing.assert_array_equal(walled.landing_point_m, free.landing_point_m)
    # Entered when the ball's leading face reaches x = 1.0 (interpolated inside the step).
    t_entry = walled.keep_out_entry_time_s[0, 0]
    track_x = np.interp(t_entry, free.sample_times_s, free.positions_m[:, 0, 0])
    assert track_x + 0.03 == pytest.approx(1.0, abs=2e-3)
    assert walled.keep_out_clearance_m[0, 0] == 0.0
    kinds = walled.event_kind[:, 0]
    assert EVENT_KEEP_OUT in kinds
    # A zone beside the path: never entered, the clearance is the smallest gap.
    beside = backend.rollout(make_batch(x, v, drag=0.02, keep_out=(((1.0, 0.23, 0.0), (1.4, 0.5, 3.0)),),
                                        horizon=3.0))
    assert np.isnan(beside.keep_out_entry_time_s[0, 0])
    assert beside.keep_out_clearance_m[0, 0] == pytest.approx(0.2, abs=1e-6)


# ------------------------------------------------------------------------------- plumbing
def test_registry_device_and_close():
    b = create_backend("pybullet", "cpu", workers=0)
    assert isinstance(b, PyBulletBackend) and b.name == "pybullet" and b.device == "cpu"
    on_gpu = PyBulletBackend("cuda", workers=0)
    assert on_gpu.device == "cpu"  # PyBullet has no GPU solver: it runs on the CPU and says so
    on_gpu.close()
    b.close()
    b.close()  # idempotent


def test_invalid_batch_is_rejected(backend, make_batch):
    batch = make_batch([0.0, 0.0, 1.0], [1.0, 0.0, 0.0])
    batch.velocity_mps[0, 0] = np.nan
    with pytest.raises(ValidationError):
        backend.rollout(batch)
    batch = make_batch([0.0, 0.0, 1.0], [1.0, 0.0, 0.0], release=-0.1)
    with pytest.raises(ValidationError, match="release_time_s"):
        backend.rollout(batch)


def test_step_divides_the_batch_step():
    b = PyBulletBackend("cpu", workers=0)
    assert b.step_s(1 / 60) == pytest.approx(1 / 960)
    assert b.step_s(1 / 240) == pytest.approx(1 / 960)
    assert PyBulletBackend("cpu", workers=0, max_step_s=1 / 2000).step_s(1 / 60) == pytest.approx(1 / 2040)
    with pytest.raises(ValidationError):
        PyBulletBackend("cpu", workers=0, max_step_s=0.0)
    with pytest.raises(ValidationError):
        PyBulletBackend("cpu", workers=0, no_such_option=1)


def test_a_dead_worker_is_a_backend_error_and_the_next_call_recovers(make_batch):
    batch = make_batch(*random_throws(4, seed=1)[:2], horizon=0.5)
    with PyBulletBackend("cpu", workers=1) as b:
        b.warmup()
        for worker in b._pool:  # the pool's own bookkeeping: test-only access
            os.kill(worker.proc.pid, signal.SIGKILL)
        with pytest.raises(BackendError, match="worker"):
            b.rollout(batch)
        assert np.isfinite(b.rollout(batch).positions_m).all()


def test_a_rollout_whose_numbers_break_down_is_marked_and_never_go(backend):
    """A light foam ball (drag factor 154 1/m) thrown at 60 m/s: PyBullet's explicit drag force
    outgrows its step and the numbers blow up. With no target and no zone nothing else could say
    NO-GO: that candidate must be a backend error, not GO."""
    foam = ObjectModel("foam", "sphere", (0.2, 0.0, 0.0), 0.001, drag_coefficient=2.0, position_m=(0.0, 0.0, 1.0))
    request = RehearsalRequest(Scene(Environment(), {"foam": foam}),
                               (CandidateAction("fast", "throw", "foam", (0.0, 0.0, 1.0), (60.0, 0.0, 0.0)),),
                               Criteria(None, (), horizon_s=1.0))
    out = Rehearser(backend).rehearse(request)
    assert out.verdicts[0].code.name == "NO_GO_BACKEND_ERROR"
    assert "non-finite" in out.verdicts[0].reasons[0]

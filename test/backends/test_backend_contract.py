"""The contract of ``backends.base`` checked on every registered backend.

Parametrised over ``world_irp_ros.backends.REGISTRY`` (a backend added there gets these tests
too) and the analytic backend's torch engine, the one its CUDA path runs. A backend that cannot
be created here (missing dependency, no device) is skipped and the reason is shown in the test
summary.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from world_irp_ros.backends import REGISTRY, create_backend
from world_irp_ros.backends.analytic import AnalyticBackend
from world_irp_ros.backends.base import (EVENT_GROUND, EVENT_NAMES, MAX_EVENTS, MODE_FLIGHT, MODE_REST,
                                         MODE_SUPPORTED, Backend, RolloutResult)

G = 9.81
TABLE = ((1.0, -0.5, 0.0), (2.0, 0.5, 0.75), 0.5, 1.0)
ZONES = [((3.0, -1.0, 0.0), (3.5, 1.0, 1.0)), ((-3.0, -1.0, 0.0), (-2.5, 1.0, 1.0))]


@pytest.fixture(scope="module", params=[*sorted(REGISTRY), "analytic:torch"])
def backend(request):
    try:
        if request.param == "analytic:torch":     # the engine the CUDA path runs, on the CPU
            return AnalyticBackend("cpu", engine="torch", warm=False)
        return create_backend(request.param, "cpu")
    except Exception as err:  # a backend that cannot run here is not this test's business
        pytest.skip(f"backend {request.param!r} cannot be created on this machine: {type(err).__name__}: {err}")


@pytest.fixture(scope="module")
def mixed_batch():
    from helpers_batches import make_batch

    pos = np.array([[0.0, 0.0, 1.2], [0.0, 0.0, 1.0], [1.5, 0.0, 0.78], [0.0, 0.0, 0.03], [0.0, 0.0, 50.0]])
    vel = np.array([[4.0, 0.5, 3.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    return make_batch(pos, vel, half_extent=[0.03, 0.03, 0.03, 0.03, 0.03], rolls=[1, 0, 0, 1, 1],
                      drag=[0.004, 0.0, 0.01, 0.0, 0.0], obstacles=[TABLE], keep_out=ZONES, horizon=1.0,
                      sample_times=np.linspace(0.0, 1.0, 31))


def test_satisfies_the_protocol(backend):
    assert isinstance(backend, Backend)
    assert backend.name in REGISTRY and backend.device == "cpu"
    backend.warmup()


def test_shapes_and_dtypes(backend, mixed_batch):
    res = backend.rollout(mixed_batch)
    assert isinstance(res, RolloutResult)
    n, t, z, e = 5, 31, len(ZONES), MAX_EVENTS
    shapes = {"sample_times_s": (t,), "positions_m": (t, 3, n), "velocities_mps": (t, 3, n), "landing_time_s": (n,),
              "landing_point_m": (3, n), "rest_time_s": (n,), "final_position_m": (3, n), "final_mode": (n,),
              "keep_out_entry_time_s": (z, n), "keep_out_clearance_m": (z, n), "event_count": (n,),
              "event_kind": (e, n), "event_index": (e, n), "event_time_s": (e, n), "event_position_m": (e, 3, n)}
    for name, shape in shapes.items():
        value = getattr(res, name)
        assert isinstance(value, np.ndarray), name
        assert value.shape == shape, (name, value.shape)
        integer = name in ("final_mode", "event_count", "event_kind", "event_index")
        assert value.dtype.kind == ("i" if integer else "f"), (name, value.dtype)
        if not integer:
            assert value.dtype == np.float64, name
    np.testing.assert_array_equal(res.sample_times_s, mixed_batch.sample_times_s)
    for name in ("positions_m", "velocities_mps", "final_position_m", "keep_out_clearance_m"):
        assert np.all(np.isfinite(getattr(res, name))), name
    assert set(np.unique(res.final_mode)) <= {MODE_FLIGHT, MODE_SUPPORTED, MODE_REST}


def test_nan_conventions(backend, mixed_batch):
    res = backend.rollout(mixed_batch)
    never = 4                                    # thrown up from 50 m: no contact within 1 s
    assert np.isnan(res.landing_time_s[never]) and np.all(np.isnan(res.landing_point_m[:, never]))
    assert np.isnan(res.rest_time_s[never]) and res.final_mode[never] == MODE_FLIGHT
    assert res.event_count[never] == 0
    landed = ~np.isnan(res.landing_time_s)
    assert np.all(np.isfinite(res.landing_point_m[:, landed]))
    stored = np.minimum(res.event_count, MAX_EVENTS)
    for i in range(res.event_count.shape[0]):
        unused = np.arange(MAX_EVENTS) >= stored[i]
        assert np.all(res.event_kind[unused, i] == -1)
        assert np.all(np.isnan(res.event_time_s[unused, i]))
        assert np.all(np.isnan(res.event_position_m[unused, :, i]))
        assert np.all(np.isfinite(res.event_time_s[~unused, i]))
    entered = ~np.isnan(res.keep_out_entry_time_s)
    assert np.all(res.keep_out_clearance_m[entered] == 0.0)
    assert np.all(res.keep_out_clearance_m >= 0.0)
    resting = res.final_mode == MODE_REST
    assert np.all(np.isfinite(res.rest_time_s[resting])) and np.all(np.isnan(res.rest_time_s[~resting]))


def test_deterministic(backend, mixed_batch):
    a = backend.rollout(mixed_batch)
    b = backend.rollout(mixed_batch)
    for name in RolloutResult.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_events_in_time_order(backend, mixed_batch):
    res = backend.rollout(mixed_batch)
    for i in range(res.event_count.shape[0]):
        k = min(int(res.event_count[i]), MAX_EVENTS)
        times = res.event_time_s[:k, i]
        assert np.all(np.diff(times) >= 0.0), times
        assert all(int(kind) in EVENT_NAMES for kind in res.event_kind[:k, i])
        assert np.all(times >= mixed_batch.release_time_s[i]) and np.all(times <= mixed_batch.horizon_s)
        if k:
            first_contact = [j for j in range(k) if res.event_kind[j, i] in (0, 1)]
            if first_contact:
                assert res.landing_time_s[i] == res.event_time_s[first_contact[0], i]


@pytest.mark.parametrize("horizon", [0.19, 0.2, 0.21, 1.05, 2.2])
def test_final_state_is_the_state_at_the_horizon(backend, make_batch, horizon):
    """Whatever the rounding of the step grid against the horizon (0.2 s: the last step ends an
    ulp short of it), the final position is where the object is at the horizon."""
    res = backend.rollout(make_batch((0.0, 0.0, 30.0), (2.0, 0.0, 0.0), drag=0.0, horizon=horizon,
                                     sample_times=np.array([0.0, horizon])))
    fall = 30.0 - 0.5 * G * horizon ** 2
    assert res.final_position_m[:, 0] == pytest.approx([2.0 * horizon, 0.0, fall], abs=0.03)   # PyBullet: Euler
    np.testing.assert_allclose(res.positions_m[-1, :, 0], res.final_position_m[:, 0], atol=1e-9)
    assert res.velocities_mps[-1, 2, 0] == pytest.approx(-G * horizon, abs=0.02)


def test_drop_lands_at_free_fall_time(backend, make_batch):
    h, he = 1.0, 0.03
    res = backend.rollout(make_batch((0.0, 0.0, h + he), half_extent=he, drag=0.0, horizon=1.0))
    assert abs(res.landing_time_s[0] - math.sqrt(2 * h / G)) <= 1e-3
    assert res.event_kind[0, 0] == EVENT_GROUND


def test_a_zone_touched_at_release_is_still_watched(backend, make_batch):
    """Clearance 0 at the release is a touch, not an entry, and must not end the zone's watch: a
    throw up into a zone whose floor the object touches (sphere top at 1.03 m), or sideways into
    one touching its side, enters it within the first step."""
    up = ((-0.5, -0.5, 1.03), (0.5, 0.5, 1.5))
    side = ((0.03, -0.5, 0.0), (0.5, 0.5, 1.5))
    thin = ((0.03, 2.0, 0.0), (0.031, 3.0, 2.0))   # 1 mm thick: a fast chord crosses it whole in one step
    res = backend.rollout(make_batch([(0.0, 0.0, 1.0), (0.0, 0.0, 1.0), (0.0, 2.5, 1.0)],
                                     [(0.5, 0.0, 2.0), (2.0, 0.0, 0.0), (5.0, 0.0, 0.0)],
                                     drag=0.0, keep_out=[up, side, thin], horizon=0.5))
    for zone, rollout in ((0, 0), (1, 1), (2, 2)):
        assert res.keep_out_entry_time_s[zone, rollout] <= 0.02, (zone, rollout)
        assert res.keep_out_clearance_m[zone, rollout] == 0.0


def test_release_overlapping_a_box_on_the_floor_goes_out_sideways(backend, make_batch):
    """A flat object (half height 2.5 mm) perceived 6 mm into the side of a crate that stands on
    the floor: the nearest face is the crate's bottom, but leaving through it would put the object
    under the floor, and the floor lift back inside the crate; it leaves through the side."""
    crate = [((0.0, -0.5, 0.0), (1.0, 0.5, 0.5))]
    res = backend.rollout(make_batch([-0.044, 0.0, 0.0025], half_extent=(0.05, 0.05, 0.0025), rolls=0.0,
                                     obstacles=crate, horizon=0.5))
    assert res.positions_m[0, :, 0] == pytest.approx([-0.05, 0.0, 0.0025], abs=1e-4)


def test_rejects_an_invalid_batch(backend, make_batch):
    batch = make_batch((0.0, 0.0, 1.0))
    batch.velocity_mps = np.zeros((3, 2))
    with pytest.raises(ValueError):
        backend.rollout(batch)
    batch = make_batch((0.0, 0.0, 1.0))
    batch.position_m = np.array([[0.0], [0.0], [np.nan]])
    with pytest.raises(ValueError):
        backend.rollout(batch)

"""The analytic backend against closed-form answers of the model in docs/physics.md.

In vacuum RK4 integrates constant acceleration exactly and the Hermite cubic of a step holds a
parabola exactly, so flight, contact times and keep-out entries must match the formulas to
rounding; Coulomb sliding and the slip-to-roll transition are also exact (constant deceleration).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from world_irp_ros.backends.base import (EVENT_GROUND, EVENT_KEEP_OUT, EVENT_OBSTACLE, EVENT_REST, MODE_FLIGHT,
                                         MODE_REST, MODE_SUPPORTED)
from world_irp_ros.physics.model import V_BOUNCE_STOP, V_REST

G = 9.81
H = 0.03   # default half extent of the test sphere


def events(result, i):
    """(kind, index, time, position) of the recorded events of rollout ``i``."""
    n = min(int(result.event_count[i]), result.event_kind.shape[0])
    return [(int(result.event_kind[e, i]), int(result.event_index[e, i]), float(result.event_time_s[e, i]),
             result.event_position_m[e, :, i]) for e in range(n)]


def test_vacuum_range_and_time_of_flight(analytic, make_batch):
    z0 = np.array([1.0, 1.5, 0.3, 2.0, 1.2])
    vel = np.array([[3.0, 0.0, 4.0], [7.0, 2.0, 1.0], [5.0, -3.0, 6.0], [10.0, 0.0, -1.0], [0.5, 0.5, 9.0]])
    pos = np.stack([np.zeros(5), np.zeros(5), z0], axis=1)
    res = analytic.rollout(make_batch(pos, vel, horizon=3.0))
    t_land = (vel[:, 2] + np.sqrt(vel[:, 2] ** 2 + 2 * G * (z0 - H))) / G
    np.testing.assert_allclose(res.landing_time_s, t_land, rtol=0, atol=1e-10)
    np.testing.assert_allclose(res.landing_point_m[0], vel[:, 0] * t_land, rtol=0, atol=1e-9)
    np.testing.assert_allclose(res.landing_point_m[1], vel[:, 1] * t_land, rtol=0, atol=1e-9)
    np.testing.assert_allclose(res.landing_point_m[2], H, rtol=0, atol=1e-12)
    # Samples before landing lie on the parabola.
    t = res.sample_times_s
    for i in range(5):
        before = t < t_land[i]
        tb = t[before]
        np.testing.assert_allclose(res.positions_m[before, 2, i], z0[i] + vel[i, 2] * tb - G * tb ** 2 / 2, atol=1e-10)
        np.testing.assert_allclose(res.velocities_mps[before, 2, i], vel[i, 2] - G * t[before], atol=1e-10)
    assert [events(res, i)[0][0] for i in range(5)] == [EVENT_GROUND] * 5


def test_bounce_apex_is_h_e_squared(analytic, make_batch):
    h, e = 1.0, 0.6
    v_hit = math.sqrt(2 * G * h)
    t1 = math.sqrt(2 * h / G)
    t_apex = t1 + e * v_hit / G
    samples = np.sort(np.append(np.linspace(0.0, 2.0, 61), t_apex))
    res = analytic.rollout(make_batch((0.0, 0.0, h + H), restitution=e, horizon=2.0, sample_times=samples))
    k = int(np.flatnonzero(samples == t_apex)[0])
    assert res.positions_m[k, 2, 0] - H == pytest.approx(h * e * e, abs=1e-9)
    assert res.velocities_mps[k, 2, 0] == pytest.approx(0.0, abs=1e-9)
    ev = events(res, 0)
    assert ev[0][0] == EVENT_GROUND and ev[0][2] == pytest.approx(t1, abs=1e-10)
    assert ev[1][0] == EVENT_GROUND and ev[1][2] == pytest.approx(t1 + 2 * e * v_hit / G, abs=1e-9)
    # Bouncing ends when the rebound speed drops below V_BOUNCE_STOP: count the impacts.
    impacts, v, t_last, t = 0, v_hit, 0.0, t1
    while True:
        impacts += 1
        t_last = t
        if e * v < V_BOUNCE_STOP:
            break
        t += 2 * e * v / G
        v *= e
    assert [k for k, *_ in ev] == [EVENT_GROUND] * impacts + [EVENT_REST]
    assert res.rest_time_s[0] == pytest.approx(t_last, abs=1e-8)
    assert res.final_mode[0] == MODE_REST
    np.testing.assert_allclose(res.final_position_m[:, 0], [0.0, 0.0, H], atol=1e-12)


@pytest.mark.parametrize("direction", [(1.0, 0.0), (0.6, -0.8)])
def test_box_sliding_stops_after_v2_over_2_mu_g(analytic, make_batch, direction):
    v0, mu, ground_mu = 3.0, 0.4, 0.75
    d = np.array(direction)
    res = analytic.rollout(make_batch((0.0, 0.0, 0.05), (v0 * d[0], v0 * d[1], 0.0), half_extent=0.05, rolls=0.0,
                                      friction=mu, ground_friction=ground_mu, horizon=2.0))
    a = mu * ground_mu * G
    assert res.final_mode[0] == MODE_REST
    assert res.rest_time_s[0] == pytest.approx(v0 / a, abs=1e-12)
    np.testing.assert_allclose(res.final_position_m[:2, 0], d * v0 ** 2 / (2 * a), atol=1e-12)
    t = res.sample_times_s
    moving = t < v0 / a
    np.testing.assert_allclose(res.positions_m[moving, 0, 0], d[0] * (v0 * t[moving] - a * t[moving] ** 2 / 2),
                               atol=1e-12)
    np.testing.assert_allclose(res.velocities_mps[~moving, :, 0], 0.0, atol=0)
    assert [k for k, *_ in events(res, 0)] == [EVENT_GROUND, EVENT_REST]
    assert res.landing_time_s[0] == 0.0


def test_sphere_slips_then_rolls_at_five_sevenths(analytic, make_batch):
    v0, mu = 3.0, 0.3
    res = analytic.rollout(make_batch((0.0, 0.0, H), (v0, 0.0, 0.0), friction=mu, rolling_resistance=0.0,
                                      horizon=2.0))
    t_slip = 2 * v0 / (7 * mu * G)
    x_slip = v0 * t_slip - mu * G * t_slip ** 2 / 2
    assert res.final_mode[0] == MODE_SUPPORTED and np.isnan(res.rest_time_s[0])
    assert res.velocities_mps[-1, 0, 0] == pytest.approx(5 / 7 * v0, abs=1e-12)
    assert res.final_position_m[0, 0] == pytest.approx(x_slip + 5 / 7 * v0 * (2.0 - t_slip), abs=1e-10)
    t = res.sample_times_s
    slip = t < t_slip
    np.testing.assert_allclose(res.velocities_mps[slip, 0, 0], v0 - mu * G * t[slip], atol=1e-12)


def test_rolling_resistance_stops_a_rolling_sphere(analytic, make_batch):
    v0, mu, crr = 3.0, 0.3, 0.05
    res = analytic.rollout(make_batch((0.0, 0.0, H), (v0, 0.0, 0.0), friction=mu, rolling_resistance=crr,
                                      horizon=5.0))
    t_slip = 2 * v0 / (7 * mu * G)
    v_roll = 5 / 7 * v0
    assert res.rest_time_s[0] == pytest.approx(t_slip + v_roll / (crr * G), abs=1e-10)
    x = v0 * t_slip - mu * G * t_slip ** 2 / 2 + v_roll ** 2 / (2 * crr * G)
    assert res.final_position_m[0, 0] == pytest.approx(x, abs=1e-10)


def test_rest_threshold(analytic, make_batch):
    mu = 0.3
    v_in = np.array([0.8e-3, 1.2e-3, 1.5e-3])
    res = analytic.rollout(make_batch(np.tile([0.0, 0.0, H], (3, 1)), np.stack([v_in, 0 * v_in, 0 * v_in], 1),
                                      friction=mu, horizon=1.0))
    # Slower than V_REST when set down: at rest at once.
    assert res.rest_time_s[0] == 0.0 and res.final_mode[0] == MODE_REST
    # 5/7 of 1.2 mm/s is below V_REST: at rest when slipping ends; 5/7 of 1.5 mm/s rolls on.
    assert 5 / 7 * v_in[1] < V_REST < 5 / 7 * v_in[2]
    assert res.rest_time_s[1] == pytest.approx(2 * v_in[1] / (7 * mu * G), abs=1e-12)
    assert res.final_mode[2] == MODE_SUPPORTED and np.isnan(res.rest_time_s[2])
    # Drag alone (no friction, no rolling resistance): rest once the speed falls below V_REST.
    v0, k = 0.02, 200.0
    res = analytic.rollout(make_batch((0.0, 0.0, 0.05), (v0, 0.0, 0.0), half_extent=0.05, rolls=0.0, friction=0.0,
                                      drag=k, horizon=6.0))
    t_star = (v0 / V_REST - 1.0) / (k * v0)          # v(t) = v0 / (1 + k v0 t)
    assert t_star <= res.rest_time_s[0] <= t_star + 1.0 / 60.0
    assert res.final_position_m[0, 0] == pytest.approx(math.log1p(k * v0 * res.rest_time_s[0]) / k, abs=1e-8)


def test_lands_on_a_table_slides_off_its_edge_and_falls(analytic, make_batch):
    table = ((1.0, -0.5, 0.0), (2.0, 0.5, 0.75), 1.0, 1.0)
    he, mu, v0, x0 = 0.05, 0.3, 3.0, 1.2
    res = analytic.rollout(make_batch((x0, 0.0, 0.75 + he), (v0, 0.0, 0.0), half_extent=he, rolls=0.0, friction=mu,
                                      restitution=0.0, obstacles=[table], horizon=2.0))
    x_edge = 2.0 + he                                  # the box no longer overlaps the top face
    v_edge = math.sqrt(v0 ** 2 - 2 * mu * G * (x_edge - x0))
    t_edge = (v0 - v_edge) / (mu * G)
    t_fall = math.sqrt(2 * 0.75 / G)
    ev = events(res, 0)
    assert (ev[0][0], ev[0][1], ev[0][2]) == (EVENT_OBSTACLE, 0, 0.0)
    assert ev[1][0] == EVENT_GROUND
    assert ev[1][2] == pytest.approx(t_edge + t_fall, abs=1e-10)
    np.testing.assert_allclose(ev[1][3], [x_edge + v_edge * t_fall, 0.0, he], atol=1e-9)
    # On the table until the edge, then a parabola.
    t = res.sample_times_s
    on = t < t_edge
    np.testing.assert_allclose(res.positions_m[on, 2, 0], 0.75 + he, atol=0)
    falling = (t > t_edge) & (t < t_edge + t_fall)
    np.testing.assert_allclose(res.positions_m[falling, 2, 0], 0.75 + he - G * (t[falling] - t_edge) ** 2 / 2,
                               atol=1e-10)


def test_throw_onto_a_table_lands_on_its_top(analytic, make_batch):
    table = ((1.0, -0.5, 0.0), (2.0, 0.5, 0.75))
    vx, vz, z0 = 3.0, 2.0, 1.0
    res = analytic.rollout(make_batch((0.0, 0.0, z0), (vx, 0.0, vz), obstacles=[table], horizon=1.0))
    t = (vz + math.sqrt(vz ** 2 + 2 * G * (z0 - 0.75 - H))) / G
    assert res.landing_time_s[0] == pytest.approx(t, abs=1e-10)
    np.testing.assert_allclose(res.landing_point_m[:, 0], [vx * t, 0.0, 0.75 + H], atol=1e-9)
    assert events(res, 0)[0][:2] == (EVENT_OBSTACLE, 0)


def test_side_face_reflects_the_normal_component(analytic, make_batch):
    wall = ((1.0, -2.0, 0.0), (1.2, 2.0, 3.0), 1.0, 1.0)
    e = 0.5
    res = analytic.rollout(make_batch((0.0, 0.0, 2.0), (4.0, 1.0, 0.0), restitution=e, obstacles=[wall],
                                      horizon=0.4))
    t_hit = (1.0 - H) / 4.0
    assert res.landing_time_s[0] == pytest.approx(t_hit, abs=1e-12)
    after = res.sample_times_s > t_hit
    np.testing.assert_allclose(res.velocities_mps[after, 0, 0], -e * 4.0, atol=1e-12)
    np.testing.assert_allclose(res.velocities_mps[after, 1, 0], 1.0, atol=1e-12)
    np.testing.assert_allclose(res.velocities_mps[after, 2, 0], -G * res.sample_times_s[after], atol=1e-10)


def test_keep_out_entry_located_inside_the_step_and_never_deflects(analytic, make_batch):
    vx, vz, z0 = 4.0, 3.0, 1.0
    wall_zone = ((1.0, -1.0, 0.0), (1.2, 1.0, 3.0))     # entered through its side (x face)
    low_zone = ((2.5, -1.0, 0.0), (3.5, 1.0, 0.5))      # entered through its top, falling
    high_zone = ((-5.0, -1.0, 1.7), (5.0, 1.0, 2.0))    # above the apex: never entered
    base = dict(position=(0.0, 0.0, z0), velocity=(vx, 0.0, vz), horizon=1.5)
    res = analytic.rollout(make_batch(**base, keep_out=[wall_zone, low_zone, high_zone]))
    free = analytic.rollout(make_batch(**base))
    t_wall = (1.0 - H) / vx
    t_low = (vz + math.sqrt(vz ** 2 + 2 * G * (z0 - 0.5 - H))) / G
    assert 2.5 - H < vx * t_low < 3.5 + H
    dt = 1.0 / 60.0
    assert 1e-3 < t_wall % dt < dt - 1e-3 and 1e-3 < t_low % dt < dt - 1e-3   # strictly inside a step
    assert res.keep_out_entry_time_s[0, 0] == pytest.approx(t_wall, abs=1e-12)
    assert res.keep_out_entry_time_s[1, 0] == pytest.approx(t_low, abs=1e-10)
    assert np.isnan(res.keep_out_entry_time_s[2, 0])
    np.testing.assert_allclose(res.keep_out_clearance_m[:2, 0], 0.0, atol=0)
    # Clearance to the zone above the apex; the closest approach is found on the step's chord,
    # which lies at most g dt^2 / 8 (0.34 mm) below the parabola.
    apex = z0 + vz ** 2 / (2 * G)
    assert res.keep_out_clearance_m[2, 0] == pytest.approx(1.7 - apex - H, abs=G * dt * dt / 8 + 1e-9)
    assert res.keep_out_clearance_m[2, 0] >= 1.7 - apex - H - 1e-12
    # Zones are not bodies: the path is exactly the one without them.
    np.testing.assert_array_equal(res.positions_m, free.positions_m)
    np.testing.assert_array_equal(res.landing_time_s, free.landing_time_s)
    kinds = [k for k, *_ in events(res, 0)]
    assert kinds[:3] == [EVENT_KEEP_OUT, EVENT_KEEP_OUT, EVENT_GROUND]
    assert [i for _, i, *_ in events(res, 0)][:2] == [0, 1]


def test_release_time_shifts_the_motion(analytic, make_batch):
    vel = (3.0, 1.0, 4.0)
    delay = 0.37
    res = analytic.rollout(make_batch(np.array([[0.0, 0.0, 1.0]] * 2), np.array([vel] * 2),
                                      release=[0.0, delay], horizon=3.0))
    assert res.landing_time_s[1] - delay == pytest.approx(res.landing_time_s[0], abs=1e-12)
    np.testing.assert_allclose(res.landing_point_m[:, 1], res.landing_point_m[:, 0], atol=1e-12)
    before = res.sample_times_s < delay
    np.testing.assert_allclose(res.positions_m[before, :, 1], np.array([[0.0, 0.0, 1.0]] * before.sum()))
    np.testing.assert_allclose(res.velocities_mps[before, :, 1], 0.0)


def test_not_released_within_the_horizon_stays_put(analytic, make_batch):
    res = analytic.rollout(make_batch((0.0, 0.0, 1.0), (3.0, 0.0, 0.0), release=5.0, horizon=2.0))
    np.testing.assert_allclose(res.positions_m[:, :, 0], np.tile([0.0, 0.0, 1.0], (res.positions_m.shape[0], 1)))
    assert np.isnan(res.landing_time_s[0]) and res.event_count[0] == 0
    assert res.final_mode[0] == MODE_FLIGHT


def test_contact_on_a_step_boundary_samples_cleanly(analytic, make_batch):
    """Landing exactly at a step's end (t = 0.6 s = 36/60) with a sample there: no spurious velocity."""
    res = analytic.rollout(make_batch((1.0, 0.0, 0.125), (0.5, 0.0, 1.5), half_extent=0.125, rolls=0.0, restitution=0.0,
                                      friction=0.0, ground_restitution=0.0, ground_friction=0.0, gravity=(0.0, 0.0, -5.0),
                                      horizon=1.0, sample_times=np.linspace(0.0, 1.0, 41)))
    assert res.landing_time_s[0] == pytest.approx(0.6, abs=1e-12)
    np.testing.assert_allclose(res.velocities_mps[:, 0, 0], 0.5, atol=1e-9)
    k = 24                                            # t = 0.6: the pre-impact velocity
    np.testing.assert_allclose(res.velocities_mps[k, :, 0], [0.5, 0.0, -1.5], atol=1e-9)


def test_impact_rules_on_plain_numbers():
    """The model's functions also run on plain floats: the impact rules of docs/physics.md."""
    from world_irp_ros.physics.model import impact_up, reflect

    # Sphere without spin, much friction: the centre loses 2/7 of its speed, the spin takes 5/7.
    vx, vy, vz, w, settle = impact_up(3.0, 0.0, -4.0, 0.0, 0.5, 10.0, True)
    assert (vx, vy, vz, settle) == (pytest.approx(15 / 7), 0.0, 2.0, False) and w == pytest.approx(15 / 7)
    # Box: Coulomb, at most mu (1 + e) |v_n|.
    vx, _, vz, _, _ = impact_up(3.0, 0.0, -4.0, 0.0, 0.5, 0.2, False)
    assert vx == pytest.approx(3.0 - 0.2 * 1.5 * 4.0) and vz == 2.0
    # ... never reversing.
    assert impact_up(0.5, 0.0, -4.0, 0.0, 0.5, 5.0, False)[0] == 0.0
    # A rebound below V_BOUNCE_STOP ends bouncing.
    _, _, vz, _, settle = impact_up(1.0, 0.0, -0.2, 0.0, 0.5, 0.5, False)
    assert settle and vz == 0.0
    # Side face (outward normal -x): reflect with restitution when approaching only.
    assert reflect(2.0, -1.0, 0.5) == -1.0 and reflect(-2.0, -1.0, 0.5) == -2.0
    # A sphere with backspin landing hard reverses (the contact point stops slipping) and then
    # rolls back: its spin, measured along the new direction, equals its speed.
    vx, _, _, w, _ = impact_up(0.643, 0.0, -3.8, -2.143, 0.025, 0.5, True)
    assert vx < 0.0 and w == pytest.approx(-vx)


def test_pushed_out_of_a_box_on_the_floor_it_meets_the_box(analytic, make_batch):
    """Released 6 mm into the side of a crate on the floor (it leaves through the side, see
    test_backend_contract) and pushed towards it: it meets its face instead of sliding through."""
    crate = [((0.0, -0.5, 0.0), (1.0, 0.5, 0.5))]
    res = analytic.rollout(make_batch([-0.044, 0.0, 0.0025], [2.0, 0.0, 0.0], half_extent=(0.05, 0.05, 0.0025),
                                      rolls=0.0, friction=0.1, obstacles=crate, horizon=2.0))
    assert res.final_position_m[0, 0] <= -0.05 + 1e-9 and EVENT_OBSTACLE in res.event_kind[:, 0]


def test_a_step_longer_than_the_shortest_hop_is_refused(analytic, make_batch):
    """With dt above 2 V_BOUNCE_STOP / |g| a last hop could start and land inside one step and be
    lost (taken for a contact at its start): the model refuses such a batch with the reason."""
    from world_irp_ros.errors import ValidationError

    with pytest.raises(ValidationError, match="shortest hop"):
        analytic.rollout(make_batch([0.0, 0.0, 1.0], dt=0.05))
    analytic.rollout(make_batch([0.0, 0.0, 1.0], dt=0.03))

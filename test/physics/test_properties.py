"""Properties of the model on random scenes (Hypothesis).

* No energy gain: without external forces besides gravity, the mechanical energy per unit mass
  (1/2 |v|^2 - g . p) never increases along a trajectory (impacts, friction and drag only remove
  energy; a sphere's spin is not counted, and the model never turns spin back into translation).
* Results do not depend on where a rollout sits in a batch or on the batch size.
* The torch engine (the CUDA code path, here on the CPU), eager and as the sync-free loop a CUDA
  graph holds, equals the numba kernel.
* The kernel's vectorised fast path changes nothing (every step through the shared slow path
  gives the same answers).
"""
from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers_batches import make_batch, result_columns, subset, torch_rollout

G = 9.81
# HYPOTHESIS_EXAMPLES=400 ./run test test/physics/test_properties.py searches harder (default: quick).
EXAMPLES = os.environ.get("HYPOTHESIS_EXAMPLES")
TABLE = ((1.0, -0.6, 0.0), (2.0, 0.6, 0.75), 0.6, 0.8)
ZONE = ((2.5, -0.5, 0.0), (3.0, 0.5, 0.6))


@st.composite
def scenes(draw, max_n=6, horizon=1.5):
    """A random batch: throws, drops and pushes of spheres and boxes, maybe a table and a zone."""
    n = draw(st.integers(1, max_n))
    f = st.floats
    pos, vel, he, rolls, drag, e, mu, crr, rel = [], [], [], [], [], [], [], [], []
    for _ in range(n):
        h = draw(f(0.01, 0.1))
        kind = draw(st.sampled_from(["throw", "drop", "push"]))
        if kind == "push":
            p = (draw(f(-1.0, 3.0)), draw(f(-1.0, 1.0)), h)
            v = (draw(f(-4.0, 4.0)), draw(f(-4.0, 4.0)), 0.0)
        else:
            p = (draw(f(-1.0, 1.0)), draw(f(-1.0, 1.0)), draw(f(h, 2.5)))
            v = (0.0, 0.0, 0.0) if kind == "drop" else (draw(f(-8.0, 8.0)), draw(f(-8.0, 8.0)), draw(f(-5.0, 9.0)))
        pos.append(p)
        vel.append(v)
        he.append(h)
        rolls.append(float(draw(st.booleans())))
        drag.append(draw(st.sampled_from([0.0, draw(f(0.0, 0.06))])))
        e.append(draw(f(0.0, 1.0)))
        mu.append(draw(f(0.0, 1.2)))
        crr.append(draw(f(0.0, 0.1)))
        rel.append(draw(st.sampled_from([0.0, draw(f(0.0, 0.5))])))
    obstacles = [TABLE] if draw(st.booleans()) else []
    zones = [ZONE] if draw(st.booleans()) else []
    return make_batch(np.array(pos), np.array(vel), half_extent=np.array(he), rolls=rolls, drag=drag,
                      restitution=e, friction=mu, rolling_resistance=crr, release=rel, obstacles=obstacles,
                      keep_out=zones, ground_restitution=draw(f(0.3, 1.0)), ground_friction=draw(f(0.3, 1.0)),
                      horizon=horizon, sample_times=np.linspace(0.0, horizon, 181))


def examples(default: int) -> int:
    return int(EXAMPLES) if EXAMPLES else default


def assert_same(a, b, atol=1e-12, rtol=1e-12):
    for name in a:
        x, y = np.asarray(a[name]), np.asarray(b[name])
        if x.dtype.kind in "iu":
            np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            np.testing.assert_allclose(x, y, atol=atol, rtol=rtol, equal_nan=True, err_msg=name)


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=scenes())
def test_no_energy_gain(analytic, batch):
    res = analytic.rollout(batch)
    g = batch.gravity_mps2
    t = res.sample_times_s
    energy = 0.5 * np.sum(res.velocities_mps ** 2, axis=1) - np.einsum("k,tkn->tn", g, res.positions_m)
    for i in range(batch.size):
        e = energy[t >= batch.release_time_s[i], i]
        rise = np.diff(e)
        assert np.all(rise <= 1e-7 * (1.0 + np.abs(e[:-1]))), (i, rise.max())
    assert np.all(res.final_position_m[2] - batch.half_extent_m[2] >= batch.ground_height_m - 1e-12)


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=scenes(), data=st.data())
def test_independent_of_batch_order_and_size(analytic, batch, data):
    n = batch.size
    order = np.array(data.draw(st.permutations(range(n))))
    pad = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=0, max_size=70)), dtype=int)
    index = np.concatenate([order, pad])          # shuffled, then padded with copies (other blocks)
    base = analytic.rollout(batch)
    other = analytic.rollout(subset(batch, index))
    for j in range(n):
        positions = np.flatnonzero(index == j)
        for p in positions:
            assert_same(result_columns(base, [j]), result_columns(other, [p]))


@settings(max_examples=examples(15), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=scenes(max_n=5))
def test_torch_engine_equals_numba_engine(analytic, analytic_torch, batch):
    a = result_columns(analytic.rollout(batch), np.arange(batch.size))
    b = result_columns(analytic_torch.rollout(batch), np.arange(batch.size))
    assert_same(a, b, atol=1e-9, rtol=1e-9)


@settings(max_examples=examples(10), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=scenes(max_n=5))
def test_the_loop_a_cuda_graph_holds_equals_numba_engine(analytic, batch):
    """The torch engine's sync-free loop (fixed passes per step, the CUDA graph's content)."""
    a = result_columns(analytic.rollout(batch), np.arange(batch.size))
    b = result_columns(torch_rollout(batch, "fixed"), np.arange(batch.size))
    assert_same(a, b, atol=1e-9, rtol=1e-9)


@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=scenes())
def test_fast_path_changes_nothing(analytic, batch):
    from world_irp_ros.backends.analytic import AnalyticBackend

    slow = AnalyticBackend("cpu", fast_path=False, warm=False)
    n = np.arange(batch.size)
    assert_same(result_columns(analytic.rollout(batch), n), result_columns(slow.rollout(batch), n),
                atol=1e-12, rtol=1e-12)

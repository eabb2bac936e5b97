"""The simulated world: deterministic, drag really acts, laptop contacts are counted."""
from __future__ import annotations

import numpy as np
import pytest

from world_irp_ros.scene import CandidateAction
from world_irp_ros.simulation import SIM_DT_S, SimWorld


def _throw(velocity, seed=0, steps=90, perceptions=0):
    world = SimWorld(seed=seed)
    try:
        world.step(0.2)
        for _ in range(perceptions):
            world.perceived()
        world.execute(CandidateAction("a", "throw", "pumice", (0.3, 0.0, 1.2), velocity))
        track = []
        for _ in range(steps):
            world.step(1.0 / 60.0)
            track.append(world.state("pumice")[0])
        return np.array(track), world.laptop_contacts
    finally:
        world.close()


def test_same_seed_same_world():
    a, _ = _throw((4.0, 0.0, 2.0), seed=3)
    b, _ = _throw((4.0, 0.0, 2.0), seed=3)
    assert np.array_equal(a, b)


def test_the_actuator_noise_does_not_depend_on_how_often_the_world_was_perceived():
    a, _ = _throw((4.0, 0.0, 2.0), seed=3)
    b, _ = _throw((4.0, 0.0, 2.0), seed=3, perceptions=7)
    c, _ = _throw((4.0, 0.0, 2.0), seed=4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)                 # the seed does draw the actuator's noise


def test_drag_shortens_the_throw_against_vacuum():
    track, _ = _throw((5.0, 0.0, 2.0), steps=40)
    # Vacuum position after 40/60 s (the release noise is 2 cm/s, far below the drag effect).
    t = 40 / 60
    assert track[-1][0] < 0.3 + 5.0 * t - 0.05


def test_hitting_the_laptop_is_counted():
    # Aimed at the laptop's box (x 3.0-3.35, y 0.25-0.5 on the floor).
    _, contacts = _throw((5.0, 0.5, 1.0), steps=150)
    assert contacts > 0


def test_advance_to_keeps_the_world_on_the_clock():
    """A late tick steps the world to the clock's time in whole physics steps, at most max_step_s."""
    world = SimWorld(seed=0)
    try:
        assert abs(world.advance_to(0.05, max_step_s=0.25)) <= 0.5 * SIM_DT_S
        before = world.time_s
        assert world.advance_to(before + 0.1 * SIM_DT_S, max_step_s=0.25) > 0.0    # not due yet: no step
        assert world.time_s == before
        assert world.advance_to(1.0, max_step_s=0.25) == pytest.approx(1.0 - before - 0.25, abs=SIM_DT_S)
    finally:
        world.close()

"""The simulated world: deterministic, drag really acts, laptop contacts are counted."""
from __future__ import annotations

import numpy as np

from world_irp_ros.scene import CandidateAction
from world_irp_ros.simulation import SimWorld


def _throw(velocity, seed=0, steps=90):
    world = SimWorld(seed=seed)
    try:
        world.step(0.2)
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


def test_drag_shortens_the_throw_against_vacuum():
    track, _ = _throw((5.0, 0.0, 2.0), steps=40)
    # Vacuum position after 40/60 s (the release noise is 2 cm/s, far below the drag effect).
    t = 40 / 60
    assert track[-1][0] < 0.3 + 5.0 * t - 0.05


def test_hitting_the_laptop_is_counted():
    # Aimed at the laptop's box (x 3.0-3.35, y 0.25-0.5 on the floor).
    _, contacts = _throw((5.0, 0.5, 1.0), steps=150)
    assert contacts > 0

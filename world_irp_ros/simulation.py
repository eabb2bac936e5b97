"""The simulated world of the closed-loop demo: PyBullet as "reality", with parameters that differ
from what perception reports, so prediction errors are real and calibration has work to do.

The scene: a table with stones and a cup on it, a laptop on the floor, and a target on the floor
beside the laptop. Drag is applied as an external force every step with each stone's TRUE drag
coefficient; perception reports a biased one. No ROS here: ``world_irp_ros.ros.sim_node`` adapts it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pybullet

from .scene import (CandidateAction, Environment, KeepOutZone, ObjectModel, Obstacle, TargetRegion, Uncertainty,
                    drag_factor_per_m)

SIM_DT_S = 1.0 / 480.0  # well below PyBullet's default 1/240 s: its Euler step error is ~dt * v


@dataclass(frozen=True)
class SimStone:
    """A stone as perception reports it (``model``) and the truth the simulator uses."""

    model: ObjectModel
    true_drag_coefficient: float
    true_mass_kg: float
    true_restitution: float


def default_stones() -> tuple[SimStone, ...]:
    """Stones of different mass, size and drag; the true drag coefficients are about 30 % above the
    perceived ones, and the granite is 30 % heavier than it looks (a push shows it)."""
    def stone(id_, radius, mass_true, mass_seen, cd_true, cd_seen, e_true, e_seen, y):
        model = ObjectModel(id_, "sphere", (radius, 0.0, 0.0), mass_seen, drag_coefficient=cd_seen,
                            restitution=e_seen, friction=0.5, rolling_resistance=0.05,
                            position_m=(0.1, y, 0.75 + radius),
                            uncertainty=Uncertainty(drag_rel_std=0.3, restitution_std=0.05, mass_rel_std=0.05),
                            label="stone")
        return SimStone(model, cd_true, mass_true, e_true)
    return (stone("pumice", 0.05, 0.05, 0.05, 0.62, 0.47, 0.25, 0.3, -0.25),
            stone("granite", 0.03, 0.26, 0.2, 0.47, 0.36, 0.3, 0.3, -0.1),
            stone("pebble", 0.02, 0.05, 0.05, 0.55, 0.42, 0.35, 0.3, 0.05))


@dataclass(frozen=True)
class SimScene:
    """Geometry of the demo scene (m) and the perception/actuation imperfections."""

    environment: Environment = field(default_factory=lambda: Environment(obstacles=(
        Obstacle("table", (-0.4, -0.6, 0.0), (0.4, 0.6, 0.75), restitution=0.5, friction=0.8),
        Obstacle("laptop", (3.0, 0.25, 0.0), (3.35, 0.5, 0.03), restitution=0.2, friction=0.8),
        Obstacle("cup", (-0.25, 0.3, 0.75), (-0.17, 0.38, 0.85), restitution=0.4, friction=0.6))))
    stones: tuple[SimStone, ...] = field(default_factory=default_stones)
    target: TargetRegion = TargetRegion((3.5, 0.0, 0.0), 0.2)
    # The zone around the laptop that no GO may enter: the laptop plus a safety margin and the air
    # above it, so a stone may not even skim it.
    laptop_zone: KeepOutZone = KeepOutZone("laptop", (2.9, 0.15, 0.0), (3.45, 0.6, 0.35))
    release_position_m: tuple[float, float, float] = (0.3, 0.0, 1.2)
    position_noise_std_m: float = 0.002
    velocity_noise_std_mps: float = 0.02
    release_velocity_noise_std_mps: float = 0.02


class SimWorld:
    """A PyBullet world (DIRECT, never GUI) stepped at ``SIM_DT_S`` with true parameters."""

    def __init__(self, scene: SimScene | None = None, seed: int = 0):
        self.scene = scene or SimScene()
        # Perception and the actuator draw from separate streams, so what an action does depends
        # on the seed and the actions before it, not on how many frames were perceived meanwhile.
        self.rng = np.random.default_rng([seed, 0])
        self.actuator_rng = np.random.default_rng([seed, 1])
        self.time_s = 0.0
        self.client = pybullet.connect(pybullet.DIRECT)
        self._pb = dict(physicsClientId=self.client)
        pybullet.setGravity(*self.scene.environment.gravity_mps2, **self._pb)
        pybullet.setTimeStep(SIM_DT_S, **self._pb)
        env = self.scene.environment
        plane = pybullet.createCollisionShape(pybullet.GEOM_PLANE, **self._pb)
        self.ground = pybullet.createMultiBody(0, plane, basePosition=(0, 0, env.ground_height_m), **self._pb)
        # Combined coefficients are products in Bullet: the ground's 1.0 leaves the stone's own.
        pybullet.changeDynamics(self.ground, -1, restitution=1.0, lateralFriction=1.0, **self._pb)
        self.static: dict[str, int] = {}
        for ob in env.obstacles:
            lo, hi = np.array(ob.min_m), np.array(ob.max_m)
            shape = pybullet.createCollisionShape(pybullet.GEOM_BOX, halfExtents=(hi - lo) / 2, **self._pb)
            body = pybullet.createMultiBody(0, shape, basePosition=(lo + hi) / 2, **self._pb)
            pybullet.changeDynamics(body, -1, restitution=ob.restitution, lateralFriction=ob.friction, **self._pb)
            self.static[ob.name] = body
        self.bodies: dict[str, int] = {}
        self.stones = {s.model.id: s for s in self.scene.stones}
        for s in self.scene.stones:
            shape = pybullet.createCollisionShape(pybullet.GEOM_SPHERE, radius=s.model.radius_m, **self._pb)
            body = pybullet.createMultiBody(s.true_mass_kg, shape, basePosition=s.model.position_m, **self._pb)
            pybullet.changeDynamics(body, -1, restitution=s.true_restitution, lateralFriction=s.model.friction,
                                    rollingFriction=s.model.rolling_resistance * s.model.radius_m,
                                    linearDamping=0.0, angularDamping=0.0, **self._pb)
            self.bodies[s.model.id] = body
        self.laptop_contacts = 0

    def close(self) -> None:
        """Disconnect the PyBullet client."""
        if self.client >= 0:
            pybullet.disconnect(**self._pb)
            self.client = -1

    def state(self, object_id: str) -> tuple[np.ndarray, np.ndarray]:
        """True centre position (m) and linear velocity (m/s) of an object."""
        body = self.bodies[object_id]
        pos, _ = pybullet.getBasePositionAndOrientation(body, **self._pb)
        vel, _ = pybullet.getBaseVelocity(body, **self._pb)
        return np.array(pos), np.array(vel)

    def perceived(self) -> list[ObjectModel]:
        """What perception reports now: noisy pose and velocity, and the biased parameters."""
        out = []
        sc = self.scene
        for object_id, stone in self.stones.items():
            p, v = self.state(object_id)
            p = p + self.rng.normal(0.0, sc.position_noise_std_m, 3)
            v = v + self.rng.normal(0.0, sc.velocity_noise_std_mps, 3)
            unc = replace(stone.model.uncertainty, position_std_m=(sc.position_noise_std_m,) * 3,
                          velocity_std_mps=(sc.velocity_noise_std_mps,) * 3)
            out.append(replace(stone.model, position_m=tuple(p), velocity_mps=tuple(v), uncertainty=unc))
        return out

    def execute(self, action: CandidateAction) -> None:
        """Carry out an action with the actuator's noise: the hand places the object at the
        release point and lets go with the commanded velocity (throw/drop), or pushes it."""
        body = self.bodies[action.object_id]
        stone = self.stones[action.object_id]
        noise = self.actuator_rng.normal(0.0, self.scene.release_velocity_noise_std_mps, 3)
        if action.type == "push":
            _, v = self.state(action.object_id)
            pybullet.resetBaseVelocity(body, tuple(v + np.array(action.impulse_ns) / stone.true_mass_kg + noise),
                                       (0, 0, 0), **self._pb)
            return
        position = action.release_position_m or self.scene.release_position_m
        velocity = np.array(action.release_velocity_mps) if action.type == "throw" else np.zeros(3)
        pybullet.resetBasePositionAndOrientation(body, position, (0, 0, 0, 1), **self._pb)
        pybullet.resetBaseVelocity(body, tuple(velocity + noise), (0, 0, 0), **self._pb)

    def step(self, duration_s: float) -> None:
        """Advance the world by ``duration_s`` (rounded to whole physics steps), applying each
        stone's true quadratic drag as an external force every step."""
        rho = self.scene.environment.air_density_kgpm3
        laptop = self.static.get("laptop")
        for _ in range(max(1, round(duration_s / SIM_DT_S))):
            for object_id, stone in self.stones.items():
                body = self.bodies[object_id]
                p, v = self.state(object_id)
                speed = float(np.linalg.norm(v))
                if speed > 1e-9:
                    m = stone.true_mass_kg
                    force = -m * drag_factor_per_m(rho, stone.true_drag_coefficient, stone.model.cross_section_m2(),
                                                   m) * speed * v
                    pybullet.applyExternalForce(body, -1, tuple(force), tuple(p), pybullet.WORLD_FRAME, **self._pb)
            pybullet.stepSimulation(**self._pb)
            self.time_s += SIM_DT_S
            if laptop is not None:
                for body in self.bodies.values():
                    if pybullet.getContactPoints(body, laptop, **self._pb):
                        self.laptop_contacts += 1

    def advance_to(self, time_s: float, max_step_s: float) -> float:
        """Step whole physics steps until the world's time is within half a step of ``time_s``,
        at most ``max_step_s`` at once; returns how far ``time_s`` is still ahead (s)."""
        ahead_s = time_s - self.time_s
        if ahead_s >= 0.5 * SIM_DT_S:
            self.step(min(ahead_s, max_step_s))
        return time_s - self.time_s

    def at_rest(self, object_id: str, speed_mps: float = 0.01) -> bool:
        """True when the object's speed is below ``speed_mps``."""
        return float(np.linalg.norm(self.state(object_id)[1])) < speed_mps


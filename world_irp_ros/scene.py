"""Scene, action and criteria types of the world model, validated where they are built.

Everything is SI: metres, seconds, kilograms, newton-seconds. Positions, velocities and boxes are
in one world frame whose z axis points up (gravity may be any vector with a negative z part).
``parse_request`` turns the JSON request of ``world-irp rehearse`` (see
``world_irp_ros/schemas/request.schema.json``) into these types and names the bad field on error.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np
import transforms3d.quaternions as tq

from .errors import UnknownObjectError, ValidationError

Vec3 = tuple[float, float, float]

SHAPES = ("sphere", "box", "cylinder")
ACTION_TYPES = ("throw", "drop", "push")
TARGET_MODES = ("first_contact", "rest")
MAX_HORIZON_S = 10.0
DEFAULT_HORIZON_S = 3.0
DEFAULT_HEIGHT_TOLERANCE_M = 0.1
# Uncertainty samples drawn per candidate when the request does not say and something is uncertain.
DEFAULT_SAMPLES = 64


# --------------------------------------------------------------------------- validation helpers
def finite_number(name: str, value: Any, index: int | None = None) -> float:
    """``value`` as a finite float, else ``ValidationError`` naming ``name`` (``name[index]``: the
    name of an element is only written out for an error, as validation runs per candidate)."""
    if isinstance(value, (str, bytes)):
        raise ValidationError(f"must be a number, got {value!r}", _element(name, index))
    try:
        x = float(value)
    except OverflowError:  # an integer beyond float's range
        raise ValidationError("must be a finite number, got an integer too large for a float",
                              _element(name, index)) from None
    except (TypeError, ValueError):
        raise ValidationError(f"must be a number, got {value!r}", _element(name, index)) from None
    if isinstance(value, bool) or not math.isfinite(x):
        raise ValidationError(f"must be a finite number, got {value!r}", _element(name, index))
    return x


def _element(name: str, index: int | None) -> str:
    return name if index is None else f"{name}[{index}]"


def _vec3(name: str, value: Any) -> Vec3:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 3:
        raise ValidationError(f"must be a list of 3 numbers, got {value!r}", name)
    x, y, z = value
    return (finite_number(name, x, 0), finite_number(name, y, 1), finite_number(name, z, 2))


def _positive(name: str, value: Any) -> float:
    x = finite_number(name, value)
    if x <= 0.0:
        raise ValidationError(f"must be > 0, got {x}", name)
    return x


def _non_negative(name: str, value: Any) -> float:
    x = finite_number(name, value)
    if x < 0.0:
        raise ValidationError(f"must be >= 0, got {x}", name)
    return x


def _unit(name: str, value: Any) -> float:
    x = finite_number(name, value)
    if not 0.0 <= x <= 1.0:
        raise ValidationError(f"must lie in [0, 1], got {x}", name)
    return x


def _non_negative_vec3(name: str, value: Any) -> Vec3:
    v = _vec3(name, value)
    for i, x in enumerate(v):
        if x < 0.0:
            raise ValidationError(f"must be >= 0, got {x}", f"{name}[{i}]")
    return v


def _box(name: str, lo: Any, hi: Any) -> tuple[Vec3, Vec3]:
    prefix = f"{name}." if name else ""
    lo3, hi3 = _vec3(f"{prefix}min", lo), _vec3(f"{prefix}max", hi)
    for i in range(3):
        if hi3[i] <= lo3[i]:
            raise ValidationError(f"max[{i}] must be greater than min[{i}]", f"{prefix}max")
    return lo3, hi3


@contextmanager
def field_prefix(prefix: str) -> Iterator[None]:
    """Prefix the field named by a ``ValidationError`` raised inside, e.g. ``objects[1].``."""
    try:
        yield
    except ValidationError as err:
        name = f"{prefix}.{err.field}" if err.field else prefix
        raise type(err)(err.reason, name) from None


# --------------------------------------------------------------------------------- scene types
@dataclass(frozen=True)
class Obstacle:
    """Static axis-aligned box an object can hit, land on and slide off (a table top)."""

    name: str
    min_m: Vec3
    max_m: Vec3
    restitution: float = 0.3
    friction: float = 0.5

    def __post_init__(self) -> None:
        lo, hi = _box("", self.min_m, self.max_m)
        object.__setattr__(self, "min_m", lo)
        object.__setattr__(self, "max_m", hi)
        object.__setattr__(self, "restitution", _unit("restitution", self.restitution))
        object.__setattr__(self, "friction", _non_negative("friction", self.friction))


@dataclass(frozen=True)
class Environment:
    """Gravity, air and the static world (the ground plane plus obstacle boxes)."""

    gravity_mps2: Vec3 = (0.0, 0.0, -9.81)
    air_density_kgpm3: float = 1.225
    ground_height_m: float = 0.0
    ground_restitution: float = 1.0
    ground_friction: float = 1.0
    obstacles: tuple[Obstacle, ...] = ()

    def __post_init__(self) -> None:
        g = _vec3("gravity", self.gravity_mps2)
        if g[2] >= 0.0:
            raise ValidationError("z component must be negative (z points up)", "gravity")
        object.__setattr__(self, "gravity_mps2", g)
        object.__setattr__(self, "air_density_kgpm3", _non_negative("air_density", self.air_density_kgpm3))
        object.__setattr__(self, "ground_height_m", finite_number("ground_height", self.ground_height_m))
        # The ground's factors multiply the object's own restitution and friction.
        object.__setattr__(self, "ground_restitution", _unit("ground_restitution", self.ground_restitution))
        object.__setattr__(self, "ground_friction", _non_negative("ground_friction", self.ground_friction))
        object.__setattr__(self, "obstacles", tuple(self.obstacles))

    def solid_holding(self, points_m: np.ndarray) -> np.ndarray:
        """For points (3, N): where each lies inside the static world ("below the ground",
        "inside obstacle 'table'"), or "" where it is free. An object's centre there is no pose
        an object can have (the model lifts mere overlaps out, see docs/physics.md)."""
        p = np.asarray(points_m, dtype=np.float64).reshape(3, -1)
        out = np.where(p[2] < self.ground_height_m, "below the ground", "").astype(object)
        for ob in self.obstacles:
            inside = np.all((p > np.array(ob.min_m)[:, None]) & (p < np.array(ob.max_m)[:, None]), axis=0)
            out = np.where(inside & (out == ""), f"inside obstacle {ob.name!r}", out)
        return out


def drag_factor_per_m(air_density_kgpm3, drag_coefficient, cross_section_m2, mass_kg):
    """The drag law's factor k = rho Cd A / (2 m), so that drag decelerates by k |v| v (1/m;
    numbers or NumPy arrays)."""
    return air_density_kgpm3 * drag_coefficient * cross_section_m2 / (2.0 * mass_kg)


@dataclass(frozen=True)
class Uncertainty:
    """1-sigma spreads sampled by the rehearsal; all zero means a deterministic prediction."""

    position_std_m: Vec3 = (0.0, 0.0, 0.0)
    velocity_std_mps: Vec3 = (0.0, 0.0, 0.0)
    mass_rel_std: float = 0.0
    drag_rel_std: float = 0.0
    restitution_std: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "position_std_m", _non_negative_vec3("position_std", self.position_std_m))
        object.__setattr__(self, "velocity_std_mps", _non_negative_vec3("velocity_std", self.velocity_std_mps))
        for name in ("mass_rel_std", "drag_rel_std", "restitution_std"):
            object.__setattr__(self, name, _non_negative(name, getattr(self, name)))
        if self.mass_rel_std >= 0.5:
            raise ValidationError("must be < 0.5 (mass must stay positive)", "mass_rel_std")

    @property
    def is_zero(self) -> bool:
        """True when nothing about the object is uncertain."""
        return not (any(self.position_std_m) or any(self.velocity_std_mps) or self.mass_rel_std
                    or self.drag_rel_std or self.restitution_std)


@dataclass(frozen=True)
class ObjectModel:
    """A rigid object: shape, size, mass, surface coefficients, pose, velocity, uncertainty.

    ``dimensions_m``: sphere ``(radius, 0, 0)``, box ``(size_x, size_y, size_z)`` (full edge
    lengths), cylinder ``(radius, height, 0)`` with its axis along the body z axis.
    ``orientation_wxyz`` is a unit quaternion; it only sets the object's world bounding box, since
    the model does not track rotation (see docs/physics.md).
    """

    id: str
    shape: str
    dimensions_m: Vec3
    mass_kg: float
    drag_coefficient: float = 0.47
    restitution: float = 0.3
    friction: float = 0.5
    rolling_resistance: float = 0.02
    position_m: Vec3 = (0.0, 0.0, 0.0)
    orientation_wxyz: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)
    velocity_mps: Vec3 = (0.0, 0.0, 0.0)
    uncertainty: Uncertainty = field(default_factory=Uncertainty)
    label: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValidationError("must be a non-empty string", "id")
        if self.shape not in SHAPES:
            raise ValidationError(f"must be one of {', '.join(SHAPES)}, got {self.shape!r}", "shape")
        dims = _vec3("dimensions", self.dimensions_m)
        needed = {"sphere": (0,), "box": (0, 1, 2), "cylinder": (0, 1)}[self.shape]
        for i in needed:
            if dims[i] <= 0.0:
                raise ValidationError(f"{self.shape} size must be > 0, got {dims[i]}", f"dimensions[{i}]")
        object.__setattr__(self, "dimensions_m", dims)
        object.__setattr__(self, "mass_kg", _positive("mass", self.mass_kg))
        object.__setattr__(self, "drag_coefficient", _non_negative("drag_coefficient", self.drag_coefficient))
        object.__setattr__(self, "restitution", _unit("restitution", self.restitution))
        object.__setattr__(self, "friction", _non_negative("friction", self.friction))
        object.__setattr__(self, "rolling_resistance",
                           _non_negative("rolling_resistance", self.rolling_resistance))
        object.__setattr__(self, "position_m", _vec3("position", self.position_m))
        object.__setattr__(self, "velocity_mps", _vec3("velocity", self.velocity_mps))
        q = self.orientation_wxyz
        if isinstance(q, (str, bytes)) or not hasattr(q, "__len__") or len(q) != 4:
            raise ValidationError(f"must be a quaternion [w, x, y, z], got {q!r}", "orientation")
        qv = np.array([finite_number("orientation", x, i) for i, x in enumerate(q)])
        scale = float(np.abs(qv).max())
        if scale < 1e-6:
            raise ValidationError("quaternion must not be zero", "orientation")
        qv = qv / scale  # first: the norm of a huge quaternion would overflow to inf (and q / inf = 0)
        object.__setattr__(self, "orientation_wxyz", tuple(float(x) for x in qv / np.linalg.norm(qv)))

    @property
    def rolls(self) -> bool:
        """Spheres roll once supported; boxes and cylinders slide (docs/physics.md)."""
        return self.shape == "sphere"

    @property
    def radius_m(self) -> float:
        """Rolling radius for spheres, bounding radius for other shapes."""
        if self.shape == "sphere":
            return self.dimensions_m[0]
        return float(np.linalg.norm(self.body_half_extents_m()))

    def body_half_extents_m(self) -> np.ndarray:
        """Half extents of the shape's bounding box in its own frame."""
        a, b, c = self.dimensions_m
        if self.shape == "sphere":
            return np.array([a, a, a])
        if self.shape == "box":
            return np.array([a, b, c]) / 2.0
        return np.array([a, a, b / 2.0])

    def half_extents_m(self) -> np.ndarray:
        """Half extents of the world-axis-aligned box around the object at its orientation."""
        if self.shape == "sphere":
            return self.body_half_extents_m()
        rot = tq.quat2mat(self.orientation_wxyz)
        return np.abs(rot) @ self.body_half_extents_m()

    def cross_section_m2(self) -> float:
        """Drag reference area: pi r^2 for a sphere; mean projected area S/4 otherwise (Cauchy)."""
        a, b, c = self.dimensions_m
        if self.shape == "sphere":
            return math.pi * a * a
        if self.shape == "box":
            return (a * b + b * c + c * a) / 2.0
        return (2.0 * math.pi * a * a + 2.0 * math.pi * a * b) / 4.0

    def drag_k_per_m(self, air_density_kgpm3: float) -> float:
        """Drag factor k = rho Cd A / (2 m): drag acceleration is -k |v| v."""
        return drag_factor_per_m(air_density_kgpm3, self.drag_coefficient, self.cross_section_m2(), self.mass_kg)

    def drag_coefficient_of(self, drag_k_per_m: float, air_density_kgpm3: float) -> float | None:
        """The drag coefficient that gives this object the drag factor ``drag_k_per_m``; None in a
        vacuum, where drag says nothing about it."""
        scale = drag_factor_per_m(air_density_kgpm3, 1.0, self.cross_section_m2(), self.mass_kg)
        return drag_k_per_m / scale if scale > 0.0 else None


# ------------------------------------------------------------------------------ action/criteria
@dataclass(frozen=True)
class CandidateAction:
    """One action to rehearse. ``release_position_m`` None means: where the object is now.

    throw: release at ``release_position_m`` with ``release_velocity_mps``; drop: release there at
    rest; push: the object's perceived velocity changes by ``impulse_ns / mass``.
    """

    id: str
    type: str
    object_id: str
    release_position_m: Vec3 | None = None
    release_velocity_mps: Vec3 = (0.0, 0.0, 0.0)
    impulse_ns: Vec3 = (0.0, 0.0, 0.0)
    start_delay_s: float = 0.0
    release_velocity_std_mps: Vec3 = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValidationError("must be a non-empty string", "id")
        if self.type not in ACTION_TYPES:
            raise ValidationError(f"must be one of {', '.join(ACTION_TYPES)}, got {self.type!r}", "type")
        if not isinstance(self.object_id, str) or not self.object_id:
            raise ValidationError("must be a non-empty string", "object_id")
        if self.release_position_m is not None:
            object.__setattr__(self, "release_position_m", _vec3("release_position", self.release_position_m))
        object.__setattr__(self, "release_velocity_mps", _vec3("release_velocity", self.release_velocity_mps))
        object.__setattr__(self, "impulse_ns", _vec3("impulse", self.impulse_ns))
        object.__setattr__(self, "start_delay_s", _non_negative("start_delay_s", self.start_delay_s))
        object.__setattr__(self, "release_velocity_std_mps",
                           _non_negative_vec3("release_velocity_std", self.release_velocity_std_mps))


@dataclass(frozen=True)
class TargetRegion:
    """Vertical cylinder: success when the object's centre is within ``radius_m`` horizontally and
    its bottom within ``height_tolerance_m`` of ``center_m[2]``, at first contact or at rest."""

    center_m: Vec3
    radius_m: float
    height_tolerance_m: float = DEFAULT_HEIGHT_TOLERANCE_M
    mode: str = "first_contact"

    def __post_init__(self) -> None:
        object.__setattr__(self, "center_m", _vec3("center", self.center_m))
        object.__setattr__(self, "radius_m", _positive("radius", self.radius_m))
        object.__setattr__(self, "height_tolerance_m", _positive("height_tolerance", self.height_tolerance_m))
        if self.mode not in TARGET_MODES:
            raise ValidationError(f"must be one of {', '.join(TARGET_MODES)}, got {self.mode!r}", "mode")


@dataclass(frozen=True)
class KeepOutZone:
    """Named axis-aligned box the object (its whole extent) must never enter. Not a body."""

    name: str
    min_m: Vec3
    max_m: Vec3

    def __post_init__(self) -> None:
        lo, hi = _box("", self.min_m, self.max_m)
        object.__setattr__(self, "min_m", lo)
        object.__setattr__(self, "max_m", hi)


@dataclass(frozen=True)
class Criteria:
    """What a GO needs: success in the target (if any), no keep-out entry, within the thresholds."""

    target: TargetRegion | None = None
    keep_out: tuple[KeepOutZone, ...] = ()
    horizon_s: float = DEFAULT_HORIZON_S
    min_success_probability: float = 0.9
    max_collision_probability: float = 0.0

    def __post_init__(self) -> None:
        h = finite_number("horizon_s", self.horizon_s)
        if not 0.0 < h <= MAX_HORIZON_S:
            raise ValidationError(f"must lie in (0, {MAX_HORIZON_S:g}] s, got {h}", "horizon_s")
        object.__setattr__(self, "horizon_s", h)
        object.__setattr__(self, "keep_out", tuple(self.keep_out))
        object.__setattr__(self, "min_success_probability",
                           _unit("min_success_probability", self.min_success_probability))
        object.__setattr__(self, "max_collision_probability",
                           _unit("max_collision_probability", self.max_collision_probability))


@dataclass(frozen=True)
class Scene:
    """The environment and the objects in it, keyed by id."""

    environment: Environment = field(default_factory=Environment)
    objects: Mapping[str, ObjectModel] = field(default_factory=dict)

    def object(self, object_id: str, field_name: str = "object_id") -> ObjectModel:
        """The object with this id, or ``UnknownObjectError`` naming the field that asked."""
        try:
            return self.objects[object_id]
        except KeyError:
            known = ", ".join(sorted(self.objects)) or "none"
            raise UnknownObjectError(f"unknown object id {object_id!r} (known: {known})", field_name) from None


@dataclass(frozen=True)
class RehearsalRequest:
    """Candidates to rehearse in a scene against criteria. ``samples`` None: 1 when nothing is
    uncertain, else ``DEFAULT_SAMPLES``; samples are drawn with ``seed`` (reproducible)."""

    scene: Scene
    actions: tuple[CandidateAction, ...]
    criteria: Criteria = field(default_factory=Criteria)
    samples: int | None = None
    seed: int = 0
    request_id: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "actions", tuple(self.actions))
        if not self.actions:
            raise ValidationError("must hold at least one action", "actions")
        seen: set[str] = set()
        for i, action in enumerate(self.actions):
            if action.id in seen:
                raise ValidationError(f"duplicate action id {action.id!r}", f"actions[{i}].id")
            seen.add(action.id)
            self.scene.object(action.object_id, f"actions[{i}].object_id")
        if self.samples is not None and (isinstance(self.samples, bool) or not isinstance(self.samples, int)
                                         or not 1 <= self.samples <= 4096):
            raise ValidationError(f"must be an integer in [1, 4096], got {self.samples!r}", "samples")

    @property
    def is_deterministic(self) -> bool:
        """True when neither the objects nor the actions carry any uncertainty."""
        return (all(self.scene.object(a.object_id).uncertainty.is_zero for a in self.actions)
                and not any(any(a.release_velocity_std_mps) for a in self.actions))

    @property
    def num_samples(self) -> int:
        """Uncertainty samples per candidate the rehearsal draws."""
        if self.samples is not None:
            return self.samples
        return 1 if self.is_deterministic else DEFAULT_SAMPLES


# ------------------------------------------------------------------------------- JSON parsing
def _take(data: Any, name: str, required: tuple[str, ...], optional: tuple[str, ...]) -> dict:
    if not isinstance(data, Mapping):
        raise ValidationError(f"must be an object, got {type(data).__name__}", name)
    unknown = sorted(set(data) - set(required) - set(optional))
    if unknown:
        raise ValidationError(f"unknown key {unknown[0]!r}", f"{name}.{unknown[0]}" if name else unknown[0])
    for key in required:
        if key not in data:
            raise ValidationError("is required", f"{name}.{key}" if name else key)
    return dict(data)


def _list(data: Any, name: str) -> list:
    if not isinstance(data, list):
        raise ValidationError(f"must be a list, got {type(data).__name__}", name)
    return data


def _string(data: Any, name: str) -> str:
    if not isinstance(data, str) or not data:
        raise ValidationError(f"must be a non-empty string, got {data!r}", name)
    return data


def parse_obstacle(d: Any, name: str) -> Obstacle:
    """Obstacle from ``{"name", "min", "max", "restitution"?, "friction"?}``."""
    d = _take(d, name, ("name", "min", "max"), ("restitution", "friction"))
    with field_prefix(name):
        return Obstacle(_string(d["name"], "name"), d["min"], d["max"], d.get("restitution", 0.3),
                        d.get("friction", 0.5))


def parse_environment(d: Any, name: str = "environment") -> Environment:
    """Environment from its JSON object; every key optional (see the request schema)."""
    d = _take(d, name, (), ("gravity", "air_density", "ground_height", "ground_restitution",
                            "ground_friction", "obstacles"))
    obstacles = tuple(parse_obstacle(o, f"{name}.obstacles[{i}]")
                      for i, o in enumerate(_list(d.get("obstacles", []), f"{name}.obstacles")))
    with field_prefix(name):
        return Environment(d.get("gravity", (0.0, 0.0, -9.81)), d.get("air_density", 1.225),
                           d.get("ground_height", 0.0), d.get("ground_restitution", 1.0),
                           d.get("ground_friction", 1.0), obstacles)


def parse_object(d: Any, name: str) -> ObjectModel:
    """Object from its JSON object: shape-specific size keys radius / size / radius+height."""
    d = _take(d, name, ("id", "shape", "mass"),
              ("label", "radius", "size", "height", "drag_coefficient", "restitution", "friction",
               "rolling_resistance", "position", "orientation", "velocity", "uncertainty"))
    shape = d["shape"]
    size_keys = {"sphere": ("radius",), "box": ("size",), "cylinder": ("radius", "height")}
    if not isinstance(shape, str) or shape not in size_keys:
        raise ValidationError(f"must be one of {', '.join(SHAPES)}, got {shape!r}", f"{name}.shape")
    for key in size_keys[shape]:
        if key not in d:
            raise ValidationError(f"is required for a {shape}", f"{name}.{key}")
    for key in ("radius", "size", "height"):
        if key in d and key not in size_keys[shape]:
            raise ValidationError(f"does not apply to a {shape}", f"{name}.{key}")
    with field_prefix(name):
        for key in size_keys[shape]:
            if key != "size":
                _positive(key, d[key])
        if shape == "box":
            for i, x in enumerate(_vec3("size", d["size"])):
                _positive(f"size[{i}]", x)
        if shape == "sphere":
            dims = (d["radius"], 0.0, 0.0)
        elif shape == "box":
            dims = _vec3("size", d["size"])
        else:
            dims = (d["radius"], d["height"], 0.0)
        unc = _take(d.get("uncertainty", {}), "uncertainty", (),
                    ("position_std", "velocity_std", "mass_rel_std", "drag_rel_std", "restitution_std"))
        with field_prefix("uncertainty"):
            uncertainty = Uncertainty(unc.get("position_std", (0.0, 0.0, 0.0)),
                                      unc.get("velocity_std", (0.0, 0.0, 0.0)),
                                      unc.get("mass_rel_std", 0.0), unc.get("drag_rel_std", 0.0),
                                      unc.get("restitution_std", 0.0))
        label = d.get("label", "")
        if not isinstance(label, str):
            raise ValidationError("must be a string", "label")
        return ObjectModel(_string(d["id"], "id"), shape, dims, d["mass"], d.get("drag_coefficient", 0.47),
                           d.get("restitution", 0.3), d.get("friction", 0.5), d.get("rolling_resistance", 0.02),
                           d.get("position", (0.0, 0.0, 0.0)), d.get("orientation", (1.0, 0.0, 0.0, 0.0)),
                           d.get("velocity", (0.0, 0.0, 0.0)), uncertainty, label)


def parse_action(d: Any, name: str) -> CandidateAction:
    """Candidate action from its JSON object."""
    d = _take(d, name, ("id", "type", "object_id"),
              ("release_position", "release_velocity", "impulse", "start_delay_s", "release_velocity_std"))
    with field_prefix(name):
        kind = d["type"]
        if kind == "throw" and "release_velocity" not in d:
            raise ValidationError("is required for a throw", "release_velocity")
        if kind == "push" and "impulse" not in d:
            raise ValidationError("is required for a push", "impulse")
        return CandidateAction(_string(d["id"], "id"), kind, _string(d["object_id"], "object_id"),
                               d.get("release_position"), d.get("release_velocity", (0.0, 0.0, 0.0)),
                               d.get("impulse", (0.0, 0.0, 0.0)), d.get("start_delay_s", 0.0),
                               d.get("release_velocity_std", (0.0, 0.0, 0.0)))


def parse_criteria(d: Any, horizon_s: Any, name: str = "criteria") -> Criteria:
    """Criteria from its JSON object; ``horizon_s`` sits at the request's top level."""
    d = _take(d, name, (), ("target", "keep_out", "min_success_probability", "max_collision_probability"))
    target = None
    if "target" in d:
        t = _take(d["target"], f"{name}.target", ("center", "radius"), ("height_tolerance", "mode"))
        with field_prefix(f"{name}.target"):
            target = TargetRegion(t["center"], t["radius"], t.get("height_tolerance", DEFAULT_HEIGHT_TOLERANCE_M),
                                  t.get("mode", "first_contact"))
    zones = []
    for i, z in enumerate(_list(d.get("keep_out", []), f"{name}.keep_out")):
        zname = f"{name}.keep_out[{i}]"
        z = _take(z, zname, ("name", "min", "max"), ())
        with field_prefix(zname):
            zones.append(KeepOutZone(_string(z["name"], "name"), z["min"], z["max"]))
    horizon_s = Criteria(horizon_s=horizon_s).horizon_s  # top-level key: named without the prefix
    with field_prefix(name):
        return Criteria(target, tuple(zones), horizon_s, d.get("min_success_probability", 0.9),
                        d.get("max_collision_probability", 0.0))


def parse_objects(data: Any, name: str = "objects") -> dict[str, ObjectModel]:
    """The ``objects`` list of a request or plan file, keyed by id (ids must be unique)."""
    objects: dict[str, ObjectModel] = {}
    for i, o in enumerate(_list(data, name)):
        obj = parse_object(o, f"{name}[{i}]")
        if obj.id in objects:
            raise ValidationError(f"duplicate object id {obj.id!r}", f"{name}[{i}].id")
        objects[obj.id] = obj
    return objects


def parse_request(data: Any) -> RehearsalRequest:
    """A ``RehearsalRequest`` from the decoded JSON of a request file; raises ``ValidationError``
    naming the bad field (``objects[0].mass``) for anything malformed or unknown."""
    d = _take(data, "", ("objects", "actions"),
              ("environment", "criteria", "horizon_s", "samples", "seed", "request_id"))
    environment = parse_environment(d.get("environment", {}))
    objects = parse_objects(d["objects"])
    actions = tuple(parse_action(a, f"actions[{i}]") for i, a in enumerate(_list(d["actions"], "actions")))
    criteria = parse_criteria(d.get("criteria", {}), d.get("horizon_s", DEFAULT_HORIZON_S))
    seed = d.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValidationError(f"must be a non-negative integer, got {seed!r}", "seed")
    request_id = d.get("request_id", "")
    if not isinstance(request_id, str):
        raise ValidationError("must be a string", "request_id")
    return RehearsalRequest(Scene(environment, objects), actions, criteria, d.get("samples"), seed, request_id)

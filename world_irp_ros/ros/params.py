"""Parameters of the ``world_irp`` node: one table, declared with descriptions and ranges.

Every parameter is declared from ``SPECS`` with a ``ParameterDescriptor`` (description, range
or allowed values in ``additional_constraints``), so ``ros2 param describe`` explains it and rclpy
rejects an out-of-range value by itself. ``validate_changes`` adds the checks a range cannot
express (registered backend names, the gravity vector, changes that need a reconfigure) and is
registered as the node's pre-set callback: a bad runtime change is refused with a reason and
nothing changes. ``Settings`` is the immutable snapshot the request paths read.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Callable, Iterable, Sequence

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.parameter import Parameter

from ..backends import DEVICES, NAMES
from ..errors import ValidationError
from ..physics.model import max_step_s
from ..scene import Obstacle, field_prefix

BUSY_POLICIES = ("wait", "reject")
TRAJECTORY_MODES = ("all", "chosen", "none")
# The ~/verdict publisher keeps this many messages for late readers (one verdict per candidate),
# so max_candidates is bounded by it: a full answer always fits the queue.
VERDICT_QUEUE_DEPTH = 4096


@dataclass(frozen=True)
class Spec:
    """One parameter: name, default, description, and either a numeric range or choices."""

    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: Callable[[], Sequence[str]] | None = None
    read_only: bool = False
    # Changes that only take effect on the next configure are refused while configured.
    needs_reconfigure: bool = False


SPECS: tuple[Spec, ...] = (
    Spec("backend", "analytic", "Forward model rehearsals run on. Takes effect at configure, "
         "which fails (with the reason) unless the backend is registered and loads.", choices=lambda: NAMES,
         needs_reconfigure=True),
    Spec("device", "auto", "Where the backend runs: auto (cuda when available), cpu or cuda. "
         "Takes effect at configure.", choices=lambda: DEVICES, needs_reconfigure=True),
    Spec("horizon_s", 3.0, "Prediction horizon (s) when a request's criteria.horizon_s is 0.",
         0.01, 10.0),
    Spec("dt_s", 1.0 / 60.0, "Integration step of the forward model (s); at most the shortest hop "
         "2 V_BOUNCE_STOP / |g| (30 ms at 9.81 m/s^2).", 0.0005, 0.03),
    Spec("num_samples", 64, "Uncertainty samples per candidate when a request says 0 and "
         "something is uncertain (1 when nothing is).", 1, 4096),
    Spec("state_timeout_s", 0.5, "A perceived object state older than this (s, node clock) gives "
         "NO_GO_STALE_STATE.", 0.001, 3600.0),
    Spec("deadline_ms", 100.0, "Time from receipt of a request to its packed answer (ms; sending it "
         "is not counted); later verdicts are replaced by NO_GO_DEADLINE.", 0.001, 600000.0),
    Spec("max_candidates", 1024, "Largest number of candidates per request; more give "
         "NO_GO_TOO_MANY_CANDIDATES.", 1, VERDICT_QUEUE_DEPTH),
    Spec("max_rollouts", 1048576, "Largest candidates x samples per request (memory bound); more "
         "give NO_GO_TOO_MANY_CANDIDATES.", 1, 16777216),
    Spec("min_success_probability", 0.9, "GO needs P(success) >= this when a request's criteria "
         "say 0.", 0.0, 1.0),
    Spec("max_collision_probability", 0.0, "Ceiling on P(enters a keep-out zone) for GO: a "
         "request may ask for less, never more.", 0.0, 1.0),
    Spec("response_trajectories", "all", "Which candidates get their predicted track (points and "
         "events) in the ~/rehearse response and on ~/predicted_trajectories: 'all', 'chosen' (the "
         "others carry only their ids) or 'none'. Packing tracks is most of the cost of large requests.",
         choices=lambda: TRAJECTORY_MODES),
    Spec("visualize", False, "Publish ~/markers (visualization_msgs/MarkerArray) for every "
         "rehearsal."),
    Spec("frame_id", "world", "World frame: object states and criteria must be in it (or leave "
         "frame_id empty); there is no tf2 lookup. Takes effect at configure (the kept states "
         "are in the old frame until cleanup drops them).", needs_reconfigure=True),
    Spec("plan_population", 64, "Candidates per refinement step of ~/plan when the goal says 0.",
         2, 4096),
    Spec("plan_max_iterations", 20, "Refinement budget of ~/plan when the goal says 0.", 1, 1000),
    Spec("plan_halt_eps", 1e-4, "~/plan stops when the best energy improved by less than this per "
         "step over the last 3 steps (0: never for that reason).", 0.0, 1.0),
    Spec("busy_policy", "wait", "When the rehearser is busy: 'wait' up to busy_wait_ms (never "
         "past the deadline), then NO_GO_BUSY; 'reject' answers NO_GO_BUSY at once.",
         choices=lambda: BUSY_POLICIES),
    Spec("busy_wait_ms", 50.0, "Longest wait for a busy rehearser under busy_policy 'wait' (ms).",
         0.0, 60000.0),
    Spec("gravity_mps2", [0.0, 0.0, -9.81], "Gravity vector (m/s^2) of the configured "
         "environment; z must be negative."),
    Spec("air_density_kgpm3", 1.225, "Air density (kg/m^3) of the configured environment.",
         0.0, 100.0),
    Spec("ground_height_m", 0.0, "Height of the ground plane z = ground_height_m (m).",
         -1000.0, 1000.0),
    Spec("obstacle_names", Parameter.Type.STRING_ARRAY, "Names of the static obstacle boxes of the "
         "configured environment (a table top objects land on and slide off). Takes effect at configure.",
         needs_reconfigure=True),
    Spec("obstacle_boxes_m", Parameter.Type.DOUBLE_ARRAY, "Their boxes, 6 numbers each: min x y z, "
         "max x y z (m, frame_id).", needs_reconfigure=True),
    Spec("obstacle_restitution", Parameter.Type.DOUBLE_ARRAY, "Their restitution factors, one each "
         "(default 0.3).", needs_reconfigure=True),
    Spec("obstacle_friction", Parameter.Type.DOUBLE_ARRAY, "Their friction factors, one each "
         "(default 0.5).", needs_reconfigure=True),
    Spec("calibration_file", "", "JSON file of calibrated object parameters: loaded at configure, "
         "saved after every calibration; empty keeps them in memory for the life of the node.",
         needs_reconfigure=True),
    Spec("diagnostics_period_s", 1.0, "Period of /diagnostics (s).", 0.05, 60.0,
         read_only=True),
    Spec("autostart", False, "Configure and activate by itself on start (for running without a "
         "lifecycle manager).", read_only=True),
)

SPEC_BY_NAME = {s.name: s for s in SPECS}


def descriptor(spec: Spec) -> ParameterDescriptor:
    """The ``ParameterDescriptor`` of one spec: description plus range or allowed values."""
    d = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
    if spec.low is not None and isinstance(spec.default, bool):
        raise TypeError(f"{spec.name}: a bool has no range")
    if spec.low is not None and isinstance(spec.default, int):
        d.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=1)]
    elif spec.low is not None:
        d.floating_point_range = [FloatingPointRange(from_value=float(spec.low),
                                                     to_value=float(spec.high), step=0.0)]
    if spec.choices is not None:
        d.additional_constraints = "one of: " + ", ".join(spec.choices())
    elif spec.name == "gravity_mps2":
        d.additional_constraints = "3 finite numbers, z < 0"
    if spec.needs_reconfigure:
        d.additional_constraints = "; ".join(filter(None, (d.additional_constraints,
                                                           "only changeable while unconfigured")))
    return d


def declare(node) -> None:
    """Declare every parameter of ``SPECS`` on ``node`` (values from --params-file override).

    A spec whose default is a ``Parameter.Type`` declares a typed parameter without a value (an
    empty list has no type of its own)."""
    for spec in SPECS:
        node.declare_parameter(spec.name, spec.default, descriptor(spec))


def check_value(name: str, value: Any) -> str | None:
    """Why ``value`` is not acceptable for parameter ``name`` (beyond its range), or None."""
    spec = SPEC_BY_NAME.get(name)
    if spec is None:
        return None
    if spec.choices is not None and value not in spec.choices():
        return f"{name} must be one of {', '.join(spec.choices())}, got {value!r}"
    if name == "gravity_mps2":
        g = list(value) if value is not None else []
        if len(g) != 3 or not all(math.isfinite(x) for x in g):
            return f"gravity_mps2 must be 3 finite numbers, got {g}"
        if g[2] >= 0.0:
            return f"gravity_mps2 z must be negative (z points up), got {g[2]}"
    if name == "frame_id" and not value:
        return "frame_id must not be empty"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name} must be finite, got {value}"
    return None


def validate_changes(params: Iterable[Parameter], configured: bool) -> str | None:
    """The reason to refuse this set of runtime changes, or None to accept all of them."""
    for p in params:
        reason = check_value(p.name, p.value)
        if reason:
            return reason
        spec = SPEC_BY_NAME.get(p.name)
        if spec is not None and spec.needs_reconfigure and configured:
            return (f"{p.name} only takes effect at configure: deactivate and clean up the node "
                    f"first, then set it and configure again")
    return None


def check_settings(settings: "Settings") -> str | None:
    """The reason a whole set of parameters is refused, for rules across parameters; else None."""
    dt_max = max_step_s(settings.gravity_mps2[2])
    if settings.dt_s > dt_max:
        return (f"dt_s {settings.dt_s:g} s is longer than the shortest hop under gravity_mps2 z "
                f"{settings.gravity_mps2[2]:g}, 2 V_BOUNCE_STOP / |g_z| = {dt_max:g} s")
    return None


def _value(node, name: str) -> Any:
    """A parameter's value; None for one declared by type and never set."""
    try:
        return node.get_parameter(name).value
    except ParameterUninitializedException:
        return None


@dataclass(frozen=True)
class Settings:
    """Snapshot of every parameter, read by the request paths (replaced whole on change)."""

    backend: str
    device: str
    horizon_s: float
    dt_s: float
    num_samples: int
    state_timeout_s: float
    deadline_ms: float
    max_candidates: int
    max_rollouts: int
    min_success_probability: float
    max_collision_probability: float
    response_trajectories: str
    visualize: bool
    frame_id: str
    plan_population: int
    plan_max_iterations: int
    plan_halt_eps: float
    busy_policy: str
    busy_wait_ms: float
    gravity_mps2: tuple[float, float, float]
    air_density_kgpm3: float
    ground_height_m: float
    obstacle_names: tuple[str, ...]
    obstacle_boxes_m: tuple[float, ...]
    obstacle_restitution: tuple[float, ...]
    obstacle_friction: tuple[float, ...]
    calibration_file: str
    diagnostics_period_s: float
    autostart: bool

    @classmethod
    def from_node(cls, node, overrides: Iterable[Parameter] = ()) -> "Settings":
        """Read every parameter from ``node``, with ``overrides`` (a change being applied) on top."""
        values = {f.name: _value(node, f.name) for f in fields(cls)}
        for p in overrides:
            if p.name in values:
                values[p.name] = p.value
        values["gravity_mps2"] = tuple(float(x) for x in values["gravity_mps2"])
        for name in ("obstacle_names", "obstacle_boxes_m", "obstacle_restitution", "obstacle_friction"):
            values[name] = tuple(values[name] or ())  # declared by type: None until set
        return cls(**values)

    def obstacles(self) -> tuple[Obstacle, ...]:
        """The configured obstacle boxes; ``ValidationError`` naming the parameter when they are
        inconsistent (counts, non-finite numbers, empty boxes)."""
        names, boxes = self.obstacle_names, self.obstacle_boxes_m
        if len(boxes) != 6 * len(names):
            raise ValidationError(f"needs 6 numbers per obstacle name ({len(names)} names), got {len(boxes)}",
                                  "obstacle_boxes_m")
        out = []
        for i, name in enumerate(names):
            e = self.obstacle_restitution[i] if i < len(self.obstacle_restitution) else 0.3
            mu = self.obstacle_friction[i] if i < len(self.obstacle_friction) else 0.5
            with field_prefix(f"obstacles[{i}]"):
                out.append(Obstacle(name, boxes[6 * i:6 * i + 3], boxes[6 * i + 3:6 * i + 6], e, mu))
        return tuple(out)


assert {f.name for f in fields(Settings)} == set(SPEC_BY_NAME), "Settings and SPECS disagree"

"""The plan file of ``world-irp plan`` (``schemas/plan.schema.json``): a rehearsal request whose
``actions`` are replaced by a ``plan`` block saying what to throw and what the arm can do.

Parsing is as strict as ``scene.parse_request``: unknown keys and bad values raise
``ValidationError`` naming the field (``plan.limits.max_release_speed``).
"""
from __future__ import annotations

import math
from typing import Any

from ..errors import ValidationError
from ..scene import (DEFAULT_HORIZON_S, Scene, _take, field_prefix, finite_number, parse_criteria,
                     parse_environment, parse_objects)
from .cem import ActuatorLimits, ThrowProblem

PLAN_DEFAULTS = {"population": 64, "max_iterations": 30, "samples": 16, "seed": 0, "elite_fraction": 0.125,
                 "clearance_margin": 0.05}
LIMIT_DEFAULTS = {"min_release_speed": 0.0, "min_elevation": -math.pi / 2, "max_elevation": math.pi / 2,
                  "min_azimuth": -math.pi, "max_azimuth": math.pi}


def _int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValidationError(f"must be an integer in [{lo}, {hi}], got {value!r}", name)
    return value


def parse_limits(d: Any, name: str = "plan.limits") -> ActuatorLimits:
    """``ActuatorLimits`` from ``{"release_position", "max_release_speed", ...}`` (angles in rad)."""
    d = _take(d, name, ("release_position", "max_release_speed"), tuple(LIMIT_DEFAULTS))
    with field_prefix(name):
        return ActuatorLimits(d["release_position"], d["max_release_speed"],
                              *(d.get(k, v) for k, v in LIMIT_DEFAULTS.items()))


def parse_plan(data: Any) -> ThrowProblem:
    """A ``ThrowProblem`` from the decoded JSON of a plan file."""
    if isinstance(data, dict):
        for key in ("samples", "seed"):
            if key in data:
                raise ValidationError(f"unknown key {key!r} at the top level of a plan file (use plan.{key})", key)
        if "actions" in data:
            raise ValidationError("a plan file has 'plan' instead of 'actions' (rehearse takes actions)", "actions")
    d = _take(data, "", ("objects", "plan"), ("environment", "criteria", "horizon_s", "request_id"))
    environment = parse_environment(d.get("environment", {}))
    objects = parse_objects(d["objects"])
    criteria = parse_criteria(d.get("criteria", {}), d.get("horizon_s", DEFAULT_HORIZON_S))
    request_id = d.get("request_id", "")
    if not isinstance(request_id, str):
        raise ValidationError("must be a string", "request_id")
    p = _take(d["plan"], "plan", ("object_id", "limits"), tuple(PLAN_DEFAULTS))
    if not isinstance(p["object_id"], str) or not p["object_id"]:
        raise ValidationError(f"must be a non-empty string, got {p['object_id']!r}", "plan.object_id")
    limits = parse_limits(p["limits"])
    opts = {k: p.get(k, v) for k, v in PLAN_DEFAULTS.items()}
    return ThrowProblem(
        Scene(environment, objects), criteria, p["object_id"], limits,
        population=_int(opts["population"], "plan.population", 2, 4096),
        max_iterations=_int(opts["max_iterations"], "plan.max_iterations", 1, 10000),
        samples=_int(opts["samples"], "plan.samples", 1, 4096),
        seed=_int(opts["seed"], "plan.seed", 0, 2**63 - 1),
        elite_fraction=finite_number("plan.elite_fraction", opts["elite_fraction"]),
        clearance_margin_m=finite_number("plan.clearance_margin", opts["clearance_margin"]),
        request_id=request_id)

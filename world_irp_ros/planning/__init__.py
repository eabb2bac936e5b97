"""Planning: choose a throw by iterative refinement (cross-entropy method) over rehearsals.

``cem`` holds the actuator limits, the energy of a judged candidate, a generic box-bounded CEM
and ``ThrowPlanner`` (one batched rehearsal per iteration); ``plan_file`` parses the plan file of
``world-irp plan``. Nothing here knows which backend answers: the planner only calls
``rehearse`` on what it is given.
"""
from .cem import (PARAM_NAMES, ActuatorLimits, Candidate, CEMConfig, CrossEntropyMethod, EnergyWeights, Gaussian,
                  PlannerState, ThrowPlanner, ThrowProblem, candidate_energy, has_margin, params_to_velocity,
                  velocity_to_params)
from .plan_file import parse_limits, parse_plan

__all__ = ["PARAM_NAMES", "ActuatorLimits", "Candidate", "CEMConfig", "CrossEntropyMethod", "EnergyWeights",
           "Gaussian", "PlannerState", "ThrowPlanner", "ThrowProblem", "candidate_energy", "has_margin",
           "params_to_velocity", "velocity_to_params", "parse_limits", "parse_plan"]

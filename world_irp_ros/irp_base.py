"""A stand-in for SAGE's ``sage.irp.base`` when SAGE is not installed.

Same names, signatures and default behaviours as SAGE's plugin base (described in
``/work/shared/notes/sage-irp-contract.md``), written here from that description: SAGE is AGPL
and none of its code is copied. ``world_irp_ros.irp`` subclasses SAGE's classes when they can be
imported and these otherwise, so the plugin runs under SAGE's orchestrator and without it.

The refinement loop: ``refine`` builds the state with ``init_state``, then repeats
{``halt``? -> ``step`` -> ``project`` -> record step index, energy, time} until ``halt`` says stop
or ``max_steps`` (default ``config["max_iterations"]``) steps were taken.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class IRPState:
    """One point of a refinement: the plugin's state ``x``, the step that produced it, its energy
    (lower is better), free-form ``meta`` and when it was made (``time.time()``)."""

    x: Any
    step_idx: int = 0
    energy_val: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.time)


def plugin_name(plugin: object) -> str:
    """The telemetry name of a plugin, as SAGE's plugins report it: the class name in lower case
    without "plugin" (``WorldIRP`` -> ``worldirp``)."""
    return type(plugin).__name__.lower().replace("plugin", "")


def trust_metrics(energies: list[float]) -> dict[str, float]:
    """Trust metrics of a refinement's energy sequence.

    ``monotonicity_ratio``: share of steps that did not raise the energy, in [0, 1];
    ``dE_variance``: variance of the per-step energy changes, >= 0; ``convergence_rate``: mean
    fractional energy drop per step, (E0 - En) / (n |E0|), in [0, 1] for a non-increasing,
    non-negative energy. All 0 for fewer than two energies (nothing was refined).
    """
    e = [float(x) for x in energies]
    if len(e) < 2:
        return {"monotonicity_ratio": 0.0, "dE_variance": 0.0, "convergence_rate": 0.0}
    d = [b - a for a, b in zip(e, e[1:])]
    mean = sum(d) / len(d)
    scale = abs(e[0]) if abs(e[0]) > 1e-12 else 1.0
    return {"monotonicity_ratio": sum(1 for x in d if x <= 0.0) / len(d),
            "dE_variance": sum((x - mean) ** 2 for x in d) / len(d),
            "convergence_rate": (e[0] - e[-1]) / (len(d) * scale)}


class IRPPlugin:
    """Base of an iterative-refinement plugin.

    ``config`` keys read here: ``entity_id`` (default ``<ClassName>_<id>``), ``max_iterations``
    (100), ``halt_eps`` (1e-4), ``halt_K`` (3), ``trust_weight`` (1.0), ``device`` ("cpu"),
    ``ATP_per_step`` (0.1), ``LRC_context`` (None). Subclasses override ``init_state``,
    ``energy`` and ``step``; the rest has working defaults.
    """

    def __init__(self, config: dict[str, Any]):
        self.config = config if config is not None else {}
        self.entity_id = self.config.get("entity_id", f"{type(self).__name__}_{id(self)}")
        self.max_iterations = self.config.get("max_iterations", 100)
        self.halt_eps = self.config.get("halt_eps", 1e-4)
        self.halt_K = self.config.get("halt_K", 3)
        self.trust_weight = self.config.get("trust_weight", 1.0)
        self.device = self.config.get("device", "cpu")
        self.ATP_per_step = self.config.get("ATP_per_step", 0.1)
        self.LRC_context = self.config.get("LRC_context")

    # ------------------------------------------------------------------ to override
    def init_state(self, x0: Any, task_ctx: dict[str, Any]) -> IRPState:
        """The initial refinement state of input ``x0``."""
        raise NotImplementedError

    def energy(self, state: IRPState) -> float:
        """Energy of ``state``; lower is better."""
        raise NotImplementedError

    def step(self, state: IRPState, noise_schedule: Any = None) -> IRPState:
        """One refinement step from ``state``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ defaults
    def project(self, state: IRPState) -> IRPState:
        """Map a state back onto the feasible set (identity here)."""
        return state

    def _energies(self, history: list[IRPState]) -> list[float]:
        return [float(s.energy_val) if s.energy_val is not None else float(self.energy(s)) for s in history]

    def halt(self, history: list[IRPState]) -> bool:
        """Stop after ``max_iterations`` states, or when the energy slope over the last
        ``halt_K`` steps, |E[-1] - E[-(K+1)]| / (K+1), is below ``halt_eps``."""
        if not history:
            return False
        if len(history) >= self.config.get("max_iterations", self.max_iterations):
            return True
        k = int(self.config.get("halt_K", self.halt_K))
        if len(history) < k + 1:
            return False
        e = self._energies(history[-(k + 1):])
        return abs(e[-1] - e[0]) / (k + 1) < float(self.config.get("halt_eps", self.halt_eps))

    def get_halt_reason(self, history: list[IRPState]) -> str:
        """Why ``halt`` stopped: ``max_steps``, ``slope<eps``, ``unknown`` or ``no_history``."""
        if not history:
            return "no_history"
        if len(history) >= self.config.get("max_iterations", self.max_iterations):
            return "max_steps"
        k = int(self.config.get("halt_K", self.halt_K))
        if len(history) >= k + 1:
            e = self._energies(history[-(k + 1):])
            if abs(e[-1] - e[0]) / (k + 1) < float(self.config.get("halt_eps", self.halt_eps)):
                return "slope<eps"
        return "unknown"

    def compute_trust_metrics(self, history: list[IRPState]) -> dict[str, float]:
        """``monotonicity_ratio``, ``dE_variance`` and ``convergence_rate`` of the energies of
        ``history`` (see ``trust_metrics``)."""
        return trust_metrics(self._energies(history))

    def emit_telemetry(self, state: IRPState, history: list[IRPState]) -> dict[str, Any]:
        """What the orchestrator records about a refinement."""
        e = self._energies(history) if history else [float(self.energy(state))]
        steps = max(len(history) - 1, 0)
        first = history[0].timestamp if history else state.timestamp
        return {"entity_id": self.entity_id, "plugin": plugin_name(self), "step_idx": state.step_idx,
                "E": e[-1], "dE": e[-1] - e[-2] if len(e) > 1 else 0.0, "steps": steps,
                "halt_reason": self.get_halt_reason(history), "trust": self.compute_trust_metrics(history),
                "budget": {"ATP_spent": steps * float(self.config.get("ATP_per_step", self.ATP_per_step)),
                           "time_ms": (state.timestamp - first) * 1e3, "memory_mb": 0.0},
                "LRC_context": self.config.get("LRC_context", self.LRC_context)}

    def refine(self, x0: Any, task_ctx: dict[str, Any] | None = None,
               max_steps: int | None = None) -> tuple[IRPState, list[IRPState]]:
        """Refine ``x0``; returns the final state and the whole history (initial state first)."""
        state = self.init_state(x0, task_ctx or {})
        state.energy_val = self.energy(state)
        history = [state]
        limit = max_steps if max_steps is not None else self.config.get("max_iterations", self.max_iterations)
        for i in range(limit):
            if self.halt(history):
                break
            state = self.project(self.step(state))
            state.step_idx = i + 1
            state.energy_val = self.energy(state)
            state.timestamp = time.time()
            history.append(state)
        return state, history


__all__ = ["IRPPlugin", "IRPState", "plugin_name", "trust_metrics"]

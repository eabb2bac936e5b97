"""``WorldIRP``: the world model as a SAGE IRP plugin that plans a throw by iterative refinement.

The input ``x0`` is a planning request: a dict in the plan-file format (``world-irp plan``,
``schemas/plan.schema.json``), a path to such a file, or an already-parsed
``planning.ThrowProblem``. ``init_state`` builds the problem, rehearses a ballistic first guess
and sets up the sampling distribution; each ``step`` is one cross-entropy iteration whose whole
population is rehearsed in one batch; ``energy`` is the energy of the best candidate so far (see
``planning.candidate_energy``); ``project`` keeps the distribution within the actuator limits.

Halting (first that applies, reported by ``get_halt_reason``):
``backend_error`` (no candidate of the last step could be judged), ``feasible_go`` (the best
candidate so far has been a GO with margin, ``planning.has_margin``, for the last ``halt_K``
steps), ``slope<eps``
(|E[-1] - E[-(K+1)]| / (K+1) < ``halt_eps``), ``atp_budget`` (one more step would spend more
than ``config["max_ATP"]`` at ``ATP_per_step`` each), ``max_steps`` (the smallest of
``config["max_iterations"]``, the plan's ``max_iterations`` and ``refine``'s ``max_steps``).

``config``: ``backend`` ("analytic") and ``device`` ("auto") pick the forward model through
``backends.create_backend``, plus SAGE's keys (``entity_id``, ``max_iterations``, ``halt_eps``,
``halt_K``, ``ATP_per_step``, ``max_ATP``, ``LRC_context``, ...). SAGE's orchestrator may change
``config`` between construction and ``refine``: everything is read when used.

This module imports neither rclpy nor SAGE's heavy parts: SAGE's ``IRPPlugin`` is the base when
``sage.irp.base`` can be imported, ``world_irp_ros.irp_base`` otherwise.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator

try:  # SAGE present: be one of its plugins
    from sage.irp.base import IRPPlugin, IRPState  # type: ignore[import-not-found]
    SAGE_BASE = True
except ImportError:  # SAGE absent (the usual case here): the project's own base, same interface
    from .irp_base import IRPPlugin, IRPState
    SAGE_BASE = False

from .backends import Backend, create_backend
from .irp_base import plugin_name, trust_metrics
from .planning import ThrowPlanner, ThrowProblem, parse_plan
from .planning.cem import Gaussian, PlannerState
from .rehearsal import Rehearser

DEFAULTS: dict[str, Any] = {"backend": "analytic", "device": "auto"}
HALT_REASONS = ("backend_error", "feasible_go", "slope<eps", "atp_budget", "max_steps")


def _peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (0 where the platform cannot tell)."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux
    except (ImportError, OSError):
        return 0.0


class WorldIRP(IRPPlugin):
    """Plans a throw by cross-entropy refinement over rehearsals (see the module docstring).

    ``backend``/``fallback``: optional ready backends (then ``config["backend"]`` is not used);
    otherwise the backend is created on first use and kept while ``config`` names the same one.
    """

    def __init__(self, config: dict[str, Any] | None = None, *, backend: Backend | None = None,
                 fallback: Backend | None = None):
        cfg = dict(DEFAULTS)
        cfg.update(config or {})
        super().__init__(cfg)
        self._given_backend = backend
        self._fallback = fallback
        self._rehearser: Rehearser | None = None
        self._rehearser_key: tuple[str, str] | None = None

    # ------------------------------------------------------------------ set-up
    @property
    def rehearser(self) -> Rehearser:
        """The rehearser on the configured backend (created, and warmed up, on first use)."""
        if self._given_backend is not None:
            if self._rehearser is None:
                self._rehearser = Rehearser(self._given_backend, self._fallback)
            return self._rehearser
        key = (str(self.config.get("backend", DEFAULTS["backend"])), str(self.config.get("device", DEFAULTS["device"])))
        if self._rehearser is None or self._rehearser_key != key:
            backend = create_backend(*key)
            backend.warmup()
            self._rehearser, self._rehearser_key = Rehearser(backend, self._fallback), key
        return self._rehearser

    @staticmethod
    def problem_of(x0: Any) -> ThrowProblem:
        """The planning problem of an input: a ``ThrowProblem``, a plan-file dict or its path."""
        if isinstance(x0, ThrowProblem):
            return x0
        if isinstance(x0, (str, Path)):
            with open(x0, encoding="utf-8") as f:
                x0 = json.load(f)
        return parse_plan(x0)

    def _max_steps(self, problem: ThrowProblem, max_steps: int | None) -> int:
        limits = [int(self.config.get("max_iterations", 100)), problem.max_iterations]
        if max_steps is not None:
            limits.append(int(max_steps))
        return max(0, min(limits))

    # ------------------------------------------------------------------ the IRP contract
    def init_state(self, x0: Any, task_ctx: dict[str, Any]) -> IRPState:
        """Parse the problem, rehearse the first guess, set up the distribution."""
        started = time.perf_counter()
        problem = self.problem_of(x0)
        planner = ThrowPlanner(self.rehearser, problem)
        x = planner.project(planner.initial_state())
        meta = {"planner": planner, "task_ctx": dict(task_ctx or {}), "max_steps": self._max_steps(problem, None)}
        meta["elapsed_ms"] = (time.perf_counter() - started) * 1e3
        return IRPState(x=x, step_idx=0, energy_val=None, meta=meta)

    def energy(self, state: IRPState) -> float:
        """Energy of the best candidate found so far (lower is better)."""
        return float(state.x.best.energy)

    def step(self, state: IRPState, noise_schedule: float | Callable[[int], float] | None = None) -> IRPState:
        """One CEM iteration (one batched rehearsal). ``noise_schedule``: optional factor (or
        function of the step index giving one) on the sampling std of this step."""
        planner: ThrowPlanner = state.meta["planner"]
        x: PlannerState = state.x
        if noise_schedule is not None:
            factor = float(noise_schedule(state.step_idx + 1) if callable(noise_schedule) else noise_schedule)
            if math.isnan(factor):
                raise ValueError("noise_schedule gave NaN: it must give a number >= 0 (a factor on the std)")
            x = replace(x, dist=Gaussian(x.dist.mean, x.dist.std * max(factor, 0.0)))
        new_x = planner.step(x)
        return IRPState(x=new_x, step_idx=state.step_idx + 1, energy_val=None, meta=dict(state.meta))

    def project(self, state: IRPState) -> IRPState:
        """Keep the sampling distribution (and so every future candidate) within the limits."""
        planner: ThrowPlanner = state.meta["planner"]
        return IRPState(x=planner.project(state.x), step_idx=state.step_idx, energy_val=state.energy_val,
                        meta=state.meta, timestamp=state.timestamp)

    def _halt_reason(self, history: list[IRPState]) -> str | None:
        if not history:
            return None
        last = history[-1]
        steps = len(history) - 1
        if last.x.backend_failed:
            return "backend_error"
        k = max(int(self.config.get("halt_K", 3)), 1)
        if steps >= k and all(s.x.best.feasible for s in history[-k:]):
            return "feasible_go"
        if len(history) >= k + 1:
            e = [self._energy_of(s) for s in history[-(k + 1):]]
            if abs(e[-1] - e[0]) / (k + 1) < float(self.config.get("halt_eps", 1e-4)):
                return "slope<eps"
        max_atp = self.config.get("max_ATP")
        if max_atp is not None and (steps + 1) * float(self.config.get("ATP_per_step", 0.1)) > float(max_atp) + 1e-9:
            return "atp_budget"
        limit = history[0].meta.get("max_steps", int(self.config.get("max_iterations", 100)))
        limit = min(limit, int(self.config.get("max_iterations", 100)))
        if steps >= limit:
            return "max_steps"
        return None

    def _energy_of(self, state: IRPState) -> float:
        return float(state.energy_val) if state.energy_val is not None else self.energy(state)

    def halt(self, history: list[IRPState]) -> bool:
        """True when refinement should stop (see the module docstring for the reasons)."""
        return self._halt_reason(history) is not None

    def get_halt_reason(self, history: list[IRPState]) -> str:
        """``feasible_go``, ``slope<eps``, ``atp_budget``, ``max_steps``, ``backend_error``;
        ``no_history`` for an empty history, ``unknown`` when nothing says stop (yet)."""
        if not history:
            return "no_history"
        return self._halt_reason(history) or "unknown"

    def compute_trust_metrics(self, history: list[IRPState]) -> dict[str, float]:
        """``monotonicity_ratio`` (1.0 here: the best-so-far energy never rises), ``dE_variance``,
        ``convergence_rate`` (see ``irp_base.trust_metrics``)."""
        return trust_metrics([self._energy_of(s) for s in history])

    def emit_telemetry(self, state: IRPState, history: list[IRPState]) -> dict[str, Any]:
        """SAGE's telemetry keys plus the planner's own. ``steps``: refinement steps taken (the
        initial state not counted), ``budget.ATP_spent`` = steps x ``ATP_per_step``,
        ``budget.time_ms``: measured wall time from the start of ``refine`` to ``state``,
        ``budget.memory_mb``: the process's peak RSS. The planner's own keys:
        ``best_action``, ``best_params``, ``verdict``, ``go``, ``feasible``, ``backend``,
        ``device``, ``evaluations``, ``population``, ``samples``, ``n_go``, ``step_energy``,
        ``rehearsal_ms``, ``distribution``."""
        energies = [self._energy_of(s) for s in history] if history else [self._energy_of(state)]
        steps = state.step_idx
        x: PlannerState = state.x
        best = x.best.to_dict()
        planner: ThrowPlanner = state.meta["planner"]
        return {
            "entity_id": self.entity_id, "plugin": plugin_name(self), "step_idx": int(state.step_idx),
            "E": float(energies[-1]), "dE": float(energies[-1] - energies[-2]) if len(energies) > 1 else 0.0,
            "steps": int(steps), "halt_reason": self.get_halt_reason(history),
            "trust": self.compute_trust_metrics(history),
            "budget": {"ATP_spent": steps * float(self.config.get("ATP_per_step", 0.1)),
                       "time_ms": float(state.meta.get("elapsed_ms", 0.0)), "memory_mb": _peak_rss_mb()},
            "LRC_context": self.config.get("LRC_context"),
            "best_action": best["action"], "best_params": best["params"], "verdict": best["verdict"],
            "go": bool(x.best.verdict.go), "feasible": bool(x.best.feasible), "backend": x.backend,
            "device": x.device, "evaluations": int(x.evaluations), "population": planner.problem.population,
            "samples": planner.problem.samples_per_candidate, "n_go": int(x.n_go),
            "step_energy": float(x.step_best.energy), "rehearsal_ms": float(x.rehearsal_ms),
            "distribution": {"mean": [float(v) for v in x.dist.mean], "std": [float(v) for v in x.dist.std]},
        }

    # ------------------------------------------------------------------ running it
    def iterate(self, x0: Any, task_ctx: dict[str, Any] | None = None, max_steps: int | None = None,
                history: list[IRPState] | None = None) -> Iterator[IRPState]:
        """Refine step by step, yielding the state after each step (not the initial one).

        ``history`` (a list, cleared first) receives every state, the initial one first, so a
        caller can read ``get_halt_reason(history)`` and ``emit_telemetry`` as it goes. Stopping
        the iteration between two steps cancels the refinement.
        """
        started = time.perf_counter()
        hist = history if history is not None else []
        hist.clear()
        state = self.init_state(x0, task_ctx or {})
        if max_steps is not None:
            state.meta["max_steps"] = min(state.meta["max_steps"], max(0, int(max_steps)))
        state.energy_val = self.energy(state)
        state.meta["elapsed_ms"] = (time.perf_counter() - started) * 1e3
        hist.append(state)
        while not self.halt(hist):
            new = self.project(self.step(state))
            new.step_idx = state.step_idx + 1
            new.energy_val = self.energy(new)
            new.timestamp = time.time()
            new.meta = dict(new.meta)
            new.meta["elapsed_ms"] = (time.perf_counter() - started) * 1e3
            hist.append(new)
            state = new
            yield new

    def refine(self, x0: Any, task_ctx: dict[str, Any] | None = None,
               max_steps: int | None = None) -> tuple[IRPState, list[IRPState]]:
        """Refine to a halt; returns ``(final_state, history)`` with the initial state first."""
        history: list[IRPState] = []
        for _ in self.iterate(x0, task_ctx, max_steps, history):
            pass
        return history[-1], history


__all__ = ["HALT_REASONS", "SAGE_BASE", "WorldIRP", "IRPPlugin", "IRPState"]

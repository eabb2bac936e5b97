"""WorldIRP as SAGE's orchestrator drives it, the fallback plugin base, halting and projection."""
from __future__ import annotations

import copy
import inspect
import json
import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from world_irp_ros import irp_base
from world_irp_ros.backends import create_backend
from world_irp_ros.errors import VerdictCode
from world_irp_ros.irp import HALT_REASONS, IRPPlugin, IRPState, WorldIRP
from world_irp_ros.planning import Gaussian

REPO = Path(__file__).resolve().parents[1]
STONE_PLAN = json.loads((REPO / "config" / "scenes" / "stone_throw_plan.json").read_text())

# SAGE's telemetry keys and the types it reads.
TELEMETRY_KEYS = {"entity_id": str, "plugin": str, "step_idx": int, "E": float, "dE": float, "steps": int,
                  "halt_reason": str, "trust": dict, "budget": dict, "LRC_context": object}


@pytest.fixture(scope="module")
def analytic():
    backend = create_backend("analytic", "cpu")
    backend.warmup()
    return backend


def plan(edit=None) -> dict:
    d = copy.deepcopy(STONE_PLAN)
    if edit:
        edit(d)
    return d


def unreachable(d):
    """A target far beyond the arm's reach: the miss term saturates, the energy is flat and no GO
    exists."""
    d["criteria"]["target"]["center"] = [9.0, -0.2, 0.0]
    d["plan"]["limits"]["max_release_speed"] = 2.0
    d["plan"]["population"] = 16


class RaisingBackend:
    """Test-only backend whose rollouts always fail."""

    name = "raising"
    device = "cpu"

    def rollout(self, batch):
        raise RuntimeError("GPU fell off the bus")

    def warmup(self):
        pass


def run_like_sage(plugin, data, budget: float, cycle: int = 1):
    """What sage/irp/orchestrator.py does with a plugin (see the contract note)."""
    plugin.config["max_ATP"] = budget
    plugin.config["max_iterations"] = int(budget * 10)
    task_ctx = {"modality": "world", "budget": budget, "cycle": cycle, "metabolic_state": "WAKE"}
    final_state, history = plugin.refine(data, task_ctx)
    return final_state, history, plugin.emit_telemetry(final_state, history)


# ------------------------------------------------------------------------ driven like SAGE
def test_sage_orchestrator_run_finds_a_go_throw(analytic):
    plugin = WorldIRP({"entity_id": "world_irp_test", "LRC_context": {"lane": "world"}}, backend=analytic)
    budget = 3.0
    final, history, t = run_like_sage(plugin, plan(), budget)

    best = final.x.best
    assert best.verdict.go and best.verdict.code == VerdictCode.GO, best.verdict.reasons
    assert best.action.type == "throw" and best.action.object_id == "stone"
    assert final.x.dist is not None and plugin.config["max_iterations"] == 30

    for key, typ in TELEMETRY_KEYS.items():
        assert key in t, key
        assert isinstance(t[key], typ), (key, type(t[key]))
    assert t["entity_id"] == "world_irp_test" and t["plugin"] == "worldirp"
    assert t["LRC_context"] == {"lane": "world"}
    assert t["step_idx"] == final.step_idx == t["steps"] == len(history) - 1
    assert t["E"] == pytest.approx(best.energy) and t["dE"] <= 0.0
    assert t["halt_reason"] == "feasible_go"
    trust = t["trust"]
    assert set(trust) == {"monotonicity_ratio", "dE_variance", "convergence_rate"}
    assert all(isinstance(x, float) for x in trust.values())
    assert 0.0 <= trust["monotonicity_ratio"] <= 1.0 and trust["monotonicity_ratio"] == 1.0
    assert trust["dE_variance"] >= 0.0
    assert 0.0 <= trust["convergence_rate"] <= 1.0
    budget_t = t["budget"]
    assert set(budget_t) == {"ATP_spent", "time_ms", "memory_mb"}
    assert budget_t["ATP_spent"] == pytest.approx(t["steps"] * 0.1) and budget_t["ATP_spent"] <= budget + 1e-9
    assert budget_t["time_ms"] > 0.0 and budget_t["memory_mb"] > 0.0
    # Our own keys.
    assert t["go"] is True and t["feasible"] is True and t["verdict"]["code"] == "GO"
    assert t["best_action"]["type"] == "throw" and len(t["best_action"]["release_velocity"]) == 3
    assert t["backend"] == "analytic" and t["device"] == "cpu"
    json.dumps(t, allow_nan=False)  # JSON-ready


def test_time_ms_is_the_measured_wall_time(analytic):
    import time

    plugin = WorldIRP({}, backend=analytic)
    start = time.perf_counter()
    final, history = plugin.refine(plan(), {"modality": "world"})
    wall_ms = (time.perf_counter() - start) * 1e3
    t = plugin.emit_telemetry(final, history)
    assert 0.0 < t["budget"]["time_ms"] <= wall_ms
    assert t["budget"]["time_ms"] > 0.5 * wall_ms
    assert [s.step_idx for s in history] == list(range(len(history)))
    assert all(b.meta["elapsed_ms"] >= a.meta["elapsed_ms"] for a, b in zip(history, history[1:]))


def test_atp_budget_stops_refinement(analytic):
    plugin = WorldIRP({}, backend=analytic)
    plugin.config["max_ATP"] = 0.25               # 2 steps at 0.1 ATP; a third would exceed it
    plugin.config["max_iterations"] = 100
    final, history = plugin.refine(plan(unreachable), {"modality": "world"})
    assert final.step_idx == 2
    assert plugin.get_halt_reason(history) == "atp_budget"
    assert plugin.emit_telemetry(final, history)["budget"]["ATP_spent"] <= 0.25


def test_max_iterations_stops_refinement(analytic):
    plugin = WorldIRP({"max_iterations": 2}, backend=analytic)
    final, history = plugin.refine(plan(unreachable), {})
    assert final.step_idx == 2 and plugin.get_halt_reason(history) == "max_steps"
    # refine's max_steps and the plan's own max_iterations are limits too.
    plugin = WorldIRP({}, backend=analytic)
    assert plugin.refine(plan(unreachable), {}, max_steps=1)[0].step_idx == 1
    final, history = plugin.refine(plan(lambda d: (unreachable(d), d["plan"].update(max_iterations=2))), {})
    assert final.step_idx == 2 and plugin.get_halt_reason(history) == "max_steps"


def test_energy_slope_stops_a_hopeless_refinement(analytic):
    plugin = WorldIRP({"halt_K": 3, "halt_eps": 1e-4}, backend=analytic)
    final, history = plugin.refine(plan(unreachable), {})
    assert plugin.get_halt_reason(history) == "slope<eps"
    assert final.step_idx >= 3 and not final.x.best.verdict.go
    assert final.x.best.verdict.code == VerdictCode.NO_GO_MISSES_TARGET


def test_backend_failure_halts_with_no_go():
    plugin = WorldIRP({}, backend=RaisingBackend())
    final, history = plugin.refine(plan(), {})
    assert plugin.get_halt_reason(history) == "backend_error"
    assert final.x.best.verdict.code == VerdictCode.NO_GO_BACKEND_ERROR
    t = plugin.emit_telemetry(final, history)
    assert t["go"] is False and "GPU fell off the bus" in " ".join(t["verdict"]["reasons"])


def test_a_failed_initial_guess_alone_does_not_stop_the_refinement(analytic):
    """One rollout the model cannot finish fails its candidate only: when that is the initial
    guess, the refinement goes on to its population and still finds a GO."""
    class GuessFails:
        """The analytic backend, but every rollout of the first batch (the guess) failed."""
        name, device = analytic.name, analytic.device

        def __init__(self):
            self.calls = 0

        def warmup(self):
            analytic.warmup()

        def rollout(self, batch):
            result = analytic.rollout(batch)
            self.calls += 1
            if self.calls == 1:
                result.mark_failed(np.ones(batch.size, dtype=bool), "more events than the model resolves")
            return result

    plugin = WorldIRP({"max_iterations": 10}, backend=GuessFails())
    final, history = plugin.refine(plan(), {})
    assert history[0].x.best.verdict.code == VerdictCode.NO_GO_BACKEND_ERROR
    assert final.step_idx >= 1 and final.x.best.verdict.go, plugin.get_halt_reason(history)


def test_halt_reasons_are_documented():
    plugin = WorldIRP({})
    assert plugin.get_halt_reason([]) == "no_history"
    assert not plugin.halt([])
    assert set(HALT_REASONS) == {"backend_error", "feasible_go", "slope<eps", "atp_budget", "max_steps"}


def test_backend_is_chosen_from_config():
    plugin = WorldIRP({"backend": "no-such-backend"})
    with pytest.raises(Exception) as info:
        plugin.refine(plan(), {})
    assert "no-such-backend" in str(info.value)
    assert WorldIRP({}).config["backend"] == "analytic" and WorldIRP({}).config["device"] == "auto"


def test_created_backend_is_analytic_by_default():
    plugin = WorldIRP({"device": "cpu"})
    assert plugin.rehearser.backend.name == "analytic"
    assert plugin.rehearser is plugin.rehearser  # created once


# ---------------------------------------------------------------------- generator and project
def test_iterate_yields_each_step_and_can_be_cancelled(analytic):
    plugin = WorldIRP({}, backend=analytic)
    history = []
    seen = []
    for state in plugin.iterate(plan(unreachable), {"modality": "world"}, history=history):
        seen.append(state.step_idx)
        t = plugin.emit_telemetry(state, history)
        assert t["step_idx"] == state.step_idx and t["halt_reason"] == "unknown"
        if len(seen) == 2:
            break  # a cancelled goal
    assert seen == [1, 2]
    assert [s.step_idx for s in history] == [0, 1, 2]


def test_inputs_can_be_a_path_or_a_parsed_problem(analytic):
    plugin = WorldIRP({}, backend=analytic)
    problem = WorldIRP.problem_of(plan())
    a = plugin.refine(problem, {}, max_steps=2)[0]
    b = plugin.refine(str(REPO / "config" / "scenes" / "stone_throw_plan.json"), {}, max_steps=2)[0]
    np.testing.assert_array_equal(a.x.best.params, b.x.best.params)  # deterministic for a seed


def test_project_keeps_actions_within_the_limits(analytic):
    plugin = WorldIRP({}, backend=analytic)
    state = plugin.init_state(plan(), {})
    limits = state.meta["planner"].problem.limits
    from dataclasses import replace

    wild = IRPState(x=replace(state.x, dist=Gaussian(np.array([99.0, 3.0, -7.0]), np.array([50.0, 5.0, 5.0]))),
                    step_idx=0, meta=state.meta)
    projected = plugin.project(wild)
    assert limits.contains(projected.x.dist.mean)
    stepped = plugin.project(plugin.step(projected))
    assert limits.contains(stepped.x.dist.mean)
    assert limits.contains(stepped.x.best.params) and limits.contains(stepped.x.step_best.params)
    assert limits.contains_velocity(stepped.x.step_best.action.release_velocity_mps)
    # A noise schedule scales the sampling spread of one step and stays within the limits.
    calm = plugin.step(projected, noise_schedule=0.0)
    assert limits.contains(calm.x.step_best.params)


# ------------------------------------------------------------------- the fallback plugin base
EXPECTED_SIGNATURES = {
    "__init__": ["self", "config"],
    "init_state": ["self", "x0", "task_ctx"],
    "energy": ["self", "state"],
    "step": ["self", "state", "noise_schedule=None"],
    "project": ["self", "state"],
    "halt": ["self", "history"],
    "get_halt_reason": ["self", "history"],
    "compute_trust_metrics": ["self", "history"],
    "emit_telemetry": ["self", "state", "history"],
    "refine": ["self", "x0", "task_ctx=None", "max_steps=None"],
}


def _params(fn):
    out = []
    for p in inspect.signature(fn).parameters.values():
        out.append(p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}")
    return out


@pytest.mark.parametrize("name", sorted(EXPECTED_SIGNATURES))
def test_fallback_base_has_sages_method_signatures(name):
    assert _params(getattr(irp_base.IRPPlugin, name)) == EXPECTED_SIGNATURES[name]
    # WorldIRP keeps each signature: the same parameters in the same order (it may give one a
    # default, e.g. config=None, and add keyword-only extras).
    mine = [p.split("=")[0] for p in _params(getattr(WorldIRP, name)) if not p.startswith(("backend=", "fallback="))]
    assert mine == [p.split("=")[0] for p in EXPECTED_SIGNATURES[name]]


def test_world_irp_is_an_irp_plugin():
    assert issubclass(WorldIRP, IRPPlugin)
    import world_irp_ros.irp as irp_module

    if not irp_module.SAGE_BASE:
        assert IRPPlugin is irp_base.IRPPlugin and IRPState is irp_base.IRPState


def test_fallback_state_fields_and_defaults():
    assert [f.name for f in fields(irp_base.IRPState)] == ["x", "step_idx", "energy_val", "meta", "timestamp"]
    s = irp_base.IRPState(x=1)
    assert s.step_idx == 0 and s.energy_val is None and s.meta == {} and s.timestamp > 0
    assert irp_base.IRPState(x=1).meta is not s.meta


def test_fallback_config_defaults():
    p = irp_base.IRPPlugin({})
    assert p.max_iterations == 100 and p.halt_eps == 1e-4 and p.halt_K == 3
    assert p.trust_weight == 1.0 and p.ATP_per_step == 0.1 and p.LRC_context is None
    assert p.entity_id.startswith("IRPPlugin")
    assert irp_base.IRPPlugin({"entity_id": "x"}).entity_id == "x"
    with pytest.raises(NotImplementedError):
        p.init_state(None, {})
    s = irp_base.IRPState(x=0)
    assert p.project(s) is s


class Halving(irp_base.IRPPlugin):
    """A toy plugin: x halves each step, energy x^2 (plain SAGE-style refinement)."""

    def init_state(self, x0, task_ctx):
        return irp_base.IRPState(x=float(x0))

    def energy(self, state):
        return state.x ** 2

    def step(self, state, noise_schedule=None):
        return irp_base.IRPState(x=state.x / 2.0)


def test_fallback_refine_loop_and_default_halting():
    p = Halving({"max_iterations": 5})
    final, history = p.refine(1.0)
    assert len(history) == 5 and [s.step_idx for s in history] == [0, 1, 2, 3, 4]
    assert p.get_halt_reason(history) == "max_steps"
    assert final.energy_val == pytest.approx(1 / 256)
    p = Halving({"max_iterations": 100, "halt_eps": 1e-3})
    final, history = p.refine(1.0)
    assert p.get_halt_reason(history) == "slope<eps" and len(history) < 100
    assert p.get_halt_reason([]) == "no_history"
    assert Halving({}).refine(1.0, max_steps=2)[1][-1].step_idx == 2
    t = p.emit_telemetry(final, history)
    assert set(TELEMETRY_KEYS) <= set(t)
    assert t["trust"]["monotonicity_ratio"] == 1.0 and 0 < t["trust"]["convergence_rate"] <= 1.0


def test_trust_metrics():
    m = irp_base.trust_metrics([4.0, 2.0, 3.0, 1.0])
    assert m["monotonicity_ratio"] == pytest.approx(2 / 3)
    assert m["dE_variance"] == pytest.approx(np.var([-2.0, 1.0, -2.0]))
    assert m["convergence_rate"] == pytest.approx(3.0 / (3 * 4.0))
    assert irp_base.trust_metrics([1.0]) == {"monotonicity_ratio": 0.0, "dE_variance": 0.0, "convergence_rate": 0.0}
    assert not math.isnan(irp_base.trust_metrics([0.0, 0.0])["convergence_rate"])

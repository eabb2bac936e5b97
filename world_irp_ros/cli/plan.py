"""``world-irp plan``: refine a throw with the WorldIRP plugin and report every step."""
from __future__ import annotations

import argparse
import math
import time
from typing import Any

from ..irp import IRPState, WorldIRP
from ..planning import ThrowProblem, parse_plan
from .common import EXIT_NO_GO, EXIT_OK, add_model_arguments, bounded, dumps, emit, load_input, open_backend


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``plan`` and its options to the subcommands ``sub``."""
    p = sub.add_parser(
        "plan", help="plan a throw by iterative refinement (the WorldIRP plugin)",
        description="Refine a throw by the cross-entropy method: each step rehearses a population of throws "
                    "within the actuator limits in one batch and refits on the best. Prints each step's "
                    "telemetry, the best action and its verdict. Exit status 0 when the best action is GO, "
                    "4 when no GO was found, 1 for a bad file, 3 when the backend is not available.",
        epilog="Plan format: world_irp_ros/schemas/plan.schema.json (a request with a 'plan' block instead of "
               "'actions'). Example: config/scenes/stone_throw_plan.json.")
    p.add_argument("file", metavar="FILE", help="plan file (JSON)")
    add_model_arguments(p)
    p.add_argument("--max-iterations", type=bounded(int, 1), metavar="N",
                   help="at most N refinement steps, and never more than the file's plan.max_iterations "
                        "(default: that)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: best action, verdict, halt reason and per-step telemetry")
    p.set_defaults(func=run)


def plan_problem(problem: ThrowProblem, plugin: WorldIRP, max_steps: int | None = None,
                 on_step=None) -> dict[str, Any]:
    """Run the refinement; returns the JSON-ready report (``on_step(telemetry)`` after each step)."""
    started = time.perf_counter()
    history: list[IRPState] = []
    telemetry = []
    for state in plugin.iterate(problem, {"modality": "world", "source": "world-irp plan"}, max_steps, history):
        t = plugin.emit_telemetry(state, history)
        telemetry.append(t)
        if on_step is not None:
            on_step(t)
    final = history[-1]
    final_t = plugin.emit_telemetry(final, history)
    if telemetry:
        telemetry[-1] = final_t
    best = final.x.best
    return {"go": bool(best.verdict.go), "feasible": bool(best.feasible), "halt_reason": final_t["halt_reason"],
            "iterations": final.step_idx, "energy": float(best.energy), "initial_energy": float(history[0].energy_val),
            "evaluations": int(final.x.evaluations), "time_ms": (time.perf_counter() - started) * 1e3,
            "backend": final.x.backend, "device": final.x.device, "best": best.to_dict(),
            "trajectory": best.trajectory.to_dict() if best.trajectory is not None else None,
            "telemetry": telemetry, "final_telemetry": final_t}


def _deg(x: float) -> str:
    return f"{math.degrees(x):6.1f}"


def step_line(t: dict[str, Any]) -> str:
    """One readable line per refinement step."""
    p, v = t["best_params"], t["verdict"]
    flag = "GO (margin)" if t["feasible"] else ("GO" if t["go"] else v["code"])
    return (f"step {t['step_idx']:3d}  E={t['E']:.4f}  dE={t['dE']:+.4f}  best: speed {p['speed_mps']:5.2f} m/s "
            f"elev {_deg(p['elevation_rad'])} deg  azim {_deg(p['azimuth_rad'])} deg  "
            f"P(s)={v['success_probability']:.2f} P(c)={v['collision_probability']:.2f}  {flag}  "
            f"[{t['n_go']}/{t['population']} GO this step, {t['rehearsal_ms']:.1f} ms]")


def summary_text(file: str, report: dict[str, Any]) -> str:
    """The closing lines of the text report."""
    b = report["best"]
    v, a = b["verdict"], b["action"]
    vel = ", ".join(f"{x:.3f}" for x in a["release_velocity"])
    pos = ", ".join(f"{x:.3f}" for x in a["release_position"])
    lines = [f"{file}: halted ({report['halt_reason']}) after {report['iterations']} step(s), "
             f"{report['evaluations']} candidates rehearsed, {report['time_ms']:.0f} ms on {report['backend']} "
             f"({report['device']})",
             f"best throw: release at ({pos}) with velocity ({vel}) m/s  [speed {b['params']['speed_mps']:.2f} m/s, "
             f"elevation {math.degrees(b['params']['elevation_rad']):.1f} deg, azimuth "
             f"{math.degrees(b['params']['azimuth_rad']):.1f} deg]",
             f"verdict: {v['code']}  P(success)={v['success_probability']:.2f}  "
             f"P(collision)={v['collision_probability']:.2f}  energy {report['energy']:.4f} "
             f"(from {report['initial_energy']:.4f})"]
    lines += [f"  {r}" for r in v["reasons"]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``world-irp plan`` with the parsed ``args``; returns the exit status."""
    problem = load_input(args.file, parse_plan)  # InputError, BackendUnavailable: main() reports them
    backend = open_backend(args.backend, args.device)
    plugin = WorldIRP({"backend": args.backend, "device": args.device, "max_iterations": problem.max_iterations},
                      backend=backend)
    on_step = None if args.json else (lambda t: emit(step_line(t)))
    report = plan_problem(problem, plugin, args.max_iterations, on_step)
    report = {"file": args.file, **report}
    if args.json:
        emit(dumps(report))
    else:
        emit(summary_text(args.file, report))
    return EXIT_OK if report["go"] else EXIT_NO_GO

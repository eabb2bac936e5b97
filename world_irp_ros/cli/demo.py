"""``world-irp demo``: the stone-throw scene end to end.

Rehearses the fan of candidate throws of ``config/scenes/stone_throw.json`` (a stone, a target on
a table, a laptop keep-out box beside it), plans a throw with the IRP on
``config/scenes/stone_throw_plan.json``, prints a summary and writes a PNG plot and a summary
JSON into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import math

from ..errors import VerdictCode
from ..irp import WorldIRP
from ..planning import parse_plan
from ..plotting import plot_rehearsal, verdict_counts
from ..rehearsal import Rehearser
from ..scene import parse_request
from .common import (EXIT_BAD_INPUT, EXIT_OK, InputError, add_model_arguments, emit, error, find_config, finite,
                     load_input, open_backend, output_folder)
from .plan import plan_problem

SCENE = "scenes/stone_throw.json"
PLAN = "scenes/stone_throw_plan.json"


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``demo`` and its options to the subcommands ``sub``."""
    p = sub.add_parser(
        "demo", help="stone-throw demo: rehearse a fan of throws, plan one, plot them",
        description="Rehearse a fan of candidate throws of a stone at a target on a table next to a laptop "
                    "(a keep-out box), plan a throw with the IRP refinement, print a summary and write "
                    "stone_throw.png (side and top views, trajectories coloured by verdict) and summary.json.")
    p.add_argument("--out", default="out/demo", metavar="DIR", help="output folder (default: out/demo)")
    add_model_arguments(p)
    p.add_argument("--scene", metavar="FILE", help=f"request file to rehearse (default: config/{SCENE})")
    p.add_argument("--plan", metavar="FILE", help=f"plan file for the IRP (default: config/{PLAN})")
    p.add_argument("--no-plan", action="store_true", help="skip the IRP planning step")
    p.set_defaults(func=run)


def _fmt(p) -> str:
    return "(" + ", ".join(f"{x:.2f}" for x in p) + ")"


OUTPUTS = ("stone_throw.png", "summary.json")


def run(args: argparse.Namespace) -> int:
    """Run ``world-irp demo`` with the parsed ``args``; returns the exit status."""
    try:
        scene_path = args.scene or str(find_config(SCENE))
        plan_path = None if args.no_plan else (args.plan or str(find_config(PLAN)))
    except FileNotFoundError as err:
        error(f"world-irp demo: {err}")
        return EXIT_BAD_INPUT
    out = output_folder(args.out, OUTPUTS)  # InputError (main() reports it) before any work
    request = load_input(scene_path, parse_request)  # InputError, BackendUnavailable: main() reports them
    problem = load_input(plan_path, parse_plan) if plan_path else None
    backend = open_backend(args.backend, args.device)

    outcome = Rehearser(backend).rehearse(request)
    counts = verdict_counts([v.code for v in outcome.verdicts])
    n_go = counts.get(VerdictCode.GO.name, 0)
    emit(f"stone-throw demo: {len(outcome.verdicts)} candidate throws rehearsed in {outcome.latency_ms:.1f} ms "
         f"on {outcome.backend} ({outcome.device}), {outcome.samples} sample(s) each")
    emit(f"  GO: {n_go}")
    for name, n in counts.items():
        if name != VerdictCode.GO.name:
            emit(f"  {name}: {n}")
    chosen = outcome.verdicts[outcome.best_index] if outcome.best_index >= 0 else None
    if chosen is not None:
        action = request.actions[outcome.best_index]
        emit(f"chosen throw: {chosen.action_id} velocity {_fmt(action.release_velocity_mps)} m/s, "
             f"P(success)={chosen.success_probability:.2f}, lands {_fmt(chosen.landing_point_m)} "
             f"at {chosen.landing_time_s:.2f} s, clearance to keep-out {chosen.clearance_m:.3f} m")
    else:
        emit("chosen throw: none (no candidate is GO)")

    plan_report = None
    planned = None
    if problem is not None:
        plugin = WorldIRP({"backend": args.backend, "device": args.device, "max_iterations": problem.max_iterations},
                          backend=backend)
        plan_report = plan_problem(problem, plugin)
        b = plan_report["best"]
        p = b["params"]
        emit(f"IRP plan: {b['verdict']['code']} after {plan_report['iterations']} step(s) "
             f"({plan_report['halt_reason']}, {plan_report['evaluations']} candidates, "
             f"{plan_report['time_ms']:.0f} ms): speed {p['speed_mps']:.2f} m/s, "
             f"elevation {math.degrees(p['elevation_rad']):.1f} deg, azimuth {math.degrees(p['azimuth_rad']):.1f} deg, "
             f"P(success)={b['verdict']['success_probability']:.2f}, energy {plan_report['energy']:.4f}")
        if plan_report["trajectory"] is not None:
            planned = plan_report["trajectory"]["positions"]

    png_path, summary_path = (out / name for name in OUTPUTS)
    try:
        png = plot_rehearsal(request, outcome, png_path, planned=planned,
                             title=f"stone throw: {n_go} GO of {len(outcome.verdicts)} candidates")
    except OSError as err:
        raise InputError(str(png_path), "", f"cannot write: {err.strerror or err}") from None
    summary = {
        "scene": str(scene_path), "plan_file": plan_path, "backend": outcome.backend, "device": outcome.device,
        "latency_ms": outcome.latency_ms, "samples": outcome.samples, "candidates": len(outcome.verdicts),
        "go": n_go, "no_go": len(outcome.verdicts) - n_go, "codes": counts,
        "chosen": None if chosen is None else {
            "action_id": chosen.action_id,
            "release_velocity": list(request.actions[outcome.best_index].release_velocity_mps),
            "verdict": chosen.to_dict()},
        "verdicts": [v.to_dict() for v in outcome.verdicts],
        "plan": None if plan_report is None else {k: plan_report[k] for k in (
            "go", "feasible", "halt_reason", "iterations", "energy", "initial_energy", "evaluations", "time_ms",
            "best")},
        "plot": png.name,
    }
    try:
        summary_path.write_text(json.dumps(finite(summary), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    except OSError as err:
        raise InputError(str(summary_path), "", f"cannot write: {err.strerror or err}") from None
    emit(f"wrote {png} and {summary_path}")
    return EXIT_OK

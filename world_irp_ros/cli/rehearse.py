"""``world-irp rehearse``: judge the candidates of request files, one answer per file in order."""
from __future__ import annotations

import argparse

from ..backends import NAMES
from ..rehearsal import RehearsalOutcome, Rehearser
from ..scene import parse_request
from .common import (EXIT_BAD_INPUT, EXIT_OK, InputError, add_model_arguments, bounded, dumps, emit, error,
                     load_input, open_backend)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``rehearse`` and its options to the subcommands ``sub``."""
    p = sub.add_parser(
        "rehearse", help="judge the candidate actions of request files (GO / NO-GO)",
        description="Rehearse every candidate action of each request file in the forward model and print its "
                    "verdict. Files are answered in order; a bad file gets one error line on stderr (file and "
                    "field) while the others are still answered, and the exit status is then 1.",
        epilog="Request format: world_irp_ros/schemas/request.schema.json; output of --json (one object per "
               "file, JSON Lines): world_irp_ros/schemas/result.schema.json.")
    p.add_argument("files", nargs="+", metavar="FILE", help="request file(s) (JSON)")
    add_model_arguments(p)
    p.add_argument("--fallback", choices=NAMES, default=None,
                   help="backend to try when the first one fails on a request (named in the reasons)")
    p.add_argument("--samples", type=bounded(int, 1, 4096), metavar="N",
                   help="uncertainty samples per candidate (default: the file's, else 1 when nothing is "
                        "uncertain and 64 otherwise)")
    p.add_argument("--deadline-ms", type=bounded(float, 0, strict=True), metavar="MS",
                   help="answer NO_GO_DEADLINE for every candidate of a request that takes longer")
    p.add_argument("--json", action="store_true", help="print JSON Lines (one object per file) instead of text")
    p.add_argument("--no-trajectories", action="store_true", help="leave the nominal trajectories out of --json")
    p.set_defaults(func=run)


def outcome_dict(file: str, outcome: RehearsalOutcome, trajectories: bool = True) -> dict:
    """The JSON answer to one request file (schemas/result.schema.json, ``answered``)."""
    d = {"file": file, "request_id": outcome.request_id, "backend": outcome.backend, "device": outcome.device,
         "latency_ms": round(float(outcome.latency_ms), 3), "samples": int(outcome.samples),
         "best_index": int(outcome.best_index), "verdicts": [v.to_dict() for v in outcome.verdicts]}
    if trajectories:
        d["trajectories"] = [t.to_dict() for t in outcome.trajectories]
    return d


def _point(p) -> str:
    return "-" if p is None else "(" + ", ".join(f"{x:.2f}" for x in p) + ")"


def outcome_text(file: str, outcome: RehearsalOutcome) -> str:
    """A readable summary of one answer."""
    n_go = sum(v.go for v in outcome.verdicts)
    lines = [f"{file}: {len(outcome.verdicts)} candidate(s), {n_go} GO - backend {outcome.backend} "
             f"({outcome.device}), {outcome.samples} sample(s), {outcome.latency_ms:.1f} ms"]
    width = max(len(v.action_id) for v in outcome.verdicts)
    for v in outcome.verdicts:
        land = (f"lands {_point(v.landing_point_m)} at {v.landing_time_s:.2f} s" if v.lands else "does not land")
        lines.append(f"  {v.code.name:<20} {v.action_id:<{width}}  P(success)={v.success_probability:.2f} "
                     f"P(collision)={v.collision_probability:.2f}  {land}{'  <- chosen' if v.chosen else ''}")
        lines.append(f"  {'':<20} {'':<{width}}  {v.reasons[0]}" if v.reasons else "")
        for extra in v.reasons[2:]:  # reasons[1] is the probability line already shown
            lines.append(f"  {'':<20} {'':<{width}}  {extra}")
    return "\n".join(line for line in lines if line)


def run(args: argparse.Namespace) -> int:
    """Run ``world-irp rehearse`` with the parsed ``args``; returns the exit status."""
    backend = open_backend(args.backend, args.device)  # BackendUnavailable: main() reports it
    fallback = open_backend(args.fallback, args.device) if args.fallback else None
    rehearser = Rehearser(backend, fallback)
    status = EXIT_OK
    for path in args.files:
        try:
            request = load_input(path, parse_request)
        except InputError as err:
            error(str(err))
            if args.json:
                emit(dumps(err.to_dict()))
            status = EXIT_BAD_INPUT
            continue
        outcome = rehearser.rehearse(request, deadline_ms=args.deadline_ms, samples=args.samples)
        if args.json:
            emit(dumps(outcome_dict(path, outcome, not args.no_trajectories)))
        else:
            emit(outcome_text(path, outcome))
    return status

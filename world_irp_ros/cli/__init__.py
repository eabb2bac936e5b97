"""The ``world-irp`` command: ``rehearse`` request files, ``plan`` a throw, run the ``demo``.

``main(argv)`` returns the exit status (0 ok, 1 bad input file, 2 bad command line, 3 backend not
available, 4 ``plan`` found no GO); ``scripts/world-irp`` and ``python -m world_irp_ros.cli``
call it.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from . import demo, plan, rehearse
from .common import (EXIT_BACKEND, EXIT_BAD_INPUT, EXIT_NO_GO, EXIT_OK, EXIT_USAGE, BackendUnavailable, InputError,
                     error)

EPILOG = f"""exit status:
  {EXIT_OK}  success (plan: the best action is GO)
  {EXIT_BAD_INPUT}  a file could not be read, decoded or validated (the error names file and field)
  {EXIT_USAGE}  bad command line
  {EXIT_BACKEND}  the backend is not available
  {EXIT_NO_GO}  plan: no GO action was found

examples:
  world-irp rehearse config/scenes/stone_throw.json --json --no-trajectories
  world-irp plan config/scenes/stone_throw_plan.json
  world-irp demo --out out/demo
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``world-irp`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="world-irp", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Rehearse robot actions (throw, drop, push an object) in a fast forward model before\n"
                    "committing to one: go / no-go verdicts, throw planning by iterative refinement, a demo.\n"
                    "`world-irp COMMAND --help` describes each command.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    rehearse.add_parser(sub)
    plan.add_parser(sub)
    demo.add_parser(sub)
    # Listed for --help only: main() hands "closed-loop" its own arguments before parsing.
    sub.add_parser("closed-loop", add_help=False, help="closed-loop demo over ROS 2 node processes (own --help)")
    return parser


def _closed_loop(argv: list[str]) -> int:
    # Imported only when asked for (it drives ROS 2 node processes); it parses its own options.
    from .closed_loop import main as closed_loop_main

    return int(closed_loop_main(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``world-irp`` with ``argv`` (default: the process's arguments); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["closed-loop"]:
        try:
            return _closed_loop(argv[1:])
        except SystemExit as exc:
            return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return int(args.func(args))
    # Every subcommand ends the same way on a bad input file or an unavailable backend.
    except InputError as err:
        error(str(err))
        return EXIT_BAD_INPUT
    except BackendUnavailable as err:
        error(f"world-irp {args.command}: {err}")
        return EXIT_BACKEND
    except KeyboardInterrupt:
        print("world-irp: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `world-irp rehearse ... | head`
        return EXIT_OK


__all__ = ["build_parser", "main"]

"""A whole rehearsal (what the CLI, the IRP plugin and the node call) against the rollout inside it.

Scene: ``config/scenes/stone_throw.json`` (a stone, a table, the target on it, a laptop beside
it) with its actions replaced by N throws fanned out in speed and direction; rows for N = 1, 64,
1024 deterministic (1 sample) and with uncertainty samples. Columns: ``Rehearser.rehearse`` on the
analytic backend (CPU) and its stages timed alone: ``build_batch`` (request -> arrays and noise),
``rollout``, ``judge`` (verdicts and reasons) and the nominal tracks with their named events.
Prints a Markdown table and writes bench/results/rehearsal.json with the machine it ran on.

    ./run bench rehearsal            # or: ./run exec python bench/bench_rehearsal.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_analytic import machine, timed_ms  # noqa: E402  (one machine description, one timer)
from world_irp_ros.backends import create_backend  # noqa: E402
from world_irp_ros.rehearsal import Rehearser, build_batch, nominal_trajectories  # noqa: E402
from world_irp_ros.scene import parse_request  # noqa: E402
from world_irp_ros.verdicts import judge, keep_out_margin_m  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "rehearsal.json"
SCENE = ROOT / "config" / "scenes" / "stone_throw.json"
ROWS = ((1, 1), (64, 1), (1024, 1), (64, 64), (1024, 16))     # (candidates, samples each)


def fan_of_throws(n: int):
    """The stone-throw request with ``n`` throws: 3-6 m/s, 0.2-0.8 rad up, +-0.3 rad sideways."""
    d = json.loads(SCENE.read_text())
    rng = np.random.default_rng(n)
    speed, elevation, azimuth = rng.uniform(3, 6, n), rng.uniform(0.2, 0.8, n), rng.uniform(-0.3, 0.3, n)
    d["actions"] = [{"id": f"t{i}", "type": "throw", "object_id": "stone",
                     "release_velocity": [s * np.cos(e) * np.cos(a), s * np.cos(e) * np.sin(a), s * np.sin(e)]}
                    for i, (s, e, a) in enumerate(zip(speed.tolist(), elevation.tolist(), azimuth.tolist()))]
    return parse_request(d)


def measure(quick: bool) -> list[dict]:
    backend = create_backend("analytic", "cpu")
    backend.warmup()
    rehearser = Rehearser(backend)
    rows = []
    for n, samples in ROWS:
        repeats = 5 if quick else (11 if n * samples > 10_000 else 31)
        request = fan_of_throws(n)
        batch = build_batch(request, samples)
        result = backend.rollout(batch)
        ids = [a.id for a in request.actions]
        zones = [z.name for z in request.criteria.keep_out]
        stages = {
            "rehearse": lambda: rehearser.rehearse(request, samples=samples),
            "build_batch": lambda: build_batch(request, samples),
            "rollout": lambda: backend.rollout(batch),
            "judge": lambda: judge(ids, result, batch.half_extent_m[2], keep_out_margin_m(batch), request.criteria,
                                   samples, zones),
            "tracks": lambda: nominal_trajectories(request, result),
        }
        row = {"candidates": n, "samples": samples, "rollouts": n * samples}
        for name, fn in stages.items():
            row[f"{name}_p50_ms"], row[f"{name}_min_ms"] = timed_ms(fn, repeats)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| candidates | samples | rehearse p50 (min) ms | build_batch | rollout | judge | tracks "
             "| rollout share |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['candidates']} | {r['samples']} | {r['rehearse_p50_ms']:.2f} ({r['rehearse_min_ms']:.2f}) "
                     f"| {r['build_batch_p50_ms']:.2f} | {r['rollout_p50_ms']:.2f} | {r['judge_p50_ms']:.2f} "
                     f"| {r['tracks_p50_ms']:.2f} | {r['rollout_p50_ms'] / r['rehearse_p50_ms']:.0%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    args = parser.parse_args(argv)
    host = machine()  # before the run: the load average says how busy the machine was
    rows = measure(args.quick)
    print(table(rows))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": host, "quick": args.quick, "rows": rows}, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

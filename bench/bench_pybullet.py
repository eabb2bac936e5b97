"""PyBullet backend against the analytic one: the same batches side by side, and its accuracy.

Speed: one batch of N random throws (N = 1, 64, 1024; ball and cube, a table, a keep-out zone,
2 s horizon, the rehearsal's 1/60 s step) through ``rollout`` of each backend, p50 of repeated
runs after a warm-up, and the ratio pybullet / analytic. Accuracy: landing points of random throws
(up to 12 m/s, with drag, 3 s) against SciPy DOP853 at rtol 1e-10 with a ground event, and
against the analytic backend. Prints Markdown tables and writes bench/results/pybullet.json.

    ./run bench pybullet                 # or: ./run exec python bench/bench_pybullet.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_analytic import machine  # noqa: E402  (one description of the machine for every bench)
from world_irp_ros.backends import create_backend  # noqa: E402
from world_irp_ros.backends.base import RolloutBatch, RolloutResult  # noqa: E402
from world_irp_ros.rehearsal import build_batch  # noqa: E402
from world_irp_ros.scene import (CandidateAction, Criteria, Environment, KeepOutZone,  # noqa: E402
                                 ObjectModel, Obstacle, RehearsalRequest, Scene, TargetRegion)

RESULTS = ROOT / "bench" / "results" / "pybullet.json"
SIZES = (1, 64, 1024)


def throw_batch(n: int, seed: int = 0, horizon_s: float = 2.0) -> RolloutBatch:
    """The rehearsal batch of n random throws (ball or cube) over a table, with a keep-out zone."""
    rng = np.random.default_rng(seed)
    env = Environment(obstacles=(Obstacle("table", (-0.4, -0.6, 0.0), (0.4, 0.6, 0.75)),))
    objects = {"ball": ObjectModel("ball", "sphere", (0.03, 0.0, 0.0), 0.2, position_m=(0.0, 0.0, 1.2)),
               "cube": ObjectModel("cube", "box", (0.08, 0.08, 0.08), 0.5, position_m=(0.0, 0.0, 1.2))}
    actions = []
    for i in range(n):
        speed, elevation, azimuth = rng.uniform(2.0, 8.0), rng.uniform(-0.3, 1.0), rng.uniform(-0.6, 0.6)
        v = speed * np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                              np.sin(elevation)])
        actions.append(CandidateAction(f"t{i}", "throw", "ball" if i % 3 else "cube",
                                       release_position_m=(0.3, 0.0, 1.2), release_velocity_mps=tuple(v)))
    criteria = Criteria(TargetRegion((2.5, 0.0, 0.0), 0.3), (KeepOutZone("lamp", (1.4, -0.3, 0.0), (1.8, 0.3, 0.9)),),
                        horizon_s=horizon_s)
    return build_batch(RehearsalRequest(Scene(env, objects), tuple(actions), criteria), samples=1)


def timed_ms(backend, batch: RolloutBatch, repeats: int) -> tuple[float, float, RolloutResult]:
    """(p50, min) wall time of ``rollout`` in ms, after one warm call (pool, kernel caches), and
    the result."""
    result = backend.rollout(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        backend.rollout(batch)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), min(times), result


def flight_batch(n: int, seed: int) -> RolloutBatch:
    """n random throws up to 12 m/s with drag over an empty floor, 3 s."""
    rng = np.random.default_rng(seed)
    speed, elevation, azimuth = rng.uniform(2, 12, n), rng.uniform(-0.6, 1.2, n), rng.uniform(0, 2 * np.pi, n)
    v = speed * np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
    x = np.vstack([rng.uniform(-1, 1, (2, n)), rng.uniform(0.3, 2.5, (1, n))])
    r = np.full(n, 0.03)
    none3, none = np.zeros((3, 0)), np.zeros(0)
    return RolloutBatch(x, v, np.zeros(n), np.tile(r, (3, 1)), r, np.ones(n), rng.uniform(0, 0.05, n), np.full(n, 0.5),
                        np.full(n, 0.5), np.full(n, 0.02), np.array([0.0, 0.0, -9.81]), 0.0, 1.0, 1.0, none3, none3,
                        none, none, none3, none3, np.arange(91) / 30.0, 3.0)


def dop853_landing(batch: RolloutBatch) -> np.ndarray:
    """(3, n) centre at first ground contact, SciPy DOP853 rtol 1e-10 with a terminal event."""
    g = batch.gravity_mps2
    out = np.full((3, batch.size), np.nan)
    for i in range(batch.size):
        k, bottom = batch.drag_k_per_m[i], batch.ground_height_m + batch.half_extent_m[2, i]

        def rhs(_t, y, k=k):
            return np.concatenate([y[3:], g - k * np.linalg.norm(y[3:]) * y[3:]])

        def ground(_t, y, bottom=bottom):
            return y[2] - bottom

        ground.terminal, ground.direction = True, -1
        sol = solve_ivp(rhs, (0.0, batch.horizon_s), np.concatenate([batch.position_m[:, i], batch.velocity_mps[:, i]]),
                        method="DOP853", rtol=1e-10, atol=1e-12, events=ground)
        if sol.t_events[0].size:
            out[:, i] = sol.y_events[0][0][:3]
    return out


def error_stats(a: np.ndarray, b: np.ndarray) -> dict:
    both = np.isfinite(a[0]) & np.isfinite(b[0])
    err = np.linalg.norm(a[:, both] - b[:, both], axis=0) * 100.0
    return {"n": int(both.sum()), "p50_cm": float(np.percentile(err, 50)), "p95_cm": float(np.percentile(err, 95)),
            "max_cm": float(err.max()), "landing_disagreements": int((np.isfinite(a[0]) != np.isfinite(b[0])).sum())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and throws (a smoke run)")
    args = parser.parse_args(argv)
    repeats = {1: 5, 64: 3, 1024: 1} if args.quick else {1: 21, 64: 7, 1024: 3}
    host = machine()  # before the run: the load average says how busy the machine was
    pybullet = create_backend("pybullet", "cpu")
    try:
        analytic = create_backend("analytic", "cpu")
        analytic.warmup()
    except Exception as err:  # noqa: BLE001 - the comparison column is then empty, not the run
        print(f"analytic backend unavailable ({err}); pybullet only")
        analytic = None
    start = time.perf_counter()
    pybullet.warmup()
    warmup_s = time.perf_counter() - start
    try:
        speed = []
        for n in SIZES:
            batch = throw_batch(n)
            row = {"n": n}
            row["pybullet_p50_ms"], row["pybullet_min_ms"], ours = timed_ms(pybullet, batch, repeats[n])
            if analytic is not None:
                row["analytic_p50_ms"], row["analytic_min_ms"], theirs = timed_ms(analytic, batch,
                                                                                 max(repeats[n], 21))
                row["ratio"] = row["pybullet_p50_ms"] / row["analytic_p50_ms"]
            speed.append(row)
        flights = flight_batch(64 if args.quick else 256, seed=1)
        landing = pybullet.rollout(flights).landing_point_m
        accuracy = {"landing, flights vs DOP853": error_stats(landing, dop853_landing(flights))}
        if analytic is not None:
            accuracy["landing, flights vs analytic"] = error_stats(landing, analytic.rollout(flights).landing_point_m)
            # The largest speed batch (table, bounces, rolling, sliding) against the analytic backend.
            accuracy["landing, table scene vs analytic"] = error_stats(ours.landing_point_m, theirs.landing_point_m)
            balls = batch.rolls > 0.5
            for name, which in (("ball", balls), ("cube", ~balls)):
                accuracy[f"final position, {name}s, table scene vs analytic"] = error_stats(
                    ours.final_position_m[:, which], theirs.final_position_m[:, which])
    finally:
        pybullet.close()

    print(f"PyBullet backend: {pybullet.workers} worker processes, step {pybullet.step_s(1 / 60):.6f} s "
          f"(warm-up {warmup_s:.2f} s)\n")
    print("| N | pybullet p50 (min) ms | analytic p50 (min) ms | pybullet / analytic (p50) |\n|---|---|---|---|")
    for row in speed:
        a, ratio = row.get("analytic_p50_ms"), row.get("ratio")
        a_text = "n/a" if a is None else f"{a:.2f} ({row['analytic_min_ms']:.2f})"
        ratio_text = "n/a" if ratio is None else f"{ratio:.0f}x"
        print(f"| {row['n']} | {row['pybullet_p50_ms']:.1f} ({row['pybullet_min_ms']:.1f}) | {a_text} | {ratio_text} |")
    print("\n| error | n | p50 cm | p95 cm | max cm |\n|---|---|---|---|---|")
    for name, s in accuracy.items():
        print(f"| {name} | {s['n']} | {s['p50_cm']:.3f} | {s['p95_cm']:.3f} | {s['max_cm']:.3f} |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": host, "workers": pybullet.workers,
                                   "step_s": pybullet.step_s(1 / 60), "warmup_s": warmup_s, "quick": args.quick,
                                   "speed": speed, "accuracy": accuracy}, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

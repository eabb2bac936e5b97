"""Analytic backend speed: the numba kernel vs an eager PyTorch loop of the same equations vs SciPy.

Scene ("stone throw"): N candidates released at 1.2 m at 3-10 m/s (half stones that slide, half
balls that roll; quadratic drag), a table to land on and slide off, one keep-out box, the ground;
2 s horizon, RK4 at dt = 1/60 s, 61 samples. Columns, per N = 1, 64, 1024, 8192:

* analytic: ``AnalyticBackend("cpu")`` -- the numba kernel (all threads numba has; also with one
  thread, whose time is robust to other jobs competing for the cores);
* torch eager: ``AnalyticBackend("cpu", engine="torch")`` -- the same ``physics.model`` functions
  run on float64 tensors in a Python step loop (what the CUDA path runs, here on the CPU);
* SciPy DOP853 (rtol 1e-10, ground event) per throw, flight to the first ground contact only, timed
  for N <= 64 and extrapolated per throw beyond.

Also: the flight-only rate (no table, no zone, the ground far below: the vectorised fast path
alone), the scene without events (its table and zone still tested every step, but out of reach: what
the scene costs before any event is handled), both also with 2 samples instead of 61 (the start and
the end: what writing the trajectories costs), landing accuracy against DOP853, and cold (compile)
vs cached start of a new process. Prints Markdown tables and writes bench/results/analytic.json with
the machine it ran on. ``--breakdown`` adds where the time of one ``rollout`` goes (validation,
input preparation, output allocation, kernel, result assembly) at N = 1 and 1024.

    ./run bench analytic          # or: ./run exec python bench/bench_analytic.py [--quick] [--blocks 32,64,128]
                                  #     [--breakdown]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
from scipy.integrate import solve_ivp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from world_irp_ros.backends.analytic import AnalyticBackend  # noqa: E402
from world_irp_ros.backends.base import RolloutBatch  # noqa: E402
from world_irp_ros.scene import ObjectModel  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "analytic.json"
SIZES = (1, 64, 1024, 8192)
G = np.array([0.0, 0.0, -9.81])


def machine() -> dict:
    """What the numbers were measured on (the load average says how busy the machine was)."""
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "numpy": np.__version__, "numba": numba.__version__, "torch": torch.__version__,
            "numba_threads": numba.get_num_threads(), "torch_threads": torch.get_num_threads(),
            "load_average_1min": os.getloadavg()[0]}


def stone_throws(n: int, seed: int = 0, horizon_s: float = 2.0, flight_only: bool = False,
                 events: bool = True, samples: int = 61) -> RolloutBatch:
    """The benchmark batch (see the module doc); ``flight_only``: no table, no zone, the ground 1 km
    down (no events at all: the kernel's vectorised fast path alone); ``events=False``: the table
    and the zone 100 m away (still tested every step) and the ground 1 km down; ``samples``: sample
    times, evenly spaced over the horizon."""
    rng = np.random.default_rng(seed)
    speed, elev, azim = rng.uniform(3, 10, n), rng.uniform(0.1, 0.9, n), rng.uniform(-0.3, 0.3, n)
    vel = np.stack([speed * np.cos(elev) * np.cos(azim), speed * np.cos(elev) * np.sin(azim), speed * np.sin(elev)])
    ball = ObjectModel("ball", "sphere", (0.03, 0.0, 0.0), 0.2)
    stone = ObjectModel("stone", "box", (0.08, 0.06, 0.04), 0.4)
    rolls = (np.arange(n) % 2 == 0).astype(float)
    hext = np.where(rolls[None] > 0, ball.half_extents_m()[:, None], stone.half_extents_m()[:, None])
    drag = np.where(rolls > 0, ball.drag_k_per_m(1.225), stone.drag_k_per_m(1.225))
    away = 0.0 if events else 100.0
    batch = RolloutBatch(
        position_m=np.tile([[0.0], [0.0], [1.2]], (1, n)), velocity_mps=np.ascontiguousarray(vel),
        release_time_s=np.zeros(n), half_extent_m=np.ascontiguousarray(hext), radius_m=hext.min(axis=0), rolls=rolls,
        drag_k_per_m=drag, restitution=rng.uniform(0.2, 0.6, n), friction=rng.uniform(0.3, 0.8, n),
        rolling_resistance=np.full(n, 0.05), gravity_mps2=G.copy(),
        ground_height_m=-1000.0 if flight_only or not events else 0.0, ground_restitution=1.0, ground_friction=1.0,
        obstacle_min_m=np.array([[2.0 + away], [-0.5], [0.0]]), obstacle_max_m=np.array([[3.0 + away], [0.5], [0.75]]),
        obstacle_restitution=np.array([0.3]), obstacle_friction=np.array([0.5]),
        keep_out_min_m=np.array([[4.0 + away], [-1.0], [0.0]]), keep_out_max_m=np.array([[4.5 + away], [1.0], [1.0]]),
        sample_times_s=np.linspace(0.0, horizon_s, samples), horizon_s=horizon_s, dt_s=1.0 / 60.0)
    if flight_only:
        batch = dataclasses.replace(batch, obstacle_min_m=np.zeros((3, 0)), obstacle_max_m=np.zeros((3, 0)),
                                    obstacle_restitution=np.zeros(0), obstacle_friction=np.zeros(0),
                                    keep_out_min_m=np.zeros((3, 0)), keep_out_max_m=np.zeros((3, 0)))
    return batch


def timed_ms(fn, repeats: int) -> tuple[float, float]:
    """(p50, min) wall time of ``fn()`` in ms after one warm call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), min(times)


def dop853_first_contact(batch: RolloutBatch, i: int) -> tuple[float, np.ndarray]:
    """Landing time and centre of throw ``i`` (flight with drag to the ground), DOP853 rtol 1e-10."""
    k, bottom = batch.drag_k_per_m[i], batch.ground_height_m + batch.half_extent_m[2, i]

    def rhs(_t, y):
        return np.concatenate([y[3:], G - k * np.linalg.norm(y[3:]) * y[3:]])

    def ground(_t, y):
        return y[2] - bottom
    ground.terminal, ground.direction = True, -1
    sol = solve_ivp(rhs, (0.0, batch.horizon_s), np.concatenate([batch.position_m[:, i], batch.velocity_mps[:, i]]),
                    method="DOP853", rtol=1e-10, atol=1e-12, events=ground)
    if sol.t_events[0].size:
        return float(sol.t_events[0][0]), sol.y_events[0][0][:3]
    return float("nan"), np.full(3, np.nan)


def start_times() -> dict:
    """Seconds to import and create ``AnalyticBackend`` in a new process: compile, then cached."""
    code = ("import time, warnings; warnings.simplefilter('ignore'); t0 = time.perf_counter();"
            "from world_irp_ros.backends.analytic import AnalyticBackend; t1 = time.perf_counter();"
            "AnalyticBackend('cpu'); t2 = time.perf_counter(); print(t1 - t0, t2 - t1)")
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, WORLD_IRP_NUMBA_CACHE=cache)
        for label in ("cold", "cached"):
            start = time.perf_counter()
            run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                                 check=True)
            imp, create = (float(x) for x in run.stdout.split()[-2:])
            out[label] = {"process_s": time.perf_counter() - start, "import_s": imp, "create_and_warm_s": create}
    return out


def block_sizes(blocks: list[int], n: int = 1024) -> dict:
    """p50/min at N for other compile-time block sizes (each compiled in its own process)."""
    code = ("import sys, json, warnings; warnings.simplefilter('ignore'); sys.path.insert(0, 'bench');"
            "import bench_analytic as b; from world_irp_ros.backends.analytic import AnalyticBackend;"
            f"be = AnalyticBackend('cpu'); out = {{}};"
            f"s = b.stone_throws({n}); out['scene'] = b.timed_ms(lambda: be.rollout(s), 15);"
            f"f = b.stone_throws({n}, flight_only=True); out['flight_only'] = b.timed_ms(lambda: be.rollout(f), 15);"
            "print(json.dumps(out))")
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        for block in blocks:
            env = dict(os.environ, WORLD_IRP_NUMBA_CACHE=cache, WORLD_IRP_NUMBA_BLOCK=str(block))
            run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                                 check=True)
            out[block] = json.loads(run.stdout.strip().splitlines()[-1])
    return out


def breakdown(backend: AnalyticBackend, sizes=(1, 1024)) -> dict:
    """p50/min in ms of each stage of ``AnalyticBackend.rollout`` (the numba engine) per N."""
    from world_irp_ros.backends.analytic import allocate, finish, prepare

    out = {}
    for n in sizes:
        batch = stone_throws(n)
        reps = 2000 if n == 1 else 50
        prep = prepare(batch)
        outputs = allocate(prep)
        backend._run_numba(prep, outputs)
        out[n] = {"validate": timed_ms(batch.validate, reps),
                  "prepare (incl. validate)": timed_ms(lambda: prepare(batch), reps),
                  "allocate": timed_ms(lambda: allocate(prep), reps),
                  "kernel": timed_ms(lambda: backend._run_numba(prep, outputs), reps),
                  "finish": timed_ms(lambda: finish(prep, outputs), reps),
                  "rollout": timed_ms(lambda: backend.rollout(batch), reps)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no start-time measurement")
    parser.add_argument("--blocks", default="", help="also time these block sizes, e.g. 32,64,128 (recompiles)")
    parser.add_argument("--breakdown", action="store_true", help="also time each stage of rollout at N = 1, 1024")
    args = parser.parse_args(argv)
    host = machine()
    numba_backend = AnalyticBackend("cpu")
    torch_backend = AnalyticBackend("cpu", engine="torch", warm=False)
    torch_backend.warmup()
    reps = {1: 200, 64: 100, 1024: 30, 8192: 10}
    torch_reps = {1: 5, 64: 5, 1024: 3, 8192: 2}
    if args.quick:
        reps = {n: max(2, r // 10) for n, r in reps.items()}
        torch_reps = {n: 1 for n in torch_reps}

    rows = []
    dop_per_throw_ms = None
    for n in SIZES:
        batch = stone_throws(n)
        flight = stone_throws(n, flight_only=True)
        quiet = stone_throws(n, events=False)
        flight_2 = stone_throws(n, flight_only=True, samples=2)
        quiet_2 = stone_throws(n, events=False, samples=2)
        a50, amin = timed_ms(lambda: numba_backend.rollout(batch), reps[n])
        f50, fmin = timed_ms(lambda: numba_backend.rollout(flight), reps[n])
        q50, qmin = timed_ms(lambda: numba_backend.rollout(quiet), reps[n])
        f2_50, f2_min = timed_ms(lambda: numba_backend.rollout(flight_2), reps[n])
        q2_50, q2_min = timed_ms(lambda: numba_backend.rollout(quiet_2), reps[n])
        numba.set_num_threads(1)        # one thread: the CPU time of the work, robust to a busy machine
        s50, smin = timed_ms(lambda: numba_backend.rollout(batch), reps[n])
        numba.set_num_threads(host["numba_threads"])
        t50, tmin = timed_ms(lambda: torch_backend.rollout(batch), torch_reps[n])
        if n <= 64:
            start = time.perf_counter()
            for i in range(n):
                dop853_first_contact(batch, i)
            dop_ms = (time.perf_counter() - start) * 1e3
            dop_per_throw_ms = dop_ms / n
            dop_measured = True
        else:
            dop_ms = dop_per_throw_ms * n
            dop_measured = False
        rows.append({"n": n, "analytic_p50_ms": a50, "analytic_min_ms": amin, "analytic_1_thread_p50_ms": s50,
                     "analytic_1_thread_min_ms": smin, "flight_only_p50_ms": f50,
                     "flight_only_min_ms": fmin, "no_events_p50_ms": q50, "no_events_min_ms": qmin,
                     "flight_only_2_samples_p50_ms": f2_50, "flight_only_2_samples_min_ms": f2_min,
                     "no_events_2_samples_p50_ms": q2_50, "no_events_2_samples_min_ms": q2_min,
                     "torch_eager_p50_ms": t50, "torch_eager_min_ms": tmin,
                     "dop853_ms": dop_ms, "dop853_measured": dop_measured,
                     "torch_over_analytic_p50": t50 / a50, "dop853_over_analytic_p50": dop_ms / a50})
        print(f"N={n}: analytic {a50:.3f} ms, torch {t50:.1f} ms", flush=True)

    # Accuracy and agreement (not timed).
    batch = stone_throws(64, seed=7)
    res = numba_backend.rollout(batch)
    ref = [dop853_first_contact(batch, i) for i in range(batch.size)]
    first_ground = np.array([np.nan if not np.any(res.event_kind[:, i] == 0)
                             else res.event_time_s[int(np.argmax(res.event_kind[:, i] == 0)), i]
                             for i in range(batch.size)])
    flight = stone_throws(64, seed=7)
    flight = dataclasses.replace(flight, obstacle_min_m=np.zeros((3, 0)), obstacle_max_m=np.zeros((3, 0)),
                                 obstacle_restitution=np.zeros(0), obstacle_friction=np.zeros(0))
    res_f = numba_backend.rollout(flight)
    ref_f = [dop853_first_contact(flight, i) for i in range(flight.size)]
    err_mm = np.linalg.norm(res_f.landing_point_m.T - np.array([r[1] for r in ref_f]), axis=1) * 1e3
    err_t_ms = np.abs(res_f.landing_time_s - np.array([r[0] for r in ref_f])) * 1e3
    tres = torch_backend.rollout(batch)
    agree = max(float(np.nanmax(np.abs(getattr(res, f) - getattr(tres, f))))
                for f in ("positions_m", "velocities_mps", "landing_time_s", "final_position_m"))
    accuracy = {"landing_point_error_mm_p50_p95_max": [float(x) for x in np.percentile(err_mm, [50, 95, 100])],
                "landing_time_error_ms_p50_p95_max": [float(x) for x in np.percentile(err_t_ms, [50, 95, 100])],
                "torch_vs_numba_max_abs_diff": agree,
                "events_per_rollout_mean": float(res.event_count.mean()),
                "first_ground_contacts": int(np.isfinite(first_ground).sum()), "dop853_reference_n": len(ref)}

    starts = None if args.quick else start_times()
    blocks = block_sizes([int(b) for b in args.blocks.split(",") if b]) if args.blocks else None
    stages = breakdown(numba_backend) if args.breakdown else None
    host["load_average_1min_after"] = os.getloadavg()[0]
    report = {"machine": host, "scene": __doc__.split("\n\n")[1], "rows": rows, "accuracy": accuracy,
              "start_s": starts, "block_sizes": blocks, "breakdown_ms_p50_min": stages,
              "warmup_s": {"numba": numba_backend.warmup_s, "torch": torch_backend.warmup_s}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(RESULTS)

    print(f"\n{host['cpu']}, {host['cores']} cores, numba {host['numba']} ({host['numba_threads']} threads), "
          f"torch {host['torch']}; load average {host['load_average_1min']:.2f} -> "
          f"{host['load_average_1min_after']:.2f}\n")
    print("| N | analytic p50 / min (ms) | analytic, 1 thread p50 / min (ms) | flight only p50 / min (ms) "
          "| scene, no events p50 / min (ms) | flight only, 2 samples | scene, no events, 2 samples "
          "| torch eager p50 / min (ms) | SciPy DOP853 (ms) | torch / analytic | DOP853 / analytic |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        dop = f"{r['dop853_ms']:.1f}" + ("" if r["dop853_measured"] else " (extrap.)")
        print(f"| {r['n']} | {r['analytic_p50_ms']:.3f} / {r['analytic_min_ms']:.3f} "
              f"| {r['analytic_1_thread_p50_ms']:.3f} / {r['analytic_1_thread_min_ms']:.3f} "
              f"| {r['flight_only_p50_ms']:.3f} / {r['flight_only_min_ms']:.3f} "
              f"| {r['no_events_p50_ms']:.3f} / {r['no_events_min_ms']:.3f} "
              f"| {r['flight_only_2_samples_p50_ms']:.3f} / {r['flight_only_2_samples_min_ms']:.3f} "
              f"| {r['no_events_2_samples_p50_ms']:.3f} / {r['no_events_2_samples_min_ms']:.3f} "
              f"| {r['torch_eager_p50_ms']:.1f} / {r['torch_eager_min_ms']:.1f} | {dop} "
              f"| {r['torch_over_analytic_p50']:.0f}x | {r['dop853_over_analytic_p50']:.0f}x |")
    acc = accuracy
    print(f"\nLanding vs DOP853 (flight to the ground, 64 throws): point error p50/p95/max "
          f"{'/'.join(f'{x:.2g}' for x in acc['landing_point_error_mm_p50_p95_max'])} mm, time "
          f"{'/'.join(f'{x:.2g}' for x in acc['landing_time_error_ms_p50_p95_max'])} ms; torch vs numba max "
          f"difference {acc['torch_vs_numba_max_abs_diff']:.1e}; {acc['events_per_rollout_mean']:.1f} events "
          f"per rollout.")
    if starts:
        print(f"Start of a new process (import + AnalyticBackend incl. warm-up): cold (compile) "
              f"{starts['cold']['create_and_warm_s']:.1f} s, cached {starts['cached']['create_and_warm_s']:.2f} s "
              f"(process {starts['cold']['process_s']:.1f} s / {starts['cached']['process_s']:.1f} s).")
    if blocks:
        print("\n| block | scene N=1024 p50 / min (ms) | flight only p50 / min (ms) |\n|---|---|---|")
        for block, r in blocks.items():
            print(f"| {block} | {r['scene'][0]:.3f} / {r['scene'][1]:.3f} "
                  f"| {r['flight_only'][0]:.3f} / {r['flight_only'][1]:.3f} |")
    if stages:
        print("\n| stage of rollout | " + " | ".join(f"N={n} p50 / min (ms)" for n in stages) + " |")
        print("|---|" + "---|" * len(stages))
        for name in next(iter(stages.values())):
            cells = " | ".join(f"{stages[n][name][0]:.4f} / {stages[n][name][1]:.4f}" for n in stages)
            print(f"| {name} | {cells} |")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

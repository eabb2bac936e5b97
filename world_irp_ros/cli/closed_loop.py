"""The closed-loop demo without ``ros2 launch``: world_sim, world_irp and motor_controller as three
real processes talking over DDS, then a plot and a summary of what happened.

``launch/sim_demo.launch.py`` starts the same three nodes on a machine with ROS installed.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .common import InputError, bounded, find_config, output_folder

# world_irp perceives what the simulator publishes.
SIM_STATES = "/world_sim/object_states"


def start_process(executable: str, params: list[str], log_path: Path) -> subprocess.Popen:
    """Start a node executable with ROS arguments in its own process group, output to a log."""
    args = [executable, "--ros-args", *params]
    return subprocess.Popen(args, stdout=log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(proc: subprocess.Popen) -> None:
    """SIGINT to the process group, SIGKILL if it has not ended within 10 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run(trials: int, out_dir: Path, timeout_s: float) -> dict:
    """Run the loop for ``trials`` throws; return the motor controller's summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary_file = out_dir / "summary.json"
    summary_file.unlink(missing_ok=True)
    # Every demo starts from what perception reports: calibration is learnt anew.
    calibration_file = out_dir / "calibration.json"
    calibration_file.unlink(missing_ok=True)
    demo_params = str(find_config("sim_demo.yaml"))
    irp_params = str(find_config("world_irp.yaml"))
    procs: list[subprocess.Popen] = []       # every one started is stopped, whatever fails
    try:
        procs.append(start_process("world_sim", ["--params-file", demo_params], out_dir / "world_sim.log"))
        procs.append(start_process("world_irp", ["--params-file", irp_params, "--params-file", demo_params,
                                                 "-p", f"calibration_file:={calibration_file}",
                                                 "-r", f"/world_irp/object_states:={SIM_STATES}"],
                                   out_dir / "world_irp.log"))
        controller = start_process("motor_controller", ["--params-file", demo_params, "-p", f"trials:={trials}",
                                                        "-p", f"summary_file:={summary_file}"],
                                   out_dir / "motor_controller.log")
        procs.append(controller)
        deadline = time.monotonic() + timeout_s
        while controller.poll() is None:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs if p is not controller):
                raise RuntimeError("the closed loop did not finish: see the logs in " + str(out_dir))
            time.sleep(0.2)
        if controller.returncode != 0 or not summary_file.is_file():
            raise RuntimeError(f"motor_controller exited {controller.returncode}: see {out_dir}/motor_controller.log")
    finally:
        for p in reversed(procs):       # the controller first
            stop_process(p)
    return json.loads(summary_file.read_text())


def plot(summary: dict, path: Path) -> None:
    """Side view of predicted (dashed) vs observed tracks per trial, and landing error per trial."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = [t for t in summary["trials"] if t["go"]]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [2, 1]})
    colours = plt.cm.viridis(np.linspace(0, 1, max(len(trials), 1)))
    for colour, t in zip(colours, trials):
        pred = np.array(t["predicted_positions_m"])
        obs = np.array(t["observed_positions_m"])
        if pred.size and obs.size:
            # The controller starts recording at the command: drop what perception showed before
            # the object reached the release point (where the stone lay after the last throw).
            obs = obs[int(np.argmin(np.linalg.norm(obs[:10] - pred[0], axis=1))):]
        if pred.size:
            ax.plot(pred[:, 0], pred[:, 2], "--", color=colour, lw=1)
        if obs.size:
            ax.plot(obs[:, 0], obs[:, 2], "-", color=colour, lw=1.5, label=f"trial {t['trial']}")
    c, r = summary["target_center_m"], summary["target_radius_m"]
    ax.plot([c[0] - r, c[0] + r], [c[2], c[2]], "g-", lw=6, alpha=0.5, label="target")
    box = summary["keep_out_box_m"]
    ax.add_patch(plt.Rectangle((box[0], box[2]), box[3] - box[0], box[5] - box[2], color="r", alpha=0.25,
                               label=f"laptop keep-out (beside the throws: y {box[1]:g} to {box[4]:g} m)"))
    ax.set(xlabel="x (m)", ylabel="z (m)", title="predicted (dashed) vs observed (solid) tracks")
    ax.set_ylim(bottom=-0.05)
    ax.legend(fontsize=7, ncol=2)
    errors = [t.get("landing_error_m") or np.nan for t in trials]
    bx.bar([t["trial"] for t in trials], np.array(errors) * 100.0, color=colours)
    bx.set(xlabel="trial", ylabel="landing error (cm)", title="prediction error per trial")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(summary: dict) -> list[str]:
    """Readable lines: each trial's verdict and outcome, then the calibration result."""
    lines = []
    for t in summary["trials"]:
        if not t["go"]:
            lines.append(f"trial {t['trial']:2d}: REFUSED {t['code']}: {'; '.join(t['reasons'][:1])}")
            continue
        err = t.get("landing_error_m")
        cal = t.get("calibrated", {}).get("drag_coefficient")
        lines.append(f"trial {t['trial']:2d}: GO  P(success)={t['success_probability']:.2f}  landing error "
                     f"{'n/a' if err is None else f'{err * 100:5.1f} cm'}"
                     + (f"  Cd {cal[0]:.3f} -> {cal[1]:.3f} ± {cal[2]:.3f}" if cal else ""))
    errors = [t["landing_error_m"] for t in summary["trials"] if t["go"] and t.get("landing_error_m") is not None]
    if errors:
        lines.append(f"landing error: first {errors[0] * 100:.1f} cm, after calibration (mean of later) "
                     f"{np.mean(errors[1:]) * 100 if len(errors) > 1 else float('nan'):.1f} cm")
    lines.append(f"laptop contacts in the simulator: {summary['laptop_contacts']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """``world-irp closed-loop``: run the loop, print each trial, write summary JSON and PNG."""
    parser = argparse.ArgumentParser(prog="world-irp closed-loop", description=__doc__)
    parser.add_argument("--trials", type=bounded(int, 1), default=10)
    parser.add_argument("--out", type=Path, default=Path("out/closed_loop"))
    parser.add_argument("--timeout", type=bounded(float, 0.0, strict=True), default=600.0,
                        help="give up after this many seconds")
    args = parser.parse_args(argv)
    try:
        output_folder(args.out, ("summary.json", "closed_loop.png", "calibration.json"))
        summary = run(args.trials, args.out, args.timeout)
    except InputError as err:
        print(str(err), file=sys.stderr)
        return 1
    except (RuntimeError, OSError) as err:     # a node that failed, a config file or program not found
        print(f"closed loop failed: {err}", file=sys.stderr)
        return 1
    plot(summary, args.out / "closed_loop.png")
    print("\n".join(report(summary)))
    print(f"wrote {args.out / 'summary.json'} and {args.out / 'closed_loop.png'}")
    return 0

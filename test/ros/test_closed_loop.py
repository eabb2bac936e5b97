"""The closed loop end to end: world_sim, world_irp and motor_controller as real processes.

A shorter run of `./run demo`: the prediction error after calibration is at most half of the
first trial's, the drag coefficient learnt is the simulator's true one, and no GO throw ever
touches the laptop in the simulator.
"""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

pytestmark = pytest.mark.ros


def test_calibration_halves_the_landing_error_and_go_never_hits_the_laptop(tmp_path, child_env):
    out = tmp_path / "loop"
    proc = subprocess.run(["world-irp", "closed-loop", "--trials", "7", "--out", str(out), "--timeout", "240"],
                          env=child_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "closed_loop.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["laptop_contacts"] == 0
    thrown = [t for t in summary["trials"] if t["go"] and t["landing_error_m"] is not None]
    assert len(thrown) >= 4, summary["trials"]
    # "After calibration": the throws that followed the first calibration world_irp accepted
    # (it rejects fits to a disturbed observation, so that may be after trial 0).
    calibrated = [i for i, t in enumerate(thrown) if "drag_coefficient" in t["calibrated"]]
    assert calibrated, "world_irp never recalibrated the stone"
    first, later = thrown[0]["landing_error_m"], [t["landing_error_m"] for t in thrown[calibrated[0] + 1:]]
    assert len(later) >= 2, summary["trials"]
    # The median, because a single disturbed observation can spoil one comparison without saying
    # anything about the calibration.
    assert float(np.median(later)) <= 0.5 * first, (first, later)
    # world_irp saw every flight whole (its perception kept up) and learnt the true drag, 0.62
    # (perception says 0.47), from each one.
    fitted = [t["calibrated"]["drag_coefficient"][1] for t in thrown if "drag_coefficient" in t["calibrated"]]
    assert len(fitted) >= len(thrown) - 1, summary["trials"]
    assert float(np.median(fitted)) == pytest.approx(0.62, rel=0.05), fitted

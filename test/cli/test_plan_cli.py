"""``world-irp plan`` as a real process: the stone-throw plan converges to a GO throw within its
budget; bad files and hopeless plans give their exit statuses."""
from __future__ import annotations

import copy
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from world_irp_ros.cli.common import EXIT_BAD_INPUT, EXIT_NO_GO, EXIT_OK
from world_irp_ros.planning import parse_plan

REPO = Path(__file__).resolve().parents[2]
PLAN_FILE = REPO / "config" / "scenes" / "stone_throw_plan.json"
RESULT_SCHEMA = json.loads((REPO / "world_irp_ros" / "schemas" / "result.schema.json").read_text())
VERDICT_SCHEMA = {"$ref": "#/$defs/verdict", "$defs": RESULT_SCHEMA["$defs"]}
TELEMETRY_KEYS = {"entity_id", "plugin", "step_idx", "E", "dE", "steps", "halt_reason", "trust", "budget",
                  "LRC_context", "best_action", "verdict"}


def world_irp() -> list[str]:
    exe = shutil.which("world-irp")
    return [exe] if exe else [sys.executable, "-m", "world_irp_ros.cli"]


def run(*args, env, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([*world_irp(), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=dict(env),
                          timeout=240)


@pytest.fixture(scope="module")
def report(child_env):
    proc = run("plan", "config/scenes/stone_throw_plan.json", "--json", env=child_env)
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    return json.loads(lines[0])


def test_stone_plan_converges_to_a_go_within_budget(report):
    problem = parse_plan(json.loads(PLAN_FILE.read_text()))
    assert report["go"] is True and report["feasible"] is True
    assert report["halt_reason"] == "feasible_go"
    assert 1 <= report["iterations"] <= problem.max_iterations
    assert report["evaluations"] == 1 + report["iterations"] * problem.population
    assert report["energy"] <= report["initial_energy"]
    assert report["energy"] < 0.3   # a GO with margin, not a marginal one
    assert report["time_ms"] > 0
    best = report["best"]
    jsonschema.validate(best["verdict"], VERDICT_SCHEMA)
    assert best["verdict"]["code"] == "GO" and best["verdict"]["collision_probability"] == 0.0
    assert best["verdict"]["success_probability"] >= 0.9
    assert best["verdict"]["clearance_m"] >= 0.05
    action = best["action"]
    assert action["type"] == "throw" and action["object_id"] == "stone"
    assert action["release_position"] == list(problem.limits.release_position_m)
    assert problem.limits.contains_velocity(action["release_velocity"])
    speed = math.hypot(*action["release_velocity"])
    assert speed == pytest.approx(best["params"]["speed_mps"])
    assert report["trajectory"]["action_id"] == action["id"]


def test_every_step_reports_its_telemetry(report):
    steps = report["telemetry"]
    assert [t["step_idx"] for t in steps] == list(range(1, report["iterations"] + 1))
    for t in steps:
        assert TELEMETRY_KEYS <= set(t)
        assert t["budget"]["time_ms"] > 0 and t["budget"]["ATP_spent"] == pytest.approx(0.1 * t["step_idx"])
        assert 0.0 <= t["trust"]["monotonicity_ratio"] <= 1.0
    energies = [t["E"] for t in steps]
    assert all(b <= a for a, b in zip(energies, energies[1:]))
    assert steps[-1]["halt_reason"] == "feasible_go" and steps[-1] == report["final_telemetry"]
    assert all(t["halt_reason"] == "unknown" for t in steps[:-1])


def test_text_report(child_env):
    proc = run("plan", "config/scenes/stone_throw_plan.json", "--device", "cpu", env=child_env)
    assert proc.returncode == EXIT_OK, proc.stderr
    out = proc.stdout
    assert "step   1  E=" in out
    assert "halted (feasible_go)" in out and "best throw: release at" in out and "verdict: GO" in out


def test_bad_plan_file_names_the_field(tmp_path, child_env):
    d = json.loads(PLAN_FILE.read_text())
    d["plan"]["limits"]["max_release_speed"] = 0
    (tmp_path / "bad_plan.json").write_text(json.dumps(d))
    proc = run("plan", "bad_plan.json", env=child_env, cwd=tmp_path)
    assert proc.returncode == EXIT_BAD_INPUT
    assert proc.stderr.strip() == "bad_plan.json: plan.limits.max_release_speed: must lie in (0, 100] m/s, got 0.0"
    assert proc.stdout == ""
    # A hand under the floor is no actuator limit to plan within (not a failed plan, exit 4).
    d = json.loads(PLAN_FILE.read_text())
    d["plan"]["limits"]["release_position"] = [0.0, 0.0, -0.5]
    (tmp_path / "bad_plan.json").write_text(json.dumps(d))
    proc = run("plan", "bad_plan.json", env=child_env, cwd=tmp_path)
    assert proc.returncode == EXIT_BAD_INPUT
    assert proc.stderr.strip() == ("bad_plan.json: plan.limits.release_position: puts the object's centre "
                                   "below the ground")


def test_hopeless_plan_exits_no_go(tmp_path, child_env):
    d = copy.deepcopy(json.loads(PLAN_FILE.read_text()))
    d["plan"]["limits"]["max_release_speed"] = 2.0   # the target is out of reach
    d["plan"]["population"] = 16
    d["plan"]["max_iterations"] = 5
    (tmp_path / "far.json").write_text(json.dumps(d))
    proc = run("plan", "far.json", "--json", "--device", "cpu", env=child_env, cwd=tmp_path)
    assert proc.returncode == EXIT_NO_GO, proc.stderr
    out = json.loads(proc.stdout)
    assert out["go"] is False and out["best"]["verdict"]["code"] == "NO_GO_MISSES_TARGET"
    assert out["halt_reason"] in ("slope<eps", "max_steps")

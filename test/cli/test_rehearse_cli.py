"""``world-irp rehearse`` as a real process: JSON Lines in file order, schema-valid, one error line
per bad file (naming file and field) with the others still answered, and a non-zero exit."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from world_irp_ros.backends import NAMES, REGISTRY
from world_irp_ros.cli import main
from world_irp_ros.cli.common import EXIT_BACKEND, EXIT_BAD_INPUT, EXIT_OK

REPO = Path(__file__).resolve().parents[2]
RESULT_SCHEMA = json.loads((REPO / "world_irp_ros" / "schemas" / "result.schema.json").read_text())
REQUEST_SCHEMA = json.loads((REPO / "world_irp_ros" / "schemas" / "request.schema.json").read_text())

BALL = {"id": "ball", "shape": "sphere", "radius": 0.03, "mass": 0.2, "position": [0.0, 0.0, 1.0]}
# No air: the throw (3, 0, 2) m/s from 1 m lands its centre 3 cm up at x = 2.079 m.
THROWS = {
    "environment": {"air_density": 0.0},
    "objects": [BALL],
    "actions": [{"id": "good", "type": "throw", "object_id": "ball", "release_velocity": [3.0, 0.0, 2.0]},
                {"id": "short", "type": "throw", "object_id": "ball", "release_velocity": [1.5, 0.0, 2.0]}],
    "criteria": {"target": {"center": [2.08, 0.0, 0.0], "radius": 0.2}},
    "horizon_s": 2.0,
    "request_id": "throws",
}
DROPS = {
    "objects": [BALL],
    "actions": [{"id": "drop-clear", "type": "drop", "object_id": "ball", "release_position": [0.0, 0.0, 1.0]},
                {"id": "drop-vase", "type": "drop", "object_id": "ball", "release_position": [1.0, 0.0, 1.0]}],
    "criteria": {"keep_out": [{"name": "vase", "min": [0.9, -0.1, 0.0], "max": [1.1, 0.1, 0.4]}]},
    "horizon_s": 1.5,
}
BAD = {**THROWS, "objects": [{**BALL, "mass": -1}]}


def world_irp() -> list[str]:
    exe = shutil.which("world-irp")
    return [exe] if exe else [sys.executable, "-m", "world_irp_ros.cli"]


def run(*args, cwd, env) -> subprocess.CompletedProcess:
    return subprocess.run([*world_irp(), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=dict(env),
                          timeout=240)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("requests")
    (d / "throws.json").write_text(json.dumps(THROWS))
    (d / "drops.json").write_text(json.dumps(DROPS))
    (d / "bad.json").write_text(json.dumps(BAD))
    (d / "broken.json").write_text('{"objects": [}')
    return {"dir": str(d), "throws": "throws.json", "drops": "drops.json", "bad": "bad.json",
            "broken": "broken.json", "missing": "missing.json"}


@pytest.fixture(scope="module")
def mixed(files, child_env):
    """One run over good and bad files, ``throws.json`` twice."""
    return run("rehearse", files["throws"], files["bad"], files["drops"], files["broken"], files["missing"],
               files["throws"], "--json", cwd=files["dir"], env=child_env)


def lines(proc) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def without_latency(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "latency_ms"}


def test_inputs_match_the_request_schema():
    for doc in (THROWS, DROPS):
        jsonschema.validate(doc, REQUEST_SCHEMA)
    assert not jsonschema.Draft202012Validator(REQUEST_SCHEMA).is_valid(BAD)


def test_json_lines_in_file_order(mixed):
    out = lines(mixed)
    assert [d["file"] for d in out] == ["throws.json", "bad.json", "drops.json", "broken.json", "missing.json",
                                        "throws.json"]
    validator = jsonschema.Draft202012Validator(RESULT_SCHEMA)
    for d in out:
        validator.validate(d)
    throws, drops = out[0], out[2]
    assert [v["action_id"] for v in throws["verdicts"]] == ["good", "short"]
    assert [v["code"] for v in throws["verdicts"]] == ["GO", "NO_GO_MISSES_TARGET"]
    assert throws["best_index"] == 0 and throws["verdicts"][0]["chosen"] is True
    assert throws["request_id"] == "throws" and throws["backend"] == "analytic" and throws["samples"] == 1
    assert throws["verdicts"][0]["landing_point"] == pytest.approx([2.079, 0.0, 0.03], abs=0.01)
    assert [v["code"] for v in drops["verdicts"]] == ["GO", "NO_GO_COLLISION"]
    assert [t["action_id"] for t in throws["trajectories"]] == ["good", "short"]
    traj = throws["trajectories"][0]
    assert len(traj["t"]) == len(traj["positions"]) and traj["positions"][0] == pytest.approx([0.0, 0.0, 1.0])


def test_bad_files_get_one_error_line_and_a_non_zero_exit(mixed):
    assert mixed.returncode == EXIT_BAD_INPUT
    assert "Traceback" not in mixed.stderr
    err = [line for line in mixed.stderr.splitlines() if line.strip()]
    for name in ("bad.json", "broken.json", "missing.json"):
        assert len([line for line in err if line.startswith(f"{name}: ")]) == 1, mixed.stderr
    bad_line = next(line for line in err if line.startswith("bad.json: "))
    assert bad_line == "bad.json: objects[0].mass: must be > 0, got -1.0"
    assert any(line.startswith("broken.json: not valid JSON") for line in err)
    assert any(line.startswith("missing.json: cannot read") for line in err)
    out = lines(mixed)
    assert out[1]["error"] == {"code": "NO_GO_INVALID_REQUEST", "field": "objects[0].mass",
                               "reason": "must be > 0, got -1.0"}


def test_json_python_cannot_hold_is_a_bad_file_too(tmp_path, capsys):
    """Valid JSON beyond Python's reach (a 400-digit integer, a 4301-digit one, 1100 nested
    lists) or of the wrong kind where a name is expected: one error line each, naming the file
    (and the field where there is one), never a stack trace; the file after them is answered."""
    bad = {"bigint.json": '{"objects": [], "actions": [], "horizon_s": 1' + "0" * 400 + "}",
           "digits.json": '{"objects": [], "horizon_s": 1' + "0" * 4300 + "}",
           "nested.json": '{"objects": ' + "[" * 1100 + "]" * 1100 + "}",
           "shape.json": json.dumps({**THROWS, "objects": [{**BALL, "shape": ["sphere"]}]})}
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "throws.json").write_text(json.dumps(THROWS))
    assert main(["rehearse", *(str(tmp_path / n) for n in (*bad, "throws.json")), "--json"]) == EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    errors = {Path(line.split(": ", 1)[0]).name: line for line in err.splitlines() if line.strip()}
    assert set(errors) == set(bad), err
    assert errors["bigint.json"].endswith("horizon_s: must be a finite number, got an integer too large for a float")
    assert "objects[0].shape: must be one of sphere, box, cylinder" in errors["shape.json"]
    assert errors["digits.json"].endswith("not usable JSON: a number of more than 4300 digits")
    assert errors["nested.json"].endswith("not usable JSON: nested too deep")
    answers = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [a.get("request_id") for a in answers][-1] == "throws" and len(answers) == len(bad) + 1


def test_deterministic_without_uncertainty(mixed, files, child_env):
    out = lines(mixed)
    assert without_latency(out[0]) == without_latency(out[5])
    again = run("rehearse", files["throws"], "--json", "--device", "cpu", cwd=files["dir"], env=child_env)
    assert again.returncode == EXIT_OK
    assert without_latency(lines(again)[0]) == without_latency(out[0])


def test_no_trajectories(files, child_env):
    proc = run("rehearse", files["throws"], files["drops"], "--json", "--no-trajectories", "--device", "cpu",
               cwd=files["dir"], env=child_env)
    assert proc.returncode == EXIT_OK, proc.stderr
    out = lines(proc)
    assert [d["file"] for d in out] == ["throws.json", "drops.json"]
    for d in out:
        assert "trajectories" not in d
        jsonschema.validate(d, RESULT_SCHEMA)


def test_text_output_and_samples_option(files, child_env):
    proc = run("rehearse", files["throws"], "--samples", "4", "--device", "cpu", cwd=files["dir"], env=child_env)
    assert proc.returncode == EXIT_OK, proc.stderr
    assert "throws.json: 2 candidate(s), 1 GO" in proc.stdout
    assert "4 sample(s)" in proc.stdout
    assert "GO" in proc.stdout and "NO_GO_MISSES_TARGET" in proc.stdout and "<- chosen" in proc.stdout


def test_unavailable_backend_is_a_clear_error(files, child_env):
    missing = [b for b in NAMES if b not in REGISTRY]
    if missing:
        proc = run("rehearse", files["throws"], "--json", "--backend", missing[0], cwd=files["dir"], env=child_env)
    else:
        import torch

        if torch.cuda.is_available():
            pytest.skip("every offered backend is registered and a GPU is present")
        proc = run("rehearse", files["throws"], "--json", "--device", "cuda", cwd=files["dir"], env=child_env)
    assert proc.returncode == EXIT_BACKEND
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "not available" in proc.stderr
    if missing:
        assert f"this build does not ship backend {missing[0]!r}" in proc.stderr


# --------------------------------------------------------------------------------- help texts
@pytest.mark.parametrize("argv", [["--help"], ["rehearse", "--help"], ["plan", "--help"], ["demo", "--help"]])
def test_help_is_readable(argv, capsys):
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: world-irp")
    assert all(len(line) <= 120 for line in text.splitlines())
    if argv == ["--help"]:
        for word in ("rehearse", "plan", "demo", "exit status"):
            assert word in text


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["rehearse"]) == 2
    assert main(["rehearse", "x.json", "--samples", "0"]) == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["rehearse", "x.json", "--samples", "5000"], "--samples: must lie in [1, 4096], got 5000"),
    (["rehearse", "x.json", "--samples", "two"], "--samples: must be an integer, got 'two'"),
    (["rehearse", "x.json", "--deadline-ms", "0"], "--deadline-ms: must be > 0, got 0"),
    (["rehearse", "x.json", "--deadline-ms", "nan"], "--deadline-ms: must be > 0, got nan"),
    (["plan", "x.json", "--max-iterations", "0"], "--max-iterations: must be >= 1, got 0"),
    (["rehearse", "x.json", "--samples", "1" + "0" * 400], "--samples: must lie in [1, 4096], got 1000"),
])
def test_bad_option_values_are_named(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err

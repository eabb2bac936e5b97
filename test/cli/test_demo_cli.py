"""``world-irp demo`` as a real process: a valid PNG and a summary JSON holding both GO and NO-GO
candidates (throws hitting the laptop and throws missing the target) and a planned GO throw."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

REPO = Path(__file__).resolve().parents[2]
RESULT_SCHEMA = json.loads((REPO / "world_irp_ros" / "schemas" / "result.schema.json").read_text())
VERDICT_SCHEMA = {"$ref": "#/$defs/verdict", "$defs": RESULT_SCHEMA["$defs"]}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def world_irp() -> list[str]:
    exe = shutil.which("world-irp")
    return [exe] if exe else [sys.executable, "-m", "world_irp_ros.cli"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory, child_env):
    out = tmp_path_factory.mktemp("demo") / "out"
    proc = subprocess.run([*world_irp(), "demo", "--out", str(out)], capture_output=True, text=True, cwd=REPO,
                          env=dict(child_env), timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, out


def test_demo_writes_a_valid_png(demo):
    _, out = demo
    png = out / "stone_throw.png"
    data = png.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000
    import matplotlib.image

    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 600
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_demo_summary_has_go_and_no_go_candidates(demo):
    _, out = demo
    summary = json.loads((out / "summary.json").read_text())
    assert summary["plot"] == "stone_throw.png"
    assert summary["candidates"] == len(summary["verdicts"]) >= 10
    assert summary["go"] >= 1 and summary["no_go"] >= 1
    assert summary["go"] + summary["no_go"] == summary["candidates"]
    assert summary["codes"].get("NO_GO_COLLISION", 0) >= 1      # into the laptop
    assert summary["codes"].get("NO_GO_MISSES_TARGET", 0) >= 1  # off the target
    assert sum(summary["codes"].values()) == summary["candidates"]
    for v in summary["verdicts"]:
        jsonschema.validate(v, VERDICT_SCHEMA)
    chosen = summary["chosen"]
    assert chosen["verdict"]["code"] == "GO" and chosen["verdict"]["chosen"] is True
    plan = summary["plan"]
    assert plan["go"] is True and plan["best"]["verdict"]["code"] == "GO"


def test_demo_prints_a_readable_summary(demo):
    proc, out = demo
    text = proc.stdout
    assert "candidate throws rehearsed" in text
    assert "GO:" in text and "NO_GO_COLLISION:" in text and "NO_GO_MISSES_TARGET:" in text
    assert "chosen throw:" in text and "IRP plan: GO" in text
    assert str(out / "stone_throw.png") in text
    assert "Traceback" not in proc.stderr


def test_an_unusable_output_folder_is_one_error_line_before_any_work(tmp_path, child_env):
    """A file where the folder should be, or a folder where an output file should be: one line
    naming the path and exit 1, before the scene is rehearsed (no stack trace)."""
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    taken = tmp_path / "taken"
    (taken / "summary.json").mkdir(parents=True)
    for out, named in ((blocked, str(blocked)), (taken, str(taken / "summary.json"))):
        proc = subprocess.run([*world_irp(), "demo", "--no-plan", "--out", str(out)], capture_output=True, text=True,
                              cwd=REPO, env=dict(child_env), timeout=240)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and proc.stderr.startswith(f"{named}: ")
        assert "rehearsed" not in proc.stdout

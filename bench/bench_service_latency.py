"""Round trip of ``~/rehearse`` against a real ``world_irp`` node process, over DDS on this machine.

Starts ``world_irp`` (autostart, the repository's parameter file, its own namespace and domain),
publishes one perceived sphere, then calls ``~/rehearse`` from this process with 1, 64 and 1024
throw candidates, deterministically (1 sample per candidate) and with the node's default 64
uncertainty samples (the sphere's position and the release velocity carry a spread). Reports
the client-side round trip (request sent to response received, including DDS transport and
message conversion on both sides) p50/p99, and the node's own ``latency_ms`` (receipt to answer).
The 1024-candidate rows are repeated with ``response_trajectories: chosen`` (only the chosen
candidate's track in the response), since packing 1024 tracks dominates those round trips.
The client's garbage collector runs between calls, not inside them: a Python client holding a reply
with 1024 tracks (a few hundred thousand message objects) otherwise pauses 100-140 ms in full
collections (measured with ``gc.callbacks``), which is the client's latency, not the service's.

``./run bench service_latency`` (or ``./run exec python bench/bench_service_latency.py``); writes
``bench/results/service_latency.json`` and prints a Markdown table. Options: ``--calls N``
(measured calls per row for 1 and 64 candidates; 1024 gets a quarter), ``--warmup N``.
The node runs with ``deadline_ms`` 60000 so the large requests are timed, not cut off.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from world_irp_ros.cli.closed_loop import stop_process  # noqa: E402  (one way to stop a node process)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results" / "service_latency.json"
CANDIDATES = (1, 64, 1024)


def _percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))


def _start_node(namespace: str, env: dict, log_path: Path) -> subprocess.Popen:
    exe = shutil.which("world_irp", path=env.get("PATH"))
    if exe is None:
        raise SystemExit("world_irp is not on PATH: run this through ./run bench (or ./run exec)")
    args = [exe, "--ros-args", "--params-file", str(REPO / "config" / "world_irp.yaml"),
            "-r", f"__ns:={namespace}", "-p", "autostart:=true", "-p", "deadline_ms:=60000.0",
            "-p", "state_timeout_s:=3600.0"]
    log = open(log_path, "wb")
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                            cwd=str(REPO), start_new_session=True)


def _wait_output(path: Path, needle: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while needle not in path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"world_irp did not become active; its output:\n{path.read_text(errors='replace')}")
        time.sleep(0.05)


def _request(n: int, uncertain: bool):
    from world_irp_ros.msg import CandidateAction, Criteria
    from world_irp_ros.srv import RehearseActions

    req = RehearseActions.Request()
    crit = Criteria()
    crit.header.frame_id = "world"
    crit.target.center.x, crit.target.radius_m = 2.0, 0.25
    crit.horizon_s = 2.0
    req.criteria = crit
    rng = random.Random(n)
    for i in range(n):
        a = CandidateAction()
        a.id, a.type, a.object_id = f"c{i}", CandidateAction.TYPE_THROW, "stone"
        a.release_pose.position.z, a.release_pose.orientation.w = 1.0, 1.0
        a.release_velocity_mps.x = 2.0 + 3.0 * rng.random()
        a.release_velocity_mps.y = rng.uniform(-0.3, 0.3)
        a.release_velocity_mps.z = 1.0 + 2.0 * rng.random()
        if uncertain:
            a.release_velocity_std_mps = [0.05, 0.05, 0.05]
        req.candidates.append(a)
    req.num_samples = 0 if uncertain else 1
    return req


def _stone():
    from world_irp_ros.msg import ObjectState

    o = ObjectState()
    o.header.frame_id = "world"
    o.id, o.label, o.shape = "stone", "stone", ObjectState.SHAPE_SPHERE
    o.dimensions_m = [0.03, 0.0, 0.0]
    o.pose.position.z, o.pose.orientation.w = 1.0, 1.0
    o.mass_kg, o.drag_coefficient, o.restitution, o.friction, o.rolling_resistance = 0.2, 0.47, 0.3, 0.5, 0.02
    return o


def measure(namespace: str, calls: int, warmup: int) -> list[dict]:
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter
    from world_irp_ros.msg import ObjectStateArray
    from world_irp_ros.srv import RehearseActions

    rclpy.init()
    node = rclpy.create_node("bench_service_latency_client")
    try:
        client = node.create_client(RehearseActions, f"{namespace}/world_irp/rehearse")
        states = node.create_publisher(ObjectStateArray, f"{namespace}/world_irp/object_states",
                                       qos_profile_sensor_data)
        set_params = node.create_client(SetParameters, f"{namespace}/world_irp/set_parameters")
        if not client.wait_for_service(timeout_sec=60.0) or not set_params.wait_for_service(timeout_sec=60.0):
            raise SystemExit("~/rehearse or ~/set_parameters did not appear")

        def call(req, timeout=120.0):
            future = client.call_async(req)
            rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
            if not future.done():
                raise SystemExit("~/rehearse did not answer")
            return future.result()

        # Perception: the node needs the stone's state before it can judge anything.
        deadline = time.monotonic() + 30.0
        while True:
            msg = ObjectStateArray()
            msg.header.stamp = node.get_clock().now().to_msg()
            stone = _stone()
            stone.header.stamp = msg.header.stamp
            msg.objects = [stone]
            states.publish(msg)
            resp = call(_request(1, False))
            if resp.verdicts[0].code_name != "NO_GO_UNKNOWN_OBJECT":
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"the node never got the state: {list(resp.verdicts[0].reasons)}")
            time.sleep(0.05)

        def set_tracks(mode: str) -> None:
            req = SetParameters.Request(parameters=[Parameter("response_trajectories", value=mode).to_parameter_msg()])
            if not call_srv(set_params, req).results[0].successful:
                raise SystemExit(f"could not set response_trajectories to {mode}")

        def call_srv(cli, req):
            future = cli.call_async(req)
            rclpy.spin_until_future_complete(node, future, timeout_sec=30.0)
            return future.result()

        gc.collect()            # as the node does after set-up: the collections between calls stay short
        gc.freeze()
        rows = []
        plan = [("all", u, n) for u in (False, True) for n in CANDIDATES] + [("chosen", u, 1024) for u in (False, True)]
        for tracks, uncertain, n in plan:
            set_tracks(tracks)
            req = _request(n, uncertain)
            count = calls if n < 1024 else max(5, calls // 4)
            for _ in range(warmup):
                call(req)
            rtt, server = [], []
            for _ in range(count):
                gc.collect()    # the client's own collector runs between calls, not inside them
                gc.disable()
                t0 = time.perf_counter()
                resp = call(req)
                rtt.append((time.perf_counter() - t0) * 1e3)
                gc.enable()
                server.append(resp.latency_ms)
            codes = sorted({v.code_name for v in resp.verdicts})
            assert len(resp.verdicts) == n and len(resp.trajectories) == n
            bad = [c for c in codes if c not in ("GO", "NO_GO_MISSES_TARGET", "NO_GO_UNCERTAIN", "NO_GO_COLLISION")]
            if bad:
                raise SystemExit(f"{n} candidates: unexpected verdicts {bad}: {list(resp.verdicts[0].reasons)}")
            samples = 64 if uncertain else 1
            rows.append({"candidates": n, "samples_per_candidate": samples, "rollouts": n * samples,
                         "response_trajectories": tracks, "calls": count,
                         "rtt_p50_ms": _percentile(rtt, 50), "rtt_p99_ms": _percentile(rtt, 99),
                         "node_p50_ms": _percentile(server, 50), "node_p99_ms": _percentile(server, 99),
                         "backend": resp.backend, "device": resp.device, "verdict_codes": codes})
        return rows
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def table(rows: list[dict]) -> str:
    lines = ["| candidates | samples each | rollouts | tracks in response | round trip p50 (ms) "
             "| round trip p99 (ms) | node p50 (ms) | node p99 (ms) | calls |",
             "|---:|---:|---:|:---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['candidates']} | {r['samples_per_candidate']} | {r['rollouts']} "
                     f"| {r['response_trajectories']} | {r['rtt_p50_ms']:.2f} "
                     f"| {r['rtt_p99_ms']:.2f} | {r['node_p50_ms']:.2f} | {r['node_p99_ms']:.2f} | {r['calls']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100, help="measured calls per row (1024 candidates: a quarter)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured calls before each row")
    args = parser.parse_args(argv)

    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", str(random.randint(101, 200)))
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")})
    namespace = f"/bench_latency_{os.getpid()}"
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "world_irp.log"
        proc = _start_node(namespace, env, log_path)
        try:
            _wait_output(log_path, "world_irp: active", proc, timeout=120.0)
            rows = measure(namespace, args.calls, args.warmup)
        finally:
            stop_process(proc)
    result = {
        "benchmark": "service_latency",
        "what": "~/rehearse round trip from a client process to a world_irp node process (FastDDS, localhost)",
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "python": platform.python_version()},
        "rmw": env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))
    print(f"\nbackend {rows[0]['backend']} on {rows[0]['device']}; written to {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The analytic backend: engines agree, the kernel cache works, errors are clear, edge cases hold."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from helpers_batches import make_batch, result_columns, sphere_drag, torch_rollout
from world_irp_ros.backends import create_backend
from world_irp_ros.backends.analytic import ENGINES, AnalyticBackend
from world_irp_ros.backends.base import EVENT_GROUND, EVENT_REST, MAX_EVENTS, MODE_REST
from world_irp_ros.errors import BackendError, ValidationError

REPO = Path(__file__).resolve().parents[2]
TABLE = ((2.0, -0.5, 0.0), (3.0, 0.5, 0.75), 0.3, 0.5)
ZONE = ((4.0, -1.0, 0.0), (4.5, 1.0, 1.0))


def stone_throws(n, seed=0, horizon=2.0):
    """The benchmark scene: throws of stones and balls over a table towards a keep-out box."""
    rng = np.random.default_rng(seed)
    speed, elev, azim = rng.uniform(3, 10, n), rng.uniform(0.1, 0.9, n), rng.uniform(-0.3, 0.3, n)
    vel = np.stack([speed * np.cos(elev) * np.cos(azim), speed * np.cos(elev) * np.sin(azim), speed * np.sin(elev)], 1)
    return make_batch(np.tile([0.0, 0.0, 1.2], (n, 1)), vel, half_extent=rng.uniform(0.02, 0.05, n),
                      rolls=(rng.uniform(size=n) < 0.5).astype(float), drag=sphere_drag(0.03, 0.2),
                      restitution=rng.uniform(0.2, 0.7, n), friction=rng.uniform(0.3, 0.8, n),
                      rolling_resistance=0.05, obstacles=[TABLE], keep_out=[ZONE], horizon=horizon,
                      sample_times=np.linspace(0.0, horizon, 61))


@pytest.fixture(scope="module")
def cpu():
    return AnalyticBackend("cpu")


def assert_results_close(a, b, atol, rtol=0.0):
    n = np.arange(a.landing_time_s.shape[0])
    ca, cb = result_columns(a, n), result_columns(b, n)
    for name in ca:
        if ca[name].dtype.kind in "iu":
            np.testing.assert_array_equal(ca[name], cb[name], err_msg=name)
        else:
            np.testing.assert_allclose(ca[name], cb[name], atol=atol, rtol=rtol, equal_nan=True, err_msg=name)


def test_registered_and_created_through_the_registry():
    backend = create_backend("analytic", "cpu")
    assert backend.name == "analytic" and backend.device == "cpu" and backend.engine == "numba"


def test_torch_engine_equals_numba_kernel_on_the_benchmark_scene(cpu):
    batch = stone_throws(48)
    torch_engine = AnalyticBackend("cpu", engine="torch", warm=False)
    assert_results_close(cpu.rollout(batch), torch_engine.rollout(batch), atol=1e-9)


def test_cuda_equals_cpu(cpu):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine (torch.cuda.is_available() is False); "
                    "the CUDA path's equations and its graph's sync-free loop are checked by the torch-engine "
                    "tests on the CPU")
    from world_irp_ros.backends import _torch_rollout

    gpu = AnalyticBackend("cuda")
    assert gpu.engine == "torch"
    for seed in (1, 2):     # the first batch of a structure runs and is captured, the second replays
        batch = stone_throws(256, seed=seed)
        assert_results_close(cpu.rollout(batch), gpu.rollout(batch), atol=1e-9)
    graph, _static, _result = next(reversed(_torch_rollout._graphs.values()))
    assert graph is not None, "the CUDA graph capture failed (see the log)"


def _unfinished_after(batch, passes):
    """Rollouts a sync-free loop of ``passes`` segment passes per step leaves short of a step's end."""
    from world_irp_ros.backends import _torch_rollout as tr
    from world_irp_ros.physics.ops import without_device_sync

    from world_irp_ros.backends.analytic import allocate, prepare

    prep = prepare(batch)
    out = allocate(prep)
    with without_device_sync():
        return int(tr._roll(tr._tensors(prep, out, "cpu"), tr._world(prep), passes)["unfinished"].sum())


def test_the_sync_free_loop_a_cuda_graph_holds_equals_the_numba_kernel(cpu):
    """What the CUDA path captures into a graph (fixed passes per step, no device syncs), on the CPU."""
    from world_irp_ros.backends._torch_rollout import GRAPH_PASSES

    batch = stone_throws(48, seed=4)
    assert _unfinished_after(batch, GRAPH_PASSES) == 0          # answered without the eager fallback
    assert_results_close(cpu.rollout(batch), torch_rollout(batch, "fixed"), atol=1e-9)


def test_a_step_with_more_events_than_the_fixed_passes_falls_back_to_eager(cpu, monkeypatch):
    from world_irp_ros.backends import _torch_rollout

    batch = stone_throws(48, seed=4)
    assert _unfinished_after(batch, 1) > 0                      # a bounce needs two passes
    monkeypatch.setattr(_torch_rollout, "GRAPH_PASSES", 1)
    assert_results_close(cpu.rollout(batch), torch_rollout(batch, "fixed"), atol=1e-9)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_rollout_with_too_many_events_in_a_step_fails_alone(engine):
    """Tilted gravity presses a box without bounce against a wall's side (no end of bouncing
    there: the contacts pile up inside one step). Every engine, the CUDA one included, marks that
    rollout failed and computes its neighbour."""
    wall = ((1.0, -1.0, 0.0), (2.0, 1.0, 3.0))
    batch = make_batch([(0.95, 0.0, 2.0), (-3.0, 0.0, 2.0)], [(0.0, 0.0, 0.0), (1.0, 0.0, 1.0)], half_extent=0.05,
                       rolls=0.0, restitution=0.0, gravity=(3.0, 0.0, -9.81), obstacles=[wall], horizon=1.0)
    res = AnalyticBackend("cpu", engine=engine, warm=False).rollout(batch)
    assert res.failed.tolist() == [True, False]
    assert "events inside one integration step" in res.failure
    assert np.all(np.isfinite(res.positions_m[:, :, 1]))


def test_fast_path_equals_slow_path(cpu):
    batch = stone_throws(300, seed=3)
    slow = AnalyticBackend("cpu", fast_path=False, warm=False)
    assert_results_close(cpu.rollout(batch), slow.rollout(batch), atol=1e-12, rtol=1e-12)


def test_benchmark_scene_is_eventful(cpu):
    res = cpu.rollout(stone_throws(256, seed=1))
    assert np.all(np.isfinite(res.landing_time_s))
    assert np.any(res.final_mode == MODE_REST)
    assert np.any(res.event_kind == 1) and np.any(~np.isnan(res.keep_out_entry_time_s))


def test_more_events_than_stored_are_counted(cpu):
    res = cpu.rollout(make_batch((0.0, 0.0, 1.03), restitution=0.8, horizon=5.0))
    assert res.event_count[0] > MAX_EVENTS
    assert np.all(res.event_kind[:, 0] == EVENT_GROUND)
    assert np.all(np.diff(res.event_time_s[:, 0]) > 0)
    assert res.final_mode[0] == MODE_REST


def test_samples_after_rest_hold_the_rest_position(cpu):
    res = cpu.rollout(make_batch((0.0, 0.0, 0.05), (2.0, 0.0, 0.0), half_extent=0.05, rolls=0.0, friction=0.5))
    later = res.sample_times_s >= res.rest_time_s[0]
    assert later.sum() > 5
    np.testing.assert_array_equal(res.positions_m[later, :, 0], np.tile(res.final_position_m[:, 0], (later.sum(), 1)))
    np.testing.assert_array_equal(res.velocities_mps[later, :, 0], 0.0)
    assert res.event_kind[1, 0] == EVENT_REST


def test_object_released_inside_a_table_sits_on_it(cpu):
    table = ((-1.0, -1.0, 0.0), (1.0, 1.0, 0.75))
    res = cpu.rollout(make_batch((0.0, 0.0, 0.775), (0.5, 0.0, 0.0), half_extent=0.03, rolls=0.0,
                                 obstacles=[table], horizon=1.0))
    assert res.positions_m[0, 2, 0] == pytest.approx(0.78)
    assert res.final_position_m[2, 0] == pytest.approx(0.78)


def test_concurrent_calls_are_serialised_and_correct(cpu):
    batches = [stone_throws(200, seed=s) for s in range(4)]
    expected = [cpu.rollout(b) for b in batches]
    got = [None] * 4

    def work(i):
        got[i] = cpu.rollout(batches[i])
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(expected, got):
        assert_results_close(a, b, atol=0.0)


def test_clear_errors(cpu):
    batch = make_batch((0.0, 0.0, 1.0))
    batch.drag_k_per_m = np.array([np.inf])
    with pytest.raises(ValidationError, match="drag_k_per_m"):
        cpu.rollout(batch)
    with pytest.raises(ValidationError, match="release_time_s"):
        cpu.rollout(make_batch((0.0, 0.0, 1.0), release=-0.1))
    with pytest.raises(ValidationError, match="velocity_mps"):
        cpu.rollout(make_batch((0.0, 0.0, 1.0), (1e5, 0.0, 0.0)))
    with pytest.raises(ValidationError, match="gravity"):
        cpu.rollout(make_batch((0.0, 0.0, 1.0), gravity=(0.0, 0.0, 9.81)))
    with pytest.raises(ValidationError):
        AnalyticBackend("cuda", engine="numba", warm=False)
    with pytest.raises(ValidationError):
        AnalyticBackend("cpu", engine="jax", warm=False)
    with pytest.raises(ValidationError):
        AnalyticBackend("cpu", colour="blue", warm=False)


def test_cuda_without_a_gpu_is_a_backend_error():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(BackendError):
        AnalyticBackend("cuda")


def test_empty_batch(cpu):
    batch = make_batch(np.zeros((0, 3)), np.zeros((0, 3)), release=np.zeros(0), rolls=np.zeros(0),
                       drag=np.zeros(0), restitution=np.zeros(0), friction=np.zeros(0),
                       rolling_resistance=np.zeros(0), half_extent=np.zeros((0, 3)), radius=np.zeros(0))
    res = cpu.rollout(batch)
    assert res.positions_m.shape == (61, 3, 0)


def test_kernel_cache_is_keyed_on_the_sources_and_reused_by_a_new_process(tmp_path):
    """A second process loads the compiled kernels, and the block function they call, from the cache
    instead of compiling them; the warm-up loads every variant a request needs (batches of 1, 2 and
    100 rollouts add none: a single rollout's samples have a layout of their own)."""
    from world_irp_ros.backends import _numba_kernel

    code = ("import json, time, warnings; warnings.simplefilter('ignore'); t = time.perf_counter();"
            "from world_irp_ros.backends.analytic import AnalyticBackend;"
            "from world_irp_ros.backends import _numba_kernel as k; import sys;"
            "b = AnalyticBackend('cpu'); s = [k.kernel(p).stats for p in (True, False)];"
            "variants = lambda: [len(k.kernel(p).signatures) for p in (True, False)] + [len(k._block_jit.signatures)];"
            "warm = variants(); seconds = time.perf_counter() - t;"
            "sys.path.insert(0, 'test'); import numpy as np; from helpers_batches import make_batch;"
            "[b.rollout(make_batch(np.tile([0.0, 0.0, 1.0], (n, 1)), np.tile([2.0, 0.0, 2.0], (n, 1)),"
            " obstacles=[((0.5, -0.5, 0.0), (0.8, 0.5, 0.3))], keep_out=[((1.0, -1.0, 0.0), (2.0, 1.0, 1.0))]))"
            " for n in (1, 2, 100)];"
            "print(json.dumps({'dir': str(k.cache_dir()), 'hits': sum(len(x.cache_hits) for x in s),"
            "'misses': sum(len(x.cache_misses) for x in s), 'block_hits': len(k._block_jit.stats.cache_hits),"
            "'block_misses': len(k._block_jit.stats.cache_misses), 'warm': warm, 'after': variants(),"
            "'seconds': seconds, 'rclpy': 'rclpy' in sys.modules, 'torch': 'torch' in sys.modules}))")
    env = dict(os.environ)
    cache_base = os.environ.get("WORLD_IRP_NUMBA_CACHE")
    if cache_base:
        env["WORLD_IRP_NUMBA_CACHE"] = cache_base
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=240, check=True)
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["dir"] == str(_numba_kernel.cache_dir())
    assert info["dir"].endswith(_numba_kernel.source_hash())
    # This session already compiled them: the parallel kernel, the serial one for both layouts.
    assert info["hits"] == 3 and info["misses"] == 0, info
    assert info["block_hits"] == 1 and info["block_misses"] == 0, info
    assert info["after"] == info["warm"] == [1, 2, 1], info
    assert not info["rclpy"], "the core library must not import rclpy"
    assert not info["torch"], "the CPU engine must not need torch"


def test_the_cache_hash_covers_every_module_compiled_into_the_kernel():
    """numba watches only the kernel's own file: a change to anything it inlines from the package
    (equations, ops, the event and mode numbers) must change the cache directory."""
    import ast

    from world_irp_ros.backends import _numba_kernel

    package = Path(_numba_kernel.__file__).resolve().parents[1]
    todo, compiled = [Path(_numba_kernel.__file__).resolve()], set()
    while todo:
        path = todo.pop()
        if path in compiled:
            continue
        compiled.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = path.parents[node.level - 1].joinpath(*(node.module or "").split("."))
                for name in [None] + [a.name for a in node.names]:
                    candidate = (base / name if name else base).with_suffix(".py")
                    if candidate.is_file() and package in candidate.parents:
                        todo.append(candidate)
    assert compiled == {Path(p).resolve() for p in _numba_kernel._SOURCES}


def test_reused_output_arrays_never_overwrite_a_result_still_held(cpu):
    """Large output arrays come from a pool of arrays no result references any more. 16,384
    rollouts make every output array large enough to be pooled."""
    a, b = stone_throws(16384, seed=11), stone_throws(16384, seed=12)
    first = cpu.rollout(a)
    n = np.arange(a.size)
    kept = {name: value.copy() for name, value in result_columns(first, n).items()}
    view = first.velocities_mps[-1]                       # a view alone keeps the array too
    kept_view = view.copy()
    for _ in range(3):
        cpu.rollout(b)
    for name, value in result_columns(first, n).items():
        np.testing.assert_array_equal(value, kept[name], err_msg=name)
    del first
    for _ in range(3):
        cpu.rollout(b)
    np.testing.assert_array_equal(view, kept_view)
    again = result_columns(cpu.rollout(a), n)
    for name, value in again.items():
        np.testing.assert_array_equal(value, kept[name], err_msg=name)

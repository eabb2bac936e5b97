"""Fixtures shared by the whole suite.

- ``ros_domain_id`` / ``child_env``: the DDS domain of this run and the environment for child
  processes (``./run test`` picks a random ``ROS_DOMAIN_ID`` per run; without it one is picked
  here, before anything imports rclpy, so this process and its children agree).
- ``ros_context`` (one fresh ``rclpy.Context`` per test module), ``ros_node`` (a node in the test
  process, one per test), ``ros_executor`` (a single-threaded executor spinning ``ros_node``) and
  ``spin_until(predicate, timeout, what)`` to wait on DDS events without blind sleeps;
  ``ros_module_node`` + ``module_spin_until``: the same for a node shared by a module's tests.
- ``start_process`` (per test) and ``start_process_module`` (per module, e.g. one ``world_irp``
  node shared by a module's tests): start a real child process with stdout+stderr captured to a
  file; it is always stopped at teardown (SIGINT to its process group, then SIGKILL) and its
  output is printed when a test failed.

Tests marked ``ros`` are skipped outside a ROS environment when rclpy or the generated interfaces
cannot be imported (plain ``pytest`` after ``pip install .``); under ``./run test`` they always
run. Fixtures of one area (physics, ...) belong in the conftest.py of that area's folder, not
here.
"""
from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Iterator, Mapping, Sequence

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Decide the domain and discovery range before any test module imports rclpy.
if not os.environ.get("ROS_DOMAIN_ID", "").strip():
    os.environ["ROS_DOMAIN_ID"] = str(random.randint(101, 200))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

_ROS_MISSING: str | None = None


def _ros_missing() -> str | None:
    """Why the ROS tests cannot run in this interpreter, or None when they can (checked once).

    Only outside a ROS environment (no AMENT_PREFIX_PATH: plain `pytest` after `pip install .`)
    is a missing rclpy or missing generated interfaces a reason to skip; under ./run test, or in a
    sourced workspace, the tests run and fail loudly instead."""
    global _ROS_MISSING
    if _ROS_MISSING is None:
        _ROS_MISSING = ""
        if not os.environ.get("AMENT_PREFIX_PATH"):
            try:
                import rclpy  # noqa: F401
                import world_irp_ros.msg  # noqa: F401
            except ImportError as exc:
                _ROS_MISSING = f"no ROS 2 environment ({exc}); run the suite with ./run test"
    return _ROS_MISSING or None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("ros") is not None:
        missing = _ros_missing()
        if missing:
            pytest.skip(missing)


# --------------------------------------------------------------------------- environment


@pytest.fixture(scope="session")
def ros_domain_id() -> int:
    """The ROS_DOMAIN_ID every node of this test run uses."""
    return int(os.environ["ROS_DOMAIN_ID"])


@pytest.fixture(scope="session")
def child_env(ros_domain_id: int) -> Mapping[str, str]:
    """Environment for child processes: this process's (./run's ROS variables included), with the
    run's domain and unbuffered Python output. Read-only: use ``{**child_env, "X": "1"}``."""
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(ros_domain_id)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return MappingProxyType(env)


# --------------------------------------------------------------------------- rclpy in-process


@pytest.fixture(scope="module")
def ros_context(ros_domain_id: int):
    """A fresh, initialised ``rclpy.Context`` for one test module; shut down after it.

    rclpy's signal handlers are not installed, so Ctrl-C and pytest-timeout behave as usual."""
    import rclpy
    from rclpy.context import Context
    from rclpy.signals import SignalHandlerOptions

    context = Context()
    rclpy.init(context=context, domain_id=ros_domain_id,
               signal_handler_options=SignalHandlerOptions.NO)
    try:
        yield context
    finally:
        try:
            context.try_shutdown()
        except Exception as exc:  # teardown must not mask the test's own failure
            print(f"ros_context: shutdown failed: {exc!r}", file=sys.stderr)


def _node_name(request: pytest.FixtureRequest) -> str:
    base = re.sub(r"\W+", "_", request.node.name).strip("_")[:48] or "test"
    return f"irp_test_{base}_{os.getpid()}"


def _make_node(context, name: str):
    import rclpy

    return rclpy.create_node(name, context=context, start_parameter_services=False)


def _destroy_node(node) -> None:
    try:
        node.destroy_node()
    except Exception as exc:  # teardown must not mask the test's own failure
        print(f"destroying node {node.get_name()} failed: {exc!r}", file=sys.stderr)


@contextmanager
def _executor_for(context, node) -> Iterator[object]:
    """A single-threaded executor of ``context`` with ``node`` added, shut down on leaving."""
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        yield executor
    finally:
        try:
            executor.remove_node(node)
            executor.shutdown(timeout_sec=5.0)
        except Exception as exc:
            print(f"executor shutdown failed: {exc!r}", file=sys.stderr)


def _spinner(executor) -> Callable[..., object]:
    def _spin_until(predicate: Callable[[], object], timeout: float = 10.0,
                    what: str | Callable[[], str] = "condition") -> object:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                what = what() if callable(what) else what
                pytest.fail(f"timed out after {timeout:.1f} s waiting for {what}")
            executor.spin_once(timeout_sec=min(0.05, remaining))

    return _spin_until


@pytest.fixture
def ros_node(ros_context, request: pytest.FixtureRequest):
    """A node in the test process (name derived from the test), destroyed after the test."""
    node = _make_node(ros_context, _node_name(request))
    try:
        yield node
    finally:
        _destroy_node(node)


@pytest.fixture
def ros_executor(ros_context, ros_node):
    """A single-threaded executor of ``ros_context`` that spins ``ros_node``."""
    with _executor_for(ros_context, ros_node) as executor:
        yield executor


@pytest.fixture
def spin_until(ros_executor) -> Callable[..., object]:
    """``spin_until(predicate, timeout=10.0, what="...")`` spins ``ros_executor`` until
    ``predicate()`` is truthy and returns its value; fails the test after ``timeout`` seconds,
    naming ``what`` (a string, or a callable giving one at that moment)."""
    return _spinner(ros_executor)


@pytest.fixture(scope="module")
def ros_module_node(ros_context, request: pytest.FixtureRequest):
    """A node that lives for the whole test module: create endpoints once (DDS matching of new
    endpoints can take a few seconds), use them in many tests. Spin it with
    ``module_spin_until``."""
    node = _make_node(ros_context, _node_name(request))
    try:
        yield node
    finally:
        _destroy_node(node)


@pytest.fixture(scope="module")
def ros_module_executor(ros_context, ros_module_node):
    """A single-threaded executor that spins ``ros_module_node`` for the whole module."""
    with _executor_for(ros_context, ros_module_node) as executor:
        yield executor


@pytest.fixture(scope="module")
def module_spin_until(ros_module_executor) -> Callable[..., object]:
    """Like ``spin_until``, but spins ``ros_module_executor`` (and so ``ros_module_node``)."""
    return _spinner(ros_module_executor)


# --------------------------------------------------------------------------- child processes


class ChildProcess:
    """A child process in its own process group, stdout and stderr captured to ``log_path``."""

    def __init__(self, args: Sequence[str | os.PathLike], *, log_path: Path,
                 env: Mapping[str, str], cwd: str | os.PathLike, name: str):
        self.args = [str(a) for a in args]
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")
        try:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self._log,
                                         stderr=subprocess.STDOUT, env=dict(env), cwd=str(cwd),
                                         start_new_session=True)
        except BaseException:
            self._log.close()
            raise
        self.pid = self.proc.pid
        self.returncode: int | None = None

    def output(self) -> str:
        """Everything the process wrote so far (stdout and stderr interleaved)."""
        return self.log_path.read_bytes().decode("utf-8", errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for_output(self, pattern: str, timeout: float = 30.0) -> re.Match:
        """Wait until the output matches the regular expression ``pattern`` (multiline); fail the
        test, with the output, when the process exits first or ``timeout`` passes."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.output())
            if match:
                return match
            if not self.alive():
                match = regex.search(self.output())  # it may have printed it, then exited
                if match:
                    return match
                pytest.fail(f"{self.name} exited with {self.proc.returncode} before printing "
                            f"{pattern!r}; its output:\n{self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{self.name} printed no {pattern!r} within {timeout:.1f} s; its "
                            f"output:\n{self.output()}")
            time.sleep(0.05)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit by itself; return its exit status."""
        self.returncode = self.proc.wait(timeout=timeout)
        return self.returncode

    def _signal_group(self, sig: int) -> None:
        # The group outlives its leader while any member lives, and its id cannot be reused
        # while it exists, so this only reaches our child and its descendants.
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, sigint_timeout: float = 10.0, sigkill_timeout: float = 5.0) -> int | None:
        """SIGINT to the process group, then SIGKILL after ``sigint_timeout``; idempotent.
        Returns the exit status (negative: killed by that signal)."""
        was_running = self.proc.poll() is None
        if was_running:
            self._signal_group(signal.SIGINT)
            try:
                self.proc.wait(timeout=sigint_timeout)
            except subprocess.TimeoutExpired:
                print(f"{self.name} ignored SIGINT for {sigint_timeout:.0f} s: SIGKILL",
                      file=sys.stderr)
                self._signal_group(signal.SIGKILL)
                try:
                    self.proc.wait(timeout=sigkill_timeout)
                except subprocess.TimeoutExpired:
                    print(f"{self.name} (pid {self.pid}) survived SIGKILL", file=sys.stderr)
            # Descendants left behind in the group (the leader is gone) get no grace period.
            self._signal_group(signal.SIGKILL)
        self.returncode = self.proc.poll()
        if not self._log.closed:
            self._log.close()
        return self.returncode


def _default_name(args: list[str]) -> str:
    if "-m" in args[:-1]:
        return args[args.index("-m") + 1]
    scripts = [a for a in args if a.endswith(".py")]
    return Path(scripts[0] if scripts else args[0]).name


class _ProcessStarter:
    def __init__(self, request: pytest.FixtureRequest, env: Mapping[str, str], log_dir: Path):
        self._request = request
        self._env = env
        self._log_dir = log_dir
        self._children: list[ChildProcess] = []
        self._failed_before = request.session.testsfailed

    def __call__(self, args: Sequence[str | os.PathLike], *, name: str | None = None,
                 env: Mapping[str, str] | None = None, cwd: str | os.PathLike = REPO_ROOT,
                 ready: str | None = None, ready_timeout: float = 30.0) -> ChildProcess:
        """Start ``args`` (``env`` is merged over ``child_env``; the working directory defaults
        to the repository root). With ``ready``, wait until the output matches that regex."""
        name = name or _default_name([str(a) for a in args])
        safe = re.sub(r"[^\w.-]+", "_", name)
        log_path = self._log_dir / f"{len(self._children):02d}-{safe}.log"
        child = ChildProcess(args, log_path=log_path, env={**self._env, **(env or {})}, cwd=cwd,
                             name=name)
        self._children.append(child)
        if ready is not None:
            child.wait_for_output(ready, timeout=ready_timeout)
        return child

    def close(self) -> None:
        failed = self._request.session.testsfailed > self._failed_before
        for child in reversed(self._children):
            code = child.stop()
            if failed:
                print(f"\n----- {child.name} (pid {child.pid}, exit {code}): "
                      f"{' '.join(child.args)}\n{child.output()}----- end of {child.name}")


@pytest.fixture
def start_process(request, child_env, tmp_path):
    """``start_process(args, name=, env=, cwd=, ready=, ready_timeout=) -> ChildProcess``;
    every process started is stopped when the test ends."""
    starter = _ProcessStarter(request, child_env, tmp_path)
    try:
        yield starter
    finally:
        starter.close()


@pytest.fixture(scope="module")
def start_process_module(request, child_env, tmp_path_factory):
    """Like ``start_process``, but the processes live until the module's last test ends."""
    starter = _ProcessStarter(request, child_env,
                              tmp_path_factory.mktemp(re.sub(r"\W+", "_", request.node.name)))
    try:
        yield starter
    finally:
        starter.close()

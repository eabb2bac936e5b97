"""The nodes' executor: a ready callback waits in the thread pool once, not once per spin pass."""
from __future__ import annotations

import threading
import time

from world_irp_ros.ros.executor import Executor, OncePool


def test_a_queued_callable_is_queued_once_and_runs_again_once_started():
    pool = OncePool(1)
    gate = threading.Event()
    calls = []

    def task():
        calls.append(len(calls))

    try:
        pool.submit(gate.wait)              # the only worker is busy: what follows stays queued
        futures = [pool.submit(task) for _ in range(50)]
        assert pool.skipped == 49
        gate.set()
        futures[0].result(timeout=5.0)
        assert calls == [0]
        # Once started, the same callable may be queued again (a task resumed after an await).
        pool.submit(task).result(timeout=5.0)
        assert calls == [0, 1]
    finally:
        gate.set()
        pool.shutdown(wait=True)


def test_queue_stays_short_and_perception_flows_while_a_callback_holds_the_interpreter(ros_context):
    """With rclpy 9.1's own executor the pool queue reached tens to hundreds of copies of the same few
    tasks here (ros2/rclpy#1452); now it holds at most one per ready entity."""
    import rclpy
    from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
    from std_msgs.msg import UInt32

    node = rclpy.create_node("executor_queue_test", context=ros_context, start_parameter_services=False)
    executor = Executor(num_threads=3, context=ros_context)
    executor.add_node(node)
    busy_done = threading.Event()
    received = []

    def busy():                              # pure Python: holds the interpreter in 5 ms slices
        busy_timer.cancel()
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            sum(range(2000))
        busy_done.set()

    busy_timer = node.create_timer(0.01, busy, callback_group=MutuallyExclusiveCallbackGroup())
    node.create_subscription(UInt32, "executor_queue_test", received.append, 30,
                             callback_group=MutuallyExclusiveCallbackGroup())
    pub = node.create_publisher(UInt32, "executor_queue_test", 30)

    def perceive():                          # 60 Hz, like the simulator's object states
        while not busy_done.is_set():
            pub.publish(UInt32(data=len(received)))
            time.sleep(1.0 / 60.0)

    spinner = threading.Thread(target=executor.spin, daemon=True)
    publisher = threading.Thread(target=perceive, daemon=True)
    spinner.start()
    publisher.start()
    depths = []
    try:
        while not busy_done.wait(0.005):
            depths.append(executor._executor._work_queue.qsize())
        assert depths, "the busy callback never ran"
        assert max(depths) <= 4, f"the pool queue reached {max(depths)} tasks"
        assert len(received) > 30, f"only {len(received)} of about 90 messages arrived while the callback ran"
    finally:
        busy_done.set()
        publisher.join(timeout=5.0)
        executor.shutdown(timeout_sec=5.0)
        spinner.join(timeout=5.0)
        node.destroy_node()

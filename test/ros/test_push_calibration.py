"""A push weighs the stone: world_sim and world_irp as real processes, the test as the controller.

The simulator's granite is 30 % heavier than perception says (0.26 kg, seen 0.2 kg). After a
push with a known impulse, world_irp's error signal refits the mass from the observed track,
publishes it on ``~/prediction_error`` and keeps it for later rehearsals of the stone.
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.ros

SIM_PARAMS = "config/sim_demo.yaml"
TRUE_MASS_KG = 0.26


def test_a_push_recalibrates_the_mass(start_process, ros_node, spin_until):
    from diagnostic_msgs.msg import DiagnosticArray
    from world_irp_ros import msg as irp_msg
    from world_irp_ros.ros import conversions as conv
    from world_irp_ros.ros.qos import CANDIDATE_ACTIONS, OBJECT_STATES, VERDICT
    from world_irp_ros.scene import CandidateAction

    start_process(["world_sim", "--ros-args", "--params-file", SIM_PARAMS], name="world_sim", ready="world_sim up")
    start_process(["world_irp", "--ros-args", "--params-file", "config/world_irp.yaml", "--params-file", SIM_PARAMS,
                   "-r", "/world_irp/object_states:=/world_sim/object_states"],
                  name="world_irp", ready="world_irp: active", ready_timeout=240.0)
    states, errors = [], []
    ros_node.create_subscription(irp_msg.ObjectStateArray, "/world_sim/object_states", states.append, OBJECT_STATES)
    ros_node.create_subscription(irp_msg.PredictionError, "/world_irp/prediction_error", errors.append, VERDICT)
    to_sim = ros_node.create_publisher(irp_msg.ActionExecution, "/world_sim/execute", CANDIDATE_ACTIONS)
    to_irp = ros_node.create_publisher(irp_msg.ActionExecution, "/world_irp/executed_actions", CANDIDATE_ACTIONS)
    spin_until(lambda: len(states) > 30 and to_sim.get_subscription_count() and to_irp.get_subscription_count(),
               timeout=30.0, what="the simulator's states and both subscribers")
    # world_irp predicts the push from the state it holds: wait until it holds one (discovery of
    # the simulator can take longer than ours did).
    diagnostics: list = []
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)

    def irp_knows_objects() -> bool:
        return any(kv.key == "objects_known" and int(kv.value) > 0
                   for msg in diagnostics for st in msg.status if "world_irp" in st.name for kv in st.values)
    spin_until(irp_knows_objects, timeout=30.0, what="world_irp holding the simulator's states")

    execution = irp_msg.ActionExecution()
    execution.header.stamp = ros_node.get_clock().now().to_msg()
    execution.header.frame_id = "world"
    execution.request_id = "push_test"
    execution.action = conv.action_to_msg(CandidateAction("push0", "push", "granite", impulse_ns=(0.12, 0.0, 0.0)))
    to_irp.publish(execution)
    to_sim.publish(execution)
    spin_until(lambda: errors, timeout=30.0, what="world_irp's PredictionError of the push")

    err = errors[0]
    assert err.action_id == "push0" and err.object_id == "granite"
    fitted = dict(zip(err.calibrated_parameters, err.values_after))
    before = dict(zip(err.calibrated_parameters, err.values_before))
    assert before["mass"] == pytest.approx(0.2)
    # The actuator's 2 cm/s noise is 4 % of this push (its draw is fixed by the simulator's seed, not
    # by how many frames went before: 0.255-0.257 kg here) and PyBullet's contact ends the slip a
    # little slower than the model (+3 % without noise; seeds 0-7 in-process 0.258-0.286 kg): within
    # 15 % for any seed, and far from the 0.2 kg perception reports.
    assert fitted["mass"] == pytest.approx(TRUE_MASS_KG, rel=0.15), fitted
    assert "rolling_resistance" in fitted
    assert len(err.observed_positions) > 30       # the whole track, frame by frame

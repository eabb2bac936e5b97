"""Closed-loop demo on a machine with ROS installed: simulator, world_irp, motor controller.

    ros2 launch world_irp_ros sim_demo.launch.py [trials:=10]

The same three nodes `./run demo` starts as processes (world_irp_ros/cli/closed_loop.py); the
world_irp node configures and activates itself (``autostart`` in config/sim_demo.yaml).
"""
import os

import launch
from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description() -> launch.LaunchDescription:
    config = os.path.join(get_package_share_directory("world_irp_ros"), "config")
    demo = os.path.join(config, "sim_demo.yaml")
    sim = Node(package="world_irp_ros", executable="world_sim", name="world_sim", parameters=[demo],
               output="screen")
    irp = Node(package="world_irp_ros", executable="world_irp", name="world_irp",
               parameters=[os.path.join(config, "world_irp.yaml"), demo], output="screen",
               remappings=[("/world_irp/object_states", "/world_sim/object_states")])
    controller = Node(package="world_irp_ros", executable="motor_controller", name="motor_controller",
                      parameters=[demo, {"trials": ParameterValue(LaunchConfiguration("trials"), value_type=int)}],
                      output="screen")
    return launch.LaunchDescription([
        DeclareLaunchArgument("trials", default_value="10", description="Throws to attempt"),
        sim, irp, controller,
        # The demo ends when the controller has run its trials.
        RegisterEventHandler(OnProcessExit(target_action=controller, on_exit=[EmitEvent(event=Shutdown())])),
    ])

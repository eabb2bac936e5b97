"""Launch the world_irp lifecycle node, and by default bring it up to active.

    ros2 launch world_irp_ros world_irp.launch.py [params_file:=...] [namespace:=/robot]
        [use_sim_time:=true] [autostart:=false]

``autostart`` (default true) emits the lifecycle ``configure`` transition once the node process
has started and ``activate`` once it reached ``inactive``, the standard launch_ros way (a
``LifecycleNode`` action, ``ChangeState`` events and ``OnStateTransition`` handlers); with
``autostart:=false`` a lifecycle manager (or ``ros2 lifecycle set``) drives it instead.
"""
import os

import launch
import lifecycle_msgs.msg
from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description() -> launch.LaunchDescription:
    default_params = os.path.join(get_package_share_directory("world_irp_ros"), "config", "world_irp.yaml")
    params_file = LaunchConfiguration("params_file")
    namespace = LaunchConfiguration("namespace")
    use_sim_time = LaunchConfiguration("use_sim_time")
    autostart = LaunchConfiguration("autostart")

    node = LifecycleNode(
        package="world_irp_ros", executable="world_irp", name="world_irp", namespace=namespace,
        output="screen", emulate_tty=True,
        parameters=[params_file, {"use_sim_time": ParameterValue(use_sim_time, value_type=bool)}],
    )
    configure = EmitEvent(
        event=ChangeState(lifecycle_node_matcher=matches_action(node),
                          transition_id=lifecycle_msgs.msg.Transition.TRANSITION_CONFIGURE),
        condition=IfCondition(autostart))
    activate_when_inactive = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
            entities=[EmitEvent(event=ChangeState(
                lifecycle_node_matcher=matches_action(node),
                transition_id=lifecycle_msgs.msg.Transition.TRANSITION_ACTIVATE))]),
        condition=IfCondition(autostart))

    return launch.LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="Parameter file of the node (YAML, top key /**)"),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="Follow /clock (simulation time) for stamps and staleness"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="Configure and activate the node once it has started"),
        # The handler goes first, so it is registered before the configure event can finish.
        activate_when_inactive,
        node,
        configure,
    ])

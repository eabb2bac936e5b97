"""The launch file and the parameter file of ``world_irp``: installed, consistent with the node's
parameter table, and (where ``launch``/``launch_ros`` can be imported) a valid launch description.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml
from rclpy.parameter import Parameter

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILE = REPO / "launch" / "world_irp.launch.py"
PARAMS_FILE = REPO / "config" / "world_irp.yaml"


def test_params_file_sets_every_declared_parameter_within_range():
    from world_irp_ros.ros.params import SPECS, check_value

    data = yaml.safe_load(PARAMS_FILE.read_text())
    params = data["/**"]["ros__parameters"]
    # Parameters declared by type alone (lists that may be empty) are documented, not set.
    typed_only = {s.name for s in SPECS if isinstance(s.default, Parameter.Type)}
    assert set(params) == {s.name for s in SPECS} - typed_only
    text = PARAMS_FILE.read_text()
    assert all(f"# {name}:" in text for name in typed_only), typed_only
    for spec in SPECS:
        if spec.name in typed_only:
            continue
        value = params[spec.name]
        assert type(value) is type(spec.default), (spec.name, value)  # 50 is not a double in ROS 2
        if spec.low is not None:
            assert spec.low <= value <= spec.high, spec.name
        assert check_value(spec.name, value) is None, spec.name


def test_launch_and_config_are_installed():
    from ament_index_python.packages import get_package_share_directory

    share = Path(get_package_share_directory("world_irp_ros"))
    assert (share / "launch" / "world_irp.launch.py").read_text() == LAUNCH_FILE.read_text()
    assert (share / "config" / "world_irp.yaml").read_text() == PARAMS_FILE.read_text()


@pytest.mark.skipif(importlib.util.find_spec("launch_ros") is None,
                    reason="launch / launch_ros are not installable from PyPI here (not on the registry); "
                           "the node is started as a plain process in the other tests")
def test_launch_description():
    import launch
    from launch.actions import DeclareLaunchArgument

    spec = importlib.util.spec_from_file_location("world_irp_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, launch.LaunchDescription)
    args = {e.name: e.default_value for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert set(args) == {"params_file", "namespace", "use_sim_time", "autostart"}


def test_launch_file_is_valid_python_with_the_four_arguments():
    """Checked without launch installed: it compiles and declares the documented arguments."""
    import ast

    tree = ast.parse(LAUNCH_FILE.read_text())
    declared = {node.args[0].value for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument"}
    assert declared == {"params_file", "namespace", "use_sim_time", "autostart"}
    assert "get_package_share_directory" in LAUNCH_FILE.read_text()

"""setup.py (the `pip install .` of the pure-Python library) stays in step with the tree:
its version equals package.xml's, every package directory is listed, and the wheel it builds
holds the library but none of the ROS interfaces."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIB = REPO / "world_irp_ros"


def setup_constants() -> dict[str, object]:
    """The module-level constants of setup.py (VERSION, PACKAGES, ...), read without running it."""
    tree = ast.parse((REPO / "setup.py").read_text())
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id.isupper():
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return values


def package_dirs() -> list[str]:
    """Dotted names of every directory of world_irp_ros/ that holds an __init__.py."""
    return sorted(".".join(init.parent.relative_to(REPO).parts)
                  for init in LIB.rglob("__init__.py") if "__pycache__" not in init.parts)


def test_version_matches_package_xml():
    xml_version = ET.parse(REPO / "package.xml").getroot().findtext("version").strip()
    assert setup_constants()["VERSION"] == xml_version


def test_every_package_directory_is_listed():
    listed = set(setup_constants()["PACKAGES"]) | set(setup_constants()["DATA_PACKAGES"])
    missing = [p for p in package_dirs() if p not in listed]
    assert "world_irp_ros" in package_dirs()
    assert not missing, f"add to PACKAGES in setup.py: {missing}"


def test_listed_packages_are_inside_the_library():
    for name in [*setup_constants()["PACKAGES"], *setup_constants()["DATA_PACKAGES"]]:
        assert name == "world_irp_ros" or name.startswith("world_irp_ros."), name
        assert name.split(".")[-1] not in {"msg", "srv", "action"}, "interfaces are not pip's"


def _third_party_imports(files) -> set[str]:
    """Top-level names of the modules ``files`` import that are neither the standard library's
    nor this package's."""
    names = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"world_irp_ros", "__future__"}


def test_install_requires_is_what_the_library_imports():
    """setup.py's REQUIRES names every third-party module the library outside ros/ imports, and
    nothing else (torch aside, see setup.py; SAGE is optional: subclassed when installed); the ROS
    adapters add only ROS packages."""
    requires = {name.lower() for name in setup_constants()["REQUIRES"]}
    core = [f for f in LIB.rglob("*.py") if "ros" not in f.relative_to(LIB).parts[:1]]
    assert _third_party_imports(core) - {"torch", "sage"} == requires
    ros_only = _third_party_imports(LIB.joinpath("ros").rglob("*.py")) - requires
    assert ros_only <= {"rclpy", "rcl_interfaces", "builtin_interfaces", "std_msgs", "geometry_msgs",
                        "visualization_msgs", "diagnostic_msgs", "lifecycle_msgs", "rosgraph_msgs",
                        "action_msgs"}, ros_only


def test_console_script_declared():
    assert '"world-irp = world_irp_ros.cli:main"' in (REPO / "setup.py").read_text()


def test_wheel_holds_the_library_without_interfaces(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "package.xml", "README.md"):
        if (REPO / name).is_file():
            shutil.copy(REPO / name, src / name)
    shutil.copytree(LIB, src / "world_irp_ros",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "_ROS_WHEELS_BOOTSTRAP_COMPLETE": "1"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, env=env, cwd=tmp_path, timeout=240)
    (wheel,) = (tmp_path / "dist").glob("world_irp_ros-*.whl")
    assert wheel.name.startswith(f"world_irp_ros-{setup_constants()['VERSION']}-")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(zf.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    expected = {str(p.relative_to(src)) for p in (src / "world_irp_ros").rglob("*.py")
                if ".".join(p.parent.relative_to(src).parts) in package_dirs()}
    assert expected <= names, sorted(expected - names)
    assert not [n for n in names if n.split("/")[1:2] in (["msg"], ["srv"], ["action"])]
    assert "world-irp = world_irp_ros.cli:main" in entry_points

    # Installed on its own (no ./run PYTHONPATH, so no generated interfaces), it imports.
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile",
                    "--target", str(site), str(wheel)], check=True, env=env, timeout=240)
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import world_irp_ros, "
             "world_irp_ros.errors, importlib.util as u; "
             "assert world_irp_ros.__file__.startswith(sys.argv[1]), world_irp_ros.__file__; "
             "assert u.find_spec('world_irp_ros.msg') is None")
    subprocess.run([sys.executable, "-I", "-c", probe, str(site)], check=True, env=env,
                   cwd=tmp_path, timeout=120)

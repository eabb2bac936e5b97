"""`pip install .` of the pure-Python library world_irp_ros, WITHOUT the ROS 2 interfaces.

For users without ROS 2: the library (scene, physics, backends, verdicts, rehearsal, planning,
the `world-irp` command) imports without rclpy. The interfaces (world_irp_ros.msg/.srv/.action)
and the nodes come only from the ament_cmake build at the repository root (`colcon build`, or
`./run` here), which is what ROS users should use.

The package list is explicit (flat-layout discovery would trip over launch/, config/, build/,
install/, log/); a package whose directory is not there yet is left out, and
test/test_packaging.py checks that every directory of world_irp_ros/ with an __init__.py is listed
here and that VERSION equals package.xml's version.
"""
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
VERSION = "0.1.0"  # keep equal to <version> in package.xml
PACKAGES = [
    "world_irp_ros",
    "world_irp_ros.physics",
    "world_irp_ros.backends",
    "world_irp_ros.planning",
    "world_irp_ros.ros",
    "world_irp_ros.cli",
]
# What the library imports (test/test_packaging.py checks the list against its imports).
# torch is required too, but deliberately not listed: an unpinned `torch` from PyPI pulls the
# multi-GB CUDA build. Install it from requirements.lock (torch==2.13.0, CPU build) or pick the
# build for your machine from pytorch.org. requirements.lock pins all of these.
REQUIRES = ["numpy", "numba", "transforms3d", "pybullet", "matplotlib"]
# What only the tests add.
TEST_REQUIRES = ["pytest", "pytest-timeout", "hypothesis", "scipy", "jsonschema", "PyYAML"]
DATA_PACKAGES = {
    "world_irp_ros.schemas": ["*.json"],  # JSON schemas, data only
}


def _present(package: str, need_init: bool = True) -> bool:
    folder = HERE.joinpath(*package.split("."))
    return (folder / "__init__.py").is_file() if need_init else folder.is_dir()


readme = HERE / "README.md"

setup(
    name="world_irp_ros",
    version=VERSION,
    description="Rehearse candidate throws, drops and pushes on a batched forward model of the "
                "world and get a go / no-go verdict before the robot acts.",
    long_description=readme.read_text(encoding="utf-8") if readme.is_file() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=[p for p in PACKAGES if _present(p)]
    + [p for p in DATA_PACKAGES if _present(p, need_init=False)],
    package_data={p: globs for p, globs in DATA_PACKAGES.items() if _present(p, need_init=False)},
    include_package_data=False,
    install_requires=REQUIRES,
    extras_require={"test": TEST_REQUIRES},
    entry_points={"console_scripts": ["world-irp = world_irp_ros.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Operating System :: POSIX :: Linux",
        "Topic :: Scientific/Engineering",
    ],
)

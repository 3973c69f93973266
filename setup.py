"""pip / editable install of the admn_ros Python package (the venv path).

On a robot the package is built by colcon through CMakeLists.txt (ament_cmake),
which also builds msg/. Here, ``make`` builds msg/ into the venv with
scripts/build_interfaces.py and installs these sources with
``pip install -e . --config-settings editable_mode=compat``.
"""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def console_scripts() -> list[str]:
    out = []
    for line in (HERE / "resource" / "executables").read_text().splitlines():
        if line and not line.startswith("#"):
            name, target = line.split()[:2]
            out.append(f"{name}={target}")
    return out


setup(
    name="admn_ros",
    version="0.1.0",
    description="ADMN: layer-wise adaptive depth multimodal networks for ROS 2",
    packages=find_packages(include=["admn_ros", "admn_ros.*"]),
    python_requires=">=3.10",
    entry_points={"console_scripts": console_scripts()},
)

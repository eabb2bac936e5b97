"""world_irp_ros: rehearse robot actions in a fast forward model before committing to one.

The generated interfaces (``world_irp_ros.msg/.srv/.action``) live in the install tree while the
library lives in the source tree; ``extend_path`` lets either copy of the package find the other
(e.g. when the repository root is the current directory).
"""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

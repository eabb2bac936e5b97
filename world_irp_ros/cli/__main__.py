"""``python -m world_irp_ros.cli``: the same as the ``world-irp`` command."""
import sys

from . import main

sys.exit(main())

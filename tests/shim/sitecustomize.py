"""Imported first by every Python the tests start with this folder on PYTHONPATH (the
faulty local target puts it there for its servers' manager): installs the fault points
of that process (tests/faults.py) when the tests armed some."""

import os
import sys
from pathlib import Path

if os.environ.get("CACHEBENCH_FAULTS"):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import faults

    faults.install_server_faults()

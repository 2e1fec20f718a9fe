"""A robot computer runs the client without torch: importing it must not pull torch in."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_client_does_not_import_torch() -> None:
    code = "import sys, robo4d.serve.client; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)

"""A small run of benchmarks/serve_soak.py: 8 clients with malformed, oversized, slow and vanishing traffic."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).parents[2] / "benchmarks" / "serve_soak.py"


def test_server_survives_a_small_soak() -> None:
    args = ["--requests", "50", "--malformed-every", "3", "--slow-requests", "3", "--disconnects", "5"]
    done = subprocess.run([sys.executable, str(SOAK), *args], capture_output=True, text=True, timeout=600)
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["failures"] == [], report
    assert report["well_formed_answered"] == report["well_formed_sent"] == 8 * 50 + 1 + 2 * 3
    assert report["malformed_sent"] == report["malformed_answered_with_error"] == 8 * 50 * 3
    assert report["oversized_sent"] == report["oversized_closed_1009"] == 8
    assert report["disconnects_mid_frame"] == 5 and report["server_alive_at_end"]
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p99"]

"""Smoke tests of the benchmarks in bench/: they run, with tiny sizes, as a user runs them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_bench(script: str, *args: str) -> str:
    # This checkout's chatface, not the one an editable install may point at.
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = os.environ | {"PYTHONPATH": path}
    result = subprocess.run(
        [sys.executable, f"bench/{script}", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_queue_bench_batches_two_users_only_when_batching_is_on() -> None:
    out = run_bench("queue.py", "--backend", "tiny", "--users", "2", "--messages", "2",
                    "--steps", "1", "--device", "cpu")  # fmt: skip
    rows = {
        name: [float(value) for value in values.split()]
        for name, values in re.findall(r"^(batching o(?:n|ff)) +([\d. ]+)$", out, re.MULTILINE)
    }
    # renders/s, p50 s, p95 s, mean batch size
    assert rows["batching off"][3] == 1.0
    # Both users' edits arrive together and get their replies together, so every
    # batch holds one edit of each.
    assert rows["batching on"][3] == 2.0
    assert all(value > 0 for row in rows.values() for value in row[:3])
    assert re.search(r"^ratio on/off: renders/s [\d.]+x, p50 [\d.]+x, p95 [\d.]+x$", out, re.M)

"""Smoke tests of the benchmarks in bench/: they run, with tiny sizes, as a user runs them."""

from __future__ import annotations

import json
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


def test_train_bench_times_both_loss_renders() -> None:
    out = run_bench("train.py", "--backend", "tiny", "--clip", "tiny", "--batch", "1",
                    "--iters", "1", "--steps", "2", "--device", "cpu",
                    "--threads", "1")  # fmt: skip
    rows = dict(re.findall(r"^(ddim|x0) +([\d.]+) +[\d.]+ +-$", out, re.MULTILINE))
    assert set(rows) == {"ddim", "x0"} and all(float(v) > 0 for v in rows.values())
    assert re.search(r"^ratio x0/ddim: iters/s [\d.]+x$", out, re.MULTILINE)


def test_capacity_bench_replays_the_local_queue_and_sizes_from_a_bench_json(tmp_path) -> None:
    out = run_bench("capacity.py", "--users", "2", "--messages", "2", "--think", "0",
                    "--steps", "1", "--replicas", "0", "--json", "--out", str(tmp_path),
                    "--bench-json", "bench/results/20261129-124653-cpu-quick.json")  # fmt: skip
    [row] = re.findall(r"^local +0 +([\d. ]+)$", out, re.MULTILINE)
    renders, renders_per_s, p50, p95, top, mean_batch, model_s = map(float, row.split())
    assert renders == 4 and 0 < p50 <= p95 <= top and renders_per_s > 0 and model_s > 0
    # With no think time both users' edits arrive together and share every model call.
    assert mean_batch == 2.0
    # That file's CPU cost: 21.2 s a render, 1065 s a photo; 1,000 users at 20 edits and
    # 1 photo a day, 15% of it in the busiest hour, at most 60% busy: ceil(103.4) renderers,
    # ceil(29.5) for the edits alone.
    assert re.search(r"^\| 1,000 \| 0\.83 \| 0\.042 \| \d+ \(\d+\) \| 104 \(30\) \|", out, re.M)
    [saved] = tmp_path.glob("*-capacity-tiny.json")
    results = json.loads(saved.read_text())
    assert [run["queue"] for run in results["runs"]] == ["local"]
    assert results["capacity_markdown"] in out

"""The capacity model of bench/capacity.py: renderers (GPUs, or machines like the one
measured) needed for a number of daily active users, from a per-render and a per-photo
cost, printed as a markdown table with its assumptions (docs/deploy.md pastes it).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# The project's GPU targets (docs/performance.md), used as costs where no GPU was measured.
GPU_TARGETS = {
    "H100 target, batched": 1 / 100,  # >= 100 renders/s batched
    "H100 target, batch 1": 0.040,  # an 8-step render <= 40 ms
}
TARGET_STEPS = 8


@dataclass(frozen=True)
class Load:
    """The traffic the capacity model sizes for."""

    edits_per_user: float = 20  # renders per daily active user per day
    photos_per_user: float = 1  # new photos (encodes) per daily active user per day
    peak_share: float = 0.15  # share of a day's messages in the busiest hour
    utilisation: float = 0.6  # the busiest hour may keep a renderer busy this much


def bench_cost(path: Path) -> dict[str, Any]:
    """The per-render and per-photo cost a ``chatface bench`` JSON measured."""
    data = json.loads(path.read_text())
    best = max(data["throughput"], key=lambda row: row["renders_per_s"])
    return {
        "source": f"chatface bench, {path.name}",
        "machine": data["machine"],
        "render_s": 1 / best["renders_per_s"],
        "batch": f"batch {best['batch']}",
        "encode_s": data["encode"]["seconds_at_default_steps"],
        "encode_note": f"measured: {data['encode']['default_steps']} inversion steps",
    }


def renderers(dau: int, render_s: float, encode_s: float, load: Load) -> int:
    """Renderers for ``dau`` users: the busiest hour's work, in renderer-seconds per
    second, over the utilisation cap."""
    peak = dau * load.peak_share / 3600  # per second of the busiest hour, per message kind
    busy = peak * (load.edits_per_user * render_s + load.photos_per_user * encode_s)
    return max(1, math.ceil(busy / load.utilisation - 1e-9))  # 2.0000001 is still 2


def capacity(costs: dict[str, dict[str, Any]], load: Load, dau: list[int]) -> dict[str, Any]:
    """The capacity table: renderers per cost source for each number of daily users."""
    rows = []
    for users in dau:
        row: dict[str, Any] = {
            "dau": users,
            "peak_edits_per_s": users * load.edits_per_user * load.peak_share / 3600,
            "peak_photos_per_s": users * load.photos_per_user * load.peak_share / 3600,
        }
        for name, cost in costs.items():
            row[name] = {
                "renderers": renderers(users, cost["render_s"], cost["encode_s"], load),
                "edits_alone": renderers(users, cost["render_s"], 0, load),
            }
        rows.append(row)
    return {"load": asdict(load), "costs": costs, "rows": rows}


def markdown(table: dict[str, Any]) -> str:
    load, costs = Load(**table["load"]), table["costs"]
    names = list(costs)
    head = ["daily active users", "peak edits/s", "peak photos/s", *names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table["rows"]:
        counts = [f"{row[n]['renderers']:,} ({row[n]['edits_alone']:,})" for n in names]
        cells = [f"{row['dau']:,}", f"{row['peak_edits_per_s']:.2f}",
                 f"{row['peak_photos_per_s']:.3f}", *counts]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Model: each daily active user sends {load.edits_per_user:g} edits (one render each) "
        f"and {load.photos_per_user:g} new photo (one encode) a day; the busiest hour carries "
        f"{load.peak_share:.0%} of them. Renderers = ceil(busiest hour's work in "
        f"renderer-seconds per second / {load.utilisation:.0%}): capping utilisation keeps "
        f"queueing short (in an M/M/1 queue the mean wait is u / (1 - u) service times, "
        f"{load.utilisation / (1 - load.utilisation):.1f} at {load.utilisation:.0%}). "
        "Renders are costed at the best batch size (batches fill at peak), encodes at batch "
        '1. In brackets: renderers for the edits alone. With queue.kind = "ray" both run '
        "on the replicas. Add one renderer so that losing one keeps the rest under the cap.",
        "",
        "Costs per column:",
    ]
    for name, cost in costs.items():
        lines.append(
            f"- {name}: {seconds(cost['render_s'])} per render ({cost['source']}, "
            f"{cost['batch']}), {seconds(cost['encode_s'])} per photo ({cost['encode_note']})."
        )
    return "\n".join(lines)


def seconds(value: float) -> str:
    return f"{value:.3g} s" if value < 100 else f"{value:,.0f} s"


def gpu_targets(encode_steps: int) -> dict[str, dict[str, Any]]:
    """The GPU targets as costs; a photo as ``encode_steps`` steps at the batch-1 target's
    cost per step."""
    step_s = GPU_TARGETS["H100 target, batch 1"] / TARGET_STEPS
    return {
        f"{name} (not measured)": {
            "source": "target in docs/performance.md, not a measurement",
            "render_s": seconds,
            "batch": "batched" if "batched" in name else "batch 1",
            "encode_s": step_s * encode_steps,
            "encode_note": f"estimated: {encode_steps} inversion steps at the batch-1 "
            "target's cost per step; likely more, as inversion runs in fp32",
        }
        for name, seconds in GPU_TARGETS.items()
    }

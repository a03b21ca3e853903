"""Capacity bench: simulated chat users against the local render queue and against Ray
Serve replicas, and the capacity model (renderers needed for 1k / 10k / 100k daily
active users) from a measured per-render cost.

Replay: ``--users`` users chat at once; each has one face already encoded (random
latents: a render costs the same whatever the face) and sends ``--messages`` edits, each
after the reply to the one before and a think time drawn from an exponential
distribution (mean ``--think`` seconds). Requests are built as the bots build them
(``RenderRequest.make``, steps from ``render.steps``, the schedule the engine picks) and
go through ``make_queue(engine)``, the queue the bots use, twice in the same run:

- local: ``queue.kind = "local"``, one model thread in this process;
- ray: ``queue.kind = "ray"`` with ``--replicas`` replicas on a Ray instance this script
  starts on 127.0.0.1 (``--replicas 0`` skips it).

Per run it prints renders/s, p50 / p95 / max latency (submit -> result), the mean batch
size of the model calls, and the ratios ray / local.

Capacity model: the per-render cost at the best batch size (measured here with
``Engine.render_batch``, or read from a ``chatface bench`` JSON with ``--bench-json``)
gives the renderers (GPUs, or machines like this one) needed at the busiest hour; the
assumptions are printed with the markdown table (docs/deploy.md pastes it).

Backends: ``tiny`` (the tests' random 64 px backend, the default: a minute on 2 cores)
and ``ffhq256`` (the official ffhq256_autoenc layout with random weights at ``--size``
px, installed as weights in a temporary data directory so that replicas load it through
the real ``diffae`` backend; no attribute directions come with it, so its renders are of
the unedited state, which costs the same).

Example: python bench/capacity.py --json --bench-json bench/results/20261129-124653-cpu-quick.json
Not a test: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python bench/capacity.py` puts this folder first on sys.path, where bench/queue.py
# would shadow the standard library's queue module; the sort moves the folder last.
sys.path.sort(key=lambda entry: Path(entry or ".").resolve() == Path(__file__).resolve().parent)

import argparse
import asyncio
import datetime
import json
import logging
import math
import os
import random
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from capacity_model import Load, bench_cost, capacity, gpu_targets, markdown  # bench/
from latents import random_faces  # bench/

from chatface.config import load_config
from chatface.engine.batch import RenderRequest, RenderResult
from chatface.engine.editor import Engine
from chatface.engine.queue import make_queue
from chatface.engine.types import Latents, SessionState
from chatface.files import atomic_write

EDITS = ("smile", "age", "eyeglasses", "blond_hair", "beard")
RANDOM_WEIGHTS = "bench_ffhq256_random"


@dataclass
class Run:
    """What one replay measured."""

    queue: str
    replicas: int
    latencies: list[float] = field(default_factory=list)
    model_calls: float = 0.0  # sum over renders of 1 / batch size: one per model call
    model_s: float = 0.0  # sum over renders of their model call's time / its batch size
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "queue": self.queue,
            "replicas": self.replicas,
            "renders": len(ordered),
            "wall_s": self.wall_s,
            "renders_per_s": len(ordered) / self.wall_s,
            "p50_s": statistics.median(ordered),
            "p95_s": ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)],  # nearest rank
            "max_s": ordered[-1],
            "mean_batch": len(ordered) / self.model_calls,
            "model_s_per_render": self.model_s / len(ordered),
        }


def request(
    engine: Engine, job: str, face: bytes, state: SessionState, user: str, steps: int
) -> RenderRequest:
    """An edit's render request, as the bots make it."""
    return RenderRequest.make(
        job, face, state, steps=steps, schedule=engine.schedule_for(state),
        backend=engine.config["engine.backend"], user=user,
    )  # fmt: skip


def next_state(engine: Engine, state: SessionState, edit: str) -> SessionState:
    """The state after one more "a bit more <edit>"; unchanged on the random ffhq256
    layout, whose attribute directions (a trained classifier) are not installed."""
    if engine.config["engine.backend"] != "tiny":
        return state
    return SessionState({**state.strengths, edit: state.strengths.get(edit, 0.0) + 0.25})


async def replay(engine: Engine, faces: list[bytes], args: argparse.Namespace, run: Run) -> Run:
    """Every user sends ``args.messages`` edits, each after the reply and a think time."""
    steps = int(engine.config["render.steps"])
    queue = await make_queue(engine)
    try:
        # Untimed: every replica loads the backend on its first render.
        warm = [
            await queue.submit(request(engine, f"warm{i}", face, SessionState(), f"warm{i}", 1))
            for i, face in enumerate(faces[: max(2, 2 * run.replicas)])
        ]
        await asyncio.gather(*(job.result() for job in warm))

        async def user(index: int, face: bytes) -> None:
            think = random.Random(args.seed * 1000 + index)
            state = SessionState()
            for message in range(args.messages):
                await asyncio.sleep(think.expovariate(1 / args.think) if args.think else 0)
                state = next_state(engine, state, EDITS[(index + message) % len(EDITS)])
                job_id = f"u{index}m{message}"
                submitted = time.perf_counter()
                job = await queue.submit(
                    request(engine, job_id, face, state, f"user{index}", steps)
                )
                result: RenderResult = await job.result()
                run.latencies.append(time.perf_counter() - submitted)
                run.model_calls += 1 / result.batch_size
                run.model_s += result.render_s / result.batch_size

        started = time.perf_counter()
        await asyncio.gather(*(user(i, face) for i, face in enumerate(faces)))
        run.wall_s = time.perf_counter() - started
    finally:
        await queue.close()
    return run


def replay_on_ray(faces: list[bytes], args: argparse.Namespace) -> Run:
    """The replay with ``queue.kind = "ray"`` on a Ray instance started here."""
    import ray
    from ray import serve

    os.environ.update(CHATFACE_QUEUE_KIND="ray", CHATFACE_QUEUE_RAY_REPLICAS=str(args.replicas))
    # Logical CPUs: one per replica (Ray gives each replica's torch that many threads).
    ray.init(
        address="local", num_cpus=args.replicas, include_dashboard=False,
        log_to_driver=False, logging_level=logging.WARNING,
    )  # fmt: skip
    try:
        engine = Engine(load_config())
        return asyncio.run(replay(engine, faces, args, Run("ray", args.replicas)))
    finally:
        serve.shutdown()
        ray.shutdown()
        os.environ["CHATFACE_QUEUE_KIND"] = "local"


def measured_cost(engine: Engine, face: bytes, repeats: int = 3) -> dict[str, Any]:
    """Seconds per render of ``Engine.render_batch`` at batch 1 and ``queue.max_batch``,
    here, after a warm-up call at each size: the fastest of ``repeats`` calls, the one
    other work on the machine disturbed least."""
    steps = int(engine.config["render.steps"])
    latents = Latents.from_bytes(face)
    per_render = {}
    for size in sorted({1, int(engine.config["queue.max_batch"])}):
        # A face per row: identical requests in a batch are rendered once.
        faces = [Latents(latents.z_sem + i, latents.x_T).to_bytes() for i in range(size)]
        batch = [
            request(engine, f"c{i}", f, SessionState(), f"c{i}", steps) for i, f in enumerate(faces)
        ]
        engine.render_batch(batch)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            engine.render_batch(batch)
            times.append(time.perf_counter() - started)
        per_render[size] = min(times) / size
    best = min(per_render, key=per_render.__getitem__)
    encode_steps = int(engine.config["render.encode_steps"])
    return {
        "source": "this run: Engine.render_batch",
        "per_render_s_by_batch": per_render,
        "render_s": per_render[best],
        "batch": f"batch {best}",
        # Not measured: an inversion step costs about what a render step at batch 1 costs.
        "encode_s": per_render[1] * encode_steps / steps,
        "encode_note": f"estimated: {encode_steps} inversion steps at the batch-1 step cost",
    }


def install_random_weights(size: int, home: Path) -> None:
    """The ffhq256_autoenc layout with random weights at ``size`` px, installed in the
    data directory ``home`` as the weights ``engine.weights`` names."""
    from safetensors.torch import save_file

    from chatface.plugins.diffae.bench import random_model

    model = random_model(size)
    checkpoint, config = home / "random.safetensors", home / "random.json"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(checkpoint))
    config.write_text(json.dumps(model.config.to_dict()))
    Engine(load_config()).import_weights(
        checkpoint, name=RANDOM_WEIGHTS, options={"config": config}
    )
    checkpoint.unlink()


COLUMNS = (  # (title, summary key, format)
    ("renders", "renders", "d"), ("renders/s", "renders_per_s", ".2f"), ("p50 s", "p50_s", ".3f"),
    ("p95 s", "p95_s", ".3f"), ("max s", "max_s", ".3f"), ("mean batch", "mean_batch", ".2f"),
    ("model s/render", "model_s_per_render", ".3f"),
)  # fmt: skip


def table(runs: list[dict[str, Any]]) -> str:
    head = f"{'queue':<6} {'replicas':>8} " + " ".join(f"{t:>{len(t) + 2}}" for t, _, _ in COLUMNS)
    lines = [head]
    for r in runs:
        cells = " ".join(f"{r[key]:>{len(t) + 2}{fmt}}" for t, key, fmt in COLUMNS)
        lines.append(f"{r['queue']:<6} {r['replicas']:>8} {cells}")
    return "\n".join(lines)


def ratios(local: dict[str, Any], ray: dict[str, Any]) -> dict[str, float]:
    keys = ("renders_per_s", "p50_s", "p95_s", "max_s", "mean_batch", "model_s_per_render")
    return {key: ray[key] / local[key] for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=8, help="users chatting at once")
    parser.add_argument("--messages", type=int, default=4, help="edits each user sends")
    parser.add_argument(
        "--think",
        type=float,
        default=1.0,
        help="mean think time before each message, seconds (exponential)",
    )
    parser.add_argument("--replicas", type=int, default=2, help="Ray replicas (0: no Ray run)")
    parser.add_argument("--steps", type=int, help="DDIM steps per render (default render.steps)")
    parser.add_argument("--backend", default="tiny", choices=("tiny", "ffhq256"))
    parser.add_argument("--size", type=int, default=256, help="image size of --backend ffhq256")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--bench-json",
        type=Path,
        help="take the per-render cost from this `chatface bench` JSON too",
    )
    parser.add_argument("--dau", default="1000,10000,100000", help="daily active users")
    parser.add_argument("--edits-per-user", type=float, default=Load.edits_per_user)
    parser.add_argument("--photos-per-user", type=float, default=Load.photos_per_user)
    parser.add_argument(
        "--peak-share",
        type=float,
        default=Load.peak_share,
        help="share of a day's messages in the busiest hour",
    )
    parser.add_argument(
        "--utilisation",
        type=float,
        default=Load.utilisation,
        help="highest share of the busiest hour a renderer may be busy",
    )
    parser.add_argument("--json", action="store_true", help="save the results as JSON")
    parser.add_argument("--out", type=Path, default=Path("bench/results"),
                        help="folder of the JSON results")  # fmt: skip
    args = parser.parse_args()
    load = Load(args.edits_per_user, args.photos_per_user, args.peak_share, args.utilisation)
    load_before = os.getloadavg()  # other work on the machine slows every figure
    home = Path(tempfile.mkdtemp(prefix="chatface-capacity-"))
    os.environ.update(
        CHATFACE_HOME=str(home),  # nothing stored, nothing read from the usual data dir
        CHATFACE_QUEUE_KIND="local",
        CHATFACE_QUEUE_MAX_PENDING=str(max(64, args.users)),
        CHATFACE_ENGINE_BACKEND="tiny" if args.backend == "tiny" else "diffae",
        CHATFACE_ENGINE_WEIGHTS=RANDOM_WEIGHTS,
    )
    if args.steps:
        os.environ["CHATFACE_RENDER_STEPS"] = str(args.steps)
    try:
        if args.backend == "ffhq256":
            install_random_weights(args.size, home)
        engine = Engine(load_config())
        faces = random_faces(engine, None, args.users, args.seed)
        size, steps = engine.backend().image_size, engine.config["render.steps"]
        # First, on this (the main) thread of a process that has rendered nowhere else.
        costs = {f"{args.backend} {size} px, {steps} steps, here": measured_cost(engine, faces[0])}
        runs = [asyncio.run(replay(engine, faces, args, Run("local", 0))).summary()]
        if args.replicas:
            runs.append(replay_on_ray(faces, args).summary())
        if args.bench_json:
            measured = bench_cost(args.bench_json)
            costs[f"chatface bench, {measured['machine']['device']}"] = measured
        config = engine.config
        costs.update(gpu_targets(int(config["render.encode_steps"])))
        dau = [int(part) for part in args.dau.split(",")]
        model = capacity(costs, load, dau)
    finally:
        shutil.rmtree(home, ignore_errors=True)

    from chatface.engine.devices import resolve_device
    from chatface.plugins.diffae.bench import machine

    backend = engine.backend()
    print(
        f"backend {args.backend} ({backend.image_size} px, random weights), "
        f"{config['render.steps']} steps, precision {config['render.precision']}, "
        f"{args.users} users x {args.messages} messages, think {args.think:g} s (mean), "
        f"torch threads {torch.get_num_threads()}, {os.cpu_count()} cores, load average "
        f"{load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after"
    )
    print(table(runs))
    results: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]),
        "machine": machine(resolve_device(config["engine.device"])),
        "load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]},
        "backend": args.backend,
        "image_size": backend.image_size,
        "steps": int(config["render.steps"]),
        "users": args.users,
        "messages": args.messages,
        "think_s": args.think,
        "runs": runs,
    }
    if len(runs) == 2:
        results["ray_over_local"] = ratios(*runs)
        print(
            "ray / local: "
            + ", ".join(f"{k} {v:.2f}x" for k, v in results["ray_over_local"].items())
        )
    results["capacity"] = model
    results["capacity_markdown"] = markdown(model)
    print()
    print(results["capacity_markdown"])
    if args.json:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
        path = args.out / f"{stamp}-capacity-{args.backend}.json"
        atomic_write(path, (json.dumps(results, indent=2) + "\n").encode())
        print(f"Saved {path}.")


if __name__ == "__main__":
    main()

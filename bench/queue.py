"""Benchmark: renders through the local render queue, batching off against batching on.

Simulated users chat at once: each sends ``--messages`` edits, one after another (a
user waits for the reply before the next edit), each edit one render of the user's
whole accumulated state. Renders go through ``LocalRenderQueue`` over
``Engine.render_batch``, twice in the same run:

- baseline: batching off (``queue.max_batch`` 1): one render per model call;
- batched: ``queue.max_batch`` 8, ``queue.batch_window_ms`` 25 (the default settings).

It prints renders/s, p50 / p95 latency (submit -> result) and the mean batch size of
each, and the ratios batched / baseline. Backends: ``tiny`` (the random-weight 64 px
backend the tests use) and ``ffhq256`` (the official ffhq256_autoenc network layout
with random weights, nothing downloaded; slow on a CPU, so its defaults are small).
Faces are random latents: a render costs the same whatever the face and the weights.

Example (CPU, 1-2 minutes on 2 cores): python bench/queue.py --backend ffhq256
On a GPU: python bench/queue.py --backend ffhq256 --device cuda --users 32 --messages 4 --steps 8
Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python bench/queue.py` puts this folder first on sys.path, where this file would
# shadow the standard library's queue module (asyncio's thread pools import it); the
# sort moves the folder behind everything else.
sys.path.sort(key=lambda entry: Path(entry or ".").resolve() == Path(__file__).resolve().parent)

import argparse
import asyncio
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from latents import random_faces  # bench/

from chatface import hookimpl
from chatface.config import Config, load_config
from chatface.engine.batch import RenderRequest
from chatface.engine.devices import resolve_device
from chatface.engine.editor import Engine
from chatface.engine.plugins import PluginRecord
from chatface.engine.queue import LocalRenderQueue
from chatface.engine.types import Attribute, Backend, DirectionProvider, SessionState
from chatface.plugins.diffae import fast
from chatface.plugins.diffae.backend import DiffAEBackend
from chatface.plugins.diffae.config import PRESETS
from chatface.plugins.diffae.model import DiffAEModel
from chatface.plugins.tiny import TinyDirections

FFHQ256 = "ffhq256_random"
BACKENDS = {"tiny": "tiny", "ffhq256": FFHQ256}
# (users, messages, steps) when not given: 2 CPU cores finish either run in about a minute.
DEFAULTS = {"tiny": (16, 4, 8), "ffhq256": (4, 1, 1)}
EDITS = ("smile", "age", "eyeglasses", "blond_hair", "beard")
MODES = {"batching off": 1, "batching on": 8}  # name -> queue.max_batch
BATCH_WINDOW_S = 0.025


class RandomDirections(TinyDirections):
    """The tiny backend's random attribute directions, for the ffhq256 latent space."""

    name = "ffhq256_random"

    def attributes(self) -> list[Attribute]:
        return [replace(attribute, backend=FFHQ256) for attribute in super().attributes()]


class RandomFFHQ256:
    """A plugin for this run only: the ffhq256_autoenc network with random weights."""

    @hookimpl
    def chatface_register_backends(self, register: Callable[..., None]) -> None:
        register(FFHQ256, self.load, random_weights=True)

    @hookimpl
    def chatface_register_directions(self, register: Callable[[DirectionProvider], None]) -> None:
        register(RandomDirections())

    @staticmethod
    def load(config: Config) -> Backend:
        torch.manual_seed(0)
        model = DiffAEModel(PRESETS["ffhq256_autoenc"])
        device = resolve_device(config["engine.device"])
        return DiffAEBackend(model, device=device, fast=fast.from_config(config, device))


@dataclass
class Run:
    """What one mode measured, over every repeat."""

    latencies: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    batches: int = 0
    rendered: int = 0

    def add(self, other: Run) -> None:
        self.latencies += other.latencies
        self.wall_s += other.wall_s
        self.batches += other.batches
        self.rendered += other.rendered

    def line(self, name: str) -> str:
        return (
            f"{name:<13} {self.renders_per_s:9.2f} {percentile(self.latencies, 50):9.3f} "
            f"{percentile(self.latencies, 95):9.3f} {self.rendered / self.batches:11.2f}"
        )

    @property
    def renders_per_s(self) -> float:
        return len(self.latencies) / self.wall_s


def percentile(values: list[float], percent: float) -> float:
    """Nearest-rank percentile: the smallest value at least ``percent`` % of them reach."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


async def chat(
    engine: Engine, backend: str, faces: list[bytes], messages: int, steps: int, max_batch: int
) -> Run:
    """Every user sends ``messages`` edits, each after the reply to the one before."""
    queue = LocalRenderQueue(
        engine.render_batch,
        max_pending=max(64, len(faces)),
        max_batch=max_batch,
        batch_window_s=BATCH_WINDOW_S,
    )
    run = Run()

    async def user(index: int, face: bytes) -> None:
        state = SessionState()
        for message in range(messages):
            edit = EDITS[(index + message) % len(EDITS)]
            state = SessionState({**state.strengths, edit: state.strengths.get(edit, 0.0) + 0.25})
            request = RenderRequest.make(
                f"u{index}m{message}", face, state,
                steps=steps, schedule="stable", backend=backend, user=f"user{index}",
            )  # fmt: skip
            submitted = time.perf_counter()
            await (await queue.submit(request)).result()
            run.latencies.append(time.perf_counter() - submitted)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(user(i, face) for i, face in enumerate(faces)))
    finally:
        await queue.close()
    run.wall_s = time.perf_counter() - started
    stats = queue.stats()
    run.batches, run.rendered = stats.batches, stats.rendered
    return run


def make_engine(device: str) -> Engine:
    config = load_config({**os.environ, "CHATFACE_ENGINE_DEVICE": device})
    engine = Engine(config)
    engine.plugin_manager.register_plugin(
        RandomFFHQ256(), PluginRecord("bench_ffhq256", builtin=False, status="loaded")
    )
    return engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="tiny", choices=sorted(BACKENDS))
    parser.add_argument("--users", type=int, help="users chatting at once")
    parser.add_argument("--messages", type=int, help="edits each user sends")
    parser.add_argument("--steps", type=int, help="DDIM steps per render")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each mode, interleaved")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    default_users, default_messages, default_steps = DEFAULTS[args.backend]
    users = args.users or default_users
    messages = args.messages or default_messages
    steps = args.steps or default_steps
    engine = make_engine(args.device)
    backend = BACKENDS[args.backend]
    faces = random_faces(engine, backend, users, args.seed)
    # Untimed: load the model and make the first call; on CUDA also warm the allocator and
    # kernels for the largest batch (on a CPU that would cost as much as the benchmark).
    device = resolve_device(args.device)
    for size in [1, min(8, users)] if device.type == "cuda" else [1]:
        engine.render_batch([
            RenderRequest.make(str(i), face, SessionState(), steps=1, schedule="stable",
                               backend=backend)
            for i, face in enumerate(faces[:size])
        ])  # fmt: skip

    runs = {name: Run() for name in MODES}
    for _ in range(args.repeats):
        for name, max_batch in MODES.items():
            runs[name].add(asyncio.run(chat(engine, backend, faces, messages, steps, max_batch)))

    print(
        f"backend {args.backend} ({engine.backend(backend).image_size} px, random weights), "
        f"device {device}, threads {torch.get_num_threads()}: {users} users x {messages} messages, "
        f"{steps} steps, repeats {args.repeats}, batch window {BATCH_WINDOW_S * 1000:.0f} ms"
    )
    print(f"{'':<13} {'renders/s':>9} {'p50 s':>9} {'p95 s':>9} {'mean batch':>11}")
    for name, run in runs.items():
        print(run.line(name))
    off, on = runs["batching off"], runs["batching on"]
    print(
        f"ratio on/off: renders/s {on.renders_per_s / off.renders_per_s:.2f}x, "
        f"p50 {percentile(on.latencies, 50) / percentile(off.latencies, 50):.2f}x, "
        f"p95 {percentile(on.latencies, 95) / percentile(off.latencies, 95):.2f}x"
    )


if __name__ == "__main__":
    main()

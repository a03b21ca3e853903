"""Benchmark: mapper training iterations per second, loss renders by DDIM against x0.

Trains a mapping network with ``chatface.plugins.mapper.train.train`` on random faces
(a render costs the same whatever the face and the weights), twice in the same run:

- baseline: ``method.loss_render = ddim``: ``--steps`` DDIM steps with gradients through
  all of them (the default setting);
- x0: ``method.loss_render = x0``: the first step's x0 estimate (one network call).

It prints seconds per iteration and iterations/s of each (the first iteration is not
timed: model loading, allocator and kernel warm-up), the ratio x0 / ddim, and the peak
GPU memory on CUDA. Backends: ``tiny`` (the tests' random 64 px network) and
``ffhq256`` (the official ffhq256_autoenc layout with random weights, as in
bench/queue.py). CLIP is ViT-B/32 with random weights (``--clip tiny``: the tests' tiny
one) and the identity network the tiny one: nothing is downloaded.

Example (CPU, a few minutes on 2 cores): python bench/train.py --backend tiny --threads 1
On a GPU: python bench/train.py --backend ffhq256 --device cuda --iters 20
(ffhq256 at batch 8 needs more than 23 GB of memory on a CPU: use --batch 2 there.)
Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python bench/train.py` puts this folder first on sys.path, where bench/queue.py would
# shadow the standard library's queue module (torch imports it); as in bench/queue.py,
# the sort moves the folder behind everything else.
sys.path.sort(key=lambda entry: Path(entry or ".").resolve() == Path(__file__).resolve().parent)

import argparse
import importlib.util
import os
import tempfile
import time
from dataclasses import replace
from types import ModuleType

import torch

from chatface.engine.devices import resolve_device
from chatface.engine.editor import Engine
from chatface.plugins.mapper.objective import (
    OPENAI_MEAN,
    OPENAI_STD,
    Clip,
    LossWeights,
    Objective,
    load_clip_model,
)
from chatface.plugins.mapper.train import TrainSettings, train
from chatface.plugins.mapper.train_data import TrainingFaces

MODES = ("ddim", "x0")  # baseline first


def queue_bench() -> ModuleType:
    """bench/queue.py (its random ffhq256 backend), imported under another name: as
    ``queue`` it would shadow the standard library's module."""
    path = Path(__file__).resolve().parent / "queue.py"
    spec = importlib.util.spec_from_file_location("bench_queue", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def random_clip(name: str, device: torch.device) -> Clip:
    if name == "tiny":
        return load_clip_model("tiny", device)
    import open_clip

    torch.manual_seed(0)
    config = open_clip.get_model_config("ViT-B-32")
    model = open_clip.model.CLIP(**config, quick_gelu=True)
    return Clip(model.to(device), OPENAI_MEAN, OPENAI_STD)


def random_faces(engine: Engine, backend: str, count: int, seed: int) -> TrainingFaces:
    from chatface.engine.types import Latents

    model = engine.backend(backend)
    size, generator = model.image_size, torch.Generator().manual_seed(seed)
    images = torch.rand(count, 3, size, size, generator=generator) * 2 - 1
    latents = Latents(
        torch.randn(count, model.latent_dim, generator=generator),
        torch.randn(count, 3, size, size, generator=generator),
    )
    return TrainingFaces(latents, images, backend, model.weights_sha256)


def measure(
    engine: Engine,
    objective: Objective,
    faces: TrainingFaces,
    settings: TrainSettings,
    iters: int,
    device: torch.device,
) -> tuple[float, float]:
    """(seconds per iteration after the first, peak CUDA memory in GiB or 0)."""
    stamps: list[float] = []

    def stamp(done: int, total: int, losses: object) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as out:
        train(engine, faces, settings, objective, iters=iters + 1, out=Path(out), progress=stamp)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0
    return (stamps[-1] - stamps[0]) / iters, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="tiny", choices=["tiny", "ffhq256"])
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iters", type=int, default=3, help="timed iterations of each mode")
    parser.add_argument("--steps", type=int, default=4, help="DDIM steps of the ddim mode")
    parser.add_argument("--clip", default="vit-b-32", choices=["vit-b-32", "tiny"])
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    bench = queue_bench()
    # The preview grid at the end of each run is not timed; one render step keeps it short.
    os.environ["CHATFACE_RENDER_STEPS"] = "1"
    engine = bench.make_engine(args.device)
    backend = bench.BACKENDS[args.backend]
    device = resolve_device(args.device)
    faces = random_faces(engine, backend, 2 * args.batch, args.seed)
    clip = random_clip(args.clip, device)
    identity = engine.identity_model("tiny")
    settings = TrainSettings(
        "bench", "a photo of a face", "a photo of a face with curly hair", backend,
        batch=args.batch, seed=args.seed,
    )  # fmt: skip
    results = {}
    for mode in MODES:
        objective = Objective(
            engine, backend, clip, identity, LossWeights(), steps=args.steps, render_mode=mode
        )
        chosen = replace(settings, objective={"method.loss_render": mode})
        results[mode] = measure(engine, objective, faces, chosen, args.iters, device)

    print(
        f"backend {args.backend} ({engine.backend(backend).image_size} px, random weights), "
        f"device {device}, threads {torch.get_num_threads()}, batch {args.batch}, "
        f"{args.iters} timed iterations, ddim steps {args.steps}, clip {args.clip}"
    )
    print(f"{'loss render':<12} {'s/iter':>9} {'iters/s':>9} {'peak GiB':>9}")
    for mode, (seconds, peak) in results.items():
        shown = f"{peak:.2f}" if device.type == "cuda" else "-"
        print(f"{mode:<12} {seconds:>9.3f} {1 / seconds:>9.3f} {shown:>9}")
    print(f"ratio x0/ddim: iters/s {results['ddim'][0] / results['x0'][0]:.2f}x")


if __name__ == "__main__":
    main()

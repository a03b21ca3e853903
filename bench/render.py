"""Benchmark: DiffAE rendering with our backend against a plain fp32 eager baseline.

Builds the official ffhq256_autoenc network with random weights (no download),
renders the same (x_T, z_sem) with both paths in one run and prints seconds per
DDIM step, the speed ratio and the pixel differences between the two outputs.

- baseline: the model called in a straightforward Python DDIM loop, float32,
  contiguous (NCHW) tensors, under ``torch.no_grad``, nothing else.
- ours: ``DiffAEBackend.render`` with the model and inputs in channels_last; on
  CUDA also bf16 autocast (fp16 where bf16 is unsupported; ``--fp32`` turns it
  off), and ``torch.compile`` with ``--compile``.

Example (CPU, 1-2 minutes on 2 cores): python bench/render.py --device cpu --steps 2
Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import functools
import statistics
import time
from collections.abc import Callable

import torch

from chatface.engine.devices import resolve_device
from chatface.engine.types import Latents
from chatface.plugins.diffae.backend import DiffAEBackend
from chatface.plugins.diffae.config import PRESETS
from chatface.plugins.diffae.model import DiffAEModel
from chatface.plugins.diffae.sampler import alphas_cumprod, spaced_timesteps


def random_model(size: int, seed: int) -> DiffAEModel:
    """ffhq256_autoenc shape with PyTorch's default init everywhere.

    The official init zeroes the last conv of every block and of the network,
    which would make eps 0 and any comparison meaningless, so those are re-drawn.
    """
    config = dataclasses.replace(PRESETS["ffhq256_autoenc"], image_size=size)
    torch.manual_seed(seed)
    model = DiffAEModel(config)
    for module in model.modules():
        if isinstance(module, torch.nn.Conv1d | torch.nn.Conv2d | torch.nn.Linear):
            module.reset_parameters()
    return model.eval()


@torch.no_grad()
def baseline_render(
    model: DiffAEModel, x_T: torch.Tensor, z_sem: torch.Tensor, steps: int
) -> torch.Tensor:
    """Textbook deterministic DDIM with x0 clipping, eps re-derived from the clipped x0."""
    alphas = alphas_cumprod()
    timesteps = spaced_timesteps(steps)[::-1]
    x = x_T
    for i, t in enumerate(timesteps):
        a = alphas[t]
        a_prev = alphas[timesteps[i + 1]] if i + 1 < steps else 1.0
        eps = model(x, torch.full((x.shape[0],), t, device=x.device), z_sem)
        x0 = ((x - (1 - a) ** 0.5 * eps) / a**0.5).clamp(-1, 1)
        eps = (x - a**0.5 * x0) / (1 - a) ** 0.5
        x = a_prev**0.5 * x0 + (1 - a_prev) ** 0.5 * eps
    return x


def timed(
    fns: dict[str, Callable[[], torch.Tensor]], device: torch.device, repeats: int
) -> dict[str, list[float]]:
    """Seconds per call of each function, interleaved so machine load hits both alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="torch.compile our model")
    parser.add_argument("--fp32", action="store_true", help="no autocast for our path on CUDA")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    device = resolve_device(args.device)
    model = random_model(args.size, args.seed).to(device)
    generator = torch.Generator().manual_seed(args.seed + 1)
    x_T = torch.randn(args.batch, 3, args.size, args.size, generator=generator).to(device)
    z_sem = torch.randn(args.batch, model.config.embed_channels, generator=generator).to(device)

    fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    mode = "fp32, channels_last"
    if device.type == "cuda" and not args.fp32:
        half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        autocast = functools.partial(torch.autocast, "cuda", dtype=half)
        mode = f"{half} autocast, channels_last"
    backend = DiffAEBackend(fast, device=device)
    if args.compile:
        # The backend only calls the model; a compiled wrapper keeps its parameters.
        backend.model = torch.compile(backend.model)
        mode += ", torch.compile"
    latents = Latents(z_sem=z_sem, x_T=x_T.contiguous(memory_format=torch.channels_last))

    def ours() -> torch.Tensor:
        with autocast():
            return backend.render(latents, None, args.steps)

    def base() -> torch.Tensor:
        return baseline_render(model, x_T, z_sem, args.steps)

    # One untimed run each: allocator warm-up, cuDNN autotuning, compilation.
    reference, result = base(), ours()
    error = (result.float() - reference.float()).abs()
    times = timed({"baseline": base, "ours": ours}, device, args.repeats)

    print(
        f"device {device}, size {args.size}, batch {args.batch}, steps {args.steps}, "
        f"repeats {args.repeats}, threads {torch.get_num_threads()}"
    )
    print(f"ours: {mode}")
    per_step = {
        name: (statistics.median(values) / args.steps, min(values) / args.steps)
        for name, values in times.items()
    }
    for name, (median, best) in per_step.items():
        print(f"{name:>8}: {median:8.3f} s/step median, {best:8.3f} s/step best")
    ratio_median = per_step["baseline"][0] / per_step["ours"][0]
    ratio_best = per_step["baseline"][1] / per_step["ours"][1]
    print(f"speed-up (baseline / ours): {ratio_median:.2f}x median, {ratio_best:.2f}x best")
    # Random weights make the network chaotic, so reduced precision shows larger
    # differences here than it does with trained weights; fp32 paths agree to ~1e-4.
    print(
        f"difference to baseline (images in [-1, 1]): max abs {error.max().item():.3g}, "
        f"mean abs {error.mean().item():.3g}"
    )


if __name__ == "__main__":
    main()

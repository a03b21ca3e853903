"""What ``chatface bench`` measures: the fast path against fp32 eager, in the same run.

Both paths render the same latents with the same network object: the baseline is
the plain float32 model called eagerly in NCHW (``FastPath()``), the fast path is what
the settings choose for the device (``render.precision``, ``render.exact_steps``,
``render.compile``). Timings are medians of repeats, interleaved so that other load on
the machine slows both alike; on CUDA every timing synchronises the device first.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import datetime
import functools
import math
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from chatface.engine.types import Latents
from chatface.plugins.diffae.backend import DiffAEBackend
from chatface.plugins.diffae.config import PRESETS
from chatface.plugins.diffae.fast import FastPath, cpu_has_bf16
from chatface.plugins.diffae.model import DiffAEModel

Report = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    """What one run measures."""

    steps: int = 8  # DDIM steps of a chat edit
    encode_steps: int = 250  # inversion steps timed (``encode_default`` when extrapolated)
    encode_default: int = 250  # the render.encode_steps setting
    batches: tuple[int, ...] = (1, 8, 32)  # renders/s measured at these batch sizes
    repeats: int = 3
    curve: tuple[int, ...] = ()  # inversion step counts of the reconstruction curve


def random_model(size: int = 256, seed: int = 0) -> DiffAEModel:
    """The official ffhq256_autoenc layout with PyTorch's default initialisation.

    The official init zeroes the last convolution of every block and of the network,
    which would make eps 0 and any comparison meaningless, so those are drawn too.
    """
    config = dataclasses.replace(PRESETS["ffhq256_autoenc"], image_size=size)
    torch.manual_seed(seed)
    model = DiffAEModel(config)
    for module in model.modules():
        if isinstance(module, torch.nn.Conv1d | torch.nn.Conv2d | torch.nn.Linear):
            module.reset_parameters()
    return model.eval()


def _seeded() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def machine(device: torch.device) -> dict[str, Any]:
    """The machine in words, for reading results measured elsewhere."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_bf16": cpu_has_bf16(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "torch": torch.__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = props.name
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2); inf when equal."""
    mse = (image.float() - reference.float()).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(4.0 / mse)


def run(
    model: DiffAEModel,
    fast: FastPath,
    device: torch.device,
    plan: Plan,
    face: torch.Tensor,
    report: Report = lambda _: None,
) -> dict[str, Any]:
    """Measure the baseline and ``fast`` on ``model``; ``face``: one aligned face [1, 3, S, S]
    in [-1, 1] to encode (its latents are what the renders start from)."""
    baseline = DiffAEBackend(model, device=device)
    tuned = DiffAEBackend(model, device=device, fast=fast)
    timer = _Timer(device)
    results: dict[str, Any] = {"steps": plan.steps, "fast_path": fast.describe()}
    with torch.no_grad():
        report("warming up both paths (the fast one builds, and compiles if set)")
        started = timer.now()
        first = tuned.encode(face.to(device), 1)  # builds the inversion network too
        noise = torch.randn(face.shape[0], model.config.embed_channels, generator=_seeded())
        z_edit = first.z_sem + 0.5 * first.z_sem.std() * noise.to(first.z_sem)
        tuned.render(first, z_edit, plan.steps)
        results["fast_warmup_s"] = timer.now() - started
        baseline.render(first, z_edit, 1)

        report(f"encoding a face ({plan.encode_steps} inversion steps)")
        started = timer.now()
        z_sem = tuned.semantic_encode(face.to(device))
        semantic_s = timer.now() - started
        x_T = tuned.stochastic_encode(face.to(device), z_sem, plan.encode_steps)
        inversion_s = timer.now() - semantic_s - started
        latents = Latents(z_sem, x_T)
        at_default = semantic_s + inversion_s * plan.encode_default / plan.encode_steps
        results["encode"] = {
            "semantic_s": semantic_s,
            "steps": plan.encode_steps,
            "inversion_s": inversion_s,
            "seconds": semantic_s + inversion_s,
            "default_steps": plan.encode_default,
            "seconds_at_default_steps": at_default,
        }
        z_edit = latents.z_sem + 0.5 * latents.z_sem.std() * noise.to(latents.z_sem)

        report(f"one network call at batch 1, {plan.repeats}x each path")
        _, reduced = tuned.step_networks() or (baseline.model, baseline.model)
        x, t = latents.x_T.to(device), torch.full((1,), 500, device=device)
        z = z_edit.to(device)
        if fast.compile:  # these arguments are laid out unlike a render's: compiled anew
            reduced(x, t, z)
        step = timer.median({
            "baseline": lambda: baseline.model(x, t, z),
            "fast": lambda: reduced(x, t, z),
        }, plan.repeats)  # fmt: skip

        report(f"{plan.steps}-step renders at batch 1, {plan.repeats}x each path")
        images: dict[str, torch.Tensor] = {}

        def render(name: str, backend: DiffAEBackend) -> Callable[[], None]:
            def go() -> None:
                images[name] = backend.render(latents, z_edit, plan.steps)

            return go

        render_s = timer.median(
            {"baseline": render("baseline", baseline), "fast": render("fast", tuned)},
            plan.repeats,
        )
    for name in ("baseline", "fast"):
        results[name] = {"step_s": step[name], "render_s": render_s[name]}
    results["baseline"]["description"] = "fp32 eager, NCHW"
    results["fast"]["description"] = fast.describe()
    accuracy = psnr(images["fast"], images["baseline"])
    results["fast"]["psnr_db"] = None if math.isinf(accuracy) else accuracy  # None: identical
    results["fast"]["max_abs_error"] = (images["fast"] - images["baseline"]).abs().max().item()
    results["ratio"] = render_s["fast"] / render_s["baseline"]
    results["step_ratio"] = step["fast"] / step["baseline"]
    results["throughput"] = _throughput(tuned, latents, z_edit, plan, timer, report)
    if plan.curve:
        curve = reconstruction_curve(tuned, face.to(device), plan, timer, report)
        results["reconstruction"] = curve
    first = results["throughput"][0]
    results["peak_memory_mib"] = first["peak_memory_mib"] if first["batch"] == 1 else None
    return results


def reconstruction_curve(
    backend: DiffAEBackend, face: torch.Tensor, plan: Plan, timer: _Timer, report: Report
) -> list[dict[str, float | None]]:
    """For each inversion step count: the encode time and how well a chat render of the
    unedited latents (``plan.steps`` steps, the fast path) reproduces the face: PSNR
    against the aligned input. With trained weights this is the curve to choose
    ``render.encode_steps`` from; random weights reproduce nothing."""
    rows: list[dict[str, float | None]] = []
    with torch.no_grad():
        z_sem = backend.semantic_encode(face)
        for steps in plan.curve:
            report(f"reconstruction with {steps} inversion steps")
            started = timer.now()
            x_T = backend.stochastic_encode(face, z_sem, steps)
            seconds = timer.now() - started
            image = backend.render(Latents(z_sem, x_T), None, plan.steps)
            accuracy = psnr(image, face)
            rows.append({
                "encode_steps": steps, "inversion_s": seconds,
                "psnr_db": None if math.isinf(accuracy) else accuracy,
            })  # fmt: skip
    return rows


def _throughput(
    backend: DiffAEBackend,
    latents: Latents,
    z_edit: torch.Tensor,
    plan: Plan,
    timer: _Timer,
    report: Report,
) -> list[dict[str, float]]:
    """Fast-path renders/s and peak memory at each batch size."""
    rows = []
    for batch in plan.batches:
        report(f"{plan.steps}-step renders at batch {batch} (fast path)")
        stacked = Latents(latents.z_sem.expand(batch, -1), latents.x_T.expand(batch, -1, -1, -1))
        z = z_edit.expand(batch, -1)
        with torch.no_grad():
            if batch != 1:  # a new shape: compiled networks capture it first
                backend.render(stacked, z, plan.steps)
            _reset_peak(timer.device)
            call = functools.partial(backend.render, stacked, z, plan.steps)
            seconds = timer.median({"fast": call}, plan.repeats)["fast"]
        rows.append({
            "batch": batch, "render_s": seconds, "renders_per_s": batch / seconds,
            "peak_memory_mib": _peak_mib(timer.device),
        })  # fmt: skip
    return rows


class _Timer:
    def __init__(self, device: torch.device) -> None:
        self.device = device

    def now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def median(self, calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
        """Median seconds of each call; the calls take turns, so load hits all alike."""
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(repeats):
            for name, call in calls.items():
                started = self.now()
                call()
                times[name].append(self.now() - started)
        return {name: statistics.median(values) for name, values in times.items()}


def _reset_peak(device: torch.device) -> None:
    """Start a new peak-memory window: GPU memory on CUDA, the process's RSS on Linux
    (after handing memory freed by earlier renders back to the system)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError, AttributeError):  # glibc only
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with contextlib.suppress(OSError):  # Linux: "5" resets the peak RSS (VmHWM)
        Path("/proc/self/clear_refs").write_text("5")


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def result_path(folder: Path, device: torch.device, quick: bool) -> Path:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    return folder / f"{stamp}-{device.type}{'-quick' if quick else ''}.json"

"""``chatface bench``: render speed of the DiffAE backend here, against fp32 eager.

Prints a summary (or ``--json``) and saves the JSON under ``--out``
(``bench/results/`` by default); the measurements are described in
:mod:`chatface.plugins.diffae.bench`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from chatface.errors import ConfigError

console = Console(stderr=True, highlight=False)


def bench(
    device: str = typer.Option(
        "auto", "--device", help="cpu, cuda, cuda:1, ... (auto: the engine.device setting)."
    ),
    json_: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="Fewer repeats, batch 1 only on a CPU, and the encode time extrapolated from "
        "10 inversion steps: a few minutes on 2 CPU cores.",
    ),
    weights: str | None = typer.Option(
        None,
        "--weights",
        help="Installed DiffAE weights to measure, or 'random' for the ffhq256_autoenc "
        "layout with random weights (default: engine.weights when installed, else random).",
    ),
    curve: str = typer.Option(
        "",
        "--encode-curve",
        help="Comma-separated inversion step counts (e.g. 10,25,50,100,250): also measure "
        "how well each reconstructs the face, to choose render.encode_steps (needs trained "
        "weights to mean anything).",
    ),
    out: Path = typer.Option(
        Path("bench/results"), "--out", help="Folder the JSON results are saved in."
    ),
) -> None:
    """Measure render speed: the fast path (render.precision, render.exact_steps,
    render.compile) against plain fp32 eager in the same run, with per-step time, render
    latency, renders/s per batch size, encode time, peak memory and the fast path's
    accuracy. The top-level JSON field `ratio` is fast / baseline render time (lower is
    better).

    Example: chatface bench --device cpu --json --quick
    """
    import torch

    from chatface.config import load_config
    from chatface.engine.devices import resolve_device
    from chatface.files import atomic_write
    from chatface.plugins.diffae import bench as measure
    from chatface.plugins.diffae import fast

    config = load_config()
    where = resolve_device(config["engine.device"] if device == "auto" else device)
    if where.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available here.")
    model, label = _model(config, weights)
    model = model.to(where)
    encode_default = int(config["render.encode_steps"])
    try:
        curve_steps = tuple(int(part) for part in curve.split(",") if part.strip())
    except ValueError:
        message = f"--encode-curve takes step counts like 10,50,250; got {curve!r}."
        raise ConfigError(message) from None
    if any(steps < 1 for steps in curve_steps):
        raise ConfigError(f"--encode-curve takes positive step counts; got {curve!r}.")
    gpu = where.type == "cuda"
    plan = measure.Plan(
        steps=int(config["render.steps"]),
        encode_steps=min(10, encode_default) if quick else encode_default,
        encode_default=encode_default,
        batches=(1,) if quick and not gpu else (1, 8, 32),
        repeats=(3 if gpu else 1) if quick else 3,
        curve=curve_steps,
    )
    results: dict[str, Any] = {"ratio": None, "quick": quick, "weights": label}
    results["machine"] = measure.machine(where)
    face, detect_align_s = _face(model)
    results.update(measure.run(model, fast.from_config(config, where), where, plan, face, _report))
    results["encode"]["detect_align_s"] = detect_align_s
    path = measure.result_path(out, where, quick)
    text = json.dumps(results, indent=2)
    atomic_write(path, (text + "\n").encode())
    if json_:
        print(text)
    else:
        _summary(results)
    console.print(f"Saved {path}.")


def _model(config: Any, weights: str | None) -> tuple[Any, str]:
    """The network to measure and its name: installed weights, or random ones."""
    from chatface.errors import WeightsMissingError
    from chatface.plugins.diffae import bench as measure
    from chatface.plugins.diffae import installed_network

    if weights != "random":
        name = weights or config["engine.weights"]
        try:
            return installed_network(name, config)[0], name
        except WeightsMissingError:
            if weights is not None:
                raise
    return measure.random_model(), "random ffhq256_autoenc layout"


def _face(model: Any) -> tuple[Any, float]:
    """The example photo's aligned face at the model's size ([1, 3, S, S]), and the
    seconds that finding and aligning it took (the detector loaded first)."""
    import time
    from importlib import resources

    from chatface.engine import faces

    photo = Path(str(resources.files("chatface") / "data" / "example_face.jpg"))
    faces.prepare_face(photo, model.config.image_size)  # loads the detector
    started = time.perf_counter()
    prepared = faces.prepare_face(photo, model.config.image_size)
    return faces.to_tensor(prepared.aligned.image), time.perf_counter() - started


def _report(line: str) -> None:
    console.print(f"[dim]{line}...[/dim]")


def _summary(results: dict[str, Any]) -> None:
    base, fast = results["baseline"], results["fast"]
    steps = results["steps"]
    lines = [
        f"machine: {results['machine']['cpu']}, {results['machine']['device']}",
        f"weights: {results['weights']}",
        f"fast path: {fast['description']}",
        f"one step, batch 1: {base['step_s']:.3f} s fp32 eager, {fast['step_s']:.3f} s fast "
        f"({results['step_ratio']:.2f}x)",
        f"{steps}-step render, batch 1: {base['render_s']:.3f} s fp32 eager, "
        f"{fast['render_s']:.3f} s fast: ratio {results['ratio']:.2f}",
        f"accuracy: PSNR {_db(fast['psnr_db'])} against fp32, max abs error "
        f"{fast['max_abs_error']:.3g}",
    ]
    for row in results["throughput"]:
        lines.append(
            f"batch {row['batch']}: {row['renders_per_s']:.2f} renders/s, "
            f"peak memory {row['peak_memory_mib']:.0f} MiB"
        )
    encode = results["encode"]
    lines.append(
        f"new photo: detect and align {encode['detect_align_s']:.2f} s, encode "
        f"({encode['steps']} inversion steps) {encode['seconds']:.2f} s; at "
        f"{encode['default_steps']} steps about {encode['seconds_at_default_steps']:.1f} s"
    )
    for row in results.get("reconstruction", []):
        lines.append(
            f"{row['encode_steps']} inversion steps: {row['inversion_s']:.2f} s, "
            f"reconstruction {_db(row['psnr_db'])}"
        )
    print("\n".join(lines))


def _db(value: float | None) -> str:
    return "identical (null)" if value is None else f"{value:.1f} dB"

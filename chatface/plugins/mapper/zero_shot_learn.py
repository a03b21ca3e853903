"""Learning one free-text attribute for one face: a z_sem offset, optimised on the spot.

The loss is the ChatFace objective (``objective``) without its L1 image term:
CLIP directional + identity + |dz| with the ``method.*`` weights. The edited face is
rendered with ``zero_shot.render_steps`` DDIM steps, gradients flowing through the
renderer into the offset; ``zero_shot.steps`` Adam steps at ``zero_shot.lr``. The seconds
per step are measured on this device and kept, for the time an offer names.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from chatface.engine.devices import resolve_device
from chatface.errors import ConfigError
from chatface.files import atomic_write

if TYPE_CHECKING:
    from chatface.engine.editor import Engine
    from chatface.engine.types import Latents, Progress
    from chatface.plugins.mapper.objective import Objective

logger = logging.getLogger(__name__)

TIMINGS = "timings.json"


def enabled(engine: Engine) -> bool:
    """The ``zero_shot.enabled`` setting; ``auto`` is on with CUDA only."""
    setting = str(engine.config["zero_shot.enabled"]).strip().lower()
    if setting not in ("auto", "on", "off"):
        raise ConfigError(f"zero_shot.enabled must be auto, on or off; got {setting!r}.")
    return setting == "on" or (
        setting == "auto" and resolve_device(engine.config["engine.device"]).type == "cuda"
    )


def objective(engine: Engine, backend: str) -> Objective:
    """The ChatFace objective of zero-shot learning: no L1 image term, few-step renders."""
    from chatface.plugins.mapper.objective import Objective

    made = Objective.from_config(
        engine, backend, steps=int(engine.config["zero_shot.render_steps"])
    )
    made.weights = replace(made.weights, l1=0.0)
    return made


def learn_offset(
    engine: Engine,
    latents: Latents,
    backend: str,
    target: str,
    start: torch.Tensor | None = None,
    progress: Progress | None = None,
    *,
    steps: int | None = None,
    losses: list[float] | None = None,
    loss: Objective | None = None,
) -> torch.Tensor:
    """The z_sem offset ([1, D]) that moves this face towards ``target`` (a CLIP prompt).

    ``start``: the offset to begin from (learned for another face); ``steps``: instead of
    ``zero_shot.steps``; ``losses`` collects the directional loss of each step; ``loss``:
    the :func:`objective` when the caller keeps one (loading CLIP takes seconds). The
    seconds per step are kept for :func:`expected_seconds`.
    """
    from chatface.plugins.mapper.zero_shot import SOURCE, folder

    config = engine.config
    steps = steps or int(config["zero_shot.steps"])
    loss = loss or objective(engine, backend)
    direction = loss.clip.text_direction(SOURCE, target)
    z = latents.z_sem.detach().float()
    reference = loss.reference(latents)
    offset = torch.zeros_like(z) if start is None else start.detach().to(z).reshape_as(z).clone()
    offset.requires_grad_(True)
    optimiser = torch.optim.Adam([offset], lr=float(config["zero_shot.lr"]))
    started = time.perf_counter()
    for step in range(steps):
        if step == 1:
            started = time.perf_counter()  # the first step loads and warms up: not timed
        terms = loss(latents, z + offset, direction, reference)
        optimiser.zero_grad()
        terms.total.backward()
        optimiser.step()
        if losses is not None:
            losses.append(float(terms.clip.detach()))
        if progress is not None:
            progress(step + 1, steps)
    if steps > 1:
        per_step = (time.perf_counter() - started) / (steps - 1)
        _save_timing(folder(config), _timing_key(engine, backend), per_step)
    return offset.detach()


def expected_seconds(engine: Engine, backend: str, loss: Objective | None = None) -> float | None:
    """Seconds learning one text takes here: steps x the measured seconds per step (a
    two-step probe on a blank face measures them the first time); None when off."""
    from chatface.engine.types import Latents
    from chatface.plugins.mapper.zero_shot import folder

    if not enabled(engine):
        return None
    root, key = folder(engine.config), _timing_key(engine, backend)
    if key not in _timings(root):
        model = engine.backend(backend)
        size = model.image_size
        blank = Latents(torch.zeros(1, model.latent_dim), torch.zeros(1, 3, size, size))
        learn_offset(engine, blank, backend, "a photo of a face, smiling", steps=2, loss=loss)
    return _timings(root)[key] * int(engine.config["zero_shot.steps"])


def _timing_key(engine: Engine, backend: str) -> str:
    device = resolve_device(engine.config["engine.device"])
    return f"{backend}/{device}/{engine.config['zero_shot.render_steps']}"


def _timings(root: Path) -> dict[str, float]:
    try:
        data = json.loads((root / TIMINGS).read_text())
    except (OSError, ValueError):
        return {}
    return {k: float(v) for k, v in data.items() if isinstance(v, int | float)}


def _save_timing(root: Path, key: str, seconds: float) -> None:
    root.mkdir(parents=True, exist_ok=True)
    data = _timings(root) | {key: round(seconds, 4)}
    atomic_write(root / TIMINGS, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())

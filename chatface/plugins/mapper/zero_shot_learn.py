"""Learning one free-text attribute for one face: a z_sem offset, optimised on the spot.

    loss = 2.0 * (1 - directional score) + 0.5 * (1 - identity similarity) + 0.2 * |dz|

The edited face is rendered with ``zero_shot.render_steps`` DDIM steps, gradients
flowing through the renderer into the offset; the directional score compares it with
the unedited render of the same steps (CLIP, ``directional``), identity with the face
network of ``identity.model``. ``zero_shot.steps`` Adam steps at ``zero_shot.lr``. The
seconds per step are measured on this device and kept, for the time an offer names.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from chatface.errors import ConfigError
from chatface.files import atomic_write

if TYPE_CHECKING:
    from chatface.engine.editor import Engine
    from chatface.engine.types import Latents, Progress
    from chatface.plugins.mapper.directional import ClipDirection

logger = logging.getLogger(__name__)

DIRECTIONAL_WEIGHT, IDENTITY_WEIGHT, OFFSET_WEIGHT = 2.0, 0.5, 0.2  # the spec's weights
TIMINGS = "timings.json"
_DIRECTIONALS: dict[str, ClipDirection] = {}  # device -> the loaded CLIP model


def device_of(engine: Engine) -> torch.device:
    setting = str(engine.config["engine.device"])
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def enabled(engine: Engine) -> bool:
    """The ``zero_shot.enabled`` setting; ``auto`` is on with CUDA only."""
    setting = str(engine.config["zero_shot.enabled"]).strip().lower()
    if setting not in ("auto", "on", "off"):
        raise ConfigError(f"zero_shot.enabled must be auto, on or off; got {setting!r}.")
    return setting == "on" or (setting == "auto" and device_of(engine).type == "cuda")


def directional(engine: Engine) -> ClipDirection:
    """The CLIP model of the directional loss, loaded once per device."""
    from chatface.plugins.mapper.directional import load_directional

    device = device_of(engine)
    if str(device) not in _DIRECTIONALS:
        _DIRECTIONALS[str(device)] = load_directional(device)
    return _DIRECTIONALS[str(device)]


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
) -> torch.Tensor:
    """The z_sem offset ([1, D]) that moves this face towards ``target`` (a CLIP prompt).

    ``start``: the offset to begin from (learned for another face); ``steps``: instead of
    ``zero_shot.steps``; ``losses`` collects the directional loss of each step. The
    seconds per step are kept for :func:`expected_seconds`.
    """
    from chatface.plugins.mapper.zero_shot import SOURCE, folder

    config = engine.config
    steps = steps or int(config["zero_shot.steps"])
    render_steps = int(config["zero_shot.render_steps"])
    clip = directional(engine)
    direction = clip.text_direction(SOURCE, target)
    identity = engine.identity_model()
    schedule = engine.registry.schedules[engine.config["render.schedule"]].value
    model = engine.backend(backend)
    z = latents.z_sem.detach().float()
    with torch.no_grad():
        original = model.render(latents, schedule(z, z), render_steps)
        original_id = identity.embed(original)
    offset = torch.zeros_like(z) if start is None else start.detach().to(z).reshape_as(z).clone()
    offset.requires_grad_(True)
    optimiser = torch.optim.Adam([offset], lr=float(config["zero_shot.lr"]))
    started = time.perf_counter()
    for step in range(steps):
        if step == 1:
            started = time.perf_counter()  # the first step loads and warms up: not timed
        z_edit = z + offset
        edited = model.render(latents, schedule(z_edit, z), render_steps)
        loss_dir = 1 - clip.score(edited, original, direction).mean()
        loss_id = 1 - torch.cosine_similarity(identity.embed(edited), original_id).mean()
        loss = DIRECTIONAL_WEIGHT * loss_dir + IDENTITY_WEIGHT * loss_id
        loss = loss + OFFSET_WEIGHT * offset.abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if losses is not None:
            losses.append(float(loss_dir.detach()))
        if progress is not None:
            progress(step + 1, steps)
    if steps > 1:
        per_step = (time.perf_counter() - started) / (steps - 1)
        _save_timing(folder(config), _timing_key(engine, backend), per_step)
    return offset.detach()


def expected_seconds(engine: Engine, backend: str) -> float | None:
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
        learn_offset(engine, blank, backend, "a photo of a face, smiling", steps=2)
    return _timings(root)[key] * int(engine.config["zero_shot.steps"])


def _timing_key(engine: Engine, backend: str) -> str:
    return f"{backend}/{device_of(engine)}/{engine.config['zero_shot.render_steps']}"


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

"""Training one mapping network: the loop, its checkpoints and its previews.

Each iteration samples a batch of training faces with a seeded generator, edits their
z_sem at strength 1 (z + M(z)), scores the edit with ChatFace's objective (the spec's
weighted L1 + |dz|, identity and CLIP directional losses) and takes one AdamW step.
Checkpoints hold everything the next iteration depends on (network, optimizer, the
torch and sampling RNG states, the iteration, the settings, the losses so far), so a
resumed run continues bit for bit where it stopped.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatface.engine.types import Latents
from chatface.errors import ChatFaceError

if TYPE_CHECKING:
    import torch

    from chatface.config import Config
    from chatface.engine.editor import Engine
    from chatface.plugins.mapper.network import MappingNetwork
    from chatface.plugins.mapper.objective import Objective
    from chatface.plugins.mapper.train_data import TrainingFaces

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
PREVIEW_FACES = 4
# Final metrics: the mean of each loss over the last iterations, not one noisy batch.
METRICS_WINDOW = 20

# The settings the objective reads: a resumed run must see the same values.
OBJECTIVE_SETTINGS = (
    "method.clip_model", "method.l1_weight", "method.latent_weight", "method.identity_weight",
    "method.clip_weight", "method.loss_steps", "method.loss_render", "render.schedule",
    "identity.model",
)  # fmt: skip
# Called after each iteration: (iterations done, total, that iteration's losses).
TrainProgress = Callable[[int, int, Mapping[str, float]], None]


@dataclass(frozen=True)
class TrainSettings:
    """What a run is; a resumed run must ask for the same (the iteration count aside)."""

    attribute: str
    source: str
    target: str
    backend: str
    batch: int = 8
    seed: int = 0
    lr: float = 5e-4
    hidden: int = 512
    layers: int = 4
    objective: Mapping[str, Any] = field(default_factory=dict)  # OBJECTIVE_SETTINGS' values

    @classmethod
    def from_config(cls, config: Config, **values: Any) -> TrainSettings:
        """Settings of a run: ``values`` plus the learning rate and objective from ``config``."""
        objective = {name: config[name] for name in OBJECTIVE_SETTINGS}
        return cls(**values, lr=config["train.lr"], objective=objective)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["objective"] = dict(self.objective)
        return data


@dataclass(frozen=True)
class TrainResult:
    network: MappingNetwork
    iterations: int
    history: list[dict[str, float]]  # the losses of every iteration
    seconds: float  # spent in this call's iterations

    def metrics(self) -> dict[str, float]:
        """Each loss averaged over the last iterations."""
        recent = self.history[-METRICS_WINDOW:]
        if not recent:
            return {}
        return {k: sum(h[k] for h in recent) / len(recent) for k in recent[0]}


def train(
    engine: Engine,
    faces: TrainingFaces,
    settings: TrainSettings,
    objective: Objective,
    *,
    iters: int,
    out: Path,
    resume: bool = False,
    checkpoint_every: int = 0,
    preview_every: int = 0,
    progress: TrainProgress | None = None,
) -> TrainResult:
    """Train (or, with ``resume``, continue) a mapping network up to ``iters`` iterations.

    Writes ``out/checkpoint.pt`` every ``checkpoint_every`` iterations and at the end,
    and a preview grid ``out/preview-NNNNNN.png`` every ``preview_every`` iterations
    and at the end (0: only at the end).
    """
    import torch

    from chatface.plugins.mapper.network import MappingNetwork

    if iters < 1 or settings.batch < 1:
        raise ChatFaceError("Training needs at least one iteration and a batch of one face.")
    device = _device(engine, settings.backend)
    checkpoint_path = out / CHECKPOINT
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(settings.seed)
        network = MappingNetwork(len(faces.latents.z_sem[0]), settings.hidden, settings.layers)
        network.to(device).train()
        optimizer = torch.optim.AdamW(network.parameters(), lr=settings.lr)
        sampler = torch.Generator().manual_seed(settings.seed)
        start, history = 0, []
        if resume:
            start, history = _resume(
                checkpoint_path, settings, network, optimizer, sampler, faces_digest(faces)
            )
        elif checkpoint_path.exists():
            raise ChatFaceError(
                f"{out} already holds a training run; add --resume to continue it, or pick "
                "another --out folder."
            )
        z_all, x_all = faces.latents.z_sem.to(device), faces.latents.x_T.to(device)
        direction = objective.clip.text_direction(settings.source, settings.target)
        began = time.perf_counter()
        for iteration in range(start + 1, iters + 1):
            picked = _sample(sampler, len(faces), settings.batch)
            batch = Latents(z_all[picked], x_all[picked])
            losses = _step(network, optimizer, objective, batch, direction, device)
            history.append(losses)
            if progress is not None:
                progress(iteration, iters, losses)
            last = iteration == iters
            if last or (checkpoint_every and iteration % checkpoint_every == 0):
                state = {"iteration": iteration, "history": history, "faces": faces_digest(faces)}
                _save_checkpoint(checkpoint_path, settings, network, optimizer, sampler, state)
            if last or (preview_every and iteration % preview_every == 0):
                write_preview(engine, faces, network, settings.backend, out, iteration)
        seconds = time.perf_counter() - began
    return TrainResult(network.eval(), max(start, iters), history, seconds)


def faces_digest(faces: TrainingFaces) -> str:
    """What identifies a run's training faces: the sha256 of their latents."""
    import hashlib

    latents = faces.latents
    data = (
        latents.z_sem.float().cpu().numpy().tobytes() + latents.x_T.float().cpu().numpy().tobytes()
    )
    return hashlib.sha256(data).hexdigest()


def _device(engine: Engine, backend: str) -> torch.device:
    """Where the backend computes: training keeps its tensors there too."""
    import torch

    model = engine.backend(backend)
    return torch.device(getattr(model, "device", "cpu"))


def _sample(generator: torch.Generator, count: int, batch: int) -> torch.Tensor:
    """``batch`` face indices: distinct while the faces suffice, else drawn with repeats."""
    import torch

    if count >= batch:
        return torch.randperm(count, generator=generator)[:batch]
    return torch.randint(0, count, (batch,), generator=generator)


def _step(
    network: MappingNetwork,
    optimizer: torch.optim.Optimizer,
    objective: Objective,
    latents: Latents,
    direction: torch.Tensor,
    device: torch.device,
) -> dict[str, float]:
    import torch

    optimizer.zero_grad(set_to_none=True)
    # bf16 only where it pays and is well supported; CPU stays float32 (and exact).
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
        terms = objective(latents, network.edit(latents.z_sem, 1.0), direction)
    terms.total.backward()
    optimizer.step()
    return terms.as_floats()


def _save_checkpoint(
    path: Path,
    settings: TrainSettings,
    network: MappingNetwork,
    optimizer: torch.optim.Optimizer,
    sampler: torch.Generator,
    state: dict[str, Any],
) -> None:
    import torch

    from chatface.files import atomic_write

    checkpoint = {
        **state,
        "settings": settings.to_dict(),
        "network": network.state_dict(),
        "optimizer": optimizer.state_dict(),
        "sampler_rng": sampler.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    atomic_write(path, buffer.getvalue())


def _resume(
    path: Path,
    settings: TrainSettings,
    network: MappingNetwork,
    optimizer: torch.optim.Optimizer,
    sampler: torch.Generator,
    faces: str,
) -> tuple[int, list[dict[str, float]]]:
    """Load a checkpoint into the run; returns (iterations done, losses so far). ``faces``:
    the training faces' digest, which must be the checkpoint's."""
    import torch

    if not path.is_file():
        raise ChatFaceError(f"There is no checkpoint to resume at {path}; start without --resume.")
    try:
        # weights_only: tensors, numbers, strings and containers; never runs pickled code.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same answer
        raise ChatFaceError(f"{path} is not a readable training checkpoint: {exc}") from None
    saved, asked = checkpoint["settings"], settings.to_dict()
    differing = sorted(k for k in saved.keys() | asked.keys() if saved.get(k) != asked.get(k))
    if differing:
        was = ", ".join(f"{k}={saved.get(k)!r}" for k in differing)
        now = ", ".join(f"{k}={asked.get(k)!r}" for k in differing)
        raise ChatFaceError(
            f"The checkpoint in {path.parent} was trained with {was}, not {now}; resume with "
            "the same settings, or start a new run in another --out folder."
        )
    if checkpoint.get("faces") != faces:
        raise ChatFaceError(
            f"The checkpoint in {path.parent} was trained on other faces; resume with the same "
            "--images or --latents, or start a new run in another --out folder."
        )
    network.load_state_dict(checkpoint["network"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    sampler.set_state(checkpoint["sampler_rng"])
    torch.set_rng_state(checkpoint["torch_rng"])
    if checkpoint["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])
    return int(checkpoint["iteration"]), list(checkpoint["history"])


def write_preview(
    engine: Engine,
    faces: TrainingFaces,
    network: MappingNetwork,
    backend: str,
    out: Path,
    iteration: int,
) -> Path:
    """A PNG grid: the first faces' aligned crops on top, their edits (strength 1) below."""
    import torch
    from PIL import Image

    from chatface.engine.photos import encode_image, to_image
    from chatface.files import atomic_write

    count = min(PREVIEW_FACES, len(faces))
    device = _device(engine, backend)
    latents = Latents(faces.latents.z_sem[:count].to(device), faces.latents.x_T[:count].to(device))
    with torch.no_grad():
        z_edit = network.edit(latents.z_sem, 1.0)
        schedule, steps = engine.config["render.schedule"], engine.config["render.steps"]
        edits = engine.render_group(backend, latents, z_edit, schedule, steps)
    size = faces.images.shape[-1]
    grid = Image.new("RGB", (count * size, 2 * size))
    for i in range(count):
        grid.paste(to_image(faces.images[i]), (i * size, 0))
        grid.paste(to_image(edits[i]), (i * size, size))
    path = out / f"preview-{iteration:06d}.png"
    atomic_write(path, encode_image(grid)[0])
    return path

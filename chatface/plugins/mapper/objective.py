"""The ChatFace objective: how far an edited render is from what the text asks for.

    loss = w_l1 * L1(x_edit, x) + w_latent * |z_edit - z| + w_id * (1 - cos(id(x_edit), id(x)))
           + w_clip * (1 - cos(E(x_edit) - E(x), E(target) - E(source)))

with the paper's weights 0.2, 0.2, 0.5 and 2.0 (settings ``method.*_weight``). ``x`` is
the unedited face rendered the same way as ``x_edit`` (so the renderer's own error is no
loss), ``id`` the face-recognition network (``identity.model``), ``E`` CLIP's image and
text encoders (``method.clip_model``) with the text direction averaged over prompt
templates. ``x_edit`` is rendered with gradients flowing to z_edit: a few DDIM steps
under the condition schedule, or the first step's x0 estimate (``method.loss_render``).
Training (train.py), zero-shot edits and evaluation all use this one objective.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from chatface.errors import ConfigError

if TYPE_CHECKING:
    from chatface.config import Config
    from chatface.engine.editor import Engine
    from chatface.engine.types import IdentityModel, Latents

# Prompts are read as "a photo of <subject>"; each template frames the subject again.
TEMPLATES = (
    "a photo of {}.",
    "a close-up photo of {}.",
    "a cropped photo of {}.",
    "a good photo of {}.",
    "a portrait of {}.",
    "a bright photo of {}.",
    "a dark photo of {}.",
    "a photo of the {}.",
)
# A tiny CLIP with random weights (``method.clip_model = "tiny"``): tests and dry runs.
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
TINY_SEED = 20230523
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def subject(prompt: str) -> str:
    """``"a photo of a face with curly hair"`` -> ``"a face with curly hair"``."""
    text = prompt.strip().rstrip(".")
    for lead in ("a photo of ", "a picture of ", "an image of "):
        if text.lower().startswith(lead):
            return text[len(lead) :]
    return text


class Clip:
    """An open_clip model seen as two encoders of unit vectors, for images in [-1, 1]."""

    def __init__(self, model: Any, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.model = model.eval().requires_grad_(False)
        self.image_size = int(model.visual.image_size[0])
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] in [-1, 1] -> [B, E] unit vectors (differentiable)."""
        size = (self.image_size, self.image_size)
        x = F.interpolate(images.float(), size=size, mode="bicubic", align_corners=False)
        x = ((x + 1) / 2 - self.mean.to(x)) / self.std.to(x)
        return F.normalize(self.model.encode_image(x.to(self.device)).float(), dim=-1)

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        import open_clip

        tokens = open_clip.tokenize(texts, context_length=self.model.context_length)
        return F.normalize(self.model.encode_text(tokens.to(self.device)).float(), dim=-1)

    def text_direction(self, source: str, target: str) -> torch.Tensor:
        """Unit [E]: mean target embedding minus mean source one, over the templates."""

        def mean_embedding(prompt: str) -> torch.Tensor:
            texts = [template.format(subject(prompt)) for template in TEMPLATES]
            return F.normalize(self.encode_texts(texts).mean(0), dim=-1)

        return F.normalize(mean_embedding(target) - mean_embedding(source), dim=-1)


def load_clip_model(
    name: str, device: str | torch.device = "cpu", settings: Config | None = None
) -> Clip:
    """The CLIP the ``method.clip_model`` setting names: installed chatface weights (the
    default ``clip_vit_b32_openai``), ``tiny`` (random weights) or ``MODEL:PRETRAINED``
    for any open_clip model (open_clip fetches it; needs the network once)."""
    import open_clip

    from chatface.plugins.mapper import clip

    if name == "tiny":
        state = torch.random.get_rng_state()
        try:
            torch.manual_seed(TINY_SEED)
            model = open_clip.model.CLIP(**TINY_CLIP, quick_gelu=True)
        finally:
            torch.random.set_rng_state(state)
        return Clip(model.to(device), OPENAI_MEAN, OPENAI_STD)
    if name in clip.PRESETS:
        model, config = clip.load_clip(name, device=str(device), settings=settings)
        return Clip(model, tuple(config["mean"]), tuple(config["std"]))
    if ":" in name:
        model_name, pretrained = name.split(":", 1)
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=pretrained, device=device
        )
        mean = getattr(model.visual, "image_mean", None) or OPENAI_MEAN
        std = getattr(model.visual, "image_std", None) or OPENAI_STD
        return Clip(model, tuple(mean), tuple(std))
    known = ", ".join([*clip.PRESETS, "tiny", "MODEL:PRETRAINED"])
    raise ConfigError(f"method.clip_model must be one of {known}; got {name!r}.")


@dataclass(frozen=True)
class LossWeights:
    l1: float = 0.2
    latent: float = 0.2
    identity: float = 0.5
    clip: float = 2.0

    @classmethod
    def from_config(cls, config: Any) -> LossWeights:
        return cls(
            l1=config["method.l1_weight"],
            latent=config["method.latent_weight"],
            identity=config["method.identity_weight"],
            clip=config["method.clip_weight"],
        )


@dataclass(frozen=True)
class LossTerms:
    """The total (what is optimised) and each unweighted term, batch means."""

    total: torch.Tensor
    l1: torch.Tensor
    latent: torch.Tensor
    identity: torch.Tensor
    clip: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        names = ("total", "l1", "latent", "identity", "clip")
        return {name: float(getattr(self, name).detach()) for name in names}


class Objective:
    """The ChatFace loss over a backend, a CLIP and an identity network (all frozen)."""

    def __init__(
        self,
        engine: Engine,
        backend: str,
        clip: Clip,
        identity: IdentityModel,
        weights: LossWeights,
        *,
        steps: int,
        render_mode: str = "ddim",
        schedule: str = "stable",
    ) -> None:
        if render_mode not in ("ddim", "x0"):
            raise ConfigError(f"method.loss_render must be 'ddim' or 'x0'; got {render_mode!r}.")
        if render_mode == "x0" and not callable(
            getattr(engine.backend(backend), "predict_x0", None)
        ):
            raise ConfigError(f"The backend {backend!r} has no one-step x0 prediction.")
        self.engine, self.backend = engine, backend
        self.clip, self.identity, self.weights = clip, identity, weights
        self.steps, self.render_mode = steps, render_mode
        entry = engine.registry.schedules.get(schedule)
        if entry is None:
            raise ConfigError(f"No condition schedule called {schedule!r} is registered.")
        self.schedule = entry.value

    @classmethod
    def from_config(
        cls, engine: Engine, backend: str | None = None, *, steps: int | None = None
    ) -> Objective:
        """The objective the settings describe; ``steps`` instead of ``method.loss_steps``."""
        config = engine.config
        backend = backend or config["engine.backend"]
        device = getattr(engine.backend(backend), "device", "cpu")
        return cls(
            engine,
            backend,
            load_clip_model(config["method.clip_model"], device, config),
            engine.identity_model(),
            LossWeights.from_config(config),
            steps=steps or config["method.loss_steps"],
            render_mode=config["method.loss_render"],
            schedule=config["render.schedule"],
        )

    def render(self, latents: Latents, z_edit: torch.Tensor) -> torch.Tensor:
        """``latents`` rendered under ``z_edit``, differentiably (images in [-1, 1])."""
        model = self.engine.backend(self.backend)
        if self.render_mode == "x0":
            return model.predict_x0(latents, z_edit, self.steps)
        return model.render(latents, self.schedule(z_edit, latents.z_sem), self.steps)

    def reference(self, latents: Latents) -> Reference:
        """The unedited faces, rendered as :meth:`render` renders edits, and their CLIP
        and identity embeddings: what every loss of the same faces compares with.

        Rendered in grad mode like the edits, so the backend takes the same (exact fp32)
        path for both; nothing here requires gradients, so no graph is kept."""
        with torch.enable_grad():
            images = self.render(latents, latents.z_sem.detach())
        with torch.no_grad():
            clip, identity = self.clip.encode_images(images), self.identity.embed(images)
        return Reference(images.detach(), clip, identity)

    def __call__(
        self,
        latents: Latents,
        z_edit: torch.Tensor,
        direction: torch.Tensor,
        reference: Reference | None = None,
    ) -> LossTerms:
        """Loss of rendering ``latents`` with ``z_edit`` for the CLIP text ``direction``;
        ``reference``: :meth:`reference` of the same latents, when the caller keeps it."""
        x = self.reference(latents) if reference is None else reference
        x_edit = self.render(latents, z_edit)
        l1 = (x_edit - x.images).abs().mean()
        latent = (z_edit - latents.z_sem.to(z_edit)).abs().mean()
        identity = 1 - (self.identity.embed(x_edit) * x.identity).sum(-1).mean()
        change = self.clip.encode_images(x_edit) - x.clip
        clip = 1 - F.cosine_similarity(change, direction.to(change)[None], dim=-1, eps=1e-8).mean()
        w = self.weights
        total = w.l1 * l1 + w.latent * latent + w.identity * identity + w.clip * clip
        return LossTerms(total, l1, latent, identity, clip)


@dataclass(frozen=True)
class Reference:
    """Unedited renders and their embeddings (no gradients), computed once per batch."""

    images: torch.Tensor
    clip: torch.Tensor  # CLIP image embeddings, unit length
    identity: torch.Tensor  # identity embeddings, unit length

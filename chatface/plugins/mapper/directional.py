"""CLIP's view of an edit: the directional score of ChatFace's loss and evaluation.

    score = cos(E_img(x_edit) - E_img(x), E_txt(target) - E_txt(source))

Text features are averaged over a few prompt templates; images in [-1, 1] are resized
to the model's input and normalised as CLIP was trained. Differentiable in the images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.nn import functional

TEMPLATES = ("{}", "{}.", "a close-up {}", "a cropped {}")


class ClipDirection:
    """An open_clip model with its tokenizer and image normalisation."""

    def __init__(self, model: Any, tokenizer: Any, mean: Sequence[float], std: Sequence[float]):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        self.mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=self.device).view(1, 3, 1, 1)
        size = model.visual.image_size
        self.size = tuple(size) if isinstance(size, tuple | list) else (size, size)

    @torch.no_grad()
    def text_direction(self, source: str, target: str) -> torch.Tensor:
        """Unit [E] vector from ``source`` to ``target``, averaged over the templates."""
        features = []
        for prompt in (source, target):
            tokens = self.tokenizer([t.format(prompt) for t in TEMPLATES]).to(self.device)
            embedded = functional.normalize(self.model.encode_text(tokens).float(), dim=-1)
            features.append(embedded.mean(0))
        return functional.normalize(features[1] - features[0], dim=0)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] in [-1, 1] -> unit [B, E] image features."""
        x = (images.to(self.device).float() + 1) / 2
        x = functional.interpolate(x, size=self.size, mode="bicubic", align_corners=False)
        features = self.model.encode_image((x - self.mean) / self.std).float()
        return functional.normalize(features, dim=-1)

    def score(
        self, edited: torch.Tensor, original: torch.Tensor, direction: torch.Tensor
    ) -> torch.Tensor:
        """[B] cosines between each image change and the text ``direction``."""
        change = self.embed(edited) - self.embed(original)
        return functional.cosine_similarity(change, direction[None].to(change), dim=-1)


def load_directional(device: str | torch.device = "cpu") -> ClipDirection:
    """The installed CLIP model (``clip_vit_b32_openai``)."""
    import open_clip

    from chatface.plugins.mapper.clip import CLIP_NAME, load_clip

    model, preset = load_clip(CLIP_NAME, str(device))
    return from_preset(model, preset, open_clip.get_tokenizer(preset.get("model", "ViT-B-32")))


def from_preset(model: Any, preset: Mapping[str, Any], tokenizer: Any) -> ClipDirection:
    return ClipDirection(model, tokenizer, preset["mean"], preset["std"])

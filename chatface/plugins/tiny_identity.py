"""The ``tiny`` identity model: a small random network in the role of a face recogniser.

Like the tiny backend it exists for tests and offline dry runs: its embeddings react
to the image (so identity losses have gradients and similarity falls as a face changes),
but they know nothing about faces.
"""

from __future__ import annotations

import torch
from torch import nn


class TinyIdentity(nn.Module):
    """Resize to 32 px, three strided convolutions, a linear layer, unit length."""

    def __init__(self, seed: int, width: int = 16, dim: int = 64) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1), nn.SiLU(),
        )  # fmt: skip
        self.head = nn.Linear(4 * width * 16, dim)
        with torch.no_grad():
            for parameter in self.parameters():
                fan_in = parameter[0].numel() if parameter.dim() > 1 else 1
                noise = torch.randn(parameter.shape, generator=generator)
                parameter.copy_(noise / fan_in**0.5 if parameter.dim() > 1 else 0.1 * noise)
        self.eval().requires_grad_(False)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        device = self.head.weight.device
        x = nn.functional.interpolate(images.float().to(device), size=(32, 32), mode="bilinear")
        return nn.functional.normalize(self.head(self.features(x).flatten(1)), dim=1)

"""ChatFace's mapping network: a 4-layer MLP that moves z_sem towards one attribute.

    z_edit = z + s * M(z)

``M`` reads the semantic latent and returns a residual of the same width; ``s`` is the
edit strength (1 in training). The last layer starts near zero, so an untrained mapper
barely moves a face and training grows the edit from nothing.
"""

from __future__ import annotations

import torch
from torch import nn

HIDDEN = 512
LAYERS = 4
LAST_LAYER_SCALE = 0.01


class MappingNetwork(nn.Module):
    def __init__(self, latent_dim: int, hidden: int = HIDDEN, layers: int = LAYERS) -> None:
        super().__init__()
        if layers < 2:
            raise ValueError(f"A mapping network needs at least 2 layers, got {layers}.")
        self.latent_dim, self.hidden, self.layers = latent_dim, hidden, layers
        widths = [latent_dim] + [hidden] * (layers - 1) + [latent_dim]
        blocks: list[nn.Module] = []
        for i, (width_in, width_out) in enumerate(zip(widths, widths[1:], strict=False)):
            blocks.append(nn.Linear(width_in, width_out))
            if i < layers - 1:
                blocks.append(nn.LeakyReLU(0.2))
        self.mlp = nn.Sequential(*blocks)
        last = self.mlp[-1]
        with torch.no_grad():
            last.weight.mul_(LAST_LAYER_SCALE)
            last.bias.zero_()

    def forward(self, z_sem: torch.Tensor) -> torch.Tensor:
        """The residual M(z) for a batch of semantic latents [B, D]."""
        return self.mlp(z_sem)

    def edit(self, z_sem: torch.Tensor, strength: float | torch.Tensor) -> torch.Tensor:
        """z + s * M(z); ``strength`` a number or a [B] tensor (one per face)."""
        if isinstance(strength, torch.Tensor) and strength.dim() == 1:
            strength = strength[:, None]
        return z_sem + strength * self(z_sem)

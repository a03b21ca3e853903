"""Small mapper files for the mapper tests: random networks, written like trained ones."""

from __future__ import annotations

from pathlib import Path

import torch

from chatface.plugins.mapper.files import MapperInfo, save_mapper
from chatface.plugins.mapper.network import MappingNetwork

CURLY_ALIASES = ("curly", "curly hair", "curls", "小卷毛")


def random_network(latent_dim: int = 64, seed: int = 0) -> MappingNetwork:
    """A small network whose residual is not near zero (an untrained one barely moves)."""
    network = MappingNetwork(latent_dim, hidden=16, layers=2)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return network


def write_mapper(
    folder: Path,
    attribute: str = "curly_hair",
    *,
    backend: str = "tiny",
    latent_dim: int = 64,
    aliases: tuple[str, ...] = CURLY_ALIASES,
    schedule: str | None = None,
    seed: int = 0,
) -> Path:
    """A mapper file ``folder/<attribute>.json`` (+ .safetensors); returns the JSON path."""
    info = MapperInfo(
        attribute=attribute,
        description=f"{attribute.replace('_', ' ').capitalize()} (a test mapper)",
        backend=backend,
        latent_dim=latent_dim,
        aliases=aliases,
        source="a photo of a face",
        target=f"a photo of a face with {attribute.replace('_', ' ')}",
        schedule=schedule,
        training={"iters": 3, "batch": 2},
        metrics={"clip_directional": 0.42},
    )
    return save_mapper(folder, random_network(latent_dim, seed), info)

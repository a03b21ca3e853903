"""Random face latents for the benchmarks: a render costs the same whatever the face."""

from __future__ import annotations

import torch

from chatface.engine.editor import Engine
from chatface.engine.types import Latents


def random_faces(engine: Engine, backend: str | None, count: int, seed: int) -> list[bytes]:
    """``count`` faces' latents (``Latents.to_bytes``) for ``backend`` (None: the default)."""
    model = engine.backend(backend)
    generator = torch.Generator().manual_seed(seed)
    size = model.image_size
    return [
        Latents(
            z_sem=torch.randn(1, model.latent_dim, generator=generator),
            x_T=torch.randn(1, 3, size, size, generator=generator),
        ).to_bytes()
        for _ in range(count)
    ]

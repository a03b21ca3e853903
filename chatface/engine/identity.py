"""Identity after an edit: how alike the edited face is to the original one.

Similarity is the cosine of the identity model's embeddings (``identity.model``) of the
original aligned crop and the rendered one: 1 is the same face. The identity guard
(``identity.guard``) uses it to take back part of a turn's edit that changes who the
person is: :func:`guard_candidates` are the turn's edit at 2/3 and 1/3 of its strength,
and :func:`pick` keeps the strongest that passes the threshold, else the weakest.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from chatface.engine.editor import Engine
    from chatface.engine.types import IdentityModel

# Fractions of the turn's edit the guard tries, strongest first.
GUARD_SCALES = (2 / 3, 1 / 3)


def similarities(
    model: IdentityModel, originals: Sequence[torch.Tensor], edits: Sequence[torch.Tensor]
) -> list[float]:
    """Cosine similarity of each original crop with its edit ([3, S, S] in [-1, 1]), in
    one call of the model; crops may differ in size from the originals."""
    import torch
    from torch.nn import functional as F

    with torch.no_grad():
        size = edits[0].shape[-1]
        first = torch.stack([_resized(crop, size) for crop in originals])
        second = torch.stack([_resized(crop, size) for crop in edits])
        embeddings = model.embed(torch.cat([first, second]))
        a, b = embeddings.float().chunk(2)
        return F.cosine_similarity(a, b, dim=1).cpu().tolist()


def measure(engine: Engine, original: Image.Image, crop: torch.Tensor) -> float | None:
    """Identity similarity of a rendered ``crop`` with the ``original`` aligned face, or
    None when ``identity.measure`` is off or the identity model's weights are missing."""
    from chatface.engine.photos import to_tensor

    if not engine.config["identity.measure"]:
        return None
    model = engine.installed_identity_model()
    if model is None:
        return None
    return similarities(model, [to_tensor(original)[0]], [crop.reshape(crop.shape[-3:])])[0]


def _resized(crop: torch.Tensor, size: int) -> torch.Tensor:
    from torch.nn import functional as F

    crop = crop.detach().float().cpu()
    if crop.shape[-1] == size:
        return crop
    return F.interpolate(crop[None], size=(size, size), mode="bilinear", antialias=True)[0]


def decode_crop(png: bytes) -> torch.Tensor:
    """A stored aligned crop (PNG bytes) as a [3, S, S] tensor in [-1, 1]."""
    from PIL import Image

    from chatface.engine.photos import to_tensor

    return to_tensor(Image.open(io.BytesIO(png)).convert("RGB"))[0]


def guard_candidates(
    previous: Mapping[str, float], current: Mapping[str, float]
) -> list[tuple[float, dict[str, float]]]:
    """The states between ``previous`` (before the turn) and ``current`` that the guard
    renders: (fraction of the turn's edit, strengths), strongest first."""
    names = sorted(set(previous) | set(current))
    candidates = []
    for scale in GUARD_SCALES:
        state = {}
        for name in names:
            before = previous.get(name, 0.0)
            value = round(before + scale * (current.get(name, 0.0) - before), 4)
            if value != 0.0:
                state[name] = value
        candidates.append((scale, state))
    return candidates


def pick(scored: Sequence[tuple[float, float]], threshold: float) -> int:
    """Index of the strongest (scale, similarity) that reaches ``threshold``, else of the
    weakest; ``scored`` goes from strongest to weakest."""
    for index, (_, similarity) in enumerate(scored):
        if similarity >= threshold:
            return index
    return len(scored) - 1

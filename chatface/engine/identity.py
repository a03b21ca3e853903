"""Identity after an edit: how alike the edited face is to the original one.

Similarity is the cosine of the identity model's embeddings (``identity.model``) of the
original aligned crop and the rendered one: 1 is the same face. The identity guard
(``identity.guard``) uses it to take back part of a turn's edit that changes who the
person is: :func:`guard_candidates` are the turn's edit at 2/3 and 1/3 of its strength,
and :func:`pick` keeps the strongest that passes the threshold, else the weakest.
:class:`OriginalEmbeddings` keeps the embeddings of the original crops, so a face's
original is embedded once, not again at every render.
"""

from __future__ import annotations

import hashlib
import io
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from chatface.engine.editor import Engine
    from chatface.engine.types import IdentityModel

# Fractions of the turn's edit the guard tries, strongest first.
GUARD_SCALES = (2 / 3, 1 / 3)
ORIGINALS_KEPT = 256  # original-crop embeddings an engine keeps (a few KiB each)


def similarities(
    model: IdentityModel, originals: Sequence[torch.Tensor], edits: Sequence[torch.Tensor]
) -> list[float]:
    """Cosine similarity of each original crop with its edit ([3, S, S] in [-1, 1]), in
    one call of the model; crops may differ in size from the originals."""
    a, b = _embed(model, [*originals, *edits], edits[0].shape[-1]).chunk(2)
    return _cosines(a, b)


class OriginalEmbeddings:
    """Embeddings of original aligned crops by (sha256 of the stored PNG, identity model
    name, render size), at most ``kept`` of them (least recently used go first). The
    engine has one; it is used on the model thread only."""

    def __init__(self, kept: int = ORIGINALS_KEPT) -> None:
        self.kept = kept
        self._embeddings: OrderedDict[tuple[str, str, int], torch.Tensor] = OrderedDict()

    def similarities(
        self,
        model: IdentityModel,
        model_name: str,
        originals: Sequence[bytes],
        edits: Sequence[torch.Tensor],
    ) -> list[float]:
        """:func:`similarities` of stored crops (PNG bytes) with their edits, in one call
        of the model; only originals not kept yet are decoded and embedded."""
        import torch

        size = edits[0].shape[-1]
        keys = [(hashlib.sha256(png).hexdigest(), model_name, size) for png in originals]
        known = {key: self._embeddings[key] for key in keys if key in self._embeddings}
        new = {key: png for key, png in zip(keys, originals, strict=True) if key not in known}
        crops = [decode_crop(png) for png in new.values()]
        embedded = _embed(model, [*crops, *edits], size)
        known.update(zip(new, embedded[: len(new)].clone(), strict=True))
        for key in keys:
            self._embeddings[key] = known[key]
            self._embeddings.move_to_end(key)
        while len(self._embeddings) > self.kept:
            self._embeddings.popitem(last=False)
        return _cosines(torch.stack([known[key] for key in keys]), embedded[len(new) :])


def _embed(model: IdentityModel, crops: Sequence[torch.Tensor], size: int) -> torch.Tensor:
    """The model's embeddings of ``crops``, each resized to ``size`` first, in one call."""
    import torch

    with torch.no_grad():
        return model.embed(torch.stack([_resized(crop, size) for crop in crops])).float()


def _cosines(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    from torch.nn import functional as F

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

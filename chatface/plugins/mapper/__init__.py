"""Built-in plugin: ChatFace's mapping networks (the method issue) and the models they need.

For now it declares the CLIP model the mapping networks train against (CLIP directional
loss) and that reads free-text attributes, so `chatface weights download
clip_vit_b32_openai` installs it like any other weights; ``clip`` holds its importer and
loader. The mapping networks, their training and the identity guard come next
(docs/weights.md lists what is declared).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chatface import hookimpl

if TYPE_CHECKING:
    from chatface.engine.types import DirectionProvider, WeightsSpec


@hookimpl
def chatface_register_directions(register: Callable[[DirectionProvider], None]) -> None:
    from chatface.plugins.mapper.zero_shot import FreeTextDirections

    register(FreeTextDirections())


@hookimpl
def chatface_register_weights(register: Callable[[WeightsSpec], None]) -> None:
    from chatface.plugins.mapper.clip import SPECS

    for spec in SPECS:
        register(spec)

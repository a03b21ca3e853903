"""Built-in plugin: ChatFace's mapping networks (the method issue) and the models they need.

It registers the ``mapper`` direction provider: one attribute per mapper file
(``NAME.safetensors`` + ``NAME.json``, see ``files``) in ``<data dir>/mappers`` and the
folders of the ``mapper.dirs`` setting. A plugin package ships its own trained
attributes with :func:`mapper_provider` (``chatface package-mapper`` writes such a
package). It also declares the CLIP model the mapping networks train against (CLIP
directional loss) and that reads free-text attributes, so `chatface weights download
clip_vit_b32_openai` installs it like any other weights; ``clip`` holds its importer and
loader.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from chatface import hookimpl
from chatface.plugins.mapper.provider import MapperDirections, make_mapper_directions

if TYPE_CHECKING:
    from chatface.engine.hookspecs import ProviderFactory
    from chatface.engine.types import DirectionProvider, WeightsSpec

__all__ = ["mapper_provider"]


def mapper_provider(folder: Path, *, name: str) -> MapperDirections:
    """A direction provider called ``name`` for the mapper files in ``folder``.

    For plugin packages that bundle trained attributes::

        @hookimpl
        def chatface_register_directions(register):
            register(mapper_provider(Path(__file__).parent / "mappers", name="curly_hair_pkg"))
    """
    return MapperDirections([folder], name=name)


@hookimpl
def chatface_register_directions(
    register: Callable[[DirectionProvider | ProviderFactory], None],
) -> None:
    from chatface.plugins.mapper.zero_shot import FreeTextDirections

    register(make_mapper_directions)
    register(FreeTextDirections.from_config)


@hookimpl
def chatface_register_commands(register: Callable[..., None]) -> None:
    from chatface.plugins.mapper.evaluate_command import eval_attribute
    from chatface.plugins.mapper.package import package_mapper
    from chatface.plugins.mapper.train_command import train_mapper

    register("package-mapper", package_mapper)
    register("train-mapper", train_mapper)
    register("eval", eval_attribute)


@hookimpl
def chatface_register_weights(register: Callable[[WeightsSpec], None]) -> None:
    from chatface.plugins.mapper.clip import SPECS

    for spec in SPECS:
        register(spec)

"""Trained attributes as a direction provider: one attribute per mapper file in a folder.

The provider reads only the JSON halves when it is made (cheap, no torch), so planning
and ``chatface plugins`` list trained attributes on a fresh install; a network loads
the first time its attribute is edited, and stays loaded.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from chatface.engine.types import Attribute
from chatface.plugins.mapper.files import (
    MapperFileError,
    MapperInfo,
    find_mappers,
    load_network,
    read_info,
)

if TYPE_CHECKING:
    import torch

    from chatface.config import Config
    from chatface.plugins.mapper.network import MappingNetwork

logger = logging.getLogger(__name__)

PROVIDER_NAME = "mapper"
MAPPERS_FOLDER = "mappers"  # under the data directory
_ATTRIBUTE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # what the registry accepts


class MapperDirections:
    """Edits ``z + strength * M(z)`` with the mapping network of each attribute's file."""

    def __init__(self, folders: Iterable[Path], name: str = PROVIDER_NAME) -> None:
        self.name = name
        self._files: dict[str, tuple[Path, MapperInfo]] = {}
        self._networks: dict[str, MappingNetwork] = {}
        self._lock = threading.Lock()
        for folder in folders:
            for path in find_mappers(Path(folder)):
                self._add(path)

    def _add(self, path: Path) -> None:
        try:
            info = read_info(path)
        except MapperFileError as exc:
            logger.warning("mapper file skipped: %s", exc)
            return
        if not _ATTRIBUTE_NAME.match(info.attribute):
            logger.warning(
                "mapper file %s skipped: the attribute name %r is not lower-case snake_case",
                path, info.attribute,
            )  # fmt: skip
            return
        if info.attribute in self._files:
            kept = self._files[info.attribute][0]
            logger.warning(
                "mapper file %s skipped: the attribute %r already comes from %s",
                path, info.attribute, kept,
            )  # fmt: skip
            return
        self._files[info.attribute] = (path, info)

    def attributes(self) -> list[Attribute]:
        return [
            Attribute(
                name=info.attribute,
                description=info.description,
                aliases=tuple(info.aliases),
                backend=info.backend,
                schedule=info.schedule,
            )
            for _, info in self._files.values()
        ]

    def info(self, attribute: str) -> MapperInfo:
        """The metadata of the attribute's mapper file (prompts, training, metrics)."""
        return self._files[attribute][1]

    def network(self, attribute: str) -> MappingNetwork:
        """The attribute's mapping network, loaded (and its sha256 checked) once."""
        with self._lock:
            if attribute not in self._networks:
                path, info = self._files[attribute]
                self._networks[attribute] = load_network(path, info)
            return self._networks[attribute]

    def edit(self, z_sem: torch.Tensor, attribute: str, strength: float) -> torch.Tensor:
        path, info = self._files[attribute]
        if z_sem.shape[-1] != info.latent_dim:
            raise MapperFileError(
                f"{path} edits {info.latent_dim}-wide latents of the backend {info.backend!r}, "
                f"but got {z_sem.shape[-1]}-wide ones: the backend's weights changed."
            )
        network = self.network(attribute).to(device=z_sem.device, dtype=z_sem.dtype)
        return network.edit(z_sem, strength)


def mapper_folders(config: Config) -> list[Path]:
    """``<data dir>/mappers`` and the folders of the ``mapper.dirs`` setting."""
    extra = [Path(p.strip()).expanduser() for p in config["mapper.dirs"].split(",") if p.strip()]
    return [config.data_dir / MAPPERS_FOLDER, *extra]


def make_mapper_directions(config: Config) -> MapperDirections:
    """The built-in provider: every mapper file of the data directory and ``mapper.dirs``."""
    return MapperDirections(mapper_folders(config))

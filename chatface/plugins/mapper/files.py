"""Mapper files: one trained attribute is ``NAME.safetensors`` (the network) beside
``NAME.json`` (what it does and how it was made).

The JSON is read without torch, so planning and ``chatface plugins`` list trained
attributes on a fresh install; the tensors load only when an edit needs them, and their
sha256 (kept in the JSON) is checked then.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatface.errors import ChatFaceError

if TYPE_CHECKING:
    from chatface.plugins.mapper.network import MappingNetwork

FORMAT = "chatface-mapper/1"


class MapperFileError(ChatFaceError):
    """A mapper file is missing, unreadable or does not match its metadata."""


@dataclass(frozen=True)
class MapperInfo:
    """The JSON half of a mapper file."""

    attribute: str  # the attribute name plans use (snake_case)
    description: str
    backend: str  # whose latent space the network edits
    latent_dim: int
    aliases: tuple[str, ...] = ()  # other words for it, English and Chinese
    source: str = ""  # CLIP source prompt, e.g. "a photo of a face"
    target: str = ""  # CLIP target prompt, e.g. "a photo of a face with curly hair"
    backend_sha256: str = ""  # the backend weights the mapper was trained on
    hidden: int = 512
    layers: int = 4
    schedule: str | None = None  # the condition schedule it renders best with
    weights_sha256: str = ""  # of NAME.safetensors
    training: dict[str, Any] = field(default_factory=dict)  # settings of the run
    metrics: dict[str, Any] = field(default_factory=dict)  # final losses, scores
    format: str = FORMAT

    def to_json(self) -> str:
        data = asdict(self)
        data["aliases"] = list(self.aliases)
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "mapper metadata") -> MapperInfo:
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            if data.get("format") != FORMAT:
                raise ValueError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
            known = set(cls.__dataclass_fields__)
            data = {k: v for k, v in data.items() if k in known}
            data["aliases"] = tuple(data.get("aliases") or ())
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise MapperFileError(f"{where} is not a chatface mapper file: {exc}.") from exc


def mapper_paths(path: Path) -> tuple[Path, Path]:
    """(NAME.safetensors, NAME.json) for either of the two or the bare stem."""
    stem = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def read_info(path: Path) -> MapperInfo:
    json_path = mapper_paths(path)[1]
    try:
        text = json_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MapperFileError(f"Cannot read the mapper metadata {json_path}: {exc}.") from exc
    return MapperInfo.from_json(text, str(json_path))


def find_mappers(folder: Path) -> list[Path]:
    """The ``*.json`` mapper metadata files in ``folder`` that have their tensors beside them."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.json") if mapper_paths(p)[0].is_file())


def save_mapper(folder: Path, network: MappingNetwork, info: MapperInfo) -> Path:
    """Write ``<attribute>.safetensors``, then ``<attribute>.json``; returns the JSON path."""
    from dataclasses import replace

    from chatface.engine.weights import write_tensors
    from chatface.files import atomic_write

    folder.mkdir(parents=True, exist_ok=True)
    tensors_path, json_path = mapper_paths(folder / info.attribute)
    digest = write_tensors(tensors_path, dict(network.state_dict()), {"format": FORMAT})
    info = replace(
        info,
        latent_dim=network.latent_dim,
        hidden=network.hidden,
        layers=network.layers,
        weights_sha256=digest,
    )
    atomic_write(json_path, info.to_json().encode())
    return json_path


def checked_tensors(path: Path, info: MapperInfo) -> Path:
    """The mapper's tensors file, present and matching the sha256 in its metadata."""
    from chatface.engine.weights import sha256_file

    tensors_path = mapper_paths(path)[0]
    if not tensors_path.is_file():
        raise MapperFileError(f"The mapper tensors {tensors_path} are missing.")
    if info.weights_sha256 and sha256_file(tensors_path) != info.weights_sha256:
        raise MapperFileError(
            f"{tensors_path} does not match the sha256 in its metadata: the file changed "
            "or is damaged; train or copy it again."
        )
    return tensors_path


def load_network(path: Path, info: MapperInfo | None = None) -> MappingNetwork:
    """The network of a mapper file, its sha256 checked against the metadata."""
    from safetensors.torch import load_file

    from chatface.plugins.mapper.network import MappingNetwork

    info = info or read_info(path)
    tensors_path = checked_tensors(path, info)
    network = MappingNetwork(info.latent_dim, info.hidden, info.layers)
    try:
        network.load_state_dict(load_file(str(tensors_path)))
    except (RuntimeError, OSError) as exc:
        raise MapperFileError(f"{tensors_path} does not fit its metadata: {exc}") from exc
    return network.eval().requires_grad_(False)

"""The shape of a DiffAE network, and the presets of the official checkpoints.

A ``DiffAEConfig`` holds exactly what decides the state-dict layout of the
official ``BeatGANsAutoencModel`` (shared/specs/diffae.md). It is plain data: no
torch here, so configs can be read and checked before any model is built.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from chatface.errors import ConfigError

# Keys the equivalence fixtures carry next to the network shape; they describe the
# test run, not the network, so from_dict accepts and drops them.
IGNORED_KEYS: frozenset[str] = frozenset({"T_encode", "T_render", "note"})


@dataclass(frozen=True)
class DiffAEConfig:
    """Network shape of a DiffAE model.

    ``channel_mult`` multiplies ``model_channels`` per UNet level (one level per
    resolution), ``enc_channel_mult`` does the same for the semantic encoder.
    ``embed_channels`` is both the time-embedding width and the z_sem width.
    ``enc_num_res_blocks`` is the encoder's residual blocks per level; ``None`` means
    the same as ``num_res_blocks`` (every official checkpoint uses 2 for both).
    """

    image_size: int
    model_channels: int
    channel_mult: tuple[int, ...]
    enc_channel_mult: tuple[int, ...]
    embed_channels: int
    attention_resolutions: tuple[int, ...]
    num_heads: int
    num_res_blocks: int
    enc_num_res_blocks: int | None = None

    def __post_init__(self) -> None:
        for name in ("image_size", "model_channels", "embed_channels", "num_heads"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("num_res_blocks", self.num_res_blocks, minimum=1)
        if self.enc_num_res_blocks is not None:
            _check_int("enc_num_res_blocks", self.enc_num_res_blocks, minimum=1)
        for name in ("channel_mult", "enc_channel_mult"):
            _check_int_tuple(name, getattr(self, name), allow_empty=False)
        _check_int_tuple("attention_resolutions", self.attention_resolutions, allow_empty=True)
        # The decoder upsamples back by exact doubling and concatenates the skip
        # features, so every UNet level must halve the image without remainder.
        factor = 2 ** (len(self.channel_mult) - 1)
        if self.image_size % factor:
            raise ConfigError(
                f"DiffAE config field 'image_size' ({self.image_size}) must be divisible by "
                f"{factor} for {len(self.channel_mult)} UNet levels (channel_mult)."
            )

    @property
    def encoder_res_blocks(self) -> int:
        """Residual blocks per encoder level."""
        return self.enc_num_res_blocks or self.num_res_blocks

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DiffAEConfig:
        """Build from a mapping (e.g. a fixture's ``config`` metadata or a JSON file).

        Lists become tuples. Unknown keys, except the fixture's ``T_encode``,
        ``T_render`` and ``note``, raise ``ConfigError`` so typos are not ignored.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"A DiffAE config must be a JSON object, got {type(data).__name__}.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(key) for key in data if key not in known and key not in IGNORED_KEYS)
        if unknown:
            raise ConfigError(
                f"Unknown DiffAE config field(s) {', '.join(unknown)}; "
                f"expected {', '.join(sorted(known))}."
            )
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                if f.name == "enc_num_res_blocks":
                    continue
                raise ConfigError(f"DiffAE config field '{f.name}' is missing.")
            value = data[f.name]
            values[f.name] = tuple(value) if isinstance(value, list) else value
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping; ``from_dict(to_dict())`` gives back an equal config."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        if out["enc_num_res_blocks"] is None:
            del out["enc_num_res_blocks"]
        return out

    @classmethod
    def from_json_file(cls, path: str | Path) -> DiffAEConfig:
        """Read a config from a JSON file."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"Cannot read the DiffAE config file {path}: {exc}.") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"The DiffAE config file {path} is not valid JSON: {exc}.") from exc
        return cls.from_dict(data)


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(
            f"DiffAE config field '{name}' must be an integer >= {minimum}, got {value!r}."
        )


def _check_int_tuple(name: str, value: Any, *, allow_empty: bool) -> None:
    ok = isinstance(value, tuple) and (allow_empty or len(value) > 0)
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    if not ok:
        what = "a list of positive integers" + ("" if allow_empty else " (at least one)")
        raise ConfigError(f"DiffAE config field '{name}' must be {what}, got {value!r}.")


# The official networks (phizaz/diffae templates.py: ffhq128_autoenc_base and
# ffhq256_autoenc): base 128 channels, embedding 512, attention at 16 with 1 head,
# 2 residual blocks per level in both the UNet and the encoder.
PRESETS: dict[str, DiffAEConfig] = {
    "ffhq256_autoenc": DiffAEConfig(
        image_size=256,
        model_channels=128,
        channel_mult=(1, 1, 2, 2, 4, 4),
        enc_channel_mult=(1, 1, 2, 2, 4, 4, 4),
        embed_channels=512,
        attention_resolutions=(16,),
        num_heads=1,
        num_res_blocks=2,
    ),
    "ffhq128_autoenc_130M": DiffAEConfig(
        image_size=128,
        model_channels=128,
        channel_mult=(1, 1, 2, 3, 4),
        enc_channel_mult=(1, 1, 2, 3, 4, 4),
        embed_channels=512,
        attention_resolutions=(16,),
        num_heads=1,
        num_res_blocks=2,
    ),
}

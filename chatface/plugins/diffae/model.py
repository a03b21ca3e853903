"""The DiffAE network: a semantic encoder and a UNet conditioned on time and z_sem.

``DiffAEModel`` is built from a ``DiffAEConfig`` and has exactly the parameter
names and shapes of the official ``BeatGANsAutoencModel`` (phizaz/diffae), so an
official state dict loads with ``strict=True`` and no key map.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from chatface.errors import ConfigError
from chatface.plugins.diffae.config import DiffAEConfig
from chatface.plugins.diffae.nn import (
    AttentionBlock,
    EmbedSequential,
    Resample,
    ResBlock,
    TimeEmbedding,
    normalization,
    zero_module,
)

# Official Lightning checkpoints keep the trained and the EMA weights side by side;
# the EMA weights are the ones to render with, so they win when both are present.
CHECKPOINT_PREFIXES: tuple[str, ...] = ("ema_model.", "model.")


class SemanticEncoder(nn.Module):
    """Half a UNet without time input: image [B, 3, S, S] -> z_sem [B, embed_channels]."""

    def __init__(self, config: DiffAEConfig) -> None:
        super().__init__()
        mc, heads = config.model_channels, config.num_heads
        ch = mc * config.enc_channel_mult[0]
        blocks = [EmbedSequential(nn.Conv2d(3, ch, 3, padding=1))]
        resolution = config.image_size
        last = len(config.enc_channel_mult) - 1
        for level, mult in enumerate(config.enc_channel_mult):
            for _ in range(config.encoder_res_blocks):
                layers: list[nn.Module] = [ResBlock(ch, mc * mult)]
                ch = mc * mult
                if resolution in config.attention_resolutions:
                    layers.append(AttentionBlock(ch, heads))
                blocks.append(EmbedSequential(*layers))
            if level != last:
                blocks.append(EmbedSequential(ResBlock(ch, resample="down")))
                resolution //= 2
        self.input_blocks = nn.ModuleList(blocks)
        self.middle_block = EmbedSequential(ResBlock(ch), AttentionBlock(ch, heads), ResBlock(ch))
        self.out = nn.Sequential(
            normalization(ch),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Conv2d(ch, config.embed_channels, 1),
            nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for block in self.input_blocks:
            h = block(h)
        return self.out(self.middle_block(h))


class DiffAEModel(nn.Module):
    """DiffAE: ``encode(x0) -> z_sem`` and ``forward(x_t, t, z_sem) -> eps``."""

    def __init__(self, config: DiffAEConfig) -> None:
        super().__init__()
        self.config = config
        try:
            self._build(config)
        except ValueError as exc:
            # Shapes the blocks reject (GroupNorm groups, attention heads) are config errors.
            raise ConfigError(
                f"Cannot build a DiffAE network from {config.to_dict()}: {exc}"
            ) from exc

    def _build(self, config: DiffAEConfig) -> None:
        mc, emb, heads = config.model_channels, config.embed_channels, config.num_heads
        nrb = config.num_res_blocks

        def res(cin: int, cout: int | None = None, resample: Resample = None) -> ResBlock:
            return ResBlock(cin, cout, emb_channels=emb, cond_channels=emb, resample=resample)

        self.time_embed = TimeEmbedding(mc, emb)

        ch = mc * config.channel_mult[0]
        input_blocks = [EmbedSequential(nn.Conv2d(3, ch, 3, padding=1))]
        # Channels of every encoder-side output, in order: the decoder pops them as skips.
        skip_channels = [ch]
        resolution = config.image_size
        last = len(config.channel_mult) - 1
        for level, mult in enumerate(config.channel_mult):
            for _ in range(nrb):
                layers: list[nn.Module] = [res(ch, mc * mult)]
                ch = mc * mult
                if resolution in config.attention_resolutions:
                    layers.append(AttentionBlock(ch, heads))
                input_blocks.append(EmbedSequential(*layers))
                skip_channels.append(ch)
            if level != last:
                input_blocks.append(EmbedSequential(res(ch, resample="down")))
                skip_channels.append(ch)
                resolution //= 2
        self.input_blocks = nn.ModuleList(input_blocks)

        self.middle_block = EmbedSequential(res(ch), AttentionBlock(ch, heads), res(ch))

        output_blocks = []
        for level, mult in reversed(list(enumerate(config.channel_mult))):
            for i in range(nrb + 1):
                layers = [res(ch + skip_channels.pop(), mc * mult)]
                ch = mc * mult
                if resolution in config.attention_resolutions:
                    layers.append(AttentionBlock(ch, heads))
                if level and i == nrb:
                    layers.append(res(ch, resample="up"))
                    resolution *= 2
                output_blocks.append(EmbedSequential(*layers))
        self.output_blocks = nn.ModuleList(output_blocks)

        self.out = nn.Sequential(
            normalization(ch), nn.SiLU(), zero_module(nn.Conv2d(ch, 3, 3, padding=1))
        )
        self.encoder = SemanticEncoder(config)

    def encode(self, x0: torch.Tensor) -> torch.Tensor:
        """Semantic code of images [B, 3, S, S] in [-1, 1] -> [B, embed_channels]."""
        return self.encoder(x0)

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor | int, z_sem: torch.Tensor
    ) -> torch.Tensor:
        """Predicted noise for ``x_t`` at integer timesteps ``t`` ([B] or scalar, 0..999)."""
        t = torch.as_tensor(t, device=x_t.device)
        if t.ndim == 0:
            t = t.expand(x_t.shape[0])
        emb = self.time_embed(t)
        h = x_t
        skips = []
        for block in self.input_blocks:
            h = block(h, emb, z_sem)
            skips.append(h)
        h = self.middle_block(h, emb, z_sem)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb, z_sem)
        return self.out(h)

    @classmethod
    def from_state_dict(
        cls,
        state_dict: Mapping[str, torch.Tensor],
        config: DiffAEConfig,
        device: torch.device | str = "cpu",
    ) -> DiffAEModel:
        """Build a float32 model in eval mode holding ``state_dict`` (official names, strict).

        The model is first built on the meta device so no time goes into a random
        initialisation that the checkpoint overwrites anyway. Tensors that already
        are float32 on ``device`` become the parameters without a copy (no second
        168M-parameter copy in memory), so the model shares them with the caller.
        """
        config = _with_encoder_depth_of(state_dict, config)
        with torch.device("meta"):
            model = cls(config)
        tensors = {
            name: value.to(device=device, dtype=torch.float32) for name, value in state_dict.items()
        }
        try:
            model.load_state_dict(tensors, strict=True, assign=True)
        except RuntimeError as exc:
            raise ConfigError(
                f"These DiffAE weights do not fit the configuration {config.to_dict()}: {exc}"
            ) from exc
        return model.eval()


def _with_encoder_depth_of(state_dict: Mapping[str, Any], config: DiffAEConfig) -> DiffAEConfig:
    """Fill in ``enc_num_res_blocks`` from the weights when the configuration leaves it out.

    The official code sets the encoder's residual blocks per level separately (default 2),
    while configurations often give only ``num_res_blocks``. The encoder's input blocks are
    the stem, ``n`` residual blocks per level and one downsampling block between levels, so
    their count tells ``n``.
    """
    if config.enc_num_res_blocks is not None:
        return config
    indices = {
        int(key.split(".")[2])
        for key in state_dict
        if key.startswith("encoder.input_blocks.") and key.split(".")[2].isdigit()
    }
    levels = len(config.enc_channel_mult)
    per_level, rest = divmod(len(indices) - levels, levels)
    if rest or per_level < 1 or per_level == config.num_res_blocks:
        return config
    return dataclasses.replace(config, enc_num_res_blocks=per_level)


def select_checkpoint_weights(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Network weights from a checkpoint-like mapping.

    Keys under ``ema_model.`` (preferred) or ``model.`` are kept with the prefix
    removed and everything else (optimiser state, fixture tensors) is dropped; a
    mapping without those prefixes is returned unchanged.
    """
    for prefix in CHECKPOINT_PREFIXES:
        picked = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if picked:
            return picked
    return dict(state_dict)


def load_model(
    path: str | Path, config: DiffAEConfig, device: torch.device | str = "cpu"
) -> DiffAEModel:
    """Load a DiffAE model from a safetensors file (safe: no pickled code runs)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"DiffAE weights file {path} does not exist.")
    weights = select_checkpoint_weights(load_file(str(path)))
    return DiffAEModel.from_state_dict(weights, config, device=device)

"""Building blocks of the DiffAE networks: time embedding, residual and attention blocks.

Attribute names and ``nn.Sequential`` indices follow the official code
(phizaz/diffae ``model/blocks.py``) because they become state-dict keys:
``in_layers.{0,2}``, ``emb_layers.1``, ``cond_emb_layers.1``, ``out_layers.{0,3}``,
``skip_connection``, ``norm``, ``qkv``, ``proj_out``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Resample = Literal["up", "down"] | None


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features [B, dim] of (unscaled, 0..999) timesteps: cosines first, then sines."""
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float32, device=t.device) / half
    freqs = torch.exp(-math.log(max_period) * exponent)
    args = t.float()[:, None] * freqs[None]
    features = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        features = torch.cat([features, torch.zeros_like(features[:, :1])], dim=-1)
    return features


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 whatever the input dtype, as in the official code."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


def normalization(channels: int) -> GroupNorm32:
    # Narrow layers (tiny test networks) get one group per channel.
    groups = min(32, channels)
    if channels % groups:
        raise ValueError(
            f"GroupNorm over {channels} channels: channel counts (also of skip concatenations) "
            "must be at most 32 or a multiple of 32."
        )
    return GroupNorm32(groups, channels)


def zero_module(module: nn.Module) -> nn.Module:
    """Zero a module's parameters: the official init for output convolutions."""
    for param in module.parameters():
        param.detach().zero_()
    return module


def resample(x: torch.Tensor, mode: Resample) -> torch.Tensor:
    """Nearest 2x upsampling, 2x2 average pooling, or nothing."""
    if mode == "up":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    if mode == "down":
        return F.avg_pool2d(x, kernel_size=2, stride=2)
    return x


class TimeEmbedding(nn.Module):
    """Sinusoidal features -> Linear - SiLU - Linear (keys ``time_embed.{0,2}``)."""

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.time_embed = nn.Sequential(
            nn.Linear(channels, out_channels), nn.SiLU(), nn.Linear(out_channels, out_channels)
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.time_embed(timestep_embedding(t, self.channels))


class ResBlock(nn.Module):
    """Residual block, optionally resampling and conditioned on time and z_sem.

    With ``emb_channels`` set, the time embedding scales and shifts the normalised
    features and the z_sem projection then scales them: GN(h)(1 + s) + b, times
    (1 + c). Without it (the semantic encoder) the block is only in_layers + skip.
    """

    def __init__(
        self,
        channels: int,
        out_channels: int | None = None,
        *,
        emb_channels: int | None = None,
        cond_channels: int | None = None,
        resample: Resample = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        out_channels = out_channels or channels
        self.resample = resample
        self.in_layers = nn.Sequential(
            normalization(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.conditioned = emb_channels is not None
        if self.conditioned:
            self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels))
            self.cond_emb_layers = nn.Sequential(
                nn.SiLU(), nn.Linear(cond_channels or emb_channels, out_channels)
            )
            # Dropout is kept only so the conv sits at index 3 like in checkpoints;
            # this code does inference, so it defaults to 0.
            self.out_layers = nn.Sequential(
                normalization(out_channels),
                nn.SiLU(),
                nn.Dropout(dropout),
                zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1)),
            )
        if out_channels == channels:
            self.skip_connection: nn.Module = nn.Identity()
        else:
            self.skip_connection = nn.Conv2d(channels, out_channels, 1)

    def forward(
        self,
        x: torch.Tensor,
        emb: torch.Tensor | None = None,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.resample is None:
            h = self.in_layers(x)
        else:
            # Resample between activation and conv: convolving at the new size is
            # what the checkpoints were trained with.
            h = resample(self.in_layers[1](self.in_layers[0](x)), self.resample)
            h = self.in_layers[2](h)
            x = resample(x, self.resample)
        if self.conditioned:
            if emb is None or cond is None:
                raise ValueError("A conditioned ResBlock needs both the time embedding and z_sem.")
            scale, shift = self.emb_layers(emb).to(h.dtype)[:, :, None, None].chunk(2, dim=1)
            cond_scale = self.cond_emb_layers(cond).to(h.dtype)[:, :, None, None]
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = h * (1 + cond_scale)
            h = self.out_layers[3](self.out_layers[2](self.out_layers[1](h)))
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over all positions, computed as in the official code.

    The 1x1 qkv projection is split per head first and then into q, k, v (the
    official "legacy" order, which fixes how checkpoint weights map to heads); q
    and k are each scaled by ch^-1/4 and the softmax runs in float32. Attention
    only runs at low resolutions (16x16 in the official models), so the plain
    matmuls cost little, and keeping the official order of operations keeps
    float32 results equal to the reference to the last bits. With ``fused`` set (the
    fast path's reduced-precision copy) the same attention runs as one
    ``scaled_dot_product_attention`` call (its default scale is the same ch^-1/2).
    """

    fused = False

    def __init__(self, channels: int, num_heads: int = 1) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"{channels} attention channels do not split into {num_heads} heads.")
        self.num_heads = num_heads
        self.norm = normalization(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, height, width = x.shape
        length = height * width
        flat = x.reshape(b, c, length)
        qkv = self.qkv(self.norm(flat))
        head_ch = c // self.num_heads
        if self.fused:
            # [B*heads, length, channels] with channels contiguous, as fused kernels need.
            rows = qkv.reshape(b * self.num_heads, 3 * head_ch, length).transpose(1, 2)
            q, k, v = rows.contiguous().split(head_ch, dim=2)
            attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)
            return (flat + self.proj_out(attended.reshape(b, c, length))).reshape(x.shape)
        q, k, v = qkv.reshape(b * self.num_heads, 3 * head_ch, length).split(head_ch, dim=1)
        scale = head_ch**-0.25
        weights = torch.einsum("bct,bcs->bts", q * scale, k * scale)
        weights = torch.softmax(weights.float(), dim=-1).to(weights.dtype)
        attended = torch.einsum("bts,bcs->bct", weights, v).reshape(b, c, length)
        return (flat + self.proj_out(attended)).reshape(b, c, height, width)


class EmbedSequential(nn.Sequential):
    """A sequence of blocks where residual blocks also receive the two conditions."""

    def forward(  # type: ignore[override]
        self,
        x: torch.Tensor,
        emb: torch.Tensor | None = None,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        for layer in self:
            x = layer(x, emb, cond) if isinstance(layer, ResBlock) else layer(x)
        return x

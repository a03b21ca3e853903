"""The DiffAE autoencoder's weights: what is installed, how checkpoints are imported.

An installed autoencoder is ``model.safetensors`` (the EMA weights, official key names
without the ``ema_model.`` prefix), ``config.json`` (the network configuration) and,
when known, ``latent_stats.safetensors`` (conds_mean/conds_std of z_sem). The importer
reads official Lightning checkpoints (``last.ckpt``: ``state_dict`` with ``model.*`` and
``ema_model.*``), plain state dicts and .safetensors files, takes the EMA weights and
checks every key and shape against ``DiffAEModel(config)`` built on the meta device
before anything is written. The specs below name the official checkpoints and where to
download them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chatface.engine.checkpoints import WeightsError, as_mapping, read_checkpoint
from chatface.engine.types import Checkpoint, ImportedWeights, WeightsSource, WeightsSpec
from chatface.engine.weights import write_json, write_tensors

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATS_FILE = "latent_stats.safetensors"
OFFICIAL_CHECKPOINTS = "https://github.com/phizaz/diffae#checkpoints"

# The official code reads latent.pkl; the official README calls the file latent.ckpt.
STATS_NAMES = ("latent.pkl", "latent.ckpt")

# Official training settings (hyper_parameters) -> DiffAEConfig fields.
_HPARAMS = {
    "img_size": "image_size",
    "net_ch": "model_channels",
    "net_ch_mult": "channel_mult",
    "net_enc_channel_mult": "enc_channel_mult",
    "net_beatgans_embed_channels": "embed_channels",
    "net_attn": "attention_resolutions",
    "net_beatgans_attn_head": "num_heads",
    "net_num_res_blocks": "num_res_blocks",
}


def read_stats(path: Path, trust_pickle: bool) -> tuple[Any, Any]:
    """conds_mean and conds_std from latent.pkl (a torch-saved dict) or a safetensors file."""
    if not path.is_file():
        raise WeightsError(f"No such statistics file: {path}")
    tensors = read_checkpoint(path, trust_pickle=trust_pickle).tensors
    if "conds_mean" not in tensors or "conds_std" not in tensors:
        raise WeightsError(f"{path} has no conds_mean/conds_std tensors.")
    return flat_stats(tensors["conds_mean"], tensors["conds_std"], str(path))


def flat_stats(mean: Any, std: Any, where: str) -> tuple[Any, Any]:
    # The official code keeps them as [1, D] buffers; latent.pkl has [D].
    mean, std = mean.float().reshape(-1), std.float().reshape(-1)
    if mean.shape != std.shape:
        raise WeightsError(f"{where}: conds_mean {tuple(mean.shape)} and conds_std differ.")
    return mean, std


def _network_config(name: str, config_path: Path | None, checkpoint: Checkpoint):
    from chatface.plugins.diffae.config import PRESETS, DiffAEConfig

    try:
        if config_path is not None:
            return DiffAEConfig.from_json_file(config_path), f"--config {config_path}"
        if name in PRESETS:
            return PRESETS[name], f"preset {name}"
        if "config" in checkpoint.metadata:
            return DiffAEConfig.from_dict(json.loads(checkpoint.metadata["config"])), (
                "the safetensors metadata"
            )
        hp = as_mapping(checkpoint.hyper_parameters)
        if hp.get("name") in PRESETS:
            return PRESETS[hp["name"]], f"preset {hp['name']} (from the checkpoint)"
        if all(key in hp for key in _HPARAMS):
            fields = {field: hp[key] for key, field in _HPARAMS.items()}
            # The official encoder has its own block count; keep it only where it differs.
            if (
                hp.get("net_enc_num_res_blocks", hp["net_num_res_blocks"])
                != hp["net_num_res_blocks"]
            ):
                fields["enc_num_res_blocks"] = hp["net_enc_num_res_blocks"]
            return DiffAEConfig.from_dict(fields), "the checkpoint's hyper_parameters"
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise WeightsError(f"Invalid network configuration: {exc}") from None
    raise WeightsError(
        f"Cannot tell the network configuration of '{name}': it is not a preset "
        f"({', '.join(PRESETS)}) and the checkpoint does not say. Pass --config CONFIG.json "
        "with image_size, model_channels, channel_mult, enc_channel_mult, embed_channels, "
        "attention_resolutions, num_heads and num_res_blocks, or use a preset's --name."
    )


def check_against_model(shapes: dict[str, tuple[int, ...]], netcfg: Any, origin: str) -> None:
    """The keys and shapes must be exactly those of DiffAEModel(netcfg) (built on meta)."""
    import torch

    from chatface.plugins.diffae.model import DiffAEModel

    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in DiffAEModel(netcfg).state_dict().items()}
    missing = sorted(expected.keys() - shapes.keys())
    unexpected = sorted(shapes.keys() - expected.keys())
    wrong = [
        f"{k} {shapes[k]} != {expected[k]}"
        for k in sorted(expected.keys() & shapes.keys())
        if shapes[k] != expected[k]
    ]
    if not (missing or unexpected or wrong):
        return

    def some(items: list[str]) -> str:
        return ", ".join(items[:5]) + (f" ... ({len(items) - 5} more)" if len(items) > 5 else "")

    parts = [
        f"{label} ({len(items)}): {some(items)}"
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", wrong))
        if items
    ]
    raise WeightsError(
        f"The weights do not fit the network configuration from {origin}. "
        + "; ".join(parts)
        + ". Pass the right --config CONFIG.json (or the preset's --name)."
    )


def _autoencoder_state(tensors: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
    prefixes = {k.split(".", 1)[0] + "." for k in tensors if "." in k}
    if "ema_model." in prefixes:
        prefix = "ema_model."
        notes.append("took the EMA weights (ema_model.*)")
    elif "model." in prefixes:
        prefix = "model."
        notes.append("no EMA weights (ema_model.*) in the checkpoint: took model.*")
    else:
        prefix = ""
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    dropped = [k for k in state if k.startswith("latent_net.")]
    for key in dropped:
        del state[key]
    if dropped:
        notes.append(
            f"dropped {len(dropped)} latent_net.* tensors (the latent DPM for unconditional "
            "sampling, which the autoencoder does not use)"
        )
    return state


def _check_stats_width(mean: Any, state: dict[str, Any]) -> None:
    # z_sem width = output channels of the encoder's last 1x1 conv (encoder.out.N.weight).
    outs = [k for k in state if re.fullmatch(r"encoder\.out\.\d+\.weight", k)]
    last = state[max(outs, key=lambda k: int(k.split(".")[2]))] if outs else None
    if last is not None and last.ndim == 4 and last.shape[0] != mean.shape[0]:
        raise WeightsError(
            f"The latent statistics have width {mean.shape[0]} but this autoencoder's z_sem "
            f"has {last.shape[0]}: they belong to another model."
        )


def _opt_path(value: Any) -> Path | None:
    return None if value is None else Path(value).expanduser()


class DiffAEImporter:
    """Imports DiffAE autoencoder checkpoints (see the module docstring)."""

    def recognises(self, checkpoint: Checkpoint) -> bool:
        return any(
            k.removeprefix("ema_model.").removeprefix("model.").startswith("input_blocks.")
            for k in checkpoint.tensors
        ) and not any("classifier." in k for k in checkpoint.tensors)

    def convert(
        self, checkpoint: Checkpoint, staging: Path, *, name: str, options: Mapping[str, Any]
    ) -> ImportedWeights:
        trust_pickle = bool(options.get("trust_pickle"))
        path, tensors, notes = Path(checkpoint.path), checkpoint.tensors, []
        stats = None
        if (stats_path := _opt_path(options.get("stats"))) is not None:
            stats = read_stats(stats_path, trust_pickle)
            notes.append(f"statistics from {stats_path.name}")
        elif beside := [p for p in STATS_NAMES if (path.parent / p).is_file()]:
            stats = read_stats(path.parent / beside[0], trust_pickle)
            notes.append(f"statistics from {beside[0]} next to the checkpoint")
        state = _autoencoder_state(tensors, notes)
        netcfg, origin = _network_config(name, _opt_path(options.get("config")), checkpoint)
        check_against_model({k: tuple(v.shape) for k, v in state.items()}, netcfg, origin)
        cfg = netcfg.to_dict()
        # One metadata entry only: safetensors writes several in random order, and the
        # same checkpoint should give the same sha256 on every machine.
        files = {
            MODEL_FILE: write_tensors(
                staging / MODEL_FILE, state, {"config": json.dumps(cfg, sort_keys=True)}
            ),
            CONFIG_FILE: write_json(staging / CONFIG_FILE, cfg),
        }
        if stats is not None:
            _check_stats_width(stats[0], state)
            pair = {"conds_mean": stats[0], "conds_std": stats[1]}
            files[STATS_FILE] = write_tensors(staging / STATS_FILE, pair, None)
        else:
            notes.append("no latent statistics (latent.pkl): pass --stats to add them")
        return ImportedWeights("autoencoder", files, tuple(notes), {"config_from": origin})


IMPORTER = DiffAEImporter()
# Community mirror of the official ffhq256 weights (state dicts); its layout is found at
# download time, and every file is checked against the preset before it is installed.
_HF_MIRROR = WeightsSource("huggingface", "alexkrz/diffae-ffhq256", "community mirror")
_AUTHORS = "the authors' Google Drive"

SPECS = (
    WeightsSpec(
        name="ffhq256_autoenc",
        description="DiffAE autoencoder, FFHQ 256 px (the default backend's weights)",
        importer=IMPORTER,
        sources=(
            _HF_MIRROR,
            WeightsSource("gdrive", "1-5zfxT6Gl-GjxM7z9ZO2AHlB70tfmF6V", _AUTHORS),
        ),
        download_mb=2700,
        manual_url=OFFICIAL_CHECKPOINTS,
        default=True,
        companions=STATS_NAMES,
    ),
    WeightsSpec(
        name="ffhq128_autoenc_130M",
        description="DiffAE autoencoder, FFHQ 128 px (130M parameters)",
        importer=IMPORTER,
        sources=(WeightsSource("gdrive", "10UNtFNfxbHBPkoIh003JkSPto5s-VbeN", _AUTHORS),),
        download_mb=1600,
        manual_url=OFFICIAL_CHECKPOINTS,
        companions=STATS_NAMES,
    ),
)

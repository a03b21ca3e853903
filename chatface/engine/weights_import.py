"""Import a checkpoint into chatface's weights layout without running pickled code.

Reads official DiffAE Lightning checkpoints (``last.ckpt``: ``state_dict`` with
``model.*`` and ``ema_model.*``), plain state dicts (.pt/.pth) and .safetensors files;
takes the EMA weights, checks them against ``DiffAEModel(config)`` on the meta device,
and writes safetensors through :mod:`chatface.engine.weights`. The classifier
checkpoint (``ffhq256_autoenc_cls``) becomes ``classifier.safetensors``.

``torch.load(weights_only=True)`` comes first; a file that needs full unpickling is
refused until the caller passes ``trust_pickle=True`` (``--trust-pickle``).
"""

from __future__ import annotations

import json
import logging
import pickle
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatface.config import Config
from chatface.engine.weights import (
    CLASSIFIER_FILE,
    CONFIG_FILE,
    MODEL_FILE,
    OFFICIAL_CHECKPOINTS,
    STATS_FILE,
    UnsafeCheckpointError,
    WeightsError,
    WeightsInfo,
    install_from_staging,
    read_info,
    sha256_file,
    staging_dir,
    weights_dir,
    write_json,
    write_manifest,
    write_tensors,
)

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

# The official code reads latent.pkl; the official README calls the file latent.ckpt.
_STATS_NAMES = ("latent.pkl", "latent.ckpt")

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


class _Missing:
    """Stands in for a class whose module is not installed (e.g. pytorch_lightning)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args = args

    def __setstate__(self, state: Any) -> None:
        self._state = state


class _TolerantUnpickler(pickle.Unpickler):
    """Used only with --trust-pickle: classes of packages chatface does not need (Lightning
    callbacks, training configs) become inert placeholders instead of an ImportError."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return type(name, (_Missing,), {"__module__": module})


_tolerant_pickle = types.SimpleNamespace(
    __name__="chatface_tolerant_pickle",
    Unpickler=_TolerantUnpickler,
    load=lambda fh, **kw: _TolerantUnpickler(fh, **kw).load(),
)


def _pickled_globals(path: Path, exc: Exception) -> list[str]:
    """The Python objects a checkpoint needs beyond tensors (found without unpickling)."""
    from torch import serialization

    try:
        return list(serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:
        return re.findall(r"GLOBAL ([\w.]+)", str(exc))


def _load_torch(path: Path, trust_pickle: bool) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        needed = _pickled_globals(path, exc)
        if not needed:
            raise WeightsError(f"{path} is not a PyTorch checkpoint or is damaged.") from None
        if not trust_pickle:
            shown = ", ".join(needed[:4]) + (
                f" and {len(needed) - 4} more" if len(needed) > 4 else ""
            )
            raise UnsafeCheckpointError(
                f"{path} cannot be loaded safely: besides tensors it holds pickled Python "
                f"objects ({shown}). Unpickling runs code stored in the file, so a tampered "
                "checkpoint could take over your account. Lightning checkpoints usually hold "
                "such objects (training settings, callbacks). Only if you "
                "trust where the file came from (e.g. you downloaded it yourself from the "
                f"authors' links at {OFFICIAL_CHECKPOINTS}), run the import again with "
                "--trust-pickle (trust_pickle=True in Python). It is converted to "
                "safetensors, so this is needed once."
            ) from None
    except Exception as exc:
        raise WeightsError(f"{path} is not a PyTorch checkpoint or is damaged ({exc}).") from None
    logger.warning("Unpickling %s fully (--trust-pickle): it may run code.", path)
    try:
        return torch.load(
            path, map_location="cpu", weights_only=False, pickle_module=_tolerant_pickle
        )
    except Exception as exc:
        raise WeightsError(f"{path} cannot be loaded even with --trust-pickle ({exc}).") from None


def _is_safetensors(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def _read_source(path: Path, trust_pickle: bool) -> tuple[dict[str, Any], Any, dict | None]:
    """(tensors, hyper_parameters or None, network config from safetensors metadata)."""
    import torch

    if _is_safetensors(path):
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
            return tensors, None, json.loads(meta["config"]) if "config" in meta else None
        except Exception as exc:
            raise WeightsError(f"{path} is not a readable safetensors file ({exc}).") from None
    obj = _load_torch(path, trust_pickle)
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        state = {k: v for k, v in obj["state_dict"].items() if isinstance(v, torch.Tensor)}
        return state, obj.get("hyper_parameters"), None
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj), None, None
    raise WeightsError(
        f"{path} is neither a Lightning checkpoint (with a 'state_dict') nor a state dict of "
        "tensors, so chatface does not know which weights to take from it."
    )


def _read_stats(path: Path, trust_pickle: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """conds_mean and conds_std from latent.pkl (a torch-saved dict) or a safetensors file."""
    if not path.is_file():
        raise WeightsError(f"No such statistics file: {path}")
    data, _, _ = _read_source(path, trust_pickle)
    if "conds_mean" not in data or "conds_std" not in data:
        raise WeightsError(f"{path} has no conds_mean/conds_std tensors.")
    return _flat_stats(data["conds_mean"], data["conds_std"], str(path))


def _flat_stats(mean: Any, std: Any, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    # The official code keeps them as [1, D] buffers; latent.pkl has [D].
    mean, std = mean.float().reshape(-1), std.float().reshape(-1)
    if mean.shape != std.shape:
        raise WeightsError(f"{where}: conds_mean {tuple(mean.shape)} and conds_std differ.")
    return mean, std


# --- conversion ------------------------------------------------------------------------


def _as_mapping(obj: Any) -> Mapping[str, Any]:
    if isinstance(obj, Mapping):
        return obj
    state = getattr(obj, "_state", None) or getattr(obj, "__dict__", None)
    return state if isinstance(state, Mapping) else {}


def _network_config(name: str, config_path: Path | None, meta: dict | None, hparams: Any):
    from chatface.plugins.diffae.config import PRESETS, DiffAEConfig

    try:
        if config_path is not None:
            return DiffAEConfig.from_json_file(config_path), f"--config {config_path}"
        if name in PRESETS:
            return PRESETS[name], f"preset {name}"
        if meta is not None:
            return DiffAEConfig.from_dict(meta), "the safetensors metadata"
        hp = _as_mapping(hparams)
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


def _autoencoder_state(tensors: dict[str, Any], notes: list[str]) -> dict[str, Any]:
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


def _classifier_state(tensors: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    # The official manipulation demo uses `classifier`, not `ema_classifier`.
    for prefix in ("classifier.", "ema_classifier."):
        if f"{prefix}weight" in tensors and f"{prefix}bias" in tensors:
            weight, bias = tensors[f"{prefix}weight"].float(), tensors[f"{prefix}bias"].float()
            notes.append(f"took {prefix}weight {tuple(weight.shape)}")
            break
    else:
        raise WeightsError("The classifier checkpoint has no classifier.weight/bias tensors.")
    if weight.ndim != 2 or bias.shape != weight.shape[:1]:
        raise WeightsError(f"Classifier weight {tuple(weight.shape)} is not [rows, D].")
    return {"classifier.weight": weight, "classifier.bias": bias}


def _check_stats_width(mean: torch.Tensor, state: dict[str, Any]) -> None:
    # z_sem width = output channels of the encoder's last 1x1 conv (encoder.out.N.weight).
    outs = [k for k in state if re.fullmatch(r"encoder\.out\.\d+\.weight", k)]
    last = state[max(outs, key=lambda k: int(k.split(".")[2]))] if outs else None
    if last is not None and last.ndim == 4 and last.shape[0] != mean.shape[0]:
        raise WeightsError(
            f"The latent statistics have width {mean.shape[0]} but this autoencoder's z_sem "
            f"has {last.shape[0]}: they belong to another model."
        )


def _default_name(path: Path) -> str:
    # Official layout: checkpoints/<name>/last.ckpt
    return path.parent.name if path.stem == "last" else path.stem


def import_weights(
    path: Path | str,
    *,
    name: str | None = None,
    config_path: Path | str | None = None,
    stats_path: Path | str | None = None,
    trust_pickle: bool = False,
    settings: Config | None = None,
) -> WeightsInfo:
    """Convert a checkpoint (Lightning last.ckpt, .pt/.pth state dict or .safetensors).

    An autoencoder is checked against ``DiffAEModel(config)`` before anything is written;
    a classifier needs ``conds_mean``/``conds_std`` (in the checkpoint or ``stats_path``).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"No such file: {path}")
    name = name or _default_name(path)
    target = weights_dir(name, settings)
    tensors, hparams, meta = _read_source(path, trust_pickle)
    notes: list[str] = []
    stats = None
    if stats_path is not None:
        stats = _read_stats(Path(stats_path).expanduser(), trust_pickle)
        notes.append(f"statistics from {Path(stats_path).name}")
    elif "conds_mean" in tensors and "conds_std" in tensors:
        stats = _flat_stats(tensors["conds_mean"], tensors["conds_std"], str(path))
        notes.append("statistics from the checkpoint's conds_mean/conds_std")
    elif beside := [p for p in _STATS_NAMES if (path.parent / p).is_file()]:
        stats = _read_stats(path.parent / beside[0], trust_pickle)
        notes.append(f"statistics from {beside[0]} next to the checkpoint")

    is_classifier = "classifier.weight" in tensors or "ema_classifier.weight" in tensors
    source = {"file": path.name, "sha256": sha256_file(path)}
    with staging_dir(target.parent, name) as staging:
        files: dict[str, str] = {}
        if is_classifier:
            state = _classifier_state(tensors, notes)
            if stats is None:
                raise WeightsError(
                    "The classifier needs conds_mean/conds_std: the checkpoint has none; "
                    "pass --stats latent.pkl of the autoencoder it was trained on."
                )
            if stats[0].shape[0] != state["classifier.weight"].shape[1]:
                raise WeightsError(
                    f"Statistics width {stats[0].shape[0]} != classifier width "
                    f"{state['classifier.weight'].shape[1]}."
                )
            state |= {"conds_mean": stats[0], "conds_std": stats[1]}
            files[CLASSIFIER_FILE] = write_tensors(staging / CLASSIFIER_FILE, state, None)
            kind, extra = "classifier", {}
        else:
            state = _autoencoder_state(tensors, notes)
            netcfg, origin = _network_config(name, _opt_path(config_path), meta, hparams)
            check_against_model({k: tuple(v.shape) for k, v in state.items()}, netcfg, origin)
            cfg = netcfg.to_dict()
            # One metadata entry only: safetensors writes several in random order, and the
            # same checkpoint should give the same sha256 on every machine.
            meta_out = {"config": json.dumps(cfg, sort_keys=True)}
            files[MODEL_FILE] = write_tensors(staging / MODEL_FILE, state, meta_out)
            files[CONFIG_FILE] = write_json(staging / CONFIG_FILE, cfg)
            if stats is not None:
                _check_stats_width(stats[0], state)
                pair = {"conds_mean": stats[0], "conds_std": stats[1]}
                files[STATS_FILE] = write_tensors(staging / STATS_FILE, pair, None)
            else:
                notes.append("no latent statistics (latent.pkl): pass --stats to add them")
            kind, extra = "autoencoder", {"config_from": origin}
        write_manifest(staging, name, kind, files, source=source, notes=notes, **extra)
        install_from_staging(staging, target)
    return read_info(target)


def _opt_path(value: Path | str | None) -> Path | None:
    return None if value is None else Path(value).expanduser()

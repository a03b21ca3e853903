"""The CLIP model of ChatFace's losses: declared, imported and loaded as chatface weights.

The paper trains its mapping networks with CLIP ViT-B/32 (OpenAI's weights). open_clip
builds the network; its weights come from ``timm/vit_base_patch32_clip_224.openai`` on
Hugging Face (open_clip's own source for them). The importer checks every key and shape
against ``open_clip.model.CLIP`` built from the preset's configuration on the meta
device, then writes ``clip.safetensors`` and ``config.json``; :func:`load_clip` builds
the model from those files alone, so nothing is fetched at run time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatface.engine.checkpoints import WeightsError
from chatface.engine.types import Checkpoint, ImportedWeights, WeightsSource, WeightsSpec
from chatface.engine.weights import require, write_json, write_tensors

if TYPE_CHECKING:
    from chatface.config import Config

WEIGHTS_FILE = "clip.safetensors"
CONFIG_FILE = "config.json"
CLIP_NAME = "clip_vit_b32_openai"
# open_clip model name, its activation, and the image normalisation of its training.
PRESETS: dict[str, dict[str, Any]] = {
    CLIP_NAME: {
        "model": "ViT-B-32",
        "quick_gelu": True,
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711],
    },
}


def model_config(preset: Mapping[str, Any]) -> dict[str, Any]:
    """open_clip's CLIP(...) arguments: from the preset's ``model_cfg`` or its model name."""
    import open_clip

    if "model_cfg" in preset:
        return dict(preset["model_cfg"])
    config = open_clip.get_model_config(preset["model"])
    if config is None:
        raise WeightsError(f"open_clip does not know the model {preset['model']!r}.")
    return config


def build(config: Mapping[str, Any]) -> Any:
    import open_clip

    arguments = {k: v for k, v in config.items() if k not in ("model", "mean", "std", "model_cfg")}
    return open_clip.model.CLIP(**model_config(config), **arguments)


class ClipImporter:
    """Imports open_clip state dicts (``open_clip_model.safetensors`` or the .bin)."""

    def recognises(self, checkpoint: Checkpoint) -> bool:
        keys = checkpoint.tensors.keys()
        return "visual.conv1.weight" in keys and "token_embedding.weight" in keys

    def convert(
        self, checkpoint: Checkpoint, staging: Path, *, name: str, options: Mapping[str, Any]
    ) -> ImportedWeights:
        import torch

        if name not in PRESETS:
            known = ", ".join(PRESETS)
            raise WeightsError(f"No CLIP preset called '{name}' (known: {known}).")
        preset = PRESETS[name]
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in build(preset).state_dict().items()}
        got = {k: tuple(v.shape) for k, v in checkpoint.tensors.items()}
        wrong = sorted(k for k in expected.keys() & got.keys() if expected[k] != got[k])
        missing, unexpected = sorted(expected.keys() - got.keys()), sorted(got.keys() - expected)
        if missing or unexpected or wrong:
            raise WeightsError(
                f"The weights do not fit open_clip's {preset.get('model', 'CLIP')}: "
                f"missing {missing[:3]}, unexpected {unexpected[:3]}, shape {wrong[:3]}."
            )
        state = {k: v.float() for k, v in checkpoint.tensors.items()}
        config = {**preset, "model_cfg": model_config(preset)}
        files = {
            WEIGHTS_FILE: write_tensors(
                staging / WEIGHTS_FILE, state, {"config": json.dumps(config, sort_keys=True)}
            ),
            CONFIG_FILE: write_json(staging / CONFIG_FILE, config),
        }
        return ImportedWeights("clip", files, (f"{len(state)} tensors, checked strictly",))


def load_clip(
    name: str = CLIP_NAME, device: str = "cpu", settings: Config | None = None
) -> tuple[Any, dict[str, Any]]:
    """The installed CLIP model (eval mode) and its configuration (mean, std, ...)."""
    from safetensors.torch import load_file

    folder = require(name, settings, import_file="open_clip_model.safetensors")
    config = json.loads((folder / CONFIG_FILE).read_text())
    model = build(config)
    model.load_state_dict(load_file(str(folder / WEIGHTS_FILE), device=device), strict=True)
    return model.to(device).eval(), config


SPECS = (
    WeightsSpec(
        name=CLIP_NAME,
        description="CLIP ViT-B/32 (OpenAI) for ChatFace's losses and free-text attributes",
        importer=ClipImporter(),
        sources=(
            WeightsSource("huggingface", "timm/vit_base_patch32_clip_224.openai", "open_clip's"),
        ),
        download_mb=605,
        manual_url="https://github.com/mlfoundations/open_clip",
    ),
)

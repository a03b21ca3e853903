"""Built-in plugin: the 40 CelebA attribute directions of the official DiffAE classifier.

DiffAE's ``ffhq256_autoenc_cls`` checkpoint holds a linear classifier on
normalised z_sem. Moving along a row of it edits that attribute
(shared/specs/diffae.md):

    z' = denorm(norm(z) + alpha * sqrt(D) * w / |w|),  norm(z) = (z - mean) / std

The attribute names are fixed, so they are declared without any weights: planning
and ``chatface plugins`` work on a fresh install. Only ``edit`` needs the
classifier, loaded lazily from the data directory. The plugin also declares the
classifier checkpoints (``ffhq256_autoenc_cls``, ``ffhq128_autoenc_130M_cls``) and
imports them into ``classifier.safetensors`` (weight [40, D], bias, conds_mean/std).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatface import hookimpl
from chatface.engine.types import (
    Attribute,
    Checkpoint,
    DirectionProvider,
    ImportedWeights,
    WeightsSource,
    WeightsSpec,
)
from chatface.errors import WeightsMissingError

if TYPE_CHECKING:
    import torch

# Row order of the classifier: the CelebA attribute order.
CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
    "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings",
    "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip

# Our name -> (CelebA column, sign, aliases, description). A negative sign flips the
# column so that positive strength always means "more of" our name.
FRIENDLY: dict[str, tuple[str, int, tuple[str, ...], str]] = {
    "smile": ("Smiling", 1, ("smiling",), "Smile; negative: a neutral or unhappy mouth"),
    "age": ("Young", -1, ("old", "older", "aged"), "Age; positive: older, negative: younger"),
    "beard": ("No_Beard", -1, ("facial_hair",), "Beard; negative: clean-shaven"),
    "eyeglasses": ("Eyeglasses", 1, ("glasses", "specs"), "Eyeglasses"),
    "blond_hair": ("Blond_Hair", 1, ("blond", "blonde", "blonde_hair"), "Blond hair"),
    "black_hair": ("Black_Hair", 1, (), "Black hair"),
    "brown_hair": ("Brown_Hair", 1, ("brunette",), "Brown hair"),
    "gray_hair": ("Gray_Hair", 1, ("grey_hair", "gray", "grey", "white_hair"), "Grey hair"),
    "bangs": ("Bangs", 1, ("fringe",), "Bangs (a fringe)"),
    "makeup": ("Heavy_Makeup", 1, ("heavy_makeup", "make_up"), "Heavy make-up"),
    "lipstick": ("Wearing_Lipstick", 1, (), "Lipstick"),
    "bald": ("Bald", 1, ("baldness",), "Baldness"),
    "mustache": ("Mustache", 1, ("moustache",), "Moustache"),
    "pale_skin": ("Pale_Skin", 1, ("pale",), "Pale skin"),
    "chubby": ("Chubby", 1, ("fat", "plump"), "Chubby face; negative: slimmer"),
    "male": ("Male", 1, ("masculine",), "Masculine look; negative: feminine"),
    "wavy_hair": ("Wavy_Hair", 1, ("wavy",), "Wavy hair"),
    "straight_hair": ("Straight_Hair", 1, (), "Straight hair"),
    "goatee": ("Goatee", 1, (), "Goatee"),
    "sideburns": ("Sideburns", 1, (), "Sideburns"),
    "stubble": ("5_o_Clock_Shadow", 1, ("five_o_clock_shadow",), "Five o'clock shadow"),
    "double_chin": ("Double_Chin", 1, (), "Double chin"),
    "rosy_cheeks": ("Rosy_Cheeks", 1, ("rosy",), "Rosy cheeks"),
    "high_cheekbones": ("High_Cheekbones", 1, ("cheekbones",), "High cheekbones"),
    "mouth_open": ("Mouth_Slightly_Open", 1, ("open_mouth",), "Mouth slightly open"),
    "narrow_eyes": ("Narrow_Eyes", 1, (), "Narrow eyes"),
    "big_lips": ("Big_Lips", 1, ("full_lips",), "Big lips"),
    "big_nose": ("Big_Nose", 1, (), "Big nose"),
    "pointy_nose": ("Pointy_Nose", 1, (), "Pointy nose"),
    "bushy_eyebrows": ("Bushy_Eyebrows", 1, ("bushy_brows",), "Bushy eyebrows"),
    "arched_eyebrows": ("Arched_Eyebrows", 1, ("arched_brows",), "Arched eyebrows"),
    "bags_under_eyes": ("Bags_Under_Eyes", 1, ("eye_bags",), "Bags under the eyes"),
    "oval_face": ("Oval_Face", 1, (), "Oval face"),
    "receding_hairline": ("Receding_Hairline", 1, (), "Receding hairline"),
    "attractive": ("Attractive", 1, (), "CelebA's 'Attractive' label"),
    "blurry": ("Blurry", 1, ("blur",), "Blur"),
    "earrings": ("Wearing_Earrings", 1, (), "Earrings"),
    "hat": ("Wearing_Hat", 1, (), "A hat"),
    "necklace": ("Wearing_Necklace", 1, (), "A necklace"),
    "necktie": ("Wearing_Necktie", 1, ("tie",), "A necktie"),
}

# Strength 1.0 moves alpha = ALPHA_MAX along the normalised classifier row; the
# official examples use alpha about 0.3 and stay useful up to about 0.5.
ALPHA_MAX = 0.5
WEIGHTS_NAME = "ffhq256_autoenc_cls"
CLASSIFIER_FILE = "classifier.safetensors"


class CelebaDirections:
    """Linear directions from the classifier rows (weight [40, D], conds_mean/std [D])."""

    name = "celeba"

    def __init__(self, weights_path: Path | None = None) -> None:
        self._weights_path = weights_path
        self._tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def attributes(self) -> list[Attribute]:
        return [
            Attribute(name=name, description=desc, aliases=aliases, backend="diffae")
            for name, (_, _, aliases, desc) in FRIENDLY.items()
        ]

    def weights_path(self) -> Path:
        """The classifier file; WeightsMissingError naming the fix when not installed."""
        if self._weights_path is not None:
            return self._weights_path
        from chatface.engine.weights import require

        return require(WEIGHTS_NAME) / CLASSIFIER_FILE

    def _load(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self._tensors is None:
            path = self.weights_path()
            if not path.is_file():
                raise WeightsMissingError(
                    f"The CelebA attribute classifier file {path} is missing."
                )
            from safetensors.torch import load_file

            tensors = load_file(str(path))
            self._tensors = (
                tensors["classifier.weight"].float(),
                tensors["conds_mean"].float().reshape(-1),
                tensors["conds_std"].float().reshape(-1),
            )
        return self._tensors

    def edit(self, z_sem: torch.Tensor, attribute: str, strength: float) -> torch.Tensor:
        column, sign, _, _ = FRIENDLY[attribute]
        weight, mean, std = self._load()
        row = weight[CELEBA_ATTRIBUTES.index(column)].to(z_sem)
        alpha = sign * strength * ALPHA_MAX
        step = alpha * math.sqrt(row.numel()) * row / row.norm()
        normed = (z_sem - mean.to(z_sem)) / std.to(z_sem)
        return (normed + step) * std.to(z_sem) + mean.to(z_sem)

    def logit_change(
        self, z_sem: torch.Tensor, z_edit: torch.Tensor, attribute: str
    ) -> torch.Tensor:
        """[B] change of the classifier's logit for ``attribute`` from ``z_sem`` to
        ``z_edit``, signed so that positive means more of it (evaluation's metric)."""
        column, sign, _, _ = FRIENDLY[attribute]
        weight, _, std = self._load()
        row = weight[CELEBA_ATTRIBUTES.index(column)].to(z_sem)
        # The bias and the mean cancel in the difference of the normalised latents.
        return sign * ((z_edit - z_sem) / std.to(z_sem)) @ row


class ClassifierImporter:
    """Imports the official classifier checkpoints (``classifier.*`` or ``ema_classifier.*``
    plus the conds_mean/conds_std of the autoencoder it was trained on)."""

    def recognises(self, checkpoint: Checkpoint) -> bool:
        return "classifier.weight" in checkpoint.tensors or (
            "ema_classifier.weight" in checkpoint.tensors
        )

    def convert(
        self, checkpoint: Checkpoint, staging: Path, *, name: str, options: Mapping[str, Any]
    ) -> ImportedWeights:
        from chatface.engine.checkpoints import WeightsError, read_checkpoint
        from chatface.engine.weights import write_tensors

        tensors, notes = checkpoint.tensors, []
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
        if weight.shape[0] != len(CELEBA_ATTRIBUTES):
            raise WeightsError(
                f"The classifier has {weight.shape[0]} rows, not the {len(CELEBA_ATTRIBUTES)} "
                "CelebA attributes."
            )
        stats = tensors
        if options.get("stats") is not None:
            stats_path = Path(options["stats"]).expanduser()
            stats = read_checkpoint(stats_path, trust_pickle=bool(options.get("trust_pickle")))
            stats = stats.tensors
            notes.append(f"statistics from {stats_path.name}")
        if "conds_mean" not in stats or "conds_std" not in stats:
            raise WeightsError(
                "The classifier needs conds_mean/conds_std: the checkpoint has none; "
                "pass --stats latent.pkl of the autoencoder it was trained on."
            )
        # The official classifier keeps them as [1, D] buffers; latent.pkl has [D].
        mean = stats["conds_mean"].float().reshape(-1)
        std = stats["conds_std"].float().reshape(-1)
        if not mean.shape == std.shape == weight.shape[1:]:
            raise WeightsError(
                f"Statistics width {mean.shape[0]} != classifier width {weight.shape[1]}."
            )
        state = {"classifier.weight": weight, "classifier.bias": bias}
        state |= {"conds_mean": mean, "conds_std": std}
        files = {CLASSIFIER_FILE: write_tensors(staging / CLASSIFIER_FILE, state, None)}
        return ImportedWeights("classifier", files, tuple(notes))


_AUTHORS = "the authors' Google Drive"
_OFFICIAL = "https://github.com/phizaz/diffae#checkpoints"
WEIGHTS = (
    WeightsSpec(
        name=WEIGHTS_NAME,
        description="CelebA attribute classifier on ffhq256_autoenc's z_sem (the directions)",
        importer=ClassifierImporter(),
        # The mirror may or may not carry it: its files are recognised at download time.
        sources=(
            WeightsSource("huggingface", "alexkrz/diffae-ffhq256", "community mirror"),
            WeightsSource("gdrive", "117Wv7RZs_gumgrCOIhDEWgsNy6BRJorg", _AUTHORS),
        ),
        download_mb=700,
        manual_url=_OFFICIAL,
        default=True,
    ),
    WeightsSpec(
        name="ffhq128_autoenc_130M_cls",
        description="CelebA attribute classifier on ffhq128_autoenc_130M's z_sem",
        importer=ClassifierImporter(),
        sources=(WeightsSource("gdrive", "11EYIyuK6IX44C8MqreUyMgPCNiEnwhmI", _AUTHORS),),
        download_mb=550,
        manual_url=_OFFICIAL,
    ),
)


@hookimpl
def chatface_register_directions(register: Callable[[DirectionProvider], None]) -> None:
    register(CelebaDirections())


@hookimpl
def chatface_register_weights(register: Callable[[WeightsSpec], None]) -> None:
    for spec in WEIGHTS:
        register(spec)

"""The built-in CelebA classifier directions."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import save_file

from chatface.errors import WeightsMissingError
from chatface.plugins.celeba_directions import (
    ALPHA_MAX,
    CELEBA_ATTRIBUTES,
    FRIENDLY,
    CelebaDirections,
)


def test_declares_attributes_without_weights() -> None:
    names = {a.name for a in CelebaDirections().attributes()}
    assert {"smile", "age", "beard", "eyeglasses", "blond_hair", "gray_hair", "makeup"} <= names
    assert len(CELEBA_ATTRIBUTES) == 40
    # Every CelebA column is reachable under exactly one friendly name.
    assert sorted(column for column, *_ in FRIENDLY.values()) == sorted(CELEBA_ATTRIBUTES)


@pytest.fixture
def classifier(tmp_path):
    torch.manual_seed(0)
    tensors = {
        "classifier.weight": torch.randn(40, 16),
        "conds_mean": torch.randn(16),
        "conds_std": torch.rand(16) + 0.5,
    }
    path = tmp_path / "cls.safetensors"
    save_file(tensors, str(path))
    return path, tensors


@pytest.mark.parametrize(
    ("name", "column", "sign"), [("smile", "Smiling", 1), ("age", "Young", -1)]
)
def test_edit_follows_the_official_formula(classifier, name, column, sign) -> None:
    path, t = classifier
    provider = CelebaDirections(path)
    z = torch.randn(3, 16)
    edited = provider.edit(z, name, 0.6)
    w = t["classifier.weight"][CELEBA_ATTRIBUTES.index(column)]
    alpha = sign * 0.6 * ALPHA_MAX
    normed = (z - t["conds_mean"]) / t["conds_std"]
    expected = (normed + alpha * math.sqrt(16) * w / w.norm()) * t["conds_std"] + t["conds_mean"]
    torch.testing.assert_close(edited, expected)
    torch.testing.assert_close(provider.edit(z, name, 0.0), z)


def test_positive_age_moves_against_the_young_classifier(classifier) -> None:
    path, t = classifier
    w = t["classifier.weight"][CELEBA_ATTRIBUTES.index("Young")]
    z = torch.randn(1, 16)
    normed = lambda v: (v - t["conds_mean"]) / t["conds_std"]  # noqa: E731
    older = CelebaDirections(path).edit(z, "age", 0.5)
    assert (normed(older) @ w).item() < (normed(z) @ w).item()


def test_missing_weights_name_the_file(tmp_path) -> None:
    missing = tmp_path / "nothing.safetensors"
    with pytest.raises(WeightsMissingError, match="nothing.safetensors"):
        CelebaDirections(missing).edit(torch.zeros(1, 16), "smile", 0.5)


def test_without_installed_weights_the_error_names_the_commands() -> None:
    from chatface.engine.weights import import_command

    with pytest.raises(WeightsMissingError) as info:
        CelebaDirections().edit(torch.zeros(1, 512), "smile", 0.5)
    assert info.value.weights == "ffhq256_autoenc_cls"  # so front ends can offer a download
    assert "`chatface weights download ffhq256_autoenc_cls`" in str(info.value)
    assert f"`{import_command('ffhq256_autoenc_cls')}`" in str(info.value)


def test_uses_a_classifier_installed_by_chatface_weights_import(tmp_path) -> None:
    from tests.engine.test_weights import import_weights

    folder = tmp_path / "checkpoints" / "ffhq256_autoenc_cls"
    folder.mkdir(parents=True)
    weight = torch.randn(40, 32)
    mean, std = torch.randn(1, 32), torch.rand(1, 32) + 0.5
    state = {"classifier.weight": weight, "classifier.bias": torch.randn(40)}
    state |= {"conds_mean": mean, "conds_std": std}
    torch.save({"state_dict": state}, folder / "last.ckpt")
    import_weights(folder / "last.ckpt")

    z = torch.randn(2, 32)
    edited = CelebaDirections().edit(z, "smile", 1.0)
    row = weight[CELEBA_ATTRIBUTES.index("Smiling")]
    step = ALPHA_MAX * math.sqrt(32) * row / row.norm()
    torch.testing.assert_close((edited - mean) / std, (z - mean) / std + step)

"""`chatface train-mapper` end to end on tiny models, from face photos to a mapper file."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from chatface.cli.main import app
from chatface.engine.types import Latents
from chatface.errors import ChatFaceError
from chatface.plugins.mapper import train_data
from chatface.plugins.mapper.files import load_network, read_info
from chatface.plugins.mapper.train_data import TrainingFaces, cache_key
from tests.plugins.test_mapper_train import FAST

DATA = Path(__file__).resolve().parents[1] / "data" / "faces"
TARGET = "a photo of a face with curly hair"


@pytest.fixture(autouse=True)
def fast(monkeypatch, one_torch_thread) -> None:
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("obama.jpg", "grace_hopper.jpg"):
        shutil.copy(DATA / name, folder / name)
    (folder / "notes.txt").write_text("not a photo")
    return folder


def invoke(*args: object) -> dict:
    result = CliRunner().invoke(app, ["train-mapper", *map(str, args), "--json"])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_train_mapper_from_photos_to_a_mapper_file(photos, isolated_env, monkeypatch) -> None:
    report = invoke("--attribute", "curly_hair", "--target", TARGET, "--images", photos,
                    "--iters", 2, "--batch", 2, "--alias", "curly", "--alias", "卷发")  # fmt: skip
    assert report["iterations"] == 2 and report["faces"] == 2 and report["skipped"] == 1
    mapper = isolated_env / "mappers" / "curly_hair.json"
    assert report["mapper"] == str(mapper)
    info = read_info(mapper)
    assert (info.attribute, info.backend, info.source, info.target) == (
        "curly_hair", "tiny", "a photo of a face", TARGET
    )  # fmt: skip
    assert info.aliases == ("curly", "卷发") and info.description == "curly hair"
    assert info.backend_sha256 == "random-seed-20230523"
    assert info.training["batch"] == 2 and info.training["iterations"] == 2
    assert info.training["objective"]["method.clip_model"] == "tiny"
    assert set(info.metrics) == {"total", "l1", "latent", "identity", "clip"}
    network = load_network(mapper)
    z_sem = torch.zeros(1, info.latent_dim)
    assert network.edit(z_sem, 1.0).abs().sum() > 0
    run = isolated_env / "training" / "curly_hair"
    assert {p.name for p in run.iterdir()} == {
        "checkpoint.pt", "faces.safetensors", "preview-000002.png"
    }  # fmt: skip

    # Resuming reads the cached faces (no encoding) and trains on to --iters.
    def no_encoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("the faces were encoded again")

    monkeypatch.setattr(train_data, "encode_photos", no_encoding)
    report = invoke("--attribute", "curly_hair", "--target", TARGET, "--images", photos,
                    "--iters", 3, "--batch", 2, "--resume")  # fmt: skip
    assert report["iterations"] == 3 and read_info(mapper).training["iterations"] == 3

    # The cache serves as --latents for another run, which also writes a plugin package.
    cache = run / "faces.safetensors"
    monkeypatch.chdir(isolated_env.parent)
    report = invoke("--attribute", "curly_hair_2", "--target", TARGET, "--iters", 1,
                    "--latents", cache, "--out", isolated_env / "other",
                    "--package", "chatface-curly-two")  # fmt: skip
    assert report["faces"] == 2 and (isolated_env / "mappers" / "curly_hair_2.json").is_file()
    package = Path(report["package"])
    assert package == isolated_env.parent / "chatface-curly-two"
    assert "chatface-curly-two" in (package / "pyproject.toml").read_text()
    assert sorted(p.name for p in package.rglob("curly_hair_2.*")) == [
        "curly_hair_2.json", "curly_hair_2.safetensors"
    ]  # fmt: skip
    with pytest.raises(ChatFaceError, match="already exists"):  # before any training
        invoke("--attribute", "x", "--target", TARGET, "--latents", cache,
               "--package", "chatface-curly-two")  # fmt: skip


def test_mistakes_get_one_clear_sentence(photos, tmp_path) -> None:
    with pytest.raises(ChatFaceError, match="snake_case"):
        invoke("--attribute", "Curly Hair", "--target", TARGET, "--images", photos)
    with pytest.raises(ChatFaceError, match="either --images DIR or --latents FILE"):
        invoke("--attribute", "curly", "--target", TARGET)
    with pytest.raises(ChatFaceError, match="not a folder"):
        invoke("--attribute", "curly", "--target", TARGET, "--images", tmp_path / "nowhere")
    other = TrainingFaces(Latents(torch.zeros(1, 4), torch.zeros(1, 3, 8, 8)),
                          torch.zeros(1, 3, 8, 8), "diffae", "abc")  # fmt: skip
    train_data.write_faces(tmp_path / "diffae.safetensors", other)
    with pytest.raises(ChatFaceError, match="faces of the 'diffae' backend, but engine.backend"):
        invoke(
            "--attribute", "curly", "--target", TARGET, "--latents", tmp_path / "diffae.safetensors"
        )
    tiny = replace(other, backend="tiny")
    train_data.write_faces(tmp_path / "tiny.safetensors", tiny)
    with pytest.raises(ChatFaceError, match="other 'tiny' weights than the installed ones"):
        invoke(
            "--attribute", "curly", "--target", TARGET, "--latents", tmp_path / "tiny.safetensors"
        )
    for name in ("obama.jpg", "grace_hopper.jpg"):
        (photos / name).unlink()
    with pytest.raises(ChatFaceError, match="no usable face in the 1 file"):
        invoke("--attribute", "curly", "--target", TARGET, "--images", photos)


def test_the_faces_cache_key_follows_the_photos_and_the_backend(photos) -> None:
    paths = train_data.photo_paths(photos)
    assert [p.name for p in paths] == ["grace_hopper.jpg", "notes.txt", "obama.jpg"]
    key = cache_key(paths, "tiny", "abc", 2)
    assert key == cache_key(paths, "tiny", "abc", 2)
    assert key != cache_key(paths, "tiny", "abd", 2) != cache_key(paths, "diffae", "abc", 2)
    assert key != cache_key(paths, "tiny", "abc", 3)
    (photos / "notes.txt").write_text("changed")
    assert key != cache_key(paths, "tiny", "abc", 2)
    assert key != cache_key(paths[:2], "tiny", "abc", 2)

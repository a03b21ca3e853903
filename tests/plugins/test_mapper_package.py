"""Plugin packages of trained attributes: written, pip-installed, found and used to edit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from chatface import __version__
from chatface.cli.main import app
from chatface.config import load_config
from chatface.engine.editor import Engine
from chatface.engine.plugins import make_plugin_manager
from chatface.engine.types import EditOp, SessionState
from chatface.errors import ChatFaceError
from chatface.plugins.mapper.files import MapperFileError, load_network
from chatface.plugins.mapper.package import PackageError, write_package
from tests.plugins.mapper_fixtures import write_mapper

PHOTO = Path(__file__).resolve().parents[1] / "data" / "faces" / "grace_hopper.jpg"
NAME = "chatface-curly-hair"


def test_the_package_holds_the_mappers_an_entry_point_and_a_readme(tmp_path) -> None:
    curly = write_mapper(tmp_path / "trained")
    mohawk = write_mapper(tmp_path / "trained", "mohawk", aliases=(), seed=1)
    out = write_package([curly, mohawk], NAME, tmp_path / "pkg", version="1.2.0", author="Ada")
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    module = "src/chatface_curly_hair"
    assert files == [
        "README.md", "pyproject.toml", f"{module}/__init__.py",
        f"{module}/mappers/curly_hair.json", f"{module}/mappers/curly_hair.safetensors",
        f"{module}/mappers/mohawk.json", f"{module}/mappers/mohawk.safetensors",
    ]  # fmt: skip
    assert (out / module / "mappers/curly_hair.json").read_bytes() == curly.read_bytes()
    project = tomllib.loads((out / "pyproject.toml").read_text())
    assert project["project"]["name"] == NAME and project["project"]["version"] == "1.2.0"
    assert project["project"]["authors"] == [{"name": "Ada"}]
    assert project["project"]["dependencies"] == [f"chatface>={__version__}"]
    assert project["project"]["entry-points"]["chatface"] == {
        "chatface_curly_hair": "chatface_curly_hair"
    }
    assert project["tool"]["setuptools"]["package-data"]["chatface_curly_hair"] == [
        "mappers/*.json", "mappers/*.safetensors",
    ]  # fmt: skip
    readme = (out / "README.md").read_text()
    assert "## curly_hair" in readme and "## mohawk" in readme
    assert "- aliases: curly, curly hair, curls, 小卷毛" in readme
    assert '"a photo of a face" -> "a photo of a face with curly hair"' in readme
    assert "- training: iters=3, batch=2" in readme and "clip_directional=0.42" in readme
    assert "Trained by Ada." in readme and "arXiv 2305.14742" in readme


def test_what_cannot_be_packaged_is_refused_with_one_clear_error(tmp_path) -> None:
    curly = write_mapper(tmp_path / "a")
    again = write_mapper(tmp_path / "b", seed=1)
    with pytest.raises(PackageError, match="lower-case letters and digits joined by '-'"):
        write_package([curly], "Curly_Hair", tmp_path / "out")
    with pytest.raises(PackageError, match="both hold the attribute 'curly_hair'"):
        write_package([curly, again], NAME, tmp_path / "out")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(PackageError, match="full already exists and is not an empty folder"):
        write_package([curly], NAME, tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    tensors = again.with_suffix(".safetensors")
    tensors.write_bytes(tensors.read_bytes()[:-1] + b"!")
    with pytest.raises(MapperFileError, match="does not match the sha256"):
        write_package([again], NAME, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers
    # A name from the JSON never becomes a path or code in the package.
    evil = write_mapper(tmp_path / "c")
    evil.write_text(evil.read_text().replace('"curly_hair"', '"../../escaped"', 1))
    with pytest.raises(PackageError, match="names the attribute '../../escaped'"):
        write_package([evil], NAME, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.rglob("escaped*"))


def test_the_cli_names_a_trained_attribute_or_a_file(isolated_env, tmp_path) -> None:
    write_mapper(isolated_env / "mappers")
    runner = CliRunner()
    result = runner.invoke(app, ["package-mapper", "curly_hair", "--name", NAME, "--out",
                                 str(tmp_path / "pkg")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"install it with: pip install {tmp_path / 'pkg'}" in result.output
    assert (tmp_path / "pkg/src/chatface_curly_hair/mappers/curly_hair.safetensors").is_file()
    result = runner.invoke(app, ["package-mapper", "mohawk", "--name", NAME])
    assert result.exit_code == 1
    assert isinstance(result.exception, ChatFaceError)
    assert "mappers/mohawk.json" in str(result.exception)


@pytest.fixture(scope="module")
def installed_package(tmp_path_factory) -> tuple[Path, Path]:
    """A mapper packaged and pip-installed into a target folder (no network, no deps)."""
    root = tmp_path_factory.mktemp("package")
    mapper = write_mapper(root / "trained")
    source = write_package([mapper], NAME, root / NAME)
    target = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    return target, mapper


def test_an_installed_package_edits_a_face_through_the_engine(
    installed_package, monkeypatch
) -> None:
    target, mapper = installed_package
    bundled = target / "chatface_curly_hair" / "mappers" / "curly_hair.safetensors"
    assert bundled.read_bytes() == mapper.with_suffix(".safetensors").read_bytes()
    monkeypatch.syspath_prepend(str(target))
    monkeypatch.setenv("CHATFACE_LOAD_PLUGINS", NAME)
    monkeypatch.setenv("CHATFACE_ENGINE_BACKEND", "tiny")
    config = load_config()
    engine = Engine(config, make_plugin_manager(config.plugin_allow_list()))
    record = engine.plugin_manager.records["chatface_curly_hair"]
    assert (record.status, record.package, record.version) == ("loaded", NAME, "0.1.0")
    registry = engine.registry
    assert registry.providers["chatface_curly_hair"].plugin == "chatface_curly_hair"
    assert registry.attribute_backends["curly_hair"] == {"tiny": "chatface_curly_hair"}

    plan = engine.plan("give her curly hair")
    assert plan.edits == (EditOp("curly_hair", 0.5),)
    face = engine.open_face(PHOTO, steps=3)
    state = SessionState().apply(plan.edits, {a.name: a for a in engine.attributes()})
    z_edit = engine.edit_latents(face.latents.z_sem, state)
    expected = load_network(mapper).edit(face.latents.z_sem, 0.5)
    torch.testing.assert_close(z_edit, expected)
    edited = engine.render(face, state, steps=3)
    unedited = engine.render(face, SessionState(), steps=3)
    assert edited.size == unedited.size == face.photo.size
    assert edited.tobytes() != unedited.tobytes()


def test_chatface_plugins_lists_the_installed_package(installed_package) -> None:
    target, _ = installed_package
    env = os.environ | {"PYTHONPATH": str(target), "CHATFACE_LOAD_PLUGINS": NAME}
    out = subprocess.run(
        [sys.executable, "-m", "chatface", "plugins", "--json"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    report = {p["name"]: p for p in json.loads(out.stdout)}
    package = report["chatface_curly_hair"]
    assert (package["package"], package["builtin"], package["problems"]) == (NAME, False, [])
    assert package["registered"]["directions"] == ["chatface_curly_hair"]
    assert package["registered"]["attributes"] == ["curly_hair"]

"""The mapper provider: mapper files in the data dir become attributes, edited lazily."""

from __future__ import annotations

import logging

import pytest
import torch

from chatface.config import load_config
from chatface.engine.editor import Engine
from chatface.engine.types import SessionState
from chatface.plugins.mapper import mapper_provider
from chatface.plugins.mapper.files import MapperFileError, load_network
from chatface.plugins.mapper.provider import MapperDirections
from tests.engine.test_batch import encoded_faces
from tests.plugins.mapper_fixtures import CURLY_ALIASES, write_mapper

PLUGIN = "chatface.plugins.mapper"


def test_mapper_files_of_the_data_dir_and_mapper_dirs_are_attributes(
    isolated_env, tmp_path, monkeypatch
) -> None:
    write_mapper(isolated_env / "mappers", schedule="constant")
    write_mapper(tmp_path / "a", "mohawk", backend="diffae", latent_dim=512, aliases=("莫西干",))
    write_mapper(tmp_path / "b", "freckles", aliases=())
    monkeypatch.setenv("CHATFACE_MAPPER_DIRS", f" {tmp_path / 'a'} ,{tmp_path / 'b'},")
    registry = Engine().registry
    assert registry.provider_attributes["mapper"] == ["curly_hair", "mohawk", "freckles"]
    assert registry.providers["mapper"].plugin == PLUGIN
    curly = registry.attributes["curly_hair"].value
    assert curly.aliases == CURLY_ALIASES and curly.backend == "tiny"
    assert curly.description == "Curly hair (a test mapper)" and curly.schedule == "constant"
    assert registry.attribute("Curly Hair") is curly and registry.attribute("小卷毛") is curly
    assert registry.attribute_backends["mohawk"] == {"diffae": "mapper"}
    assert registry.attribute("莫西干").name == "mohawk"
    assert not [p for p in registry.problems if p.plugin == PLUGIN]


def test_no_mapper_folder_means_no_attributes() -> None:
    registry = Engine().registry
    assert registry.providers["mapper"].value.attributes() == []
    assert registry.provider_attributes["mapper"] == []


def test_bad_and_duplicate_mapper_files_are_skipped_with_a_warning(
    isolated_env, tmp_path, monkeypatch, caplog
) -> None:
    folder = isolated_env / "mappers"
    write_mapper(folder)
    write_mapper(tmp_path, seed=1)  # curly_hair again, in mapper.dirs: the first one wins
    bad_name = write_mapper(folder, "bad_name")
    bad_name.write_text(bad_name.read_text().replace('"bad_name"', '"Bad Name"'))
    write_mapper(folder, "broken").write_text("{not json")
    other_format = write_mapper(folder, "future")
    other_format.write_text(other_format.read_text().replace("chatface-mapper/1", "x/9"))
    write_mapper(folder, "orphan").with_suffix(".safetensors").unlink()  # not a mapper file
    monkeypatch.setenv("CHATFACE_MAPPER_DIRS", str(tmp_path))
    with caplog.at_level(logging.WARNING, "chatface.plugins.mapper.provider"):
        registry = Engine().registry
    assert registry.provider_attributes["mapper"] == ["curly_hair"]
    provider = registry.providers["mapper"].value
    assert provider.network("curly_hair") is not None
    z = torch.randn(2, 64)
    expected = load_network(folder / "curly_hair.json").edit(z, 0.5)
    torch.testing.assert_close(provider.edit(z, "curly_hair", 0.5), expected)
    warnings = sorted(r.getMessage() for r in caplog.records)
    assert len(warnings) == 4
    duplicate = f"{tmp_path / 'curly_hair.json'} skipped: the attribute 'curly_hair' already"
    assert any(duplicate in w for w in warnings)
    assert any("'Bad Name' is not lower-case snake_case" in w for w in warnings)
    assert any("broken.json is not a chatface mapper file" in w for w in warnings)
    assert any("format is 'x/9'" in w for w in warnings)
    assert not [p for p in registry.problems if p.plugin == PLUGIN]


def test_edit_is_z_plus_strength_times_the_network_loaded_once(tmp_path, monkeypatch) -> None:
    import chatface.plugins.mapper.provider as provider_module

    path = write_mapper(tmp_path)
    loads = []
    real_load = provider_module.load_network
    monkeypatch.setattr(
        provider_module, "load_network", lambda *a: loads.append(a) or real_load(*a)
    )
    provider = mapper_provider(tmp_path, name="pkg")
    assert provider.name == "pkg" and [a.name for a in provider.attributes()] == ["curly_hair"]
    assert loads == []  # nothing loads until an edit needs it
    network = load_network(path)
    z = torch.randn(3, 64, generator=torch.Generator().manual_seed(3))
    for strength in (1.0, -0.25):
        edited = provider.edit(z, "curly_hair", strength)
        torch.testing.assert_close(edited, z + strength * network(z))
    assert len(loads) == 1
    assert float((provider.edit(z, "curly_hair", 1.0) - z).norm()) > 1.0  # it does move z
    assert torch.equal(provider.edit(z, "curly_hair", 0.0), z)
    half = provider.edit(z.double(), "curly_hair", 0.5)  # follows the latents' dtype
    assert half.dtype == torch.float64


def test_a_damaged_mapper_is_named_at_the_first_edit(tmp_path) -> None:
    path = write_mapper(tmp_path)
    tensors = path.with_suffix(".safetensors")
    data = bytearray(tensors.read_bytes())
    data[-1] ^= 0xFF
    tensors.write_bytes(bytes(data))
    provider = MapperDirections([tmp_path])
    assert [a.name for a in provider.attributes()] == ["curly_hair"]  # listing reads only JSON
    with pytest.raises(MapperFileError, match=f"{tensors} does not match the sha256"):
        provider.edit(torch.zeros(1, 64), "curly_hair", 0.5)


def test_latents_of_another_width_are_refused(tmp_path) -> None:
    write_mapper(tmp_path)
    provider = MapperDirections([tmp_path])
    with pytest.raises(MapperFileError, match="edits 64-wide latents of the backend 'tiny'"):
        provider.edit(torch.zeros(1, 512), "curly_hair", 0.5)


def test_a_mapper_composes_with_a_classifier_direction_on_tiny(isolated_env) -> None:
    path = write_mapper(isolated_env / "mappers")
    engine = Engine(load_config({"CHATFACE_HOME": str(isolated_env)}))
    [face] = encoded_faces(engine, 1)
    state = SessionState({"curly_hair": 0.5, "smile": 0.3})
    z0 = face.z_sem
    edited = engine.edit_latents(z0, state, "tiny")
    mapper_residual = 0.5 * load_network(path)(z0)
    smile = engine.registry.provider_for("smile", "tiny")
    smile_residual = smile.edit(z0, "smile", 0.3) - z0
    torch.testing.assert_close(edited, z0 + mapper_residual + smile_residual)
    assert float(mapper_residual.norm()) > 0.1 and float(smile_residual.norm()) > 0.1

    both = engine.render_latents(face, state, backend="tiny", steps=3)
    smile_only = engine.render_latents(face, SessionState({"smile": 0.3}), backend="tiny", steps=3)
    assert both.shape == (1, 3, 64, 64) and bool(torch.isfinite(both).all())
    assert float((both - smile_only).abs().mean()) > 1e-3  # the mapper changed the render

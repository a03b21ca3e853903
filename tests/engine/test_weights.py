"""Weights: import official-format checkpoints safely, verify, list, remove, download.

Every checkpoint here is built in the test with the official key names (taken from a
tiny ``DiffAEModel``) and random values; downloads go to a local HTTP server.
"""

from __future__ import annotations

import hashlib
import json
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from chatface.engine import weights
from chatface.engine.editor import Engine
from chatface.engine.weights import UnsafeCheckpointError, WeightsError, WeightsInfo
from chatface.errors import WeightsMissingError
from chatface.plugins.celeba_directions import CLASSIFIER_FILE
from chatface.plugins.diffae.weights import CONFIG_FILE, MODEL_FILE, STATS_FILE

TINY = {
    "image_size": 32,
    "model_channels": 32,
    "channel_mult": [1, 2],
    "enc_channel_mult": [1, 2, 2],
    "embed_channels": 32,
    "attention_resolutions": [16],
    "num_heads": 1,
    "num_res_blocks": 1,
}
# The official training settings that describe TINY (hyper_parameters of a Lightning file).
TINY_HPARAMS = {
    "name": "tiny",
    "img_size": 32,
    "net_ch": 32,
    "net_ch_mult": [1, 2],
    "net_enc_channel_mult": [1, 2, 2],
    "net_beatgans_embed_channels": 32,
    "net_attn": [16],
    "net_beatgans_attn_head": 1,
    "net_num_res_blocks": 1,
    "net_enc_num_res_blocks": 1,
}


def import_weights(
    path: Path | str,
    *,
    name: str | None = None,
    config_path: Path | None = None,
    stats_path: Path | None = None,
    trust_pickle: bool = False,
) -> WeightsInfo:
    """`chatface weights import` in Python: the owning plugin's importer picks it up."""
    options = {"config": config_path, "stats": stats_path}
    return Engine().import_weights(path, name=name, options=options, trust_pickle=trust_pickle)


class TrainConfigStandIn:
    """A custom object in hyper_parameters: torch.load(weights_only=True) refuses it."""

    def __init__(self) -> None:
        self.name = "tiny"
        self.lr = 1e-4


def tiny_config():  # type: ignore[no-untyped-def]
    from chatface.plugins.diffae.config import DiffAEConfig

    return DiffAEConfig.from_dict(TINY)


def random_state(seed: int) -> dict[str, torch.Tensor]:
    """Random values under the official key names of the tiny network."""
    from chatface.plugins.diffae.model import DiffAEModel

    generator = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in DiffAEModel(tiny_config()).state_dict().items()}
    return {k: torch.randn(shape, generator=generator) for k, shape in shapes.items()}


@dataclass
class Official:
    ckpt: Path
    ema: dict[str, torch.Tensor]
    raw: dict[str, torch.Tensor]
    conds_mean: torch.Tensor
    conds_std: torch.Tensor


def _lightning_callback_class() -> type:
    """A class from a module that will not exist when the checkpoint is read back."""
    module = types.ModuleType("fake_lightning_callbacks")

    class ModelCheckpoint:
        def __init__(self) -> None:
            self.best_model_path = "last.ckpt"

    ModelCheckpoint.__module__ = module.__name__
    ModelCheckpoint.__qualname__ = "ModelCheckpoint"
    module.ModelCheckpoint = ModelCheckpoint  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    return ModelCheckpoint


def make_official(folder: Path, *, pickled_objects: bool = True) -> Official:
    """checkpoints/<folder>/last.ckpt + latent.pkl in the official layout."""
    folder.mkdir(parents=True, exist_ok=True)
    ema, raw = random_state(1), random_state(2)
    state = {f"model.{k}": v for k, v in raw.items()}
    state |= {f"ema_model.{k}": v for k, v in ema.items()}
    state["ema_model.latent_net.layers.0.weight"] = torch.randn(8, 32)
    state["x_T"] = torch.randn(2, 3, 32, 32)
    checkpoint = {
        "epoch": 3,
        "global_step": 1200,
        "pytorch-lightning_version": "1.4.5",
        "state_dict": state,
        "optimizer_states": [
            {"state": {0: {"step": 5, "exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 1e-4}]}
        ],
        "lr_schedulers": [],
        "hyper_parameters": dict(TINY_HPARAMS),
    }
    try:
        if pickled_objects:
            callback = _lightning_callback_class()
            checkpoint["hyper_parameters"] = {"conf": TrainConfigStandIn()}
            checkpoint["callbacks"] = {callback: {"best_model_path": "last.ckpt"}}
        torch.save(checkpoint, folder / "last.ckpt")
    finally:  # so that loading it back cannot import the callback's module
        sys.modules.pop("fake_lightning_callbacks", None)
    mean, std = torch.randn(32), torch.rand(32) + 0.5
    torch.save(
        {"conds": torch.randn(10, 32), "conds_mean": mean, "conds_std": std}, folder / "latent.pkl"
    )
    return Official(folder / "last.ckpt", ema, raw, mean, std)


def make_classifier(folder: Path) -> dict[str, torch.Tensor]:
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        "classifier.weight": torch.randn(40, 32),
        "classifier.bias": torch.randn(40),
        "ema_classifier.weight": torch.randn(40, 32),
        "ema_classifier.bias": torch.randn(40),
        "conds_mean": torch.randn(1, 32),  # the official ClsModel keeps [1, D] buffers
        "conds_std": torch.rand(1, 32) + 0.5,
    }
    torch.save(
        {"state_dict": state, "epoch": 1, "hyper_parameters": {"lr": 1e-3}}, folder / "last.ckpt"
    )
    return state


def write_config(path: Path, config: dict | None = None) -> Path:
    path.write_text(json.dumps(config or TINY))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def official(tmp_path: Path) -> Official:
    return make_official(tmp_path / "checkpoints" / "tiny")


@pytest.fixture
def tiny_json(tmp_path: Path) -> Path:
    return write_config(tmp_path / "tiny.json")


# --- importing ---------------------------------------------------------------------------


def test_import_refuses_a_checkpoint_that_needs_unpickling(official: Official, tiny_json) -> None:
    with pytest.raises(UnsafeCheckpointError) as err:
        import_weights(official.ckpt, config_path=tiny_json)
    message = str(err.value)
    assert "--trust-pickle" in message and "code" in message
    assert "TrainConfigStandIn" in message  # names what the file wants to run
    assert weights.list_weights() == []
    assert not weights.weights_root().exists() or not any(weights.weights_root().iterdir())


def test_trusted_import_takes_the_ema_weights_and_loads_strictly(
    official: Official, tiny_json
) -> None:
    from chatface.plugins.diffae.model import DiffAEModel

    info = import_weights(official.ckpt, config_path=tiny_json, trust_pickle=True)
    assert info.name == "tiny" and info.kind == "autoencoder"
    assert any("latent_net" in note for note in info.notes)
    state = load_file(info.path / MODEL_FILE)
    model = DiffAEModel(tiny_config())
    model.load_state_dict(state, strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, official.ema[key]), key
    assert not torch.equal(state["out.2.weight"], official.raw["out.2.weight"])
    assert json.loads((info.path / CONFIG_FILE).read_text()) == TINY
    with safe_open(str(info.path / MODEL_FILE), "pt") as fh:
        assert json.loads(fh.metadata()["config"]) == TINY
    stats = load_file(info.path / STATS_FILE)  # found next to last.ckpt
    assert torch.equal(stats["conds_mean"], official.conds_mean)
    assert torch.equal(stats["conds_std"], official.conds_std)


def test_manifest_records_the_sha256_of_every_file(official: Official, tiny_json) -> None:
    info = import_weights(official.ckpt, config_path=tiny_json, trust_pickle=True)
    manifest = json.loads((info.path / weights.MANIFEST_FILE).read_text())
    assert set(manifest["files"]) == {MODEL_FILE, CONFIG_FILE, STATS_FILE}
    for file, digest in manifest["files"].items():
        assert sha256(info.path / file) == digest
    assert manifest["source"] == {"file": "last.ckpt", "sha256": sha256(official.ckpt)}
    assert manifest["kind"] == "autoencoder" and manifest["chatface_version"]
    assert manifest["imported_at"].endswith("+00:00")


def test_the_same_checkpoint_gives_the_same_files(official: Official, tiny_json) -> None:
    first = import_weights(official.ckpt, name="a", config_path=tiny_json, trust_pickle=True)
    second = import_weights(official.ckpt, name="b", config_path=tiny_json, trust_pickle=True)
    assert first.files == second.files


def test_config_is_read_from_safe_hyper_parameters(tmp_path: Path) -> None:
    made = make_official(tmp_path / "checkpoints" / "tiny", pickled_objects=False)
    info = import_weights(made.ckpt)  # no --config, no --trust-pickle needed
    assert json.loads((info.path / CONFIG_FILE).read_text()) == TINY
    assert torch.equal(load_file(info.path / MODEL_FILE)["out.2.weight"], made.ema["out.2.weight"])


def test_plain_state_dict_and_safetensors_are_imported(tmp_path: Path, tiny_json) -> None:
    ema = random_state(3)
    torch.save(ema, tmp_path / "exported.pth")
    info = import_weights(tmp_path / "exported.pth", config_path=tiny_json)
    assert info.name == "exported"
    assert any("no latent statistics" in note for note in info.notes)
    assert torch.equal(
        load_file(info.path / MODEL_FILE)["input_blocks.0.0.weight"],
        ema["input_blocks.0.0.weight"],
    )

    # Our own model.safetensors carries its config, so it imports without --config.
    copy = tmp_path / "copy.bin"
    copy.write_bytes((info.path / MODEL_FILE).read_bytes())
    again = import_weights(copy, name="again")
    assert json.loads((again.path / CONFIG_FILE).read_text()) == TINY
    first, second = (
        load_file(info.path / MODEL_FILE),
        load_file(again.path / MODEL_FILE),
    )
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_statistics_named_latent_ckpt_are_found_too(tmp_path: Path, tiny_json) -> None:
    # The official README calls the statistics file latent.ckpt, the code latent.pkl.
    folder = tmp_path / "checkpoints" / "tiny"
    folder.mkdir(parents=True)
    torch.save(random_state(6), folder / "ema.pt")
    mean = torch.randn(32)
    torch.save({"conds_mean": mean, "conds_std": torch.ones(32)}, folder / "latent.ckpt")
    info = import_weights(folder / "ema.pt", config_path=tiny_json)
    assert torch.equal(load_file(info.path / STATS_FILE)["conds_mean"], mean)


def test_custom_config_json_decides_the_network(tmp_path: Path) -> None:
    from chatface.plugins.diffae.config import DiffAEConfig
    from chatface.plugins.diffae.model import DiffAEModel

    wide = dict(TINY, channel_mult=[1, 2, 2])
    with torch.device("meta"):
        keys = DiffAEModel(DiffAEConfig.from_dict(wide)).state_dict()
    state = {k: torch.randn(v.shape) for k, v in keys.items()}
    torch.save(state, tmp_path / "wide.pt")
    with pytest.raises(WeightsError, match="Cannot tell the network configuration.*--config"):
        import_weights(tmp_path / "wide.pt")
    with pytest.raises(WeightsError, match="do not fit"):
        import_weights(tmp_path / "wide.pt", config_path=write_config(tmp_path / "t.json"))
    info = import_weights(tmp_path / "wide.pt", config_path=write_config(tmp_path / "w.json", wide))
    assert json.loads((info.path / CONFIG_FILE).read_text()) == wide
    DiffAEModel(DiffAEConfig.from_dict(wide)).load_state_dict(load_file(info.path / MODEL_FILE))


def test_missing_unexpected_and_misshapen_keys_are_named(tmp_path: Path, tiny_json) -> None:
    state = random_state(4)
    del state["out.2.bias"]
    state["surprise.weight"] = torch.zeros(1)
    state["out.2.weight"] = torch.zeros(1, 2, 3, 3)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(WeightsError) as err:
        import_weights(tmp_path / "bad.pt", config_path=tiny_json)
    message = str(err.value)
    assert "missing (1): out.2.bias" in message
    assert "unexpected (1): surprise.weight" in message
    assert "out.2.weight (1, 2, 3, 3)" in message
    assert weights.list_weights() == []


def test_a_preset_name_brings_its_config(official: Official) -> None:
    # The tiny weights do not fit the real ffhq256 network: the preset was used and checked.
    with pytest.raises(WeightsError, match="preset ffhq256_autoenc"):
        import_weights(official.ckpt, name="ffhq256_autoenc", trust_pickle=True)


def test_latent_statistics_of_another_model_are_refused(official: Official, tmp_path, tiny_json):
    torch.save({"conds_mean": torch.zeros(512), "conds_std": torch.ones(512)}, tmp_path / "big.pkl")
    with pytest.raises(WeightsError, match="width 512"):
        import_weights(
            official.ckpt, config_path=tiny_json, stats_path=tmp_path / "big.pkl", trust_pickle=True
        )


def test_classifier_checkpoint(tmp_path: Path) -> None:
    state = make_classifier(tmp_path / "checkpoints" / "ffhq256_autoenc_cls")
    info = import_weights(tmp_path / "checkpoints" / "ffhq256_autoenc_cls" / "last.ckpt")
    assert info.name == "ffhq256_autoenc_cls" and info.kind == "classifier"
    tensors = load_file(info.path / CLASSIFIER_FILE)
    assert set(tensors) == {"classifier.weight", "classifier.bias", "conds_mean", "conds_std"}
    # The official manipulation demo uses `classifier`, not `ema_classifier`.
    assert torch.equal(tensors["classifier.weight"], state["classifier.weight"])
    assert torch.equal(tensors["conds_mean"], state["conds_mean"][0])
    assert tensors["conds_std"].shape == (32,)
    assert json.loads((info.path / weights.MANIFEST_FILE).read_text())["files"] == {
        CLASSIFIER_FILE: sha256(info.path / CLASSIFIER_FILE)
    }


def test_classifier_without_statistics_is_refused(tmp_path: Path) -> None:
    state = {"ema_classifier.weight": torch.randn(40, 32), "ema_classifier.bias": torch.randn(40)}
    torch.save({"state_dict": state}, tmp_path / "cls.ckpt")
    with pytest.raises(WeightsError, match="--stats"):
        import_weights(tmp_path / "cls.ckpt")


def test_files_that_are_not_checkpoints(tmp_path: Path) -> None:
    (tmp_path / "notes.pt").write_text("hello, not a checkpoint")
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint"):
        import_weights(tmp_path / "notes.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(WeightsError, match="neither a Lightning checkpoint"):
        import_weights(tmp_path / "list.pt")
    with pytest.raises(WeightsError, match="No such file"):
        import_weights(tmp_path / "absent.ckpt")
    with pytest.raises(WeightsError, match="not a valid weights name"):
        import_weights(tmp_path / "list.pt", name="../escape")


# --- keeping weights intact --------------------------------------------------------------


def test_an_interrupted_import_keeps_the_previous_version(
    official: Official, tiny_json, tmp_path, monkeypatch
) -> None:
    before = import_weights(official.ckpt, config_path=tiny_json, trust_pickle=True)
    torch.save(random_state(9), tmp_path / "newer.pt")

    def interrupted(staging: Path, target: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(weights, "install_from_staging", interrupted)
    with pytest.raises(KeyboardInterrupt):
        import_weights(tmp_path / "newer.pt", name="tiny", config_path=tiny_json)
    assert weights.verify("tiny").ok
    assert weights.get_info("tiny").files == before.files
    assert [p.name for p in weights.weights_root().iterdir()] == ["tiny"]  # no staging left


def test_a_crash_between_the_two_renames_is_repaired(official: Official, tiny_json) -> None:
    info = import_weights(official.ckpt, config_path=tiny_json, trust_pickle=True)
    info.path.rename(info.path.with_name(".old~tiny~dead"))
    assert [i.name for i in weights.list_weights()] == ["tiny"]
    assert weights.verify("tiny").ok


def test_verify_detects_changed_and_missing_files(official: Official, tiny_json) -> None:
    info = import_weights(official.ckpt, config_path=tiny_json, trust_pickle=True)
    assert weights.verify("tiny").ok
    model = info.path / MODEL_FILE
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))
    (info.path / STATS_FILE).unlink()
    report = weights.verify("tiny")
    assert not report.ok
    assert report.mismatched == (MODEL_FILE,)
    assert report.missing == (STATS_FILE,)
    with pytest.raises(WeightsMissingError, match="incomplete"):
        weights.require("tiny")


def test_list_remove_and_require(official: Official, tiny_json) -> None:
    import_weights(official.ckpt, config_path=tiny_json, trust_pickle=True)
    import_weights(official.ckpt, name="tiny2", config_path=tiny_json, trust_pickle=True)
    assert [i.name for i in weights.list_weights()] == ["tiny", "tiny2"]
    assert weights.require("tiny") == weights.weights_dir("tiny")
    assert weights.list_weights()[0].size_bytes > 0
    removed = weights.remove("tiny")
    assert not removed.exists()
    assert [i.name for i in weights.list_weights()] == ["tiny2"]
    with pytest.raises(WeightsMissingError) as err:
        weights.require("tiny")
    assert "`chatface weights download tiny`" in str(err.value)
    assert f"`{weights.import_command('tiny')}`" in str(err.value)
    with pytest.raises(WeightsMissingError):
        weights.remove("tiny")

"""Downloading declared weights, all offline: a fake Hugging Face Hub on 127.0.0.1 stands
in for the mirror, gdown for Google Drive, a plain file server for a configured mirror.

The real ``ffhq256_autoenc`` preset is a 168M-parameter network; a tiny one stands in
under its name, so the real specs, sources and importers are what is tested.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from chatface.engine import weights
from chatface.engine.editor import Engine
from chatface.engine.weights import DownloadError, UnsafeCheckpointError
from chatface.plugins.diffae.weights import CONFIG_FILE, MODEL_FILE, STATS_FILE
from tests.engine.test_weights import (
    make_classifier,
    make_official,
    random_state,
    tiny_config,
    write_config,
)
from tests.fakes.hub import FakeHub, serve

MIRROR = "alexkrz/diffae-ffhq256"  # the spec's Hugging Face source


def torch_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def tiny_preset(monkeypatch) -> None:
    from chatface.plugins.diffae import config

    monkeypatch.setitem(config.PRESETS, "ffhq256_autoenc", tiny_config())


@pytest.fixture
def hub(monkeypatch, tmp_path) -> Iterator[FakeHub]:
    """The mirror as its owner might have laid it out, with unrelated files around."""
    ema = random_state(5)
    stats = {"conds": torch.randn(4, 32), "conds_mean": torch.randn(32),
             "conds_std": torch.rand(32) + 0.5}  # fmt: skip
    make_classifier(tmp_path / "cls")
    repo = {
        "README.md": b"# DiffAE weights\n",
        "ffhq256_autoenc/diffae_ema_state_dict.pt": torch_bytes(ema),
        "ffhq256_autoenc/latent.pkl": torch_bytes(stats),
        "ffhq256_autoenc_cls/last.ckpt": (tmp_path / "cls" / "last.ckpt").read_bytes(),
        "horse256_autoenc/last.ckpt": b"another model: never downloaded",
    }
    hub = FakeHub(repos={MIRROR: repo})
    hub.ema, hub.stats = ema, stats  # type: ignore[attr-defined]
    with serve(hub):
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        yield hub


def test_download_finds_checks_and_installs_the_mirrors_files(hub: FakeHub) -> None:
    from chatface.plugins.diffae.model import DiffAEModel

    seen: list[tuple[str, int, int | None]] = []
    info = Engine().download_weights("ffhq256_autoenc", progress=lambda *a: seen.append(a))
    assert info.kind == "autoencoder" and weights.verify("ffhq256_autoenc").ok
    data = hub.repos[MIRROR]["ffhq256_autoenc/diffae_ema_state_dict.pt"]
    assert info.source == {
        "from": f"{MIRROR} on Hugging Face (community mirror)",
        "file": "ffhq256_autoenc/diffae_ema_state_dict.pt",
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    model = DiffAEModel(tiny_config())
    model.load_state_dict(load_file(info.path / MODEL_FILE), strict=True)
    assert torch.equal(model.state_dict()["out.2.weight"], hub.ema["out.2.weight"])
    stats = load_file(info.path / STATS_FILE)  # latent.pkl beside it was found and used
    assert torch.equal(stats["conds_mean"], hub.stats["conds_mean"])
    fetched = {path for method, path, _ in hub.requests if "/resolve/" in path}
    assert fetched == {
        f"/{MIRROR}/resolve/main/ffhq256_autoenc/diffae_ema_state_dict.pt",
        f"/{MIRROR}/resolve/main/ffhq256_autoenc/latent.pkl",
    }  # not the classifier, not another model, not the README
    assert seen[-1][1] == seen[-1][2] and seen[-1][2] > 0
    assert not (weights.weights_root() / ".downloads" / "ffhq256_autoenc").exists()


def test_the_classifier_is_recognised_in_the_same_mirror(hub: FakeHub) -> None:
    info = Engine().download_weights("ffhq256_autoenc_cls")
    assert info.kind == "classifier" and info.source["file"] == "ffhq256_autoenc_cls/last.ckpt"


def test_an_interrupted_download_resumes_after_a_restart(hub: FakeHub) -> None:
    path = f"/{MIRROR}/resolve/main/ffhq256_autoenc/diffae_ema_state_dict.pt"
    size = len(hub.repos[MIRROR]["ffhq256_autoenc/diffae_ema_state_dict.pt"])
    hub.cut_after[path] = size // 3
    with pytest.raises(DownloadError, match="interrupted.*Run the same command again"):
        Engine().download_weights("ffhq256_autoenc")
    assert not weights.list_weights()
    # A new process (a new Engine): the .part is continued, not started again.
    info = Engine().download_weights("ffhq256_autoenc")
    ranges = [r for method, p, r in hub.requests if p == path]
    assert ranges == [None, f"bytes={size // 3}-"]
    assert hub.served_bytes(path) == size  # every byte crossed the wire once
    assert weights.verify(info.name).ok


def test_a_sha256_mismatch_installs_nothing(hub: FakeHub, tmp_path) -> None:
    hub.wrong_sha256.add("ffhq256_autoenc/diffae_ema_state_dict.pt")
    with pytest.raises(DownloadError, match="does not match its expected sha256"):
        Engine().download_weights("ffhq256_autoenc")
    assert not weights.list_weights()
    part = list((weights.weights_root() / ".downloads").rglob("*.part"))
    assert part == []  # bad bytes are not kept for a resume
    # An installed version survives a bad download of the same name.
    official = make_official(tmp_path / "checkpoints" / "ffhq256_autoenc")
    before = Engine().import_weights(official.ckpt, trust_pickle=True)
    with pytest.raises(DownloadError):
        Engine().download_weights("ffhq256_autoenc")
    assert weights.get_info("ffhq256_autoenc").files == before.files
    assert weights.verify("ffhq256_autoenc").ok


def test_unreachable_sources_fail_fast_and_name_the_import_command(monkeypatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    started = time.monotonic()
    with pytest.raises(DownloadError) as err:
        Engine().download_weights("ffhq256_autoenc")
    assert time.monotonic() - started < 20
    message = str(err.value)
    assert f"{MIRROR} on Hugging Face" in message and "Google Drive" in message
    assert weights.import_command("ffhq256_autoenc") in message
    assert "github.com/phizaz/diffae" in message


def test_google_drive_files_need_trust_for_pickles(monkeypatch, tmp_path) -> None:
    """The authors' folder holds Lightning pickles: refused, then imported when trusted."""
    import gdown

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # skip the mirror: Drive is the next source
    official = make_official(tmp_path / "drive")
    calls = []

    def download_folder(*, id: str, output: str, quiet: bool, resume: bool) -> list[str]:
        calls.append((id, resume))
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        for name in ("last.ckpt", "latent.pkl"):
            (out / name).write_bytes((official.ckpt.parent / name).read_bytes())
        return [str(out / "last.ckpt"), str(out / "latent.pkl")]

    monkeypatch.setattr(gdown, "download_folder", download_folder)
    with pytest.raises(UnsafeCheckpointError) as err:
        Engine().download_weights("ffhq256_autoenc")
    assert "Google Drive (the authors' Google Drive)" in str(err.value)
    assert "--trust-pickle" in str(err.value)
    info = Engine().download_weights("ffhq256_autoenc", trust_pickle=True)
    assert calls == [("1-5zfxT6Gl-GjxM7z9ZO2AHlB70tfmF6V", True)] * 2
    assert info.source["from"].startswith("1-5zfxT6Gl-GjxM7z9ZO2AHlB70tfmF6V on Google Drive")
    assert torch.equal(
        load_file(info.path / MODEL_FILE)["out.2.weight"], official.ema["out.2.weight"]
    )


def test_a_configured_mirror_with_sha256sums_comes_first(monkeypatch, tmp_path) -> None:
    folder = tmp_path / "published"
    folder.mkdir()
    ema = random_state(7)
    save_file(ema, folder / MODEL_FILE, {"config": json.dumps(tiny_config().to_dict())})
    write_config(folder / CONFIG_FILE)
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    sums = "".join(f"{hashlib.sha256(b).hexdigest()}  {n}\n" for n, b in files.items())
    hub = FakeHub(files={f"/w/ffhq256_autoenc/{n}": b for n, b in files.items()})
    hub.files["/w/ffhq256_autoenc/SHA256SUMS"] = sums.encode()
    with serve(hub):
        monkeypatch.setenv("CHATFACE_WEIGHTS_BASE_URL", f"{hub.url}/w")
        info = Engine().download_weights("ffhq256_autoenc")
        assert info.source["from"] == f"{hub.url}/w"
        assert torch.equal(load_file(info.path / MODEL_FILE)["out.2.weight"], ema["out.2.weight"])
        hub.files["/w/ffhq256_autoenc/SHA256SUMS"] = sums.replace(sums[:8], "00000000").encode()
        with pytest.raises(DownloadError, match="does not match"):
            Engine().download_weights("ffhq256_autoenc", source=f"{hub.url}/w")


def test_sources_are_parsed_and_unknown_names_refused() -> None:
    from chatface.engine.weights_download import parse_source

    assert parse_source("hf://owner/repo@v1").location == "owner/repo@v1"
    assert parse_source("gdrive://abc").kind == "gdrive"
    assert parse_source("https://example.org/w/").location == "https://example.org/w"
    with pytest.raises(DownloadError, match="hf://"):
        parse_source("ftp://example.org/w")
    with pytest.raises(weights.WeightsError, match="No plugin declares weights called 'nope'"):
        Engine().download_weights("nope")


def test_a_flat_layout_is_found_without_fetching_the_other_models(monkeypatch, tmp_path) -> None:
    """Files named unlike the weights: the classifier (named after another set) is tried
    last, so the autoencoder download fetches only its own file and latent.pkl."""
    make_classifier(tmp_path / "cls")
    stats = {"conds_mean": torch.randn(32), "conds_std": torch.rand(32) + 0.5}
    repo = {
        "cls/ffhq256_autoenc_cls.ckpt": (tmp_path / "cls" / "last.ckpt").read_bytes(),
        "diffae_ffhq256_ema.pt": torch_bytes(random_state(3)),
        "latent.pkl": torch_bytes(stats),
    }
    with serve(FakeHub(repos={MIRROR: repo})) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        engine = Engine()
        info = engine.download_weights("ffhq256_autoenc")
        assert info.source["file"] == "diffae_ffhq256_ema.pt"
        fetched = [p.rsplit("/", 1)[-1] for _, p, _ in hub.requests if "/resolve/" in p]
        assert fetched == ["latent.pkl", "diffae_ffhq256_ema.pt"]
        assert torch.equal(load_file(info.path / STATS_FILE)["conds_std"], stats["conds_std"])
        assert engine.download_weights("ffhq256_autoenc_cls").kind == "classifier"

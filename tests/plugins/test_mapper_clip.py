"""The CLIP weights the mapper plugin declares: downloaded from a fake Hub, checked
strictly against open_clip's network, loaded back without any network access.

A tiny CLIP (random weights) stands in for ViT-B/32 under the real preset's name.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
import torch
from safetensors.torch import save

from chatface.engine import weights
from chatface.engine.editor import Engine
from chatface.engine.weights import WeightsError
from chatface.plugins.mapper import clip
from tests.fakes.hub import FakeHub, serve

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
}
REPO = "timm/vit_base_patch32_clip_224.openai"


@pytest.fixture
def tiny(monkeypatch) -> torch.nn.Module:
    preset = {**clip.PRESETS[clip.CLIP_NAME], "model_cfg": TINY_CLIP}
    preset.pop("model")
    monkeypatch.setitem(clip.PRESETS, clip.CLIP_NAME, preset)
    torch.manual_seed(0)
    return clip.build(preset).eval()


@pytest.fixture
def hub(monkeypatch, tiny) -> Iterator[FakeHub]:
    state = {k: v.contiguous() for k, v in tiny.state_dict().items()}
    pickled = io.BytesIO()
    torch.save(state, pickled)
    repo = {
        "open_clip_pytorch_model.bin": pickled.getvalue(),
        "open_clip_model.safetensors": save(state),
        "open_clip_config.json": b"{}",
    }
    with serve(FakeHub(repos={REPO: repo})) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        yield hub


def test_clip_downloads_and_loads_back_the_same_model(hub, tiny) -> None:
    assert clip.CLIP_NAME in Engine().weights_specs()
    info = Engine().download_weights(clip.CLIP_NAME)
    assert info.kind == "clip" and info.source["file"] == "open_clip_model.safetensors"
    fetched = [p.rsplit("/", 1)[-1] for _, p, _ in hub.requests if "/resolve/" in p]
    assert fetched == ["open_clip_model.safetensors"]  # the pickle was never needed
    model, config = clip.load_clip()
    assert config["mean"] == clip.PRESETS[clip.CLIP_NAME]["mean"]
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.encode_image(images), tiny.encode_image(images))
    assert weights.verify(clip.CLIP_NAME).ok


def test_a_clip_of_another_shape_is_refused(tiny, tmp_path) -> None:
    state = {k: v.clone() for k, v in tiny.state_dict().items()}
    state["visual.proj"] = torch.zeros(32, 8)
    torch.save(state, tmp_path / "clip.pt")
    with pytest.raises(WeightsError, match="shape.*visual.proj"):
        Engine().import_weights(tmp_path / "clip.pt", name=clip.CLIP_NAME)
    assert not weights.list_weights()

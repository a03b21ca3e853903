"""Training mapping networks on tiny models: tiny backend, tiny CLIP, tiny identity network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from chatface.config import load_config
from chatface.engine.editor import Engine
from chatface.errors import ChatFaceError
from chatface.plugins.mapper.objective import Objective
from chatface.plugins.mapper.train import CHECKPOINT, TrainSettings, train
from chatface.plugins.mapper.train_data import TrainingFaces

# The fast configuration: one-step x0 renders in the loss, two-step previews.
FAST = {
    "CHATFACE_ENGINE_BACKEND": "tiny",
    "CHATFACE_IDENTITY_MODEL": "tiny",
    "CHATFACE_METHOD_CLIP_MODEL": "tiny",
    "CHATFACE_METHOD_LOSS_RENDER": "x0",
    "CHATFACE_RENDER_STEPS": "2",
    "CHATFACE_RENDER_ENCODE_STEPS": "2",
}
PROMPTS = {"source": "a photo of a face", "target": "a photo of a face with curly hair"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def engine(monkeypatch) -> Engine:
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    return Engine(load_config())


def random_faces(engine: Engine, count: int) -> TrainingFaces:
    """``count`` random images encoded by the tiny backend (no face detection needed)."""
    backend = engine.backend("tiny")
    generator = torch.Generator().manual_seed(5)
    images = torch.rand(count, 3, backend.image_size, backend.image_size, generator=generator)
    with torch.no_grad():
        latents = backend.encode(images * 2 - 1, steps=2)
    return TrainingFaces(latents, images * 2 - 1, "tiny", backend.weights_sha256)


def settings(engine: Engine, **values: object) -> TrainSettings:
    values = {"attribute": "curly_hair", "backend": "tiny", "batch": 1, **PROMPTS, **values}
    return TrainSettings.from_config(engine.config, **values)


def run(engine: Engine, faces: TrainingFaces, out: Path, iters: int, **kwargs: object):  # type: ignore[no-untyped-def]
    chosen = settings(engine, **kwargs.pop("values", {}))  # type: ignore[arg-type]
    objective = Objective.from_config(engine, "tiny")
    return train(engine, faces, chosen, objective, iters=iters, out=out, **kwargs)  # type: ignore[arg-type]


def test_the_clip_directional_loss_falls(engine, tmp_path) -> None:
    result = run(engine, random_faces(engine, 1), tmp_path, iters=20)
    clip = [losses["clip"] for losses in result.history]
    assert len(clip) == 20 and result.iterations == 20
    first, last = sum(clip[:5]) / 5, sum(clip[-5:]) / 5
    assert last < first - 0.2, clip
    assert result.metrics()["clip"] == pytest.approx(sum(clip) / 20)


def test_six_iterations_equal_three_then_a_resume_and_three_more_bit_for_bit(
    engine, tmp_path
) -> None:
    faces = random_faces(engine, 3)
    straight = run(engine, faces, tmp_path / "straight", iters=6, values={"batch": 2})
    run(engine, faces, tmp_path / "resumed", iters=3, values={"batch": 2})
    torch.manual_seed(123)  # whatever the process did in between does not matter
    resumed = run(engine, faces, tmp_path / "resumed", iters=6, values={"batch": 2}, resume=True)
    assert resumed.history == straight.history and len(resumed.history) == 6
    a, b = straight.network.state_dict(), resumed.network.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert sorted(p.name for p in (tmp_path / "resumed").iterdir()) == [
        CHECKPOINT, "preview-000003.png", "preview-000006.png"
    ]  # fmt: skip


def test_a_resume_with_other_settings_or_an_unasked_restart_is_refused(engine, tmp_path) -> None:
    faces = random_faces(engine, 2)
    run(engine, faces, tmp_path, iters=1)
    with pytest.raises(ChatFaceError, match=r"trained with batch=1, seed=0, not batch=2, seed=7"):
        run(engine, faces, tmp_path, iters=2, values={"batch": 2, "seed": 7}, resume=True)
    with pytest.raises(ChatFaceError, match="add --resume to continue"):
        run(engine, faces, tmp_path, iters=2)
    with pytest.raises(ChatFaceError, match="trained on other faces"):
        run(engine, random_faces(engine, 3), tmp_path, iters=2, resume=True)
    with pytest.raises(ChatFaceError, match="no checkpoint to resume"):
        run(engine, faces, tmp_path / "empty", iters=2, resume=True)


def test_checkpoints_and_previews_come_every_n_iterations(engine, tmp_path) -> None:
    from PIL import Image

    faces = random_faces(engine, 2)
    run(engine, faces, tmp_path, iters=3, checkpoint_every=2, preview_every=2)
    previews = sorted(p.name for p in tmp_path.glob("preview-*.png"))
    assert previews == ["preview-000002.png", "preview-000003.png"]
    grid = Image.open(tmp_path / previews[0])
    assert grid.size == (2 * 64, 2 * 64)  # two faces: originals above, edits below
    top_left = torch.from_numpy(np.asarray(grid.crop((0, 0, 64, 64)), dtype=np.float32))
    original = (faces.images[0].permute(1, 2, 0) + 1) * 127.5
    assert (top_left - original).abs().max() <= 1
    checkpoint = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert checkpoint["iteration"] == 3 and len(checkpoint["history"]) == 3

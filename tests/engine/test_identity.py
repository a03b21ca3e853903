"""Identity after each render (tiny backend, tiny identity model) and the identity guard:
its extra renders in one model call, the state it keeps, and nothing at all when it is off
or the identity model's weights are missing."""

from __future__ import annotations

import hashlib
import logging

import pytest
import torch

from chatface.engine import identity
from chatface.engine.batch import RenderRequest
from chatface.engine.editor import Engine
from chatface.engine.photos import encode_image, to_image
from chatface.engine.types import Latents, SessionState
from tests.engine.test_batch import encoded_faces


@pytest.fixture
def tiny_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATFACE_IDENTITY_MODEL", "tiny")


def original_png(engine: Engine, face: Latents) -> bytes:
    """The face's unedited render, as a stored aligned crop would be."""
    crop = engine.render_latents(face, SessionState(), backend="tiny", steps=3)
    return encode_image(to_image(crop))[0]


def requests_for(engine: Engine, guard: bool = True) -> list[RenderRequest]:
    faces = encoded_faces(engine, 2)
    before = SessionState({"smile": 0.3})
    return [
        RenderRequest.make(
            f"job{i}", face, SessionState({"smile": 0.9, "age": -0.6}), steps=3,
            schedule="stable", backend="tiny", original=original_png(engine, face),
            previous=before if guard else None,
        )
        for i, face in enumerate(faces)
    ]  # fmt: skip


def count_model_calls(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    rows: list[int] = []
    render_group = engine.render_group

    def counted(backend, latents, z_edit, *args, **kwargs):  # type: ignore[no-untyped-def]
        rows.append(z_edit.shape[0])
        return render_group(backend, latents, z_edit, *args, **kwargs)

    monkeypatch.setattr(engine, "render_group", counted)
    return rows


def test_identity_is_measured_for_requests_with_an_original(tiny_identity, monkeypatch) -> None:
    engine = Engine()
    with_original = requests_for(engine)
    plain = RenderRequest.make("plain", encoded_faces(engine, 1)[0], SessionState({"smile": 1}),
                               steps=3, schedule="stable", backend="tiny")  # fmt: skip
    calls = count_model_calls(engine, monkeypatch)
    results = engine.render_batch([*with_original, plain])
    assert calls == [3]  # measuring renders nothing more
    assert [r.identity is None for r in results] == [False, False, True]
    for result in results[:2]:
        assert -1.0 <= result.identity <= 1.0  # type: ignore[operator]
        assert result.guarded is None and result.strengths == (("age", -0.6), ("smile", 0.9))
    # The unedited render is its own original: similarity 1 (PNG rounding aside).
    face = encoded_faces(engine, 1)[0]
    same = RenderRequest.make("same", face, SessionState(), steps=3, schedule="stable",
                              backend="tiny", original=original_png(engine, face))  # fmt: skip
    assert engine.render_batch([same])[0].identity == pytest.approx(1.0, abs=1e-3)


def test_the_guard_renders_two_lower_strengths_in_one_more_call(tiny_identity, monkeypatch):
    monkeypatch.setenv("CHATFACE_IDENTITY_GUARD", "true")
    monkeypatch.setenv("CHATFACE_IDENTITY_GUARD_THRESHOLD", "1.01")  # nothing passes
    engine = Engine()
    requests = requests_for(engine)
    calls = count_model_calls(engine, monkeypatch)
    results = engine.render_batch(requests)
    assert calls == [2, 4]  # both edits, then 2 lower strengths each, in one call
    for request, result in zip(requests, results, strict=True):
        guarded = result.guarded
        assert guarded is not None and guarded.renders == 2 and not guarded.passed
        assert guarded.scale == pytest.approx(1 / 3)  # none passed: the weakest
        # 1/3 of the way from the state before the turn (smile 0.3) to the edit.
        assert dict(result.strengths) == {"smile": 0.5, "age": -0.2}
        alone = engine.render_latents(
            Latents.from_bytes(request.latents), SessionState(dict(result.strengths)),
            backend="tiny", steps=3,
        )  # fmt: skip
        assert torch.allclose(result.crop, alone[0], atol=5e-4)  # the crop shows that state


def test_a_passing_edit_or_a_guard_that_is_off_changes_nothing(tiny_identity, monkeypatch):
    engine = Engine()
    requests = requests_for(engine)
    calls = count_model_calls(engine, monkeypatch)
    off = engine.render_batch(requests)
    monkeypatch.setenv("CHATFACE_IDENTITY_GUARD", "true")
    monkeypatch.setenv("CHATFACE_IDENTITY_GUARD_THRESHOLD", "-1")
    on = Engine().render_batch(requests)
    for results in (off, on):
        assert all(r.guarded is None for r in results)
        assert [r.strengths for r in results] == [r.strengths for r in requests]
    assert calls == [2]  # (the second engine's calls are not counted)
    assert [r.identity for r in on] == pytest.approx([r.identity for r in off], abs=1e-6)


def test_undo_and_reset_renders_are_never_guarded(tiny_identity, monkeypatch) -> None:
    monkeypatch.setenv("CHATFACE_IDENTITY_GUARD", "true")
    monkeypatch.setenv("CHATFACE_IDENTITY_GUARD_THRESHOLD", "1.01")
    engine = Engine()
    requests = requests_for(engine, guard=False)
    calls = count_model_calls(engine, monkeypatch)
    results = engine.render_batch(requests)
    assert calls == [2] and all(r.guarded is None for r in results)


def test_without_identity_weights_nothing_is_measured_and_it_is_logged_once(caplog) -> None:
    engine = Engine()  # identity.model is facenet, whose weights are not installed
    requests = requests_for(engine)
    with caplog.at_level(logging.WARNING, logger="chatface.engine.editor"):
        first = engine.render_batch(requests)
        second = engine.render_batch(requests)
    assert all(r.identity is None for r in first + second)
    warnings = [r for r in caplog.records if "Identity is not measured" in r.message]
    assert (
        len(warnings) == 1 and "chatface weights download facenet_vggface2" in warnings[0].message
    )


def test_measuring_can_be_turned_off(tiny_identity, monkeypatch) -> None:
    monkeypatch.setenv("CHATFACE_IDENTITY_MEASURE", "false")
    engine = Engine()
    assert all(r.identity is None for r in engine.render_batch(requests_for(engine)))


def test_guard_candidates_and_pick() -> None:
    candidates = identity.guard_candidates({"smile": 0.3, "age": 0.6}, {"smile": 0.9})
    assert [scale for scale, _ in candidates] == pytest.approx([2 / 3, 1 / 3])
    assert candidates[0][1] == {"smile": 0.7, "age": 0.2}
    assert candidates[1][1] == {"smile": 0.5, "age": 0.4}
    assert identity.pick([(2 / 3, 0.7), (1 / 3, 0.9)], 0.6) == 0  # the strongest that passes
    assert identity.pick([(2 / 3, 0.5), (1 / 3, 0.65)], 0.6) == 1
    assert identity.pick([(2 / 3, 0.1), (1 / 3, 0.2)], 0.6) == 1  # none: the weakest


def test_each_original_is_embedded_once(tiny_identity, monkeypatch) -> None:
    engine = Engine()
    requests = requests_for(engine, guard=False)
    model = engine.identity_model()
    rows: list[int] = []
    embed = model.embed
    monkeypatch.setattr(model, "embed", lambda images: rows.append(len(images)) or embed(images))
    first = engine.render_batch(requests)
    second = engine.render_batch(requests)
    assert rows == [4, 2]  # two originals and two renders; then the renders only
    assert [r.identity for r in second] == pytest.approx([r.identity for r in first], abs=1e-6)
    crops = [identity.decode_crop(r.original) for r in requests]  # measured without the cache
    alone = identity.similarities(model, crops, [r.crop for r in first])
    assert [r.identity for r in first] == pytest.approx(alone, abs=1e-5)


def test_original_embeddings_keep_only_the_most_recent() -> None:
    engine = Engine()
    model = engine.identity_model("tiny")
    kept = identity.OriginalEmbeddings(kept=1)
    pngs = [encode_image(to_image(torch.rand(3, 16, 16) * 2 - 1))[0] for _ in range(2)]
    edits = [torch.rand(3, 16, 16) * 2 - 1 for _ in range(2)]
    kept.similarities(model, "tiny", pngs, edits)
    assert [key[0] for key in kept._embeddings] == [hashlib.sha256(pngs[1]).hexdigest()]

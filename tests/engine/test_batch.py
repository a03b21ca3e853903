"""Data-only render requests, rendered in batches exactly as they would be alone."""

from __future__ import annotations

import pickle

import torch

from chatface.engine.batch import RenderRequest
from chatface.engine.editor import Engine
from chatface.engine.types import Latents, SessionState

# shared/specs/diffae.md: max abs error allowed for a render (float round-off only).
RENDER_TOLERANCE = 5e-4


def encoded_faces(engine: Engine, count: int) -> list[Latents]:
    backend = engine.backend("tiny")
    generator = torch.Generator().manual_seed(7)
    images = torch.rand(count, 3, backend.image_size, backend.image_size, generator=generator)
    latents = backend.encode(images * 2 - 1, steps=3)
    return [Latents(latents.z_sem[i : i + 1], latents.x_T[i : i + 1]) for i in range(count)]


def test_a_batch_of_three_faces_and_states_equals_each_rendered_alone() -> None:
    engine = Engine()
    faces = encoded_faces(engine, 3)
    states = [
        SessionState({"smile": 0.8}),
        SessionState({"age": -0.5, "eyeglasses": 1.0}),
        SessionState(),
    ]
    requests = [
        RenderRequest.make(f"job{i}", face, state, steps=4, schedule="stable", backend="tiny")
        for i, (face, state) in enumerate(zip(faces, states, strict=True))
    ]
    seen: list[tuple[int, int]] = []
    results = engine.render_batch(requests, progress=lambda done, total: seen.append((done, total)))
    assert [r.job_id for r in results] == ["job0", "job1", "job2"]
    assert all(r.batch_size == 3 for r in results)
    assert seen[-1] == (4, 4)  # one model call of 4 steps for the whole batch
    for face, state, result in zip(faces, states, results, strict=True):
        alone = engine.render_latents(face, state, backend="tiny", steps=4)[0]
        error = (result.crop - alone).abs().max().item()
        print(f"batched vs alone: max abs error {error:.3g}")
        assert error <= RENDER_TOLERANCE
    # The states really differ: the batch did not render one state three times.
    assert (results[0].crop - results[1].crop).abs().max() > 0.1


def test_groups_by_steps_and_schedule_and_keeps_the_order() -> None:
    engine = Engine()
    faces = encoded_faces(engine, 2)
    requests = [
        RenderRequest.make("a", faces[0], SessionState({"smile": 0.5}), steps=2,
                           schedule="stable", backend="tiny"),
        RenderRequest.make("b", faces[1], SessionState({"smile": 0.5}), steps=3,
                           schedule="constant", backend="tiny"),
        RenderRequest.make("c", faces[1], SessionState({"smile": 0.5}), steps=2,
                           schedule="stable", backend="tiny"),
    ]  # fmt: skip
    seen: list[tuple[int, int]] = []
    results = engine.render_batch(requests, progress=lambda d, t: seen.append((d, t)))
    assert [(r.job_id, r.batch_size) for r in results] == [("a", 2), ("b", 1), ("c", 2)]
    assert seen[-1] == (5, 5)  # 2 steps for the (2, stable) group, then 3 for the other
    alone = engine.render_latents(faces[1], SessionState({"smile": 0.5}), backend="tiny",
                                  steps=2)[0]  # fmt: skip
    assert (results[2].crop - alone).abs().max().item() <= RENDER_TOLERANCE


def test_requests_are_plain_data() -> None:
    engine = Engine()
    [face] = encoded_faces(engine, 1)
    request = RenderRequest.make("x", face, SessionState({"age": 0.3}), steps=2,
                                 schedule="stable", backend="tiny", user="alice")  # fmt: skip
    # Only bytes, strings and numbers: it pickles, compares and hashes as a value.
    assert pickle.loads(pickle.dumps(request)) == request
    assert hash(request) == hash(pickle.loads(pickle.dumps(request)))
    assert request.strengths == (("age", 0.3),)
    assert Latents.from_bytes(request.latents).z_sem.shape == face.z_sem.shape


def test_batches_take_the_fast_path_when_the_settings_ask(monkeypatch) -> None:
    """With reduced precision a batch renders each row close to its fp32 render (not
    bit for bit: bf16 kernels round differently per batch size)."""
    from chatface.plugins.diffae.bench import psnr

    faces = encoded_faces(Engine(), 2)
    states = [SessionState({"smile": 0.8}), SessionState({"age": -0.5})]
    requests = [
        RenderRequest.make(f"job{i}", face, state, steps=8, schedule="stable", backend="tiny")
        for i, (face, state) in enumerate(zip(faces, states, strict=True))
    ]
    exact = Engine().render_batch(requests)
    monkeypatch.setenv("CHATFACE_RENDER_PRECISION", "bf16")
    results = Engine().render_batch(requests)
    for fast, fp32 in zip(results, exact, strict=True):
        accuracy = psnr(fast.crop, fp32.crop)
        print(f"bf16 batch vs fp32: {accuracy:.1f} dB")
        assert 30 < accuracy < float("inf")  # inf: fp32 again, the fast path did not run


def batches(engine: Engine) -> list[int]:
    """Rows of each model call the engine makes from now on."""
    rows: list[int] = []
    render_group = engine.render_group

    def counted(backend, latents, z_edit, *args, **kwargs):  # type: ignore[no-untyped-def]
        rows.append(z_edit.shape[0])
        return render_group(backend, latents, z_edit, *args, **kwargs)

    engine.render_group = counted  # type: ignore[method-assign]
    return rows


def test_identical_requests_in_a_batch_are_rendered_once() -> None:
    engine = Engine()
    faces = encoded_faces(engine, 2)
    rows = batches(engine)
    smile = SessionState({"smile": 0.5})
    requests = [
        RenderRequest.make(name, face, state, steps=2, schedule="stable", backend="tiny",
                           user=name)
        for name, face, state in [
            ("a", faces[0], smile), ("b", faces[1], smile), ("c", faces[0], smile),
            ("d", faces[0], SessionState({"smile": 0.6})),
        ]
    ]  # fmt: skip
    results = engine.render_batch(requests)
    assert rows == [3]  # a and c are the same face and state: one row
    assert [r.job_id for r in results] == ["a", "b", "c", "d"]
    assert torch.equal(results[0].crop, results[2].crop)
    assert (results[0].crop - results[3].crop).abs().max() > 0  # not shared by mistake

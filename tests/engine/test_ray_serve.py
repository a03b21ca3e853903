"""Renders on Ray Serve (the replicas and the queue front over them) on a local Ray
instance: tiny backend, two replicas."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator

import pytest

from chatface.engine.batch import RenderRequest
from chatface.engine.editor import Engine
from chatface.engine.ray_replicas import renderer, replica_environ
from chatface.engine.types import SessionState
from chatface.errors import PluginError
from tests.engine.test_batch import RENDER_TOLERANCE, encoded_faces

STATES = [{"smile": 0.8}, {"age": -0.5}, {"eyeglasses": 1.0}, {}, {"smile": -0.3}, {"age": 0.4}]


def renders(faces: list, states: list[dict[str, float]], steps: int = 3) -> list[RenderRequest]:
    """One tiny-backend render per (face, state), each of its own user."""
    return [
        RenderRequest.make(f"job{i}", face, SessionState(state), steps=steps, schedule="stable",
                           backend="tiny", user=f"user{i}")
        for i, (face, state) in enumerate(zip(faces, states, strict=True))
    ]  # fmt: skip


def assert_rendered_as_alone(engine: Engine, requests: list, results: list) -> None:
    """Each result is what the engine renders of its request alone, within tolerance."""
    for request, result in zip(requests, results, strict=True):
        [alone] = engine.render_batch([request])
        error = (result.crop - alone.crop).abs().max().item()
        assert error <= RENDER_TOLERANCE, (request.job_id, error)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """One local Ray instance for the module (starting Ray takes seconds)."""
    import ray

    # Logical CPUs (a scheduling resource): room for both tests' replicas.
    ray.init(num_cpus=4, address="local", include_dashboard=False, log_to_driver=False)
    yield
    from ray import serve

    serve.shutdown()
    ray.shutdown()


def test_replicas_render_batches_as_the_engine_does(ray_cluster) -> None:
    from ray import serve

    engine = Engine()
    faces = encoded_faces(engine, len(STATES))
    requests = renders(faces, STATES)
    deployment = renderer(num_replicas=2, num_cpus=0.5, max_batch=4, batch_wait_s=0.2)
    handle = serve.run(
        deployment.bind(replica_environ(engine.config)), name="render", route_prefix=None
    )

    async def all_at_once():
        return await asyncio.gather(*(handle.remote(request) for request in requests))

    results = asyncio.run(all_at_once())
    assert [r.job_id for r in results] == [r.job_id for r in requests]
    # Requests sent together share model calls (two replicas, batches of up to 4).
    assert max(r.batch_size for r in results) > 1
    assert_rendered_as_alone(engine, requests, results)
    assert (results[0].crop - results[1].crop).abs().max() > 0.1  # the states differ
    serve.delete("render")


def test_queue_kind_ray_renders_through_the_replicas(ray_cluster, monkeypatch) -> None:
    """`queue.kind = "ray"`: the same queue front (fair, batching) over the replicas."""
    from chatface.engine.queue import make_queue

    monkeypatch.setenv("CHATFACE_QUEUE_KIND", "ray")
    monkeypatch.setenv("CHATFACE_QUEUE_RAY_REPLICAS", "2")
    monkeypatch.setenv("CHATFACE_QUEUE_BATCH_WINDOW_MS", "200")
    engine = Engine()
    faces = encoded_faces(engine, 3)
    requests = renders(faces, STATES[:3])

    async def chat():
        queue = await make_queue(engine)
        try:
            jobs = [await queue.submit(request) for request in requests]
            return [await job.result() for job in jobs], queue.stats()
        finally:
            await queue.close()

    results, stats = asyncio.run(chat())
    assert stats.done == 3 and stats.batches == 1  # the front took all three together
    assert_rendered_as_alone(engine, requests, results)


def test_an_unknown_queue_kind_is_a_config_error(monkeypatch) -> None:
    from chatface.engine.queue import make_queue
    from chatface.errors import ConfigError

    monkeypatch.setenv("CHATFACE_QUEUE_KIND", "celery")
    with pytest.raises(ConfigError, match="queue.kind"):
        asyncio.run(make_queue(Engine()))


def test_a_replica_killed_mid_render_loses_and_duplicates_nothing(
    ray_cluster, monkeypatch, caplog
) -> None:
    import ray

    from chatface.engine.queue import make_queue
    from chatface.engine.ray_serve import DEPLOYMENT

    monkeypatch.setenv("CHATFACE_QUEUE_KIND", "ray")
    monkeypatch.setenv("CHATFACE_QUEUE_RAY_REPLICAS", "2")
    engine = Engine()
    [face] = encoded_faces(engine, 1)
    # A long render (the tiny network, 250 steps), so the kill lands while it runs.
    [request] = renders([face], [{"smile": 0.5}], steps=250)

    def died() -> bool:
        return "its replica died" in caplog.text

    async def chat():
        queue = await make_queue(engine)
        try:
            job = await queue.submit(request)
            while queue.stats().running == 0:
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # rendering on one of the two replicas now
            replicas = [
                actor for actor in ray.util.list_named_actors(all_namespaces=True)
                if actor["name"].startswith(f"SERVE_REPLICA::{DEPLOYMENT}")
            ]  # fmt: skip
            assert len(replicas) == 2
            # Which replica renders is not known: kill them in turn until it was that one.
            for replica in replicas:
                ray.kill(ray.get_actor(replica["name"], namespace=replica["namespace"]))
                for _ in range(100):
                    if died() or job.state != "running":
                        break
                    await asyncio.sleep(0.05)
                if died():
                    break
            return await job.result(), queue.stats()
        finally:
            await queue.close()

    result, stats = asyncio.run(chat())
    # The killed replica's render was sent again, once, and the job answered once.
    assert caplog.text.count("its replica died") == 1
    assert (stats.done, stats.failed, stats.rendered) == (1, 0, 1)
    assert result.job_id == "job0" and result.crop.shape == (3, 64, 64)


def test_a_face_goes_to_the_object_store_once(ray_cluster, monkeypatch) -> None:
    from chatface.engine.ray_serve import connect

    monkeypatch.setenv("CHATFACE_QUEUE_KIND", "ray")
    monkeypatch.setenv("CHATFACE_QUEUE_RAY_REPLICAS", "2")
    engine = Engine()
    faces = encoded_faces(engine, 2)
    requests = renders([faces[i // 3] for i in range(len(STATES))], STATES)
    # A bad request (another process's, say) in the same replica batch fails alone.
    bad = dataclasses.replace(requests[0], job_id="bad", backend="nope")
    renderer = connect(engine)
    steps: list[tuple[int, int]] = []
    *results, failed = asyncio.run(renderer([*requests, bad], lambda *s: steps.append(s)))
    assert isinstance(failed, PluginError) and "nope" in str(failed)
    assert renderer.faces_sent == 2  # six renders of two faces
    assert steps[-1] == (7, 7)
    assert_rendered_as_alone(engine, requests, results)


def test_a_face_lost_from_the_object_store_is_sent_with_the_render(ray_cluster, caplog) -> None:
    """Ray keeps stored copies well (killing their owner does not lose them), so the
    replica's answer to a lost copy is played by a stand-in handle."""
    from ray.exceptions import OwnerDiedError

    from chatface.engine.ray_replicas import Parcel
    from chatface.engine.ray_serve import RayRenderer

    request = RenderRequest("job0", b"latents", (), 3, "stable", "tiny", "user0", original=b"crop")
    parcels: list[Parcel] = []

    class Handle:
        def options(self, method_name: str) -> Handle:
            assert method_name == "__call__"
            return self

        async def remote(self, parcel: Parcel) -> str:
            parcels.append(parcel)
            if parcel.face is not None:
                raise OwnerDiedError(parcel.face.hex(), None, "")
            return parcel.request.job_id

    renderer = RayRenderer(Handle())
    assert asyncio.run(renderer([request], lambda *step: None)) == ["job0"]
    assert "its face left Ray's object store" in caplog.text
    assert parcels[0].request.latents == b"" and parcels[1].request == request
    assert not renderer._refs  # the lost copy is forgotten: the next render stores it anew


def test_several_front_batches_render_at_once_on_the_replicas(ray_cluster, monkeypatch) -> None:
    from chatface.engine.queue import make_queue

    monkeypatch.setenv("CHATFACE_QUEUE_KIND", "ray")
    monkeypatch.setenv("CHATFACE_QUEUE_RAY_REPLICAS", "2")
    monkeypatch.setenv("CHATFACE_QUEUE_MAX_BATCH", "1")
    engine = Engine()
    faces = encoded_faces(engine, 3)
    requests = renders(faces, [{"smile": 0.2 * i} for i in range(3)], steps=50)

    async def chat():
        queue = await make_queue(engine)
        try:
            jobs = [await queue.submit(request) for request in requests]
            most = 0
            while any(job.state in ("queued", "running") for job in jobs):
                most = max(most, queue.stats().running)
                await asyncio.sleep(0.01)
            return [await job.result() for job in jobs], queue.stats(), most
        finally:
            await queue.close()

    results, stats, most = asyncio.run(chat())
    # Front batches of one, two replicas: four batches may be in flight; three were.
    assert most == 3 and (stats.batches, stats.done) == (3, 3)
    assert [r.job_id for r in results] == ["job0", "job1", "job2"]


def test_replicas_that_cannot_start_are_a_clear_error_or_fall_back(
    ray_cluster, monkeypatch, caplog
) -> None:
    from chatface.engine.queue import LocalRenderQueue, make_queue
    from chatface.engine.ray_serve import RayUnavailableError

    monkeypatch.setenv("CHATFACE_QUEUE_KIND", "ray")
    monkeypatch.setenv("CHATFACE_QUEUE_RAY_GPUS", "1")  # this Ray instance has none
    monkeypatch.setenv("CHATFACE_QUEUE_RAY_START_TIMEOUT_S", "3")
    with pytest.raises(RayUnavailableError, match="did not start.*ray status"):
        asyncio.run(make_queue(Engine()))

    monkeypatch.setenv("CHATFACE_QUEUE_RAY_FALLBACK", "true")

    async def fallback():
        queue = await make_queue(Engine())
        await queue.close()
        return queue

    assert type(asyncio.run(fallback())) is LocalRenderQueue  # not the Ray front
    assert "Rendering in this process instead (queue.ray_fallback)" in caplog.text


def test_an_unreachable_cluster_address_fails_fast() -> None:
    from chatface.engine.ray_serve import RayUnavailableError, _check_reachable

    with pytest.raises(RayUnavailableError, match="Cannot reach the Ray cluster at '127.0.0.1:9'"):
        _check_reachable("127.0.0.1:9", 5)
    with pytest.raises(RayUnavailableError, match="ray://nowhere"):
        _check_reachable("ray://nowhere", 5)  # no port


def test_replicas_get_every_setting_they_use_even_those_from_a_config_file(
    tmp_path, monkeypatch
) -> None:
    from chatface.config import SETTINGS, load_config
    from chatface.engine.ray_replicas import REPLICA_SECTIONS

    (tmp_path / "config.toml").write_text(
        '[render]\nsteps = 7\n[identity]\nguard = false\n[storage]\nurl = "postgresql://u:secret@db/x"\n'
    )
    monkeypatch.setenv("CHATFACE_CONFIG", str(tmp_path / "config.toml"))
    config = load_config()
    environ = replica_environ(config)
    assert environ["CHATFACE_RENDER_STEPS"] == "7"
    assert environ["CHATFACE_IDENTITY_GUARD"] == "false"
    # The front's own settings stay out: they may differ between bot processes that
    # share the replicas (Discord shards), and storage.url may hold a password.
    assert "CHATFACE_STORAGE_URL" not in environ
    assert "CHATFACE_BOTS_DISCORD_SHARD_IDS" not in environ
    # What a replica loads from them (on a machine without that file) is the same.
    monkeypatch.delenv("CHATFACE_CONFIG")
    replica = load_config(environ)
    for setting in SETTINGS:
        if setting.section in REPLICA_SECTIONS:
            assert replica[setting.name] == config[setting.name], setting.name


def test_new_faces_are_encoded_on_the_replicas(ray_cluster, monkeypatch) -> None:
    from pathlib import Path

    from chatface.engine.queue import make_queue

    monkeypatch.setenv("CHATFACE_QUEUE_KIND", "ray")
    monkeypatch.setenv("CHATFACE_RENDER_ENCODE_STEPS", "5")
    engine = Engine()
    photo = (Path(__file__).parents[1] / "data" / "faces" / "ardern_2022.jpg").read_bytes()
    here = engine.open_face(photo, backend="tiny")
    steps: list[tuple[int, int]] = []

    def not_here(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("encoded in the front's process")

    monkeypatch.setattr(engine, "encode_aligned", not_here)

    async def chat():
        queue = await make_queue(engine)
        try:
            opened = await queue.open_face(
                photo, backend="tiny", progress=lambda *s: steps.append(s)
            )
            return opened, await queue.weights_of("tiny")
        finally:
            await queue.close()

    there, weights = asyncio.run(chat())
    assert weights == engine.backend("tiny").weights_sha256
    assert steps == [(5, 5)] and there.faces_found == here.faces_found
    assert (there.latents.z_sem - here.latents.z_sem).abs().max().item() <= 1e-5
    assert (there.latents.x_T - here.latents.x_T).abs().max().item() <= 1e-4


def test_a_second_bot_process_with_the_same_settings_keeps_the_replicas(
    ray_cluster, monkeypatch
) -> None:
    import ray

    from chatface.engine.ray_serve import DEPLOYMENT, deploy

    def replicas() -> set[str]:
        return {
            actor["name"] for actor in ray.util.list_named_actors(all_namespaces=True)
            if actor["name"].startswith(f"SERVE_REPLICA::{DEPLOYMENT}")
        }  # fmt: skip

    monkeypatch.setenv("CHATFACE_QUEUE_KIND", "ray")
    deploy(Engine())
    first = replicas()
    deploy(Engine())  # what a second process with the same settings does
    assert replicas() == first
    monkeypatch.setenv("CHATFACE_RENDER_STEPS", "5")  # other settings: new replicas
    deploy(Engine())
    assert replicas().isdisjoint(first)


def test_replicas_autoscale_between_the_two_settings_on_waiting_renders() -> None:
    autoscaled = renderer(num_replicas=1, max_replicas=3, max_batch=4)._deployment_config
    scaling = autoscaled.autoscaling_config
    assert (scaling.min_replicas, scaling.max_replicas) == (1, 3)
    assert scaling.target_ongoing_requests == 4  # a full batch per replica
    assert autoscaled.max_ongoing_requests == 8  # one batch rendering, one gathering
    fixed = renderer(num_replicas=2, max_replicas=0)
    assert fixed.num_replicas == 2 and fixed._deployment_config.autoscaling_config is None


def test_a_replica_that_never_answers_fails_the_render_in_time(ray_cluster) -> None:
    from chatface.engine.ray_serve import RayRenderer, RayUnavailableError

    cancelled: list[bool] = []

    class Silent:
        def __await__(self):  # type: ignore[no-untyped-def]
            return asyncio.Event().wait().__await__()  # never set

        def cancel(self) -> None:
            cancelled.append(True)

    class Handle:
        def options(self, method_name: str) -> Handle:
            return self

        def remote(self, *args: object) -> Silent:
            return Silent()

    renderer = RayRenderer(Handle(), faces=0, timeout_s=0.2)
    request = RenderRequest("job0", b"latents", (), 3, "stable", "tiny", "user0")
    [failed] = asyncio.run(renderer([request], lambda *step: None))
    assert isinstance(failed, RayUnavailableError) and "queue.ray_timeout_s" in str(failed)
    assert cancelled == [True]

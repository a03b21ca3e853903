"""The Ray Serve render deployment on a local Ray instance: tiny backend, two replicas."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from chatface.engine.batch import RenderRequest
from chatface.engine.editor import Engine
from chatface.engine.ray_serve import renderer, settings_environ
from chatface.engine.types import SessionState
from tests.engine.test_batch import RENDER_TOLERANCE, encoded_faces

STATES = [{"smile": 0.8}, {"age": -0.5}, {"eyeglasses": 1.0}, {}, {"smile": -0.3}, {"age": 0.4}]


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
    requests = [
        RenderRequest.make(f"job{i}", face, SessionState(state), steps=3, schedule="stable",
                           backend="tiny", user=f"user{i}")
        for i, (face, state) in enumerate(zip(faces, STATES, strict=True))
    ]  # fmt: skip
    deployment = renderer(num_replicas=2, num_cpus=0.5, max_batch=4, batch_wait_s=0.2)
    handle = serve.run(deployment.bind(settings_environ()), name="render", route_prefix=None)

    async def all_at_once():
        return await asyncio.gather(*(handle.remote(request) for request in requests))

    results = asyncio.run(all_at_once())
    assert [r.job_id for r in results] == [r.job_id for r in requests]
    # Requests sent together share model calls (two replicas, batches of up to 4).
    assert max(r.batch_size for r in results) > 1
    for request, result in zip(requests, results, strict=True):
        [alone] = engine.render_batch([request])
        error = (result.crop - alone.crop).abs().max().item()
        assert error <= RENDER_TOLERANCE, (request.job_id, error)
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
    requests = [
        RenderRequest.make(f"job{i}", face, SessionState(state), steps=3, schedule="stable",
                           backend="tiny", user=f"user{i}")
        for i, (face, state) in enumerate(zip(faces, STATES[:3], strict=True))
    ]  # fmt: skip

    async def chat():
        queue = await make_queue(engine)
        try:
            jobs = [await queue.submit(request) for request in requests]
            return [await job.result() for job in jobs], queue.stats()
        finally:
            await queue.close()

    results, stats = asyncio.run(chat())
    assert stats.done == 3 and stats.batches == 1  # the front took all three together
    for request, result in zip(requests, results, strict=True):
        [alone] = engine.render_batch([request])
        assert (result.crop - alone.crop).abs().max().item() <= RENDER_TOLERANCE


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
    request = RenderRequest.make("job0", face, SessionState({"smile": 0.5}), steps=250,
                                 schedule="stable", backend="tiny", user="user0")  # fmt: skip

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

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

    ray.init(num_cpus=2, address="local", include_dashboard=False, log_to_driver=False)
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

"""Renders on Ray Serve: a deployment whose replicas render data-only requests in batches.

Each replica builds an :class:`~chatface.engine.editor.Engine` from the settings it is
given (the same model-loading code as a local queue's model thread, so it loads the
backend once) and renders the :class:`~chatface.engine.batch.RenderRequest` objects that
reach it through ``@serve.batch``: requests arriving within ``batch_wait_s`` of each
other, up to ``max_batch``, go through one ``Engine.render_batch`` call. Requests carry
the face's latents as safetensors bytes, so any replica can render any request.

With ``queue.kind = "ray"``, ``make_queue`` (:mod:`chatface.engine.queue`) puts the
local queue's scheduling (bounded, fair across users, a newer edit replacing a waiting
one, batching windows) in front of the deployment: each batch the front takes goes to
the replicas request by request, where ``@serve.batch`` groups them again per replica. A
request whose replica fails is sent once more. Other model work (encoding a new photo)
runs in this process, on the front's model thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from chatface.errors import ChatFaceError

if TYPE_CHECKING:
    from chatface.engine.batch import RenderRequest, RenderResult
    from chatface.engine.editor import Engine
    from chatface.engine.types import Progress

logger = logging.getLogger(__name__)
DEPLOYMENT = "chatface-render"


def settings_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``CHATFACE_*`` variables of ``environ`` (default: this process's): what a
    replica needs to load the same settings (secrets stay out: they are not settings)."""
    source = os.environ if environ is None else environ
    return {name: value for name, value in source.items() if name.startswith("CHATFACE_")}


def renderer(
    *,
    num_replicas: int = 1,
    num_gpus: float = 0,
    num_cpus: float = 1,
    max_batch: int = 8,
    batch_wait_s: float = 0.025,
) -> Any:
    """The Ray Serve deployment that renders; bind it to ``settings_environ()``:
    ``serve.run(renderer(...).bind(settings_environ()))``."""
    from ray import serve

    @serve.deployment(
        num_replicas=num_replicas,
        ray_actor_options={"num_gpus": num_gpus, "num_cpus": num_cpus},
    )
    class Renderer:
        def __init__(self, environ: dict[str, str]) -> None:
            from chatface.config import load_config
            from chatface.engine.editor import Engine

            self.engine = Engine(load_config(environ))

        @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=batch_wait_s)
        async def render(self, requests: list[RenderRequest]) -> list[RenderResult]:
            # The model runs off the replica's event loop, which keeps collecting the
            # next batch meanwhile.
            return await asyncio.to_thread(self.engine.render_batch, requests)

        async def __call__(self, request: RenderRequest) -> RenderResult:
            return await self.render(request)

    return Renderer


def deploy(engine: Engine) -> Any:
    """Join (or start) the Ray cluster of ``queue.ray_address`` and run the render
    deployment there with the ``queue.*`` settings; returns its handle."""
    import ray
    from ray import serve

    config = engine.config
    address = config["queue.ray_address"] or "local"
    if not ray.is_initialized():
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,  # no start-up chatter in a chat
            )
        except (ConnectionError, RuntimeError) as exc:
            raise ChatFaceError(
                f"Cannot reach the Ray cluster at {address!r} (queue.ray_address): {exc}. "
                "Start it (ray start --head) or set queue.kind = 'local'."
            ) from exc
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    deployment = renderer(
        num_replicas=int(config["queue.ray_replicas"]),
        num_gpus=float(config["queue.ray_gpus"]),
        num_cpus=0 if float(config["queue.ray_gpus"]) else 1,
        max_batch=int(config["queue.max_batch"]),
        batch_wait_s=config["queue.batch_window_ms"] / 1000,
    )
    return serve.run(deployment.bind(settings_environ()), name=DEPLOYMENT, route_prefix=None)


def batch_renderer(handle: Any) -> Any:
    """A ``BatchRenderer`` for the local queue's model thread: the batch's requests go to
    the replicas together and are awaited in order. A request whose replica died is sent
    once more; an error the render itself raised (a bad request) is raised as it is."""
    from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

    def result(response: Any) -> RenderResult:
        try:
            return response.result()
        except RayTaskError as exc:
            raise exc.cause if isinstance(exc.cause, Exception) else exc from None

    def render(requests: Sequence[RenderRequest], progress: Progress) -> list[RenderResult]:
        responses = [handle.remote(request) for request in requests]
        results = []
        for request, response in zip(requests, responses, strict=True):
            try:
                results.append(result(response))
            except (RayActorError, ActorUnavailableError) as exc:
                logger.warning("render %s: its replica died (%s); sending it again",
                               request.job_id, type(exc).__name__)  # fmt: skip
                results.append(result(handle.remote(request)))
            progress(len(results), len(requests))
        return results

    return render

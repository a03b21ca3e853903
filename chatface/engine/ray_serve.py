"""Renders on Ray Serve: a deployment whose replicas render data-only requests in batches.

Each replica builds an :class:`~chatface.engine.editor.Engine` from the settings it is
given (the same model-loading code as a local queue's model thread, so it loads the
backend once) and renders the :class:`~chatface.engine.batch.RenderRequest` objects that
reach it through ``@serve.batch``: requests arriving within ``batch_wait_s`` of each
other, up to ``max_batch``, go through one ``Engine.render_batch`` call. Requests carry
the face's latents as safetensors bytes, so any replica can render any request.

This is the render side of a Ray render queue (issue 13); the queue in front of it
(fairness, replacement, progress, faults) is to come.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatface.engine.batch import RenderRequest, RenderResult


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

"""The Ray Serve deployment that renders: its replicas and what travels to them.

Each replica builds an :class:`~chatface.engine.editor.Engine` from the front's settings
(:func:`replica_environ`) with the same model-loading code as a local queue's model
thread, so it loads the backend once (the default one before it counts as started),
and uses its models from one thread. It renders the
:class:`~chatface.engine.batch.RenderRequest` objects that reach it through
``@serve.batch``: requests arriving within ``batch_wait_s`` of each other, up to
``max_batch``, go through one ``Engine.render_batch`` call; when that fails, each
request alone, so a bad one fails only itself. A replica takes up to two batches' worth
of requests, so it gathers the next batch while it renders one. It also encodes new
faces' aligned crops. The front that sends it work is :mod:`chatface.engine.ray_serve`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from chatface.config import SETTINGS, Config
from chatface.errors import WeightsMissingError

if TYPE_CHECKING:
    from chatface.engine.batch import RenderRequest, RenderResult

logger = logging.getLogger(__name__)
T = TypeVar("T")
# Sections of settings the replicas use; the others (bots, storage, planner, queue) are
# the front's, and may differ between bot processes sharing the replicas.
REPLICA_SECTIONS = ("engine", "identity", "mapper", "method", "paths", "photos", "plugins",
                    "render", "train", "weights", "zero_shot")  # fmt: skip


def replica_environ(config: Config) -> dict[str, str]:
    """``config``'s settings that replicas use (``REPLICA_SECTIONS``), as the
    ``CHATFACE_*`` variables a replica loads its settings from: replicas render with this
    process's settings, whatever config file their own machine has."""
    return {
        setting.env: str(value).lower() if isinstance(value, bool) else str(value)
        for setting in SETTINGS
        if setting.section in REPLICA_SECTIONS and (value := config[setting.name]) is not None
    }


@dataclasses.dataclass(frozen=True)
class RenderFailed:
    """A render's own error, in the place of its result in a replica's batch."""

    error: Exception


@dataclasses.dataclass(frozen=True)
class Parcel:
    """A request on its way to a replica; with ``face`` (a reference into Ray's object
    store to the face's ``(latents, original)``) its own ``latents`` and ``original``
    are left empty."""

    request: RenderRequest
    face: Any = None  # ray.ObjectRef | None

    async def unpack(self) -> RenderRequest:
        if self.face is None:
            return self.request
        latents, original = await self.face
        return dataclasses.replace(self.request, latents=latents, original=original)


def renderer(
    *,
    num_replicas: int = 1,
    max_replicas: int = 0,
    num_gpus: float = 0,
    num_cpus: float = 1,
    max_batch: int = 8,
    batch_wait_s: float = 0.025,
) -> Any:
    """The Ray Serve deployment that renders; bind it to the settings' variables:
    ``serve.run(renderer(...).bind(replica_environ(config)))``. With ``max_replicas`` above
    ``num_replicas`` it autoscales between the two on waiting requests."""
    from ray import serve

    if max_replicas > num_replicas:
        scaling: dict[str, Any] = {
            "autoscaling_config": {
                "min_replicas": num_replicas,
                "max_replicas": max_replicas,
                "target_ongoing_requests": max_batch,  # a full batch per replica
            }
        }
    else:
        scaling = {"num_replicas": num_replicas}

    @serve.deployment(
        **scaling,
        max_ongoing_requests=2 * max_batch,  # one batch rendering, the next gathering
        ray_actor_options={"num_gpus": num_gpus, "num_cpus": num_cpus},
    )
    class Renderer:
        def __init__(self, environ: dict[str, str], fingerprint: str = "") -> None:
            from chatface.config import load_config
            from chatface.engine.editor import Engine

            self.engine = Engine(load_config(environ))
            self._fingerprint = fingerprint
            # The models are used from this one thread only, as on a local model thread.
            self._model = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chatface-model")
            try:  # the default backend, loaded before the replica counts as started
                self.engine.backend()
            except WeightsMissingError as exc:  # other backends may still be asked for
                logger.warning("%s", exc)

        def fingerprint(self) -> str:
            """What the deployment was made from (see ``deploy``)."""
            return self._fingerprint

        async def _on_model(self, fn: Callable[..., T], *args: Any) -> T:
            return await asyncio.get_running_loop().run_in_executor(self._model, fn, *args)

        @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=batch_wait_s)
        async def render(self, requests: list[RenderRequest]) -> list[RenderResult | RenderFailed]:
            # The model runs off the replica's event loop, which keeps collecting the
            # next batch meanwhile.
            return await self._on_model(self._render_batch, requests)

        def _render_batch(self, requests: list[RenderRequest]) -> list[RenderResult | RenderFailed]:
            """The batch's results; when it fails, each request alone, so that a bad one
            (another process's, maybe) fails only itself."""
            try:
                return list(self.engine.render_batch(requests))
            except Exception as exc:
                if len(requests) == 1:
                    return [RenderFailed(exc)]
            results: list[RenderResult | RenderFailed] = []
            for request in requests:
                try:
                    results.extend(self.engine.render_batch([request]))
                except Exception as exc:
                    results.append(RenderFailed(exc))
            return results

        async def __call__(self, parcel: Parcel | RenderRequest) -> RenderResult:
            if isinstance(parcel, Parcel):
                parcel = await parcel.unpack()
            result = await self.render(parcel)
            if isinstance(result, RenderFailed):
                raise result.error
            return result

        async def encode(self, aligned_png: bytes, backend: str, steps: int) -> bytes:
            """A new face's latents (``Latents.to_bytes``) from its aligned crop (PNG)."""
            return await self._on_model(self._encode, aligned_png, backend, steps)

        def _encode(self, aligned_png: bytes, backend: str, steps: int) -> bytes:
            from PIL import Image

            with Image.open(io.BytesIO(aligned_png)) as image:
                crop = image.convert("RGB")
            return self.engine.encode_aligned(crop, backend, steps).to_bytes()

        async def backend_info(self, backend: str) -> tuple[int, str]:
            """``backend``'s crop size (px) and its weights' identity."""
            model = await self._on_model(self.engine.backend, backend)
            return model.image_size, model.weights_sha256

    return Renderer

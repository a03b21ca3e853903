"""Renders on Ray Serve: the render queue's front over a deployment's replicas.

The replicas (:mod:`chatface.engine.ray_replicas`) load the backend once each and
render in ``@serve.batch`` batches; :func:`deploy` runs them on the cluster of
``queue.ray_address``, and with ``queue.ray_max_replicas`` Ray Serve adds replicas
while requests wait.

With ``queue.kind = "ray"``, ``make_queue`` (:mod:`chatface.engine.queue`) puts the
local queue's scheduling (bounded, fair across users, a newer edit replacing a waiting
one, batching windows) in front of the deployment, with two batches per replica in
flight: :class:`RayRenderer` sends each batch's requests to the replicas, where
``@serve.batch`` groups them again per replica.

Locality: a face's latents (and the crop identity is measured on) go to Ray's object
store once, the first time the face is rendered; its later renders carry only a
reference, which a replica resolves from its node's copy. The last ``queue.ray_faces``
faces are kept there. If the stored copy is lost, the render is sent again with the
bytes themselves.

New photos: the front finds and aligns the face, a replica encodes the aligned crop
(:meth:`RayRenderer.open_face`).

Faults: a render or encoding whose replica dies is sent once more (Serve routes it to a
live replica) and answered once; an error the render itself raised (a bad request) fails
only that render, even in a replica batch shared with others; a call no replica answers
within ``queue.ray_timeout_s`` fails. A cluster that cannot be reached, or replicas that
do not start within ``queue.ray_start_timeout_s``, is a :class:`RayUnavailableError` at
start (or, with ``queue.ray_fallback``, the local queue renders instead).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import signal
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from chatface import __version__
from chatface.engine.queue import JobCancelledError, LocalRenderQueue
from chatface.engine.ray_replicas import Parcel, renderer, replica_environ
from chatface.errors import ChatFaceError

if TYPE_CHECKING:
    from chatface.engine.batch import RenderRequest, RenderResult
    from chatface.engine.editor import Engine, OpenedFace
    from chatface.engine.types import Progress

logger = logging.getLogger(__name__)
DEPLOYMENT = "chatface-render"


class RayUnavailableError(ChatFaceError):
    """The Ray cluster cannot be reached, or the render replicas do not start."""


def _check_reachable(address: str, timeout_s: float) -> None:
    """Fail fast when a cluster's ``host:port`` does not answer (``ray.init`` would wait
    for minutes)."""
    if address in ("local", "auto"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=min(timeout_s, 10)):
            pass
    except (OSError, ValueError) as exc:
        raise RayUnavailableError(
            f"Cannot reach the Ray cluster at {address!r} (queue.ray_address): {exc}. "
            "Start it (ray start --head) or check the address."
        ) from exc


def deploy(engine: Engine) -> Any:
    """Join (or start) the Ray cluster of ``queue.ray_address`` and run the render
    deployment there with the ``queue.*`` settings (unless it runs there already with the
    same settings, deployed by another bot process); returns its handle once the replicas
    run. ``RayUnavailableError`` when that takes over ``queue.ray_start_timeout_s``."""
    import ray
    from ray import serve

    config = engine.config
    address = config["queue.ray_address"] or "local"
    timeout_s = float(config["queue.ray_start_timeout_s"])
    deadline = time.monotonic() + timeout_s
    if not ray.is_initialized():
        _check_reachable(address, timeout_s)
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,  # no start-up chatter in a chat
            )
        except (ConnectionError, RuntimeError) as exc:
            raise RayUnavailableError(
                f"Cannot join the Ray cluster at {address!r} (queue.ray_address): {exc}"
            ) from exc
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    gpus = float(config["queue.ray_gpus"])
    options = {
        "num_replicas": int(config["queue.ray_replicas"]),
        "max_replicas": int(config["queue.ray_max_replicas"]),
        "num_gpus": gpus,
        "num_cpus": 0 if gpus else 1,
        "max_batch": int(config["queue.max_batch"]),
        "batch_wait_s": config["queue.batch_window_ms"] / 1000,
    }
    environ = replica_environ(config)
    fingerprint = hashlib.sha256(
        json.dumps([__version__, options, environ], sort_keys=True).encode()
    ).hexdigest()
    if (running := _running(fingerprint)) is not None:
        return running  # another bot process deployed the same: keep its replicas
    app = serve.RunTarget(
        renderer(**options).bind(environ, fingerprint), name=DEPLOYMENT, route_prefix=None
    )
    serve.run_many(
        [app], wait_for_ingress_deployment_creation=False, wait_for_applications_running=False
    )
    while (handle := _running(fingerprint)) is None:  # until the new replicas answer
        status = serve.status().applications.get(DEPLOYMENT)
        failed = status is not None and status.status == "DEPLOY_FAILED"
        if failed or time.monotonic() > deadline:
            why = (status and status.message) or f"not running after {timeout_s:g} s"
            serve.delete(DEPLOYMENT, _blocking=False)
            raise RayUnavailableError(
                f"The render replicas did not start on the Ray cluster ({why}); check "
                "`ray status` for free CPUs/GPUs (queue.ray_gpus per replica) and the "
                "replicas' logs, or raise queue.ray_start_timeout_s."
            )
        time.sleep(0.2)
    return handle


def _running(fingerprint: str) -> Any:
    """The handle of the render deployment if it runs with ``fingerprint`` (the same
    code, settings and options), else None."""
    from ray import serve

    status = serve.status().applications.get(DEPLOYMENT)
    if status is None or status.status != "RUNNING":
        return None
    handle = serve.get_app_handle(DEPLOYMENT)
    try:
        theirs = handle.options(method_name="fingerprint").remote().result(timeout_s=30)
    except Exception:  # an older deployment without the method, a replica going away
        return None
    return handle if theirs == fingerprint else None


class RayRenderer:
    """The queue front's renderer over the deployment (a ``RemoteRenderer``): a batch's
    requests go to the replicas together; each result, or the error of that render
    alone, comes back in order. Faces go to the object store once (see the module
    docstring)."""

    def __init__(
        self, handle: Any, faces: int = 128, owns_ray: bool = False, timeout_s: float = 0
    ) -> None:
        self.handle = handle
        self.faces = faces
        self.owns_ray = owns_ray  # Ray was started for this process alone
        self.timeout_s = timeout_s  # for one call to the replicas; 0: no limit
        self.faces_sent = 0  # faces put into the object store
        self._refs: OrderedDict[str, Any] = OrderedDict()  # face digest -> ObjectRef
        self._backends: dict[str, tuple[int, str]] = {}  # backend_info answers

    async def __call__(
        self, requests: Sequence[RenderRequest], progress: Progress
    ) -> list[RenderResult | Exception]:
        done = 0

        async def one(request: RenderRequest) -> RenderResult | Exception:
            nonlocal done
            try:
                return await self._render(request)
            except Exception as exc:
                logger.error("render %s failed: %s", request.job_id, exc)
                return exc
            finally:
                done += 1
                progress(done, len(requests))

        return list(await asyncio.gather(*map(one, requests)))

    async def _render(self, request: RenderRequest) -> RenderResult:
        from ray.exceptions import ActorUnavailableError, ObjectLostError, RayActorError

        try:
            return await self._send(request, self._face(request))
        except (RayActorError, ActorUnavailableError) as exc:
            _died(f"render {request.job_id}", exc)
        except ObjectLostError as exc:
            logger.warning("render %s: its face left Ray's object store (%s); sending "
                           "the face with it", request.job_id, type(exc).__name__)  # fmt: skip
            self._refs.pop(_digest(request), None)
            return await self._send(request, None)
        return await self._send(request, self._face(request))

    async def _send(self, request: RenderRequest, face: Any) -> RenderResult:
        if face is not None:
            request = dataclasses.replace(request, latents=b"", original=b"")
        return await self._call("__call__", Parcel(request, face))

    async def _call(self, method: str, *args: Any) -> Any:
        """A replica's ``method(*args)``; an error it raised is raised here as it was."""
        from ray.exceptions import RayTaskError

        response = self.handle.options(method_name=method).remote(*args)
        try:
            return await asyncio.wait_for(_awaited(response), self.timeout_s or None)
        except RayTaskError as exc:
            raise exc.cause if isinstance(exc.cause, Exception) else exc from None
        except TimeoutError:
            response.cancel()
            raise RayUnavailableError(
                f"No render replica answered within {self.timeout_s:g} s "
                "(queue.ray_timeout_s); the Ray cluster may have no live replicas."
            ) from None

    async def _call_again_if_died(self, method: str, *args: Any) -> Any:
        from ray.exceptions import ActorUnavailableError, RayActorError

        try:
            return await self._call(method, *args)
        except (RayActorError, ActorUnavailableError) as exc:
            _died(method, exc)
        return await self._call(method, *args)

    async def backend_info(self, backend: str) -> tuple[int, str]:
        """``backend``'s crop size and weights' identity, as the replicas have them."""
        if backend not in self._backends:
            size, weights = await self._call_again_if_died("backend_info", backend)
            self._backends[backend] = int(size), str(weights)
        return self._backends[backend]

    async def open_face(
        self, engine: Engine, photo: bytes, backend: str, progress: Progress | None
    ) -> OpenedFace:
        """Find and align the face here (``Engine.prepare_face``), encode it on a
        replica; ``progress`` hears of the encoding when it is done."""
        from chatface.engine.editor import OpenedFace
        from chatface.engine.photos import encode_image
        from chatface.engine.types import Latents

        size, _ = await self.backend_info(backend)
        prepared = await asyncio.to_thread(engine.prepare_face, photo, size)
        png, _ = await asyncio.to_thread(encode_image, prepared.aligned.image)
        steps = int(engine.config["render.encode_steps"])
        blob = await self._call_again_if_died("encode", png, backend, steps)
        if progress is not None:
            progress(steps, steps)
        return OpenedFace(
            prepared.photo,
            prepared.aligned,
            Latents.from_bytes(blob),
            backend,
            prepared.faces_found,
            prepared.note,
        )

    def _face(self, request: RenderRequest) -> Any:
        """The request's face in the object store (put there now if it is new)."""
        if self.faces <= 0:
            return None
        import ray

        key = _digest(request)
        ref = self._refs.get(key)
        if ref is None:
            ref = self._refs[key] = ray.put((request.latents, request.original))
            self.faces_sent += 1
            while len(self._refs) > self.faces:
                self._refs.popitem(last=False)
        self._refs.move_to_end(key)
        return ref


async def _awaited(response: Any) -> Any:
    return await response


def _died(what: str, exc: Exception) -> None:
    logger.warning("%s: its replica died (%s); sending it again", what, type(exc).__name__)


def _digest(request: RenderRequest) -> str:
    return hashlib.blake2b(request.latents + request.original, digest_size=16).hexdigest()


class RayRenderQueue(LocalRenderQueue):
    """The local queue's front over the replicas (``make_queue`` with ``queue.kind =
    "ray"``): renders and new faces' encodings run there."""

    renders_here = False

    @property
    def renderer(self) -> RayRenderer:
        return self._render_batch  # type: ignore[return-value]

    async def open_face(
        self, photo: bytes, *, backend: str, progress: Progress | None = None
    ) -> OpenedFace:
        if self._closed:
            raise JobCancelledError("The render queue is closed.")
        try:
            return await self.renderer.open_face(self._engine(), photo, backend, progress)
        except Exception:
            if self._closed:  # cut off by close(): left for the next start
                raise JobCancelledError("The render queue closed.") from None
            raise

    async def weights_of(self, backend: str) -> str:
        return (await self.renderer.backend_info(backend))[1]

    async def close(self) -> None:
        """Close the queue; a Ray instance started for this process alone ends with it
        at once (its replicas have nothing left to finish)."""
        await super().close()
        if self.renderer.owns_ray:
            import ray

            await asyncio.to_thread(ray.shutdown)


def reinstall_signal_handlers() -> None:
    """Set this process's SIGINT and SIGTERM handlers again (from the main thread, after
    ``deploy``): joining Ray puts its crash reporter in front of them, which aborts the
    process after a bot's graceful stop."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            if (handler := signal.getsignal(signum)) is not None:
                signal.signal(signum, handler)


def connect(engine: Engine) -> RayRenderer:
    """Deploy (:func:`deploy`) and return the front's renderer over the replicas. A Ray
    instance started here for a deployment that failed is shut down again."""
    import ray

    config = engine.config
    owns_ray = not ray.is_initialized() and config["queue.ray_address"] in ("", "local")
    try:
        handle = deploy(engine)
    except BaseException:
        if owns_ray and ray.is_initialized():
            ray.shutdown()
        raise
    return RayRenderer(
        handle, int(config["queue.ray_faces"]), owns_ray, float(config["queue.ray_timeout_s"])
    )

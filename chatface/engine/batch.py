"""Render requests as plain data, and rendering many of them in few model calls.

A :class:`RenderRequest` holds only data (the face's latents as safetensors bytes, the
accumulated strengths, steps, schedule and backend names), so the same request can go
to another thread today and to another process or machine later; the condition
schedule is rebuilt from its name where the model runs. :func:`render_batch` groups
requests by (backend, steps, schedule), stacks their latents, moves each row's z_sem by
its own strengths and renders each group in one model call.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chatface.engine.types import Latents, Progress, SessionState

if TYPE_CHECKING:
    import torch

    from chatface.engine.editor import Engine


@dataclass(frozen=True)
class RenderRequest:
    """One render, as data: what to render, never how (no closures, no live objects)."""

    job_id: str
    latents: bytes  # Latents.to_bytes() of one face: z_sem [1, D], x_T [1, 3, S, S]
    strengths: tuple[tuple[str, float], ...]  # the whole session state, sorted
    steps: int
    schedule: str  # a registered condition schedule (render.schedule)
    backend: str
    user: str = ""  # whose render it is: the queue is fair across users

    @classmethod
    def make(
        cls,
        job_id: str,
        latents: Latents | bytes,
        state: SessionState,
        *,
        steps: int,
        schedule: str,
        backend: str,
        user: str = "",
    ) -> RenderRequest:
        blob = latents if isinstance(latents, bytes) else latents.to_bytes()
        strengths = tuple(sorted(state.strengths.items()))
        return cls(job_id, blob, strengths, steps, schedule, backend, user)

    @property
    def group(self) -> tuple[str, int, str]:
        """Requests of one group are rendered in one model call."""
        return self.backend, self.steps, self.schedule


@dataclass(frozen=True)
class RenderResult:
    """The rendered crop ([3, S, S] in [-1, 1]) of one request, with its timings."""

    job_id: str
    crop: torch.Tensor
    batch_size: int  # how many renders shared the model call
    render_s: float  # wall time of that model call
    timings: dict[str, float] = field(default_factory=dict)


def render_batch(
    engine: Engine, requests: Sequence[RenderRequest], progress: Progress | None = None
) -> list[RenderResult]:
    """Render every request, one model call per (backend, steps, schedule) group.

    Results come back in the order of ``requests``. ``progress(done, total)`` counts
    steps over all groups.
    """
    import torch

    groups: dict[tuple[str, int, str], list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault(request.group, []).append(index)
    total = sum(steps for _, steps, _ in groups)
    done = 0
    results: list[RenderResult | None] = [None] * len(requests)
    for (backend, steps, schedule), indices in groups.items():
        latents = [Latents.from_bytes(requests[i].latents) for i in indices]
        z_orig = torch.cat([lat.z_sem for lat in latents])
        x_T = torch.cat([lat.x_T for lat in latents])
        # Each row moves by its own strengths; providers see one row at a time, so any
        # provider works in a batch.
        z_edit = torch.cat([
            engine.edit_latents(lat.z_sem, SessionState(dict(requests[i].strengths)), backend)
            for lat, i in zip(latents, indices, strict=True)
        ])  # fmt: skip
        offset = done

        def report(step: int, _: int, offset: int = offset) -> None:
            if progress is not None:
                progress(offset + step, total)

        started = time.perf_counter()
        images = engine.render_group(backend, Latents(z_orig, x_T), z_edit, schedule, steps, report)
        render_s = time.perf_counter() - started
        done += steps
        for row, i in enumerate(indices):
            results[i] = RenderResult(requests[i].job_id, images[row], len(indices), render_s)
    return [r for r in results if r is not None]

"""Render requests as plain data, and rendering many of them in few model calls.

A :class:`RenderRequest` holds only data (the face's latents as safetensors bytes, the
accumulated strengths, steps, schedule and backend names), so the same request can go
to another thread today and to another process or machine later; the condition
schedule is rebuilt from its name where the model runs. :func:`render_batch` groups
requests by (backend, steps, schedule), stacks their latents, moves each row's z_sem by
its own strengths and renders each group in one model call; identical requests (the
same face and strengths) in a batch are rendered once and share the result. Then, with
the ``identity.*`` settings, it measures each render's identity similarity to the
request's original crop (one call of the identity model; each original crop is
embedded once per engine) and, for renders the identity guard rejects, renders the
turn's edit at lower strengths in one more model call per group
(:mod:`chatface.engine.identity`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
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
    # The face's aligned crop (PNG) to measure identity against; b"": not measured.
    original: bytes = b""
    # The state before this turn's edit, which the identity guard may scale the edit back
    # toward; None: the guard leaves this render alone (an undo, a reset, ...).
    previous: tuple[tuple[str, float], ...] | None = None

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
        original: bytes = b"",
        previous: SessionState | None = None,
    ) -> RenderRequest:
        blob = latents if isinstance(latents, bytes) else latents.to_bytes()
        strengths = tuple(sorted(state.strengths.items()))
        before = None if previous is None else tuple(sorted(previous.strengths.items()))
        return cls(job_id, blob, strengths, steps, schedule, backend, user, original, before)

    @property
    def group(self) -> tuple[str, int, str]:
        """Requests of one group are rendered in one model call."""
        return self.backend, self.steps, self.schedule


@dataclass(frozen=True)
class Guarded:
    """The identity guard lowered a turn's edit: what it measured and what it kept."""

    threshold: float
    full: float  # identity similarity of the full edit
    scale: float  # the fraction of the turn's edit kept (2/3 or 1/3)
    passed: bool  # whether the kept render reaches the threshold
    renders: int  # extra renders made


@dataclass(frozen=True)
class RenderResult:
    """The rendered crop ([3, S, S] in [-1, 1]) of one request, with its timings, its
    identity similarity (None: not measured) and the state rendered (the request's, or
    a lower one the identity guard kept: ``guarded`` says so)."""

    job_id: str
    crop: torch.Tensor
    batch_size: int  # how many renders shared the model call
    render_s: float  # wall time of that model call
    timings: dict[str, float] = field(default_factory=dict)
    identity: float | None = None
    strengths: tuple[tuple[str, float], ...] = ()
    guarded: Guarded | None = None


def render_batch(
    engine: Engine, requests: Sequence[RenderRequest], progress: Progress | None = None
) -> list[RenderResult]:
    """Render every request, one model call per (backend, steps, schedule) group, then
    measure identity and apply the identity guard (see the module docstring).

    Results come back in the order of ``requests``. ``progress(done, total)`` counts
    steps over all groups (the guard's renders add to the total when they start).
    """
    rows = [(request, dict(request.strengths)) for request in requests]
    rendered = _render_rows(engine, rows, progress)
    results = [
        RenderResult(request.job_id, crop, size, seconds, strengths=request.strengths)
        for request, (crop, size, seconds) in zip(requests, rendered, strict=True)
    ]
    config = engine.config
    measured = [i for i, request in enumerate(requests) if request.original]
    model = engine.installed_identity_model() if measured and config["identity.measure"] else None
    if model is None:
        return results
    from chatface.engine import identity

    def similarities(indices: Sequence[int], crops: Sequence[torch.Tensor]) -> list[float]:
        originals = [requests[i].original for i in indices]
        model_name = config["identity.model"]
        return engine.original_embeddings.similarities(model, model_name, originals, crops)

    scores = similarities(measured, [results[i].crop for i in measured])
    for i, score in zip(measured, scores, strict=True):
        results[i] = replace(results[i], identity=score)
    if not config["identity.guard"]:
        return results
    threshold = float(config["identity.guard_threshold"])
    failing = [
        i for i, score in zip(measured, scores, strict=True)
        if score < threshold and requests[i].previous is not None
        and dict(requests[i].previous) != dict(requests[i].strengths)
    ]  # fmt: skip
    if not failing:
        return results
    # Every rejected render's lower strengths, all rendered in one more pass.
    tries = [
        (i, scale, state)
        for i in failing
        for scale, state in identity.guard_candidates(
            dict(requests[i].previous or ()), dict(requests[i].strengths)
        )
    ]
    extra = _render_rows(engine, [(requests[i], state) for i, _, state in tries], progress)
    extra_scores = similarities([i for i, _, _ in tries], [crop for crop, _, _ in extra])
    for i in failing:
        mine = [k for k, (j, _, _) in enumerate(tries) if j == i]
        best = mine[identity.pick([(tries[k][1], extra_scores[k]) for k in mine], threshold)]
        _, scale, state = tries[best]
        crop, size, seconds = extra[best]
        guarded = Guarded(
            threshold, scores[measured.index(i)], scale, extra_scores[best] >= threshold, len(mine)
        )
        results[i] = replace(
            results[i], crop=crop, identity=extra_scores[best],
            strengths=tuple(sorted(state.items())), guarded=guarded,
            render_s=results[i].render_s + seconds,
        )  # fmt: skip
    return results


def _render_rows(
    engine: Engine,
    rows: Sequence[tuple[RenderRequest, dict[str, float]]],
    progress: Progress | None,
) -> list[tuple[torch.Tensor, int, float]]:
    """Render each (request, strengths) row: its face (from the request) moved to those
    strengths; one model call per group, identical rows (the same face, strengths and
    group) rendered once. Returns (crop, rows in the call, seconds)."""
    import torch

    groups: dict[tuple[str, int, str], list[int]] = {}
    first: dict[tuple[tuple[str, int, str], bytes, tuple[tuple[str, float], ...]], int] = {}
    same_as = []  # each row's first identical row
    for index, (request, strengths) in enumerate(rows):
        key = (request.group, request.latents, tuple(sorted(strengths.items())))
        same_as.append(first.setdefault(key, index))
        if same_as[index] == index:
            groups.setdefault(request.group, []).append(index)
    total = sum(steps for _, steps, _ in groups)
    done = 0
    results: list[tuple[torch.Tensor, int, float] | None] = [None] * len(rows)
    for (backend, steps, schedule), indices in groups.items():
        latents = [Latents.from_bytes(rows[i][0].latents) for i in indices]
        z_orig = torch.cat([lat.z_sem for lat in latents])
        x_T = torch.cat([lat.x_T for lat in latents])
        # Each row moves by its own strengths; providers see one row at a time, so any
        # provider works in a batch.
        z_edit = torch.cat([
            engine.edit_latents(lat.z_sem, SessionState(rows[i][1]), backend)
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
            results[i] = (images[row], len(indices), render_s)
    shared = [results[i] for i in same_as]
    return [r for r in shared if r is not None]

"""A rich progress bar behind the engine's ``progress(done, total)`` callbacks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@contextmanager
def progress_bar(
    description: str, total: int | None = None
) -> Iterator[Callable[[int, int], None]]:
    """Yield a callback that moves one bar; the bar goes to stderr so stdout stays clean.

    A finished bar stays on screen; one interrupted by an error is removed.
    """
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(description, total=total)

        def report(done: int, steps: int) -> None:
            progress.update(task, completed=done, total=steps)

        try:
            yield report
        except BaseException:
            # The error is what matters: clear the unfinished bar instead of leaving it above
            # (and, with disable, skip the blank line rich adds for non-terminals).
            progress.live.transient = True
            progress.live.stop()
            progress.disable = True
            raise

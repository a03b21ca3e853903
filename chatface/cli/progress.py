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

    A bar that moved and finished stays on screen. One interrupted by an error is
    removed, so the error is what the user sees; so is one that never moved (the work
    needed no steps, e.g. an undo that shows a stored image).
    """
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    moved = False
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(description, total=total)

        def report(done: int, steps: int) -> None:
            nonlocal moved
            moved = True
            progress.update(task, completed=done, total=steps)

        try:
            yield report
        except BaseException:
            _remove(progress)
            raise
        if not moved:
            _remove(progress)


def _remove(progress: Progress) -> None:
    # With disable set, Progress.__exit__ also skips the blank line it adds for non-terminals.
    progress.live.transient = True
    progress.live.stop()
    progress.disable = True

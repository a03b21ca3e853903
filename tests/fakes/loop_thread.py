"""An asyncio event loop in a thread of its own: where the fake servers run, so that a
test (sync or with its own loop) talks to them over real sockets."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Self


def start_loop_thread(
    setup: Callable[[], Awaitable[None]], name: str
) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    """Run ``setup()`` on a new loop in a daemon thread, then keep the loop running;
    raise here if ``setup`` fails."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(setup())
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    if not started.wait(10) or failure:
        raise RuntimeError(f"{name} did not start: {failure}")
    return loop, thread


def stop_loop_thread(
    loop: asyncio.AbstractEventLoop,
    thread: threading.Thread,
    teardown: Callable[[], Awaitable[None]],
) -> None:
    """Run ``teardown()`` on the loop, then stop and close it and join the thread."""
    asyncio.run_coroutine_threadsafe(teardown(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


class LoopThreadServer:
    """``start()``/``stop()`` (or ``with``) for a fake server whose ``_start()`` and
    ``_stop()`` coroutines set it up and tear it down on a loop thread of its own."""

    thread_name = "fake-server"
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    async def _start(self) -> None:
        raise NotImplementedError

    async def _stop(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        self._loop, self._thread = start_loop_thread(self._start, self.thread_name)
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        stop_loop_thread(self._loop, self._thread, self._stop)
        self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

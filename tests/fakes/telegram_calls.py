"""What the fake Telegram server received, and waiting on it, for assertions in tests.

Every request becomes a :class:`Call` the moment it arrives; its HTTP status and JSON
answer are filled in when it is answered. :class:`CallLog` keeps them in order and wakes
waiters (an asyncio future in the test's own loop, or a threading.Event) as soon as a
matching call arrives or is answered, so tests never poll or sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_MISSING = object()


@dataclass(frozen=True)
class UploadedFile:
    """One multipart file part as the bot sent it."""

    filename: str | None
    content_type: str
    data: bytes


@dataclass
class Call:
    """One request, recorded when it arrives; ``status`` and ``response`` when answered."""

    index: int
    method: str
    params: dict[str, Any]
    files: dict[str, UploadedFile] = field(default_factory=dict)
    status: int | None = None
    response: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def result(self) -> Any:
        return (self.response or {}).get("result")

    def upload(self, param: str) -> UploadedFile:
        """The file sent for ``param``: a part of that name, or the one ``attach://`` names."""
        ref = self.params.get(param)
        if isinstance(ref, str) and ref.startswith("attach://"):
            return self.files[ref.removeprefix("attach://")]
        return self.files[param]

    def matches(self, method: str, predicate: Callable[[Call], bool] | None, **params: Any):
        if self.method.lower() != method.lower():
            return False
        if any(self.params.get(k, _MISSING) != v for k, v in params.items()):
            return False
        try:
            return predicate is None or bool(predicate(self))
        except (KeyError, IndexError, TypeError, AttributeError):
            return False  # e.g. reading a result an error answer does not have: no match


@dataclass
class _Waiter:
    method: str
    predicate: Callable[[Call], bool] | None
    params: dict[str, Any]
    since: int
    answered: bool  # wait for the answer, not just the arrival
    notify: Callable[[Call], None]

    def wants(self, call: Call) -> bool:
        if call.index < self.since or (self.answered and call.status is None):
            return False
        return call.matches(self.method, self.predicate, **self.params)


class CallLog:
    """The recorded calls (guarded by ``_lock``, shared with the server's other state)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._calls: list[Call] = []
        self._waiters: list[_Waiter] = []

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method.lower() == method.lower()]

    def methods_called(self) -> list[str]:
        return [c.method for c in self.calls]

    def unknown_calls(self) -> list[Call]:
        """Calls to methods this fake (and so the test) does not know: should be none."""
        return [c for c in self.calls if c.status == 404]

    async def wait_for(
        self, method: str, predicate: Callable[[Call], bool] | None = None, *,
        since: int = 0, answered: bool = True, timeout: float = 5.0, **params: Any,
    ) -> Call:  # fmt: skip
        """The first call to ``method`` (index >= ``since``) whose params equal ``params``
        and that satisfies ``predicate``, once answered (or, with ``answered=False``, once
        it arrived: e.g. a long poll in flight); waits up to ``timeout`` seconds. A timeout
        fails the test with an AssertionError that lists the calls seen."""
        loop = asyncio.get_running_loop()
        found: asyncio.Future[Call] = loop.create_future()

        def notify(call: Call) -> None:
            with contextlib.suppress(RuntimeError):  # the test's loop may be gone
                loop.call_soon_threadsafe(lambda: found.done() or found.set_result(call))

        waiter = _Waiter(method, predicate, params, since, answered, notify)
        self._add_waiter(waiter)
        try:
            return await asyncio.wait_for(found, timeout)
        except TimeoutError:
            raise AssertionError(self._not_seen(method, params, timeout)) from None
        finally:
            self._remove_waiter(waiter)

    def wait_for_sync(
        self, method: str, predicate: Callable[[Call], bool] | None = None, *,
        since: int = 0, answered: bool = True, timeout: float = 5.0, **params: Any,
    ) -> Call:  # fmt: skip
        """:meth:`wait_for` for code that runs outside an event loop."""
        done = threading.Event()
        found: list[Call] = []

        def notify(call: Call) -> None:
            found.append(call)
            done.set()

        waiter = _Waiter(method, predicate, params, since, answered, notify)
        self._add_waiter(waiter)
        try:
            if not done.wait(timeout):
                raise AssertionError(self._not_seen(method, params, timeout))
            return found[0]
        finally:
            self._remove_waiter(waiter)

    def _add_waiter(self, waiter: _Waiter) -> None:
        with self._lock:
            for call in self._calls[waiter.since :]:
                if waiter.wants(call):
                    waiter.notify(call)
                    return
            self._waiters.append(waiter)

    def _notify_waiters(self, call: Call) -> None:
        with self._lock:
            for waiter in [w for w in self._waiters if w.wants(call)]:
                self._waiters.remove(waiter)
                waiter.notify(call)

    def _remove_waiter(self, waiter: _Waiter) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._waiters.remove(waiter)

    def _not_seen(self, method: str, params: dict[str, Any], timeout: float) -> str:
        seen = ", ".join(f"{c.method}:{c.status}" for c in self.calls)
        return f"no answered {method} call with {params} within {timeout}s; calls: {seen}"

    def record(self, method: str, params: dict[str, Any], files: dict[str, UploadedFile]):
        with self._lock:
            call = Call(len(self._calls), method, params, files)
            self._calls.append(call)
            self._notify_waiters(call)
            return call

    def answered(self, call: Call, status: int, body: dict[str, Any]) -> None:
        with self._lock:
            call.status, call.response = status, body
            self._notify_waiters(call)

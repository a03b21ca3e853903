"""Which bot processes are alive, so that one starting up recovers only stopped ones' jobs.

A run (one bot process, its jobs' ``owner``) holds an exclusive ``flock`` on
``<data dir>/runs/<run id>.lock`` from start to end. The kernel drops the lock when the
process ends, however it ends (kill -9 too), so a run is known to have stopped the moment
another process can lock its file. Processes share the data directory anyway (photos,
results); on several machines that is a shared file system, and flock works over NFSv4.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import uuid
from pathlib import Path

from chatface.errors import StorageError

if sys.platform != "win32":
    import fcntl

logger = logging.getLogger(__name__)

SUFFIX = ".lock"


class Run:
    """This process's run: a new id, alive while the run holds its lock (until
    :meth:`close` or the process ends). Windows has no ``flock``: there a run holds no
    lock, and every other run counts as stopped (chatface's bots target Linux)."""

    def __init__(self, data_dir: Path) -> None:
        self.id = uuid.uuid4().hex
        self.folder = data_dir / "runs"
        self._fd: int | None = None
        self._unreadable: set[Path] = set()  # lock files already warned about
        if sys.platform == "win32":
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        # Locked under a name no one checks, then renamed: a file under its run's name is
        # never seen unlocked while the run lives.
        fd, temporary = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                raise StorageError(
                    f"Cannot lock a file in {self.folder} ({exc.strerror}): bot processes "
                    "need file locks in the data directory (a local disk or NFSv4)."
                ) from exc
            os.replace(temporary, self.folder / f"{self.id}{SUFFIX}")
        except BaseException:
            os.close(fd)
            Path(temporary).unlink(missing_ok=True)
            raise
        self._fd = fd

    def others_alive(self) -> set[str]:
        """The ids of the other runs still alive. The files of stopped runs are deleted
        on the way; a run whose file cannot be checked counts as alive. This run's own
        file is never opened: over NFS, where locks belong to processes, closing it would
        drop this run's lock. Files are opened for writing because NFS emulates ``flock``
        with ``fcntl`` locks, and an exclusive one needs a writable descriptor."""
        if sys.platform == "win32":
            return set()
        alive = set()
        for path in self.folder.glob(f"*{SUFFIX}"):
            run_id = path.name.removesuffix(SUFFIX)
            if run_id == self.id:
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue  # another process found it stopped and deleted it
            except OSError as exc:
                self._cannot_check(path, exc)
                alive.add(run_id)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                alive.add(run_id)
            except OSError as exc:
                self._cannot_check(path, exc)
                alive.add(run_id)
            else:
                path.unlink(missing_ok=True)
            finally:
                os.close(fd)
        return alive

    def _cannot_check(self, path: Path, exc: OSError) -> None:
        """Warn, once for each file, that a run's lock could not be checked."""
        if path not in self._unreadable:
            self._unreadable.add(path)
            logger.warning(
                "Cannot check the lock file %s (%s): its run's jobs are left to it.",
                path,
                exc.strerror or exc,
            )

    def close(self) -> None:
        """End the run (its unfinished jobs become others' to recover) and delete its
        file."""
        if self._fd is not None:
            (self.folder / f"{self.id}{SUFFIX}").unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None

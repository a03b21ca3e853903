"""Database fixtures for every test package: a SQLite file and a real PostgreSQL server.

``database_url`` is parametrized over both backends, so each test that uses it runs
twice. PostgreSQL is started once per session from the local binaries
(initdb/pg_ctl) and each test gets a fresh database in it; when the server cannot be
started the PostgreSQL variants are skipped with the reason, never silently.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_USER = "chatface"
_database_numbers = itertools.count(1)


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{PG_USER}@{self.host}:{self.port}/{database}"

    def admin(self, statement: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        import psycopg

        conninfo = f"host={self.host} port={self.port} user={PG_USER} dbname=postgres"
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(statement)


def _find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    # Debian/Ubuntu keep the server binaries off PATH; prefer the newest version.
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    candidates.sort(key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(command: list[str], cwd: str) -> None:
    """Run a server command, as the postgres user when we are root (initdb refuses root)."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-2000:]
        raise RuntimeError(f"{' '.join(command)} exited with {result.returncode}: {output}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throw-away PostgreSQL server for the whole test session."""
    initdb, pg_ctl = _find_binary("initdb"), _find_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL unavailable: initdb/pg_ctl not found on PATH or in /usr/lib")
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"PostgreSQL unavailable: psycopg is not installed ({exc})")
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("PostgreSQL unavailable: running as root and runuser is missing")
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("PostgreSQL unavailable: running as root and no 'postgres' user exists")

    base = tempfile.mkdtemp(prefix="chatface-pg-")
    data = os.path.join(base, "data")
    started = False
    try:
        if os.geteuid() == 0:
            os.chown(base, owner.pw_uid, owner.pw_gid)
        port = _free_port()
        try:
            _run(
                [
                    initdb,
                    "-U",
                    PG_USER,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                    "-D",
                    data,
                ],
                cwd=base,
            )
            # fsync off (-F): the data is thrown away, and it makes each test much faster.
            options = f"-h 127.0.0.1 -p {port} -k {base} -F"
            log = os.path.join(base, "server.log")
            _run([pg_ctl, "-D", data, "-o", options, "-l", log, "-w", "-t", "60", "start"], base)
            started = True
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
            log_tail = ""
            log_file = Path(base, "server.log")
            if log_file.exists():
                log_tail = " Server log: " + log_file.read_text(errors="replace")[-1000:]
            pytest.skip(f"PostgreSQL unavailable: {exc}{log_tail}")
        yield PostgresServer("127.0.0.1", port)
    finally:
        if started:
            try:
                _run([pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"], base)
            except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
                # Leaving the directory keeps the server's files for whoever looks next.
                pytest.fail(f"Could not stop the test PostgreSQL server in {base}: {exc}")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    name = f"t_{next(_database_numbers)}"
    postgres_server.admin(f"CREATE DATABASE {name}")
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend; the SQLite file's folder does not exist yet."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'chatface.db'}"
    return str(request.getfixturevalue("postgres_url"))

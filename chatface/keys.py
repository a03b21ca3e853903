"""Secrets (API keys, bot tokens): from the environment or a 0600 key file, never config.

Lookup order for a key NAME: ``$CHATFACE_KEY_<NAME>``, then the conventional
variable for well-known names (``ANTHROPIC_API_KEY``, ``TELEGRAM_BOT_TOKEN``,
``DISCORD_BOT_TOKEN``), then ``<data dir>/keys.json``. The file is written with
mode 0600 and refused when others can read it. Values are never logged or printed.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from chatface.errors import KeyStoreError
from chatface.files import atomic_write

KNOWN_ENV = {
    "anthropic": "ANTHROPIC_API_KEY",
    "telegram": "TELEGRAM_BOT_TOKEN",
    "discord": "DISCORD_BOT_TOKEN",
}
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise KeyStoreError(
            "Key names are lower-case letters, digits, '-' and '_' (e.g. 'anthropic'); "
            f"got {name!r}."
        )
    return name


def env_names(name: str) -> list[str]:
    names = [f"CHATFACE_KEY_{name.upper().replace('-', '_')}"]
    if name in KNOWN_ENV:
        names.append(KNOWN_ENV[name])
    return names


class KeyStore:
    def __init__(self, path: Path, environ: dict[str, str] | None = None) -> None:
        self.path = path
        self._environ = os.environ if environ is None else environ

    def _read(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            raise KeyStoreError(
                f"{self.path} can be read by other users (mode {mode:o}); "
                f"run `chmod 600 {self.path}` and try again."
            )
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise KeyStoreError(f"Cannot read the key file {self.path}: {exc}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise KeyStoreError(f"{self.path} must hold a JSON object of name -> key strings.")
        return data

    def _write(self, data: dict[str, str]) -> None:
        # 0600 from the start, so the key is never readable by others, not even briefly.
        text = json.dumps(data, indent=2, sort_keys=True)
        atomic_write(self.path, text.encode("utf-8"), private=True)

    def get(self, name: str) -> str | None:
        """The key, or None when it is set nowhere."""
        _check_name(name)
        for var in env_names(name):
            if self._environ.get(var):
                return self._environ[var]
        return self._read().get(name)

    def source(self, name: str) -> str | None:
        """Where the key would be read from ('$VAR' or the file path), without the value."""
        _check_name(name)
        for var in env_names(name):
            if self._environ.get(var):
                return f"${var}"
        return str(self.path) if name in self._read() else None

    def require(self, name: str) -> str:
        value = self.get(name)
        if not value:
            variables = " or ".join(f"${v}" for v in env_names(name))
            raise KeyStoreError(
                f"No '{name}' key is set. Run `chatface keys set {name}` or set {variables}."
            )
        return value

    def set(self, name: str, value: str) -> None:
        _check_name(name)
        if not value.strip():
            raise KeyStoreError("Refusing to store an empty key.")
        data = self._read()
        data[name] = value.strip()
        self._write(data)

    def remove(self, name: str) -> bool:
        data = self._read()
        if _check_name(name) not in data:
            return False
        del data[name]
        self._write(data)
        return True

    def names(self) -> list[str]:
        """Names stored in the file (environment keys are not listed here)."""
        return sorted(self._read())


def key_store(data_dir: Path) -> KeyStore:
    return KeyStore(data_dir / "keys.json")

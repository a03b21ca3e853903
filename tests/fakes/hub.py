"""A strict stand-in for the Hugging Face Hub (and any plain file server) on 127.0.0.1.

It answers what chatface and huggingface_hub ask: ``GET /api/models/<repo>/tree/<rev>``
(the recursive file listing, with LFS sha256s) and ``GET /<repo>/resolve/<rev>/<path>``
with ``Range`` support; any other path is served from ``files`` as a plain server.
Tests can cut a transfer after some bytes once (an interrupted download), lie about a
sha256, and read back the requests it got.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit


@dataclass
class FakeHub:
    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)  # repo -> path -> bytes
    files: dict[str, bytes] = field(default_factory=dict)  # plain server: URL path -> bytes
    wrong_sha256: set[str] = field(default_factory=set)  # paths whose listed sha256 lies
    cut_after: dict[str, int] = field(default_factory=dict)  # path -> bytes, once
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, Range
    served: list[tuple[str, int]] = field(default_factory=list)  # path, body bytes sent
    url: str = ""

    def tree(self, repo: str) -> list[dict]:
        entries = []
        for path, data in sorted(self.repos[repo].items()):
            sha = hashlib.sha256(data).hexdigest()
            if path in self.wrong_sha256:
                sha = "0" * 64
            entries.append({
                "type": "file", "path": path, "size": len(data),
                "oid": hashlib.sha1(data).hexdigest(),
                "lfs": {"oid": sha, "size": len(data), "pointerSize": 134},
            })  # fmt: skip
        return entries

    def served_bytes(self, path_suffix: str) -> int:
        return sum(n for p, n in self.served if p.endswith(path_suffix))


def _handler(hub: FakeHub) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None):
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = unquote(urlsplit(self.path).path)
            hub.requests.append(("GET", path, self.headers.get("Range")))
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and "tree" in parts:
                at = parts.index("tree")
                repo = "/".join(parts[2:at])
                if repo not in hub.repos:
                    return self._send(404, b'{"error": "Repository not found"}')
                body = json.dumps(hub.tree(repo)).encode()
                return self._send(200, body, {"Content-Type": "application/json"})
            if "resolve" in parts:
                at = parts.index("resolve")
                repo, file = "/".join(parts[:at]), "/".join(parts[at + 2 :])
                data = hub.repos.get(repo, {}).get(file)
            else:
                data = hub.files.get(path)
            if data is None:
                return self._send(404, b"not found")
            self._serve(path, data)

        def _serve(self, path: str, data: bytes) -> None:
            start = 0
            wanted = self.headers.get("Range")
            if wanted and wanted.startswith("bytes="):
                start = int(wanted[len("bytes=") :].split("-")[0])
                if start >= len(data):
                    return self._send(416, b"")
            body = data[start:]
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.end_headers()
            cut = hub.cut_after.pop(path, None)
            if cut is not None:  # an interrupted transfer: part of the body, then hang up
                self.wfile.write(body[:cut])
                self.wfile.flush()
                hub.served.append((path, cut))
                self.close_connection = True
                return
            self.wfile.write(body)
            hub.served.append((path, len(body)))

    return Handler


@contextmanager
def serve(hub: FakeHub) -> Iterator[FakeHub]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

"""Downloading the weights a plugin declares: from its sources, resumable, checked.

A :class:`~chatface.engine.types.WeightsSpec` lists sources; ``--from`` (or the
``weights.base_url`` setting, tried first) adds one. Each kind fetches files into
``<data dir>/weights/.downloads/<name>/<source>/``:

- ``url``: ``<base>/<name>/SHA256SUMS`` lists the files; each must match its sum.
- ``huggingface``: the repository's files are listed with huggingface_hub (endpoint from
  ``HF_ENDPOINT``, token from ``HF_TOKEN``, read at call time), checkpoint candidates are
  picked by name, and each is checked against the sha256 the Hub records for it.
- ``gdrive``: gdown fetches the folder (and resumes partial files itself).

Files are fetched by our own resumable HTTP loop (a ``Range`` request continues a
``.part`` file after an interruption or a restart; huggingface_hub only resumes within
one call and from its last 10 MiB boundary, and checks only the size), hashed with
hashlib and compared with the expected sha256. No file name is guessed: every
candidate is read (never unpickled without ``trust_pickle``) and offered to the
plugin's importer, which checks it strictly against what the plugin loads. The first
that fits is installed through the same atomic path as ``chatface weights import``;
the download folder is then removed. If no source works, the error lists why for each
and names the import command.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from chatface import __version__
from chatface.config import Config, load_config
from chatface.engine.checkpoints import UnsafeCheckpointError, WeightsError, read_checkpoint
from chatface.engine.types import WeightsSource, WeightsSpec
from chatface.engine.weights import (
    MANIFEST_FILE,
    SUMS_FILE,
    DownloadError,
    ProgressFn,
    WeightsInfo,
    import_checkpoint,
    import_command,
    sha256_file,
    weights_root,
)

logger = logging.getLogger(__name__)
_CHUNK = 1 << 20
# Files worth offering to an importer: checkpoints, state dicts, latent statistics.
CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".safetensors", ".pkl")
_NETWORK_ERRORS = (OSError, ValueError, http.client.HTTPException)  # URLError is an OSError


def parse_source(text: str) -> WeightsSource:
    """``--from``: ``hf://owner/repo[@rev]``, ``gdrive://FOLDER_ID`` or an http(s) base URL."""
    text = text.strip()
    if text.startswith("hf://"):
        return WeightsSource("huggingface", text[len("hf://") :].strip("/"))
    if text.startswith("gdrive://"):
        return WeightsSource("gdrive", text[len("gdrive://") :].strip("/"))
    if urllib.parse.urlsplit(text).scheme in ("http", "https"):
        return WeightsSource("url", text.rstrip("/"))
    raise DownloadError(
        f"Unknown download source {text!r}: use hf://owner/repo[@revision], "
        "gdrive://FOLDER_ID or an https:// base URL."
    )


def sources_for(spec: WeightsSpec, source: str | None, settings: Config) -> list[WeightsSource]:
    """``--from`` alone when given; else the configured mirror, then the plugin's sources."""
    if source:
        return [parse_source(source)]
    mirror = (settings["weights.base_url"] or "").strip()
    return ([parse_source(mirror)] if mirror else []) + list(spec.sources)


def download(
    spec: WeightsSpec,
    *,
    source: str | None = None,
    trust_pickle: bool = False,
    progress: ProgressFn | None = None,
    settings: Config | None = None,
    other_names: Sequence[str] = (),
) -> WeightsInfo:
    """Fetch ``spec`` from the first source that has it, check it, install it.

    ``other_names`` are the other declared weights: a file named after one of them
    (``ffhq256_autoenc_cls`` when looking for ``ffhq256_autoenc``) is tried last.
    """
    settings = settings or load_config()
    timeout = float(settings["weights.timeout_s"])
    others = [name for name in (other_names or ()) if name != spec.name]
    failures: list[str] = []
    for where in sources_for(spec, source, settings):
        folder = weights_root(settings) / ".downloads" / spec.name / _slug(where)
        try:
            found = _FETCHERS[where.kind](where, spec, folder, timeout, progress)
            info = _install_first(spec, rank(found, spec.name, others), where, trust_pickle,
                                  settings)  # fmt: skip
        except UnsafeCheckpointError:
            raise  # the user must decide; the message names the source and --trust-pickle
        except WeightsError as exc:
            logger.info("%s from %s: %s", spec.name, where.describe(), exc)
            failures.append(f"{where.describe()}: {exc}")
            continue
        shutil.rmtree(folder.parent, ignore_errors=True)  # this and other sources' leftovers
        with suppress(OSError):
            folder.parent.parent.rmdir()  # .downloads itself, when nothing else is pending
        return info
    reasons = "".join(f"\n  - {reason}" for reason in failures) or " (no source is known)"
    raise DownloadError(
        f"Could not download '{spec.name}':{reasons}\nIf you are offline, get the files by "
        f"hand ({spec.manual_url or 'docs/weights.md'}) and run `{import_command(spec.name)}`."
    )


def _slug(source: WeightsSource) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{source.kind}-{source.location}")[:120]


# --- choosing and installing -------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A checkpoint-like file of a source; ``fetch()`` downloads it (with the spec's
    companion files beside it) and returns its local path and sha256."""

    path: str  # where it is in the source, e.g. "ffhq256_autoenc/last.ckpt"
    size: int
    fetch: Callable[[], tuple[Path, str]]


def rank(candidates: list[Candidate], name: str, others: Sequence[str]) -> list[Candidate]:
    """The likeliest first: in a folder or file called ``name``; then a path mentioning it;
    then the rest; last, paths naming another declared set. Within each, safetensors
    files first, then bigger first."""

    def key(candidate: Candidate) -> tuple[int, bool, int]:
        path = PurePosixPath(candidate.path.lower())
        if name.lower() in (*path.parent.parts, path.stem):
            group = 0
        elif any(other.lower() in str(path) for other in others if len(other) > len(name)):
            group = 3
        else:
            group = 1 if name.lower() in str(path) else 2
        # safetensors first: the same weights in a pickle would need --trust-pickle at worst.
        return group, path.suffix != ".safetensors", -candidate.size

    return sorted(candidates, key=key)


def _install_first(
    spec: WeightsSpec,
    candidates: list[Candidate],
    where: WeightsSource,
    trust_pickle: bool,
    settings: Config,
) -> WeightsInfo:
    """Download and offer each candidate in turn; install the first the importer accepts."""
    problems = []
    for candidate in candidates:
        if PurePosixPath(candidate.path).name in spec.companions:
            continue  # read beside a checkpoint, never a checkpoint itself
        path, sha256 = candidate.fetch()  # DownloadError: this source fails as a whole
        try:
            checkpoint = read_checkpoint(path, trust_pickle=trust_pickle, origin=where.describe())
            if not spec.importer.recognises(checkpoint):
                problems.append(f"{candidate.path}: not this kind of checkpoint")
                continue
            source = {"from": where.describe(), "file": candidate.path, "sha256": sha256}
            options = {"trust_pickle": trust_pickle}
            info = import_checkpoint(
                checkpoint, spec.importer, name=spec.name, options=options, source=source,
                settings=settings,
            )  # fmt: skip
        except UnsafeCheckpointError:
            raise
        except WeightsError as exc:
            problems.append(f"{candidate.path}: {exc}")
            continue
        logger.info("installed %s from %s (%s)", spec.name, where.describe(), candidate.path)
        return info
    shown = "; ".join(problems) if problems else "no checkpoint files"
    raise WeightsError(f"nothing there fits '{spec.name}' ({shown})")


def _local(folder: Path, files: Mapping[Path, str | None]) -> list[Candidate]:
    """Candidates for files that are already on disk (a mirror's, a Drive folder's)."""

    def fetched(path: Path, sha256: str | None) -> Callable[[], tuple[Path, str]]:
        return lambda: (path, sha256 or sha256_file(path))

    return [
        Candidate(path.relative_to(folder).as_posix(), path.stat().st_size, fetched(path, sha))
        for path, sha in files.items()
        if path.suffix.lower() in CHECKPOINT_SUFFIXES
    ]


# --- fetching -------------------------------------------------------------------------------


def fetch_file(
    url: str,
    dest: Path,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    expected_sha256: str | None = None,
    progress: ProgressFn | None = None,
) -> str:
    """Download ``url`` to ``dest`` and return its sha256, resuming a ``.part`` left behind.

    A mismatch with ``expected_sha256`` deletes what was fetched and raises DownloadError;
    an interrupted transfer keeps the ``.part`` file, so the next call continues it.
    """
    if dest.is_file() and expected_sha256 and sha256_file(dest) == expected_sha256:
        return expected_sha256  # fetched completely in an earlier run
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": f"chatface/{__version__}"})
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the .part is already whole (or stale): start over
            part.unlink()
            return fetch_file(
                url, dest, timeout=timeout, headers=headers,
                expected_sha256=expected_sha256, progress=progress,
            )  # fmt: skip
        raise _network_error(url, exc) from None
    except _NETWORK_ERRORS as exc:
        raise _network_error(url, exc) from None
    with response:
        if offset and response.status != 206:
            offset = 0  # the server ignored the range: the whole file comes again
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        done = offset
        with part.open("ab" if offset else "wb") as fh:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except _NETWORK_ERRORS as exc:
                    raise _interrupted(url, dest, exc) from None
                if not chunk:
                    break
                fh.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(dest.name, done, total)
            fh.flush()
            os.fsync(fh.fileno())
    if total is not None and done < total:
        raise _interrupted(url, dest, f"got {done} of {total} bytes")
    got = sha256_file(part)
    if expected_sha256 and got != expected_sha256:
        part.unlink()
        raise DownloadError(
            f"{url} does not match its expected sha256 (got {got}, expected {expected_sha256}); "
            "nothing was installed. The source may be corrupt or tampered with."
        )
    os.replace(part, dest)
    return got


def _interrupted(url: str, dest: Path, why: object) -> DownloadError:
    return DownloadError(
        f"The download of {url} was interrupted ({why}). Run the same command again: it "
        f"continues from {dest.name}.part."
    )


def _network_error(url: str, exc: BaseException) -> DownloadError:
    if isinstance(exc, urllib.error.HTTPError):
        return DownloadError(f"{url} answered HTTP {exc.code} {exc.reason}")
    return DownloadError(f"{url} cannot be reached ({getattr(exc, 'reason', None) or exc})")


Fetcher = Callable[[WeightsSource, WeightsSpec, Path, float, ProgressFn | None], list["Candidate"]]


def _fetch_url(
    source: WeightsSource,
    spec: WeightsSpec,
    folder: Path,
    timeout: float,
    progress: ProgressFn | None,
) -> list[Candidate]:
    base = f"{source.location.rstrip('/')}/{urllib.parse.quote(spec.name)}"
    sums_path = folder / SUMS_FILE
    with suppress(FileNotFoundError):
        sums_path.unlink()  # always the current list
    fetch_file(f"{base}/{SUMS_FILE}", sums_path, timeout=timeout)
    sums = _parse_sums(sums_path.read_text(errors="replace"), f"{base}/{SUMS_FILE}")
    files = {}
    for file, expected in sums.items():
        url = f"{base}/{urllib.parse.quote(file)}"
        fetch_file(url, folder / file, timeout=timeout, expected_sha256=expected, progress=progress)
        files[folder / file] = expected
    return _local(folder, files)


def _parse_sums(text: str, url: str) -> dict[str, str]:
    sums: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        match = re.fullmatch(r"([0-9a-fA-F]{64}) [ *]?([A-Za-z0-9_][A-Za-z0-9_.-]*)", line.strip())
        if not match:
            raise DownloadError(f"{url}: not a SHA256SUMS line: {line[:80]!r}")
        if match.group(2) != MANIFEST_FILE:
            sums[match.group(2)] = match.group(1).lower()
    if not sums:
        raise DownloadError(f"{url} lists no files.")
    return sums


def _fetch_huggingface(
    source: WeightsSource,
    spec: WeightsSpec,
    folder: Path,
    timeout: float,
    progress: ProgressFn | None,
) -> list[Candidate]:
    """List the repository; candidates download on demand, so a repository holding many
    models costs only the files tried."""
    from huggingface_hub import HfApi, hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise DownloadError("skipped: HF_HUB_OFFLINE is set")
    # Read here, not at import time as huggingface_hub does, so a changed environment counts.
    endpoint = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or None
    token = os.environ.get("HF_TOKEN") or None
    repo, _, revision = source.location.partition("@")
    _check_reachable(f"{endpoint or 'https://huggingface.co'}/api/models/{repo}", timeout)
    api = HfApi(endpoint=endpoint, token=token)
    try:
        entries = {
            entry.path: entry
            for entry in api.list_repo_tree(repo, recursive=True, revision=revision or None)
            if hasattr(entry, "lfs")  # files, not folders
        }
    except Exception as exc:  # the Hub client raises its own error types; all mean "not here"
        raise DownloadError(f"cannot list {repo} ({type(exc).__name__}: {exc})") from None
    headers = build_hf_headers(token=token, library_name="chatface", library_version=__version__)

    def get(entry: Any) -> tuple[Path, str]:
        url = hf_hub_url(repo, entry.path, revision=revision or None, endpoint=endpoint)
        expected = entry.lfs.sha256 if entry.lfs is not None else None
        dest = folder / entry.path
        sha = fetch_file(
            url, dest, timeout=timeout, headers=headers, expected_sha256=expected,
            progress=progress,
        )  # fmt: skip
        return dest, sha

    def fetcher(entry: Any) -> Callable[[], tuple[Path, str]]:
        def fetch() -> tuple[Path, str]:
            beside = PurePosixPath(entry.path).parent
            for companion in spec.companions:
                if (found := entries.get(str(beside / companion).removeprefix("./"))) is not None:
                    get(found)
            return get(entry)

        return fetch

    return [
        Candidate(path, entry.size or 0, fetcher(entry))
        for path, entry in entries.items()
        if PurePosixPath(path).suffix.lower() in CHECKPOINT_SUFFIXES
    ]


def _check_reachable(url: str, timeout: float) -> None:
    """Fail fast when the host does not answer: huggingface_hub retries a refused
    connection with back-off for about 20 s before giving up."""
    try:
        urllib.request.urlopen(url, timeout=min(timeout, 15)).close()
    except urllib.error.HTTPError:
        pass  # it answered; the listing says what is wrong
    except _NETWORK_ERRORS as exc:
        raise _network_error(url, exc) from None


def _fetch_gdrive(
    source: WeightsSource,
    spec: WeightsSpec,
    folder: Path,
    timeout: float,
    progress: ProgressFn | None,
) -> list[Candidate]:
    import gdown

    folder.mkdir(parents=True, exist_ok=True)
    try:
        # gdown draws its own progress bars and keeps partial files for resume=True.
        paths = gdown.download_folder(
            id=source.location, output=str(folder), quiet=progress is None, resume=True
        )
    except Exception as exc:  # gdown raises many kinds (HTTP, parsing, quota): all "not here"
        raise DownloadError(f"Google Drive folder {source.location}: {exc}") from None
    if not paths:
        raise DownloadError(f"Google Drive folder {source.location} gave no files")
    return _local(folder, {Path(p): None for p in paths if p})


_FETCHERS: dict[str, Fetcher] = {
    "url": _fetch_url,
    "huggingface": _fetch_huggingface,
    "gdrive": _fetch_gdrive,
}

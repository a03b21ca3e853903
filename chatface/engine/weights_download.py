"""Download weights from a configured source: ``<base>/<name>/<file>`` plus a SHA256SUMS.

The base URL (setting ``weights.base_url``) is plain HTTP(S) or ``hf://owner/repo`` for a
public Hugging Face repository. Every file is streamed into a hidden staging directory,
checked against ``<base>/<name>/SHA256SUMS`` and installed only when all files match, so
a failed or interrupted download leaves nothing behind and the previous version intact.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from chatface import __version__
from chatface.config import Config, load_config
from chatface.engine.weights import (
    CLASSIFIER_FILE,
    CONFIG_FILE,
    DEFAULT_BASE_URL,
    MANIFEST_FILE,
    MODEL_FILE,
    OFFICIAL_CHECKPOINTS,
    SUMS_FILE,
    DownloadError,
    ProgressFn,
    WeightsInfo,
    import_command,
    install_from_staging,
    read_info,
    staging_dir,
    weights_dir,
    write_manifest,
)

logger = logging.getLogger(__name__)
_CHUNK = 1 << 20


def _file_url(base: str, name: str, file: str) -> str:
    if base.startswith("hf://"):
        from huggingface_hub import hf_hub_url

        repo, _, revision = base[len("hf://") :].strip("/").partition("@")
        return hf_hub_url(repo, f"{name}/{file}", revision=revision or None)
    scheme = urllib.parse.urlsplit(base).scheme
    if scheme not in ("http", "https"):
        raise DownloadError(f"weights.base_url must be https://..., http://... or hf://: {base}")
    return f"{base.rstrip('/')}/{urllib.parse.quote(name)}/{urllib.parse.quote(file)}"


def _network_error(url: str, name: str, exc: BaseException) -> DownloadError:
    if isinstance(exc, urllib.error.HTTPError):
        what = f"answered HTTP {exc.code} {exc.reason}"
    else:
        what = f"cannot be reached ({getattr(exc, 'reason', None) or exc})"
    return DownloadError(
        f"{url} {what}. If you are offline or the source does not have '{name}', import "
        f"the official checkpoint instead: `{import_command(name)}` (docs/weights.md)."
    )


def _stream(url: str, name: str, dest: Path, timeout: float, progress: ProgressFn | None) -> str:
    """Download url to dest; return the sha256 of what was written."""
    request = urllib.request.Request(url, headers={"User-Agent": f"chatface/{__version__}"})
    network_errors = (OSError, ValueError, http.client.HTTPException)  # URLError is an OSError
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except network_errors as exc:
        raise _network_error(url, name, exc) from None
    digest, done = hashlib.sha256(), 0
    length = response.headers.get("Content-Length")
    total = int(length) if length and length.isdigit() else None
    with response, dest.open("wb") as fh:
        while True:
            try:
                chunk = response.read(_CHUNK)
            except network_errors as exc:
                raise _network_error(url, name, exc) from None
            if not chunk:
                break
            fh.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(dest.name.removesuffix(".part"), done, total)
        fh.flush()
        os.fsync(fh.fileno())
    return digest.hexdigest()


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
    if MODEL_FILE not in sums and CLASSIFIER_FILE not in sums:
        raise DownloadError(f"{url} lists neither {MODEL_FILE} nor {CLASSIFIER_FILE}.")
    if MODEL_FILE in sums and CONFIG_FILE not in sums:
        raise DownloadError(f"{url} lists {MODEL_FILE} without {CONFIG_FILE}.")
    return sums


def _check_downloaded(staging: Path, kind: str) -> None:
    """Downloaded weights must be as usable as imported ones (keys and shapes only)."""
    from safetensors import safe_open

    from chatface.engine.weights_import import check_against_model
    from chatface.plugins.diffae.config import DiffAEConfig

    file = MODEL_FILE if kind == "autoencoder" else CLASSIFIER_FILE
    try:
        with safe_open(str(staging / file), framework="pt") as fh:
            shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118
        netcfg = (
            DiffAEConfig.from_json_file(staging / CONFIG_FILE) if kind == "autoencoder" else None
        )
    except Exception as exc:
        raise DownloadError(f"The downloaded {file} is not usable ({exc}).") from None
    if netcfg is not None:
        check_against_model(shapes, netcfg, f"the downloaded {CONFIG_FILE}")
    elif not {"classifier.weight", "classifier.bias", "conds_mean", "conds_std"} <= shapes.keys():
        raise DownloadError(
            f"The downloaded {file} lacks classifier.weight/bias or conds_mean/conds_std."
        )


def download(
    name: str,
    *,
    base_url: str | None = None,
    timeout_s: float | None = None,
    progress: ProgressFn | None = None,
    settings: Config | None = None,
) -> WeightsInfo:
    """Fetch ``<base>/<name>/SHA256SUMS`` and every file it lists; verify, then install.

    The base URL comes from the setting ``weights.base_url`` unless given; ``hf://owner/repo``
    (optionally ``@revision``) reads a public Hugging Face repository.
    """
    settings = settings or load_config()
    target = weights_dir(name, settings)
    base = base_url if base_url is not None else settings["weights.base_url"]
    base = (base or DEFAULT_BASE_URL).strip()
    if not base:
        raise DownloadError(
            f"No download source is configured (setting weights.base_url), so '{name}' cannot "
            "be downloaded. The official DiffAE checkpoints are on the authors' Google Drive, "
            f"linked from {OFFICIAL_CHECKPOINTS}: download the folder {name} into checkpoints/, "
            f"then run `{import_command(name)}` (docs/weights.md)."
        )
    timeout = float(timeout_s or settings["weights.timeout_s"])
    with staging_dir(target.parent, name) as staging:
        sums_url = _file_url(base, name, SUMS_FILE)
        sums_sha = _stream(sums_url, name, staging / SUMS_FILE, timeout, None)
        sums = _parse_sums((staging / SUMS_FILE).read_text(errors="replace"), sums_url)
        (staging / SUMS_FILE).unlink()
        started = time.monotonic()
        for file, expected in sums.items():
            url = _file_url(base, name, file)
            part = staging / f"{file}.part"
            got = _stream(url, name, part, timeout, progress)
            if got != expected:
                raise DownloadError(
                    f"{url} does not match {SUMS_FILE} (sha256 {got}, expected {expected}); "
                    "nothing was installed. The mirror may be corrupt or tampered with."
                )
            os.replace(part, staging / file)
        logger.info("Downloaded %s in %.1f s", name, time.monotonic() - started)
        kind = "classifier" if CLASSIFIER_FILE in sums else "autoencoder"
        _check_downloaded(staging, kind)
        source = {"url": base, "sha256sums_sha256": sums_sha}
        write_manifest(staging, name, kind, dict(sums), source=source, notes=[])
        install_from_staging(staging, target)
    return read_info(target)

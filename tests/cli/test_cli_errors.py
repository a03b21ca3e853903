"""Mistakes a new user makes, run as a subprocess: one error line, before any slow work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

PHOTO = Path(__file__).resolve().parents[1] / "data" / "faces" / "obama.jpg"
TINY = ["--backend", "tiny", "--encode-steps", "2", "--steps", "2"]


def chatface(*args: object, cwd: Path, input: str | None = None) -> subprocess.CompletedProcess:
    """The console script as a user runs it (CHATFACE_HOME comes from the autouse fixture)."""
    code = "import sys; from chatface.cli.main import run; sys.argv[0] = 'chatface'; run()"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        env=os.environ | {"COLUMNS": "80"},
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["edit", "nope.jpg", "--set", "smile=0.5", *TINY], "Cannot read nope.jpg"),
        (["edit", "empty.jpg", "--set", "smile=0.5", *TINY], "The file is empty"),
        (["edit", PHOTO, "--set", "smile=0.5", "--backend", "nope"], "No backend called 'nope'"),
        (["edit", PHOTO, "--set", "smile=0.5", "--backend", "diffae"], "are not installed"),
        (["edit", PHOTO, "--set", "smile=0.5", "-o", "out.xyz", *TINY], "Unknown image type"),
        (["edit", PHOTO, "--set", "smile=0.5", "-o", "file.txt/out.png", *TINY], "Cannot write"),
        (["edit", PHOTO, "hello there", *TINY], "'hello there' asks for no edit"),
        (["edit", PHOTO, *TINY], "Say what to change"),
        (["encode", PHOTO, "-o", "file.txt/face.safetensors", *TINY[:2]], "Cannot write"),
        (["chat", "empty.jpg", "--backend", "tiny"], "The file is empty"),
        (["chat", PHOTO, "--backend", "diffae"], "Model weights 'ffhq256_autoenc'"),
        (["weights", "remove", "ffhq256_autoenc", "--yes"], "`chatface weights list` shows"),
    ],
    ids=[
        "missing photo", "empty photo", "unknown backend", "no weights", "bad extension",
        "unwritable output", "no edit in the message", "nothing to do", "unwritable latents",
        "chat empty photo", "chat named backend without weights", "remove what is not there",
    ],
)  # fmt: skip
def test_input_errors_are_one_line_before_any_progress(tmp_path, args, message) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "file.txt").write_text("a file, not a folder")
    before = sorted(tmp_path.iterdir())
    result = chatface(*args, cwd=tmp_path, input="quit\n")
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()  # no progress bar, no banner, no wrapped lines
    assert line.startswith("Error: ") and message in line, line
    assert ".tmp" not in line and "Traceback" not in line
    assert sorted(tmp_path.iterdir()) == before  # no output file or folder left behind


def test_an_error_during_the_work_clears_the_unfinished_progress_bar(tmp_path) -> None:
    Image.new("RGB", (200, 200), (128, 128, 128)).save(tmp_path / "wall.png")
    result = chatface("edit", "wall.png", "--set", "smile=0.5", *TINY, cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[-1].startswith("Error: No face found")
    assert not any("Encoding the face" in line for line in lines), lines
    assert "random weights" in lines[0]  # the tiny banner, then the error: nothing between


def test_progress_bars_stay_when_the_work_succeeds(tmp_path) -> None:
    result = chatface("edit", PHOTO, "--set", "smile=0.5", *TINY, "-o", "out.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Encoding the face" in result.stderr and "Rendering the edit" in result.stderr
    assert (tmp_path / "out.png").is_file()

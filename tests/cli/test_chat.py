"""chatface plan and chatface chat, with the real rule planner and the tiny backend."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from chatface.cli.main import app

PHOTO = Path(__file__).resolve().parents[1] / "data" / "faces" / "ardern_2022.jpg"


def invoke(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, [str(a) for a in args], input=input)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_plan_prints_exactly_one_contract_object(tmp_path) -> None:
    state = tmp_path / "state.json"
    state.write_text('{"strengths": {"eyeglasses": 0.5}}')
    result = invoke("plan", "--json", "--state", state, "remove the glasses")
    plan = json.loads(result.output)  # one object, nothing else on stdout
    assert set(plan) == {"action", "edits", "steps", "reply"}
    assert plan["action"] == "edit"
    assert plan["edits"] == [{"attribute": "eyeglasses", "strength": -0.5}]
    words = invoke("plan", "a little older").output
    assert words.splitlines()[0] == "edit: age +0.25"


def test_plan_starts_without_torch_or_weights() -> None:
    code = (
        "import sys; from chatface.cli.main import run; sys.argv = ['chatface', 'plan', "
        "'--json', 'hi']\ntry:\n    run()\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert json.loads(result.stdout)["action"] == "chat"
    assert result.stderr.strip().endswith("False")


def test_chat_session_in_the_terminal(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CHATFACE_RENDER_ENCODE_STEPS", "4")
    monkeypatch.setenv("CHATFACE_RENDER_STEPS", "3")
    lines = ["make her smile", "a bit more", "/undo", "what can you change?", "redo"]
    lines += ["/history", "/forget", "quit"]
    out = tmp_path / "turns"
    result = invoke("chat", PHOTO, "--backend", "tiny", "-o", out, input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    assert "Got the face" in result.output and "Bye." in result.output
    saved = sorted(out.iterdir())
    assert [p.name for p in saved] == ["001.png", "002.png", "003.png", "004.png"]
    smile, more, undone, redone = (np.asarray(Image.open(p)) for p in saved)
    assert np.array_equal(undone, smile) and np.array_equal(redone, more)
    assert not np.array_equal(smile, more)
    assert "smile" in result.output.split("what can you change?")[-1]
    assert "1. smile +0.50\n2. smile +0.25  <- now" in result.output  # /history
    assert "Are you sure?\n  (answer /forget yes or /forget no)" in result.output

    history = json.loads(invoke("history", "--json").output)
    [face] = history["conversations"][0]["faces"]
    assert face["cursor"] == 2 and len(face["edits"]) == 2
    assert (
        face["edits"][1]["state"]["strengths"]["smile"]
        > face["edits"][0]["state"]["strengths"]["smile"]
    )


def test_edit_takes_a_message(tmp_path) -> None:
    out = tmp_path / "older.png"
    result = invoke("edit", PHOTO, "make her much older", "-o", out, "--backend", "tiny",
                    "--encode-steps", "3", "--steps", "2")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "(age +0.80)" in " ".join(result.output.split()) and out.is_file()


def test_chat_without_weights_falls_back_to_tiny_and_takes_a_new_photo(
    tmp_path, monkeypatch
) -> None:
    # No --backend: the default (diffae) has no weights, so chat uses tiny like the demo.
    monkeypatch.setenv("CHATFACE_RENDER_ENCODE_STEPS", "3")
    monkeypatch.setenv("CHATFACE_RENDER_STEPS", "2")
    other = Path(__file__).resolve().parents[1] / "data" / "faces" / "obama.jpg"
    lines = [
        "make her smile",
        "/photo nope.jpg",  # a bad photo is a reply; the session and its face go on
        "more",
        "/photo",
        f"/photo '{other}'",
        "add glasses",
        "undo",
        "quit",
    ]
    out = tmp_path / "turns"
    result = invoke("chat", PHOTO, "-o", out, input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Falling back to the 'tiny' backend" in text and "random weights" in text
    assert "Cannot read nope.jpg" in text and "(The current photo stays.)" in text
    assert "Say which photo: /photo PATH." in text
    assert text.count("Got the face.") == 2
    sizes = [Image.open(p).size for p in sorted(out.iterdir())]
    first, second = Image.open(PHOTO).size, Image.open(other).size
    assert first != second
    assert sizes == [first, first, second, second]  # smile, more; glasses, undo (the photo)
    history = json.loads(invoke("history", "--json").output)
    faces = history["conversations"][0]["faces"]
    assert [f["source"] for f in faces] == ["ardern_2022.jpg", "obama.jpg"]
    assert [len(f["edits"]) for f in faces] == [2, 1] and faces[1]["cursor"] == 0


def test_chat_with_an_unusable_photo_stops_and_creates_nothing(tmp_path, monkeypatch) -> None:
    from chatface.errors import NoFaceError

    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (200, 200), (90, 90, 90)).save(tmp_path / "wall.png")
    with pytest.raises(NoFaceError):
        invoke("chat", tmp_path / "wall.png", "--backend", "tiny", input="smile\nquit\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wall.png"]  # no chat-wall/

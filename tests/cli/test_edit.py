"""chatface edit / encode / render / demo, end to end with the random-weight tiny backend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from chatface.cli.main import app
from chatface.engine.weights import import_command
from chatface.errors import ChatFaceError, NotAnImageError, PlanError, WeightsMissingError
from tests.conftest import isolate

DATA = Path(__file__).resolve().parents[1] / "data" / "faces"
PHOTO = DATA / "obama.jpg"
FAST = ["--backend", "tiny", "--encode-steps", "4", "--steps", "3"]


def invoke(*args: str):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def edited(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("edit") / "smile.png"
    # Made before any test's isolated environment exists: set up the same one here.
    with pytest.MonkeyPatch.context() as env:
        isolate(env, tmp_path_factory.mktemp("home"))
        args = ("edit", PHOTO, "--set", "smile=0.8", "--set", "glasses=0.5", "-o", out, *FAST)
        result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "random weights" in result.output  # the tiny backend is never silent about it
    return out


def test_edit_replaces_only_the_face_region_of_a_full_size_photo(edited) -> None:
    original, result = pixels(PHOTO), pixels(edited)
    assert result.shape == original.shape
    changed = np.abs(result - original).max(axis=2) > 24
    assert changed.mean() > 0.05  # the face was replaced (by noise: random weights)
    ys, xs = np.nonzero(changed)
    height, width = changed.shape
    # The change is one region around the face, not spread over the photo.
    assert (ys.max() - ys.min()) < 0.8 * height and (xs.max() - xs.min()) < 0.8 * width
    assert not changed[:5].any() and not changed[:, :5].any()  # corners untouched


def test_edit_is_deterministic_and_encode_render_gives_the_same_photo(edited, tmp_path) -> None:
    latents = tmp_path / "obama.safetensors"
    assert (
        invoke("encode", PHOTO, "-o", latents, "--backend", "tiny", "--steps", "4").exit_code == 0
    )
    out = tmp_path / "again.png"
    result = invoke("render", latents, "--set", "smile=0.8", "--set", "eyeglasses=0.5", "-o", out,
                    "--steps", "3")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert np.array_equal(pixels(out), pixels(edited))
    crop = tmp_path / "crop.png"
    assert invoke("render", latents, "--crop", "-o", crop, "--steps", "3").exit_code == 0
    assert Image.open(crop).size == (64, 64)


def test_render_refuses_a_changed_photo(tmp_path) -> None:
    photo = tmp_path / "me.jpg"
    photo.write_bytes(PHOTO.read_bytes())
    latents = tmp_path / "me.safetensors"
    invoke("encode", photo, "-o", latents, "--backend", "tiny", "--steps", "2")
    Image.open(PHOTO).rotate(3).save(photo)
    with pytest.raises(ChatFaceError, match="changed since it was encoded"):
        invoke("render", latents, "-o", tmp_path / "x.png", "--steps", "2")
    photo.unlink()
    with pytest.raises(ChatFaceError, match="pass it with --photo"):
        invoke("render", latents, "-o", tmp_path / "x.png", "--steps", "2")


def test_side_by_side_and_gif(tmp_path) -> None:
    out = tmp_path / "both.png"
    result = invoke("edit", PHOTO, "--set", "age=0.5", "-o", out, "--side-by-side", "--gif", *FAST)
    assert result.exit_code == 0, result.output
    width, height = Image.open(PHOTO).size
    assert Image.open(out).size == (2 * width, height)
    gif = Image.open(out.with_suffix(".gif"))
    assert gif.n_frames == 8 and gif.size == (width, height)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (["--set", "wings=0.5"], PlanError, "Unknown attribute 'wings'"),
        (["--set", "smile"], PlanError, "NAME=STRENGTH"),
        (["--set", "smile=lots"], PlanError, "must be a number"),
        (["--set", "smile=3"], PlanError, r"\[-1, 1\]"),
        ([], PlanError, "Say what to change"),
    ],
)
def test_bad_edits_are_clear_errors(tmp_path, args, error, message) -> None:
    with pytest.raises(error, match=message):
        invoke("edit", PHOTO, *args, "-o", tmp_path / "x.png", *FAST)
    assert not (tmp_path / "x.png").exists()


def test_a_message_that_is_no_edit_is_an_error(tmp_path) -> None:
    with pytest.raises(PlanError, match="asks for no edit"):
        invoke("edit", PHOTO, "what's the weather like?", "-o", tmp_path / "x.png", *FAST)
    with pytest.raises(PlanError, match="Undo, redo and reset work in `chatface chat`"):
        invoke("edit", PHOTO, "undo", "-o", tmp_path / "x.png", *FAST)
    assert not (tmp_path / "x.png").exists()


def test_bad_photos_are_clear_errors(tmp_path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(NotAnImageError):
        invoke("edit", text, "--set", "smile=0.5", "-o", tmp_path / "x.png", *FAST)


def test_the_diffae_backend_without_weights_names_the_command(tmp_path) -> None:
    with pytest.raises(WeightsMissingError) as err:
        invoke("edit", PHOTO, "--set", "smile=0.5", "-o", tmp_path / "x.png", "--backend", "diffae")
    assert f"`{import_command('ffhq256_autoenc')}`" in str(err.value)


def test_demo_falls_back_to_tiny_and_stores_the_session(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CHATFACE_RENDER_STEPS", "3")
    monkeypatch.setattr("chatface.cli.demo.TINY_ENCODE_STEPS", 4)
    result = invoke("demo", "-o", tmp_path / "demo")
    assert result.exit_code == 0, result.output
    assert "Falling back to the 'tiny' backend" in result.output
    names = sorted(p.name for p in (tmp_path / "demo").iterdir())
    assert names == ["after.png", "after_undo.png", "before.png", "before_after_undo.png"]
    before = pixels(tmp_path / "demo" / "before.png")
    after, undo = (
        pixels(tmp_path / "demo" / "after.png"),
        pixels(tmp_path / "demo" / "after_undo.png"),
    )
    assert before.shape == after.shape == undo.shape
    assert np.abs(after - undo).mean() > 1  # undo really went back...
    assert np.array_equal(undo, before)  # ...to the original photo
    # Stored under your own name, so plain `chatface history` shows it.
    history = json.loads(invoke("history", "--json").output)
    assert history["conversations"][0]["chat"] == "demo"
    [face] = history["conversations"][0]["faces"]
    assert face["backend"] == "tiny" and face["cursor"] == 0  # the edit was undone
    assert face["edits"][0]["state"] == {"strengths": {"age": 0.4, "smile": 0.6}}


def test_edit_with_imported_official_format_weights(tmp_path) -> None:
    """Official-format checkpoints -> `chatface weights import` -> a diffae edit."""
    from tests.engine.test_weights import make_classifier, make_official, write_config

    official = make_official(tmp_path / "checkpoints" / "ffhq256_autoenc")
    config = write_config(tmp_path / "tiny.json")
    result = invoke("weights", "import", official.ckpt, "--config", config, "--trust-pickle")
    assert result.exit_code == 0, result.output
    make_classifier(tmp_path / "checkpoints" / "ffhq256_autoenc_cls")
    cls = tmp_path / "checkpoints" / "ffhq256_autoenc_cls" / "last.ckpt"
    assert invoke("weights", "import", cls).exit_code == 0
    assert {w["name"] for w in json.loads(invoke("weights", "list", "--json").output)} == {
        "ffhq256_autoenc", "ffhq256_autoenc_cls",
    }  # fmt: skip

    outputs = {}
    for strength in ("0", "1"):
        out = tmp_path / f"smile_{strength}.png"
        result = invoke("edit", PHOTO, "--set", f"smile={strength}", "-o", out,
                        "--encode-steps", "4", "--steps", "2")  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "random weights" not in result.output  # the real backend, not tiny
        outputs[strength] = pixels(out)
    assert outputs["0"].shape == pixels(PHOTO).shape
    assert np.abs(outputs["1"] - outputs["0"]).mean() > 0.5  # the classifier direction acts

"""``chatface eval`` on tiny models: the numbers, the JSON, the contact sheet, the refusals."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from chatface.cli.main import app
from chatface.config import load_config
from chatface.engine.editor import Engine
from chatface.engine.plugins import make_plugin_manager
from chatface.errors import ChatFaceError, WeightsMissingError
from chatface.plugins.celeba_directions import ALPHA_MAX, CELEBA_ATTRIBUTES, CelebaDirections
from chatface.plugins.mapper import evaluate
from chatface.plugins.mapper.evaluate import EvalFaces
from chatface.plugins.mapper.evaluate_sheet import LABEL_PX, MIN_CELL
from tests.conftest import isolate
from tests.plugins.mapper_fixtures import write_mapper

FACES = Path(__file__).resolve().parent.parent / "data" / "faces"
TINY = {
    "ENGINE_BACKEND": "tiny", "IDENTITY_MODEL": "tiny", "METHOD_CLIP_MODEL": "tiny",
    "RENDER_ENCODE_STEPS": "2", "RENDER_STEPS": "2",
    "ZERO_SHOT_STEPS": "2", "ZERO_SHOT_RENDER_STEPS": "1",
}  # fmt: skip
METRICS = {"identity", "identity_photo", "directional", "clip_change", "classifier"}


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in TINY.items():
        monkeypatch.setenv(f"CHATFACE_{name}", value)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Two face photos and a file that is no photo (skipped and counted)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("obama.jpg", "grace_hopper.jpg"):
        shutil.copy(FACES / name, folder / name)
    (folder / "notes.txt").write_text("not a photo")
    return folder


@pytest.fixture(scope="module")
def opened(tmp_path_factory: pytest.TempPathFactory) -> EvalFaces:
    """The two faces, opened once for the tests that call the evaluation directly."""
    with pytest.MonkeyPatch.context() as patch:
        isolate(patch, tmp_path_factory.mktemp("home"))  # made before any test's
        for name, value in TINY.items():
            patch.setenv(f"CHATFACE_{name}", value)
        engine = Engine(load_config(), make_plugin_manager(load_installed=False))
        folder = tmp_path_factory.mktemp("photos")
        for name in ("obama.jpg", "grace_hopper.jpg"):
            shutil.copy(FACES / name, folder / name)
        return evaluate.open_faces(engine, folder, "tiny")


def run(*args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, ["eval", *args])
    return result.exit_code, result.stdout, result.exception


def test_a_mapper_attribute_as_json_with_its_contact_sheet(tiny, photos, isolated_env, tmp_path):
    write_mapper(isolated_env / "mappers")
    out = tmp_path / "out"
    code, stdout, exception = run(
        "--attribute", "curly", "--images", str(photos), "--strengths", "0,0.5,1",
        "--json", "--out", str(out),
    )  # fmt: skip
    assert code == 0, exception
    report = json.loads(stdout)
    assert report["attribute"] == "curly_hair" and report["method"] == "mapper"
    assert (report["backend"], report["schedule"], report["steps"]) == ("tiny", "stable", 2)
    assert report["target"] == "a photo of a face with curly hair"  # the mapper's own prompt
    assert report["faces"] == ["grace_hopper.jpg", "obama.jpg"]
    assert [s["file"] for s in report["skipped"]] == ["notes.txt"]
    assert "no attribute classifier" in report["classifier_note"]
    rows = report["strengths"]
    assert [row["strength"] for row in rows] == [0.0, 0.5, 1.0]
    for row in rows:
        assert set(row) == METRICS | {"strength", "faces"}
        assert [face["face"] for face in row["faces"]] == report["faces"]
        for face in row["faces"]:
            assert set(face) == METRICS | {"face"} and face["classifier"] is None
            assert -1 <= face["directional"] <= 1 and -1 <= face["identity_photo"] < 1
        assert row["identity"] == pytest.approx(sum(f["identity"] for f in row["faces"]) / 2)
    zero, _, full = rows
    assert zero["identity"] == pytest.approx(1.0, abs=1e-4)  # the unedited render again
    assert zero["directional"] == 0.0 and abs(zero["clip_change"]) < 1e-6
    assert full["identity"] < 0.999 and full["clip_change"] != 0.0  # the mapper moved them
    # Against the photo, strength 0 shows the renderer's own error: below 1.
    assert zero["identity_photo"] < 0.99
    sheet = Path(report["sheet"])
    assert sheet == out / "eval-curly_hair-mapper-stable.png"
    with Image.open(sheet) as image:  # rows: 2 faces; columns: the photo, 3 strengths
        assert image.size == (4 * MIN_CELL, LABEL_PX + 2 * (MIN_CELL + LABEL_PX))


def test_a_classifier_attribute_prints_a_table(tiny, photos, opened, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the contact sheet goes to the current folder
    # The faces were opened once already (the test above opens a folder for real).
    monkeypatch.setattr(evaluate, "open_faces", lambda *args: opened)
    code, stdout, exception = run(
        "--attribute", "smile", "--images", str(photos), "--strengths", "0,1",
        "--schedule", "constant",
    )  # fmt: skip
    assert code == 0, exception
    text = " ".join(stdout.split())
    assert "smile (classifier, tiny, constant, 2 steps): 2 faces" in text
    assert "+0.00 │ 1.0000 │" in text and "n/a" in text
    assert '"a photo of a face" -> "a photo of a face with smile"' in text
    assert (tmp_path / "eval-smile-classifier-constant.png").is_file()


@pytest.mark.parametrize("schedule", ["stable", "constant"])
def test_strength_zero_reproduces_the_unedited_render(tiny, opened, schedule) -> None:
    engine = Engine()
    plan = evaluate.resolve(engine, "smile", None, "tiny")
    assert (plan.method, plan.attribute) == ("classifier", "smile")
    meters = evaluate.load_meters(engine, plan)
    edit = evaluate.editor(engine, plan, opened)
    result = evaluate.evaluate(
        engine, plan, meters, opened, edit, strengths=[0.0, -1.0], schedule=schedule, steps=2
    )
    zero, minus = result.results
    for face in zero.faces:
        assert face["identity"] == pytest.approx(1.0, abs=1e-4)
        assert face["directional"] == 0.0 and abs(face["clip_change"]) < 1e-6
    assert all(face["identity"] < 0.999 for face in minus.faces)
    assert len(minus.images) == 2 and minus.images[0].size == (64, 64)


def test_zero_shot_learns_each_face_and_keeps_nothing(tiny, opened, isolated_env) -> None:
    engine = Engine()
    plan = evaluate.resolve(engine, "curly hair", "zero-shot", "tiny")
    assert plan.provider is None and plan.attribute == "curly_hair"
    assert plan.target == "a photo of a face with curly hair"
    steps: list[tuple[int, int]] = []
    edit = evaluate.editor(engine, plan, opened, lambda done, total: steps.append((done, total)))
    assert steps[-1] == (4, 4)  # 2 optimisation steps for each of the 2 faces
    z = opened.latents.z_sem
    assert torch.equal(edit(z, 0.0), z)
    offsets = edit(z, 1.0) - z
    assert offsets.abs().sum(1).min() > 0 and not torch.equal(offsets[0], offsets[1])
    assert not list((isolated_env / "zero_shot").glob("*/text.json"))  # no attribute kept
    # A known attribute lends zero-shot its name and words.
    classifier_words = evaluate.resolve(engine, "smile", "zero-shot", "tiny")
    assert classifier_words.attribute == "smile"
    assert classifier_words.target == "a photo of a face with smile"


def test_what_cannot_be_evaluated_is_one_clear_line(tiny, photos, isolated_env) -> None:
    write_mapper(isolated_env / "mappers")
    asked = {
        ("--attribute", "unicorn_horn"): "No attribute 'unicorn_horn' for the backend 'tiny'",
        ("--attribute", "smile", "--method", "mapper"): "train one with `chatface train-mapper`",
        ("--attribute", "curly_hair", "--method", "classifier"): "No classifier direction",
        ("--attribute", "smile", "--method", "paint"): "--method must be one of",
        ("--attribute", "smile", "--strengths", "0,lots"): "got 'lots'",
        ("--attribute", "smile", "--strengths", "0,2"): "in [-1, 1]",
        ("--attribute", "smile", "--schedule", "wobbly"): "--schedule must be one of",
    }
    for args, message in asked.items():
        code, _, exception = run(*args, "--images", str(photos))
        assert code == 1 and isinstance(exception, ChatFaceError), (args, exception)
        assert message in str(exception) and "\n" not in str(exception)
    code, _, exception = run("--attribute", "smile", "--images", str(photos / "notes.txt"))
    assert isinstance(exception, ChatFaceError)
    assert "is not a folder of face photos" in str(exception)


@pytest.mark.parametrize(
    ("setting", "value", "weights"),
    [
        ("METHOD_CLIP_MODEL", "clip_vit_b32_openai", "clip_vit_b32_openai"),
        ("IDENTITY_MODEL", "facenet", "facenet_vggface2"),
        ("ENGINE_BACKEND", "diffae", "ffhq256_autoenc"),
    ],
)
def test_missing_weights_fail_before_any_face_is_opened(
    tiny, photos, monkeypatch, setting, value, weights
) -> None:
    monkeypatch.setenv(f"CHATFACE_{setting}", value)

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("a face was opened before the weights were checked")

    monkeypatch.setattr(Engine, "open_face", never)
    code, _, exception = run("--attribute", "smile", "--images", str(photos))
    assert code == 1 and isinstance(exception, WeightsMissingError)
    assert f"chatface weights download {weights}" in str(exception)


def test_the_celeba_logit_change_is_the_step_along_its_row(tmp_path) -> None:
    torch.manual_seed(0)
    weight, std = torch.randn(40, 16), torch.rand(16) + 0.5
    path = tmp_path / "cls.safetensors"
    save_file({"classifier.weight": weight, "conds_mean": torch.randn(16), "conds_std": std},
              str(path))  # fmt: skip
    provider = CelebaDirections(path)
    z = torch.randn(3, 16)
    for name, column in (("smile", "Smiling"), ("age", "Young")):
        row = weight[CELEBA_ATTRIBUTES.index(column)]
        change = provider.logit_change(z, provider.edit(z, name, 0.5), name)
        # Positive strength means more of the attribute, whatever the column's sign.
        expected = 0.5 * ALPHA_MAX * math.sqrt(16) * row.norm()
        torch.testing.assert_close(change, expected.expand(3), rtol=1e-4, atol=1e-4)
        assert torch.equal(provider.logit_change(z, z, name), torch.zeros(3))

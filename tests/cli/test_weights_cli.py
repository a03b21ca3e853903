"""``chatface weights`` as a user runs it: import, list, verify, remove, download."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from chatface.cli.main import app, run
from chatface.engine import weights
from chatface.plugins.diffae.weights import CONFIG_FILE, MODEL_FILE, STATS_FILE
from tests.engine.test_weights import make_official, write_config
from tests.engine.test_weights_download import closed_port, hub, tiny_preset  # noqa: F401

runner = CliRunner()


def invoke(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    result = runner.invoke(app, ["weights", *args], input=input)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    """Through the console-script entry point, where errors become one red line."""
    monkeypatch.setattr(sys, "argv", ["chatface", "weights", *args])
    with pytest.raises(SystemExit) as exit_:
        run()
    captured = capsys.readouterr()
    # Rich wraps long lines; compare words, not line breaks.
    return exit_.value.code or 0, " ".join(captured.out.split()), " ".join(captured.err.split())


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    return make_official(tmp_path / "checkpoints" / "tiny").ckpt


@pytest.fixture
def tiny_json(tmp_path: Path) -> Path:
    return write_config(tmp_path / "tiny.json")


def test_import_needs_trust_pickle_for_pickled_checkpoints(
    ckpt: Path, tiny_json: Path, monkeypatch, capsys
) -> None:
    code, out, err = run_cli(monkeypatch, capsys, "import", str(ckpt), "--config", str(tiny_json))
    assert code == 1
    assert "Error:" in err and "--trust-pickle" in err and "Traceback" not in err
    assert json.loads(invoke("list", "--json").output) == []


def test_import_with_trust_pickle_then_list(ckpt: Path, tiny_json: Path) -> None:
    result = invoke("import", str(ckpt), "--config", str(tiny_json), "--trust-pickle", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["name"] == "tiny" and info["kind"] == "autoencoder"
    assert set(info["files"]) == {MODEL_FILE, CONFIG_FILE, STATS_FILE}
    assert any("latent_net" in note for note in info["notes"])

    listed = json.loads(invoke("list", "--json").output)
    assert [entry["name"] for entry in listed] == ["tiny"]
    assert listed[0]["files"] == info["files"] and listed[0]["size_bytes"] > 0
    table = invoke("list").output
    assert "tiny" in table and "autoencoder" in table and "last.ckpt" in table


def test_import_prints_what_it_installed(ckpt: Path, tiny_json: Path, tmp_path: Path) -> None:
    stats = tmp_path / "stats.pkl"
    torch.save({"conds_mean": torch.full((32,), 2.0), "conds_std": torch.ones(32)}, stats)
    result = invoke(
        "import", str(ckpt), "--name", "mine", "--config", str(tiny_json),
        "--stats", str(stats), "--trust-pickle",
    )  # fmt: skip
    assert result.exit_code == 0
    assert "Installed 'mine' (autoencoder)" in result.output and "sha256" in result.output
    saved = load_file(weights.weights_dir("mine") / STATS_FILE)
    assert torch.equal(saved["conds_mean"], torch.full((32,), 2.0))


def test_verify_reports_corruption_with_exit_code(ckpt: Path, tiny_json: Path) -> None:
    invoke("import", str(ckpt), "--config", str(tiny_json), "--trust-pickle")
    ok = invoke("verify")
    assert ok.exit_code == 0 and "tiny: OK" in ok.output
    model = weights.weights_dir("tiny") / MODEL_FILE
    model.write_bytes(model.read_bytes()[:-1] + b"\x00")
    bad = invoke("verify", "tiny")
    assert bad.exit_code == 1
    assert "model.safetensors changed" in bad.output
    report = json.loads(invoke("verify", "tiny", "--json").output)
    assert report == [{"name": "tiny", "ok": False, "mismatched": [MODEL_FILE], "missing": []}]


def test_remove_asks_first(ckpt: Path, tiny_json: Path, monkeypatch, capsys) -> None:
    invoke("import", str(ckpt), "--config", str(tiny_json), "--trust-pickle")
    declined = invoke("remove", "tiny", input="n\n")
    assert declined.exit_code == 1 and weights.weights_dir("tiny").exists()
    removed = invoke("remove", "tiny", "--yes")
    assert removed.exit_code == 0 and not weights.weights_dir("tiny").exists()
    assert "No weights installed" in invoke("list").output
    code, _, err = run_cli(monkeypatch, capsys, "remove", "tiny", "--yes")
    assert code == 1 and "No weights called 'tiny' are installed" in err
    assert "chatface weights list" in err and "import" not in err


def test_download_then_edit_with_no_other_step(hub, tmp_path) -> None:  # noqa: F811
    """Done means: with a fake hub standing in for the internet, `chatface weights download`
    then `chatface edit photo --set smile=0.5` runs on the diffae backend."""
    result = runner.invoke(app, ["weights", "download"])
    assert result.exit_code == 0, result.output
    assert "Installed 'ffhq256_autoenc' (autoencoder)" in result.output
    assert "Installed 'ffhq256_autoenc_cls' (classifier)" in result.output
    assert "about 2700 MB, from alexkrz/diffae-ffhq256 on Hugging Face" in " ".join(
        result.output.split()
    )
    photo = Path(__file__).resolve().parents[1] / "data" / "faces" / "obama.jpg"
    out = tmp_path / "smile.png"
    edit = ["edit", str(photo), "--set", "smile=0.5", "-o", str(out), "--encode-steps", "2",
            "--steps", "2"]  # fmt: skip
    result = runner.invoke(app, edit)
    assert result.exit_code == 0, result.output
    assert out.is_file() and "random weights" not in result.output
    listed = json.loads(invoke("list", "--all", "--json").output)
    assert {row["name"]: row["installed"] for row in listed} == {
        "ffhq256_autoenc": True, "ffhq256_autoenc_cls": True,
        "ffhq128_autoenc_130M": False, "ffhq128_autoenc_130M_cls": False,
        "clip_vit_b32_openai": False, "facenet_vggface2": False,
    }  # fmt: skip


def test_download_errors_are_one_actionable_message(monkeypatch, capsys) -> None:
    code, _, err = run_cli(monkeypatch, capsys, "download", "ffhq256_autoenc")
    assert code == 1 and "Could not download 'ffhq256_autoenc'" in err
    assert "cannot be reached" in err and "Google Drive" in err
    assert weights.import_command("ffhq256_autoenc") in err and "Traceback" not in err
    unreachable = f"http://127.0.0.1:{closed_port()}"
    code, _, err = run_cli(monkeypatch, capsys, "download", "tiny", "--from", unreachable)
    assert code == 1 and "No plugin declares weights called 'tiny'" in err
    code, _, err = run_cli(
        monkeypatch, capsys, "download", "ffhq256_autoenc", "--from", unreachable
    )
    assert code == 1 and f"{unreachable}/ffhq256_autoenc/SHA256SUMS cannot be reached" in err


def test_the_missing_weights_message_names_commands_that_work_as_printed(
    tmp_path: Path, monkeypatch
) -> None:
    """Follow the error messages literally, from a fresh install to a real diffae edit."""
    import re
    import shlex

    from chatface.errors import WeightsMissingError
    from chatface.plugins.diffae import config as diffae_config
    from tests.engine.test_weights import make_classifier, make_official, tiny_config

    # The real preset is a 168M-parameter network; a tiny one stands in under its name.
    monkeypatch.setitem(diffae_config.PRESETS, "ffhq256_autoenc", tiny_config())
    monkeypatch.chdir(tmp_path)
    # The official files, where their authors' instructions put them.
    make_official(tmp_path / "checkpoints" / "ffhq256_autoenc")
    make_classifier(tmp_path / "checkpoints" / "ffhq256_autoenc_cls")
    photo = Path(__file__).resolve().parents[1] / "data" / "faces" / "obama.jpg"
    edit = ["edit", str(photo), "--set", "smile=0.5", "--encode-steps", "2", "--steps", "2",
            "--backend", "diffae"]  # fmt: skip

    from chatface.engine.editor import Engine

    encoded = []
    original = Engine.open_face

    def open_face(*args, **kwargs):  # type: ignore[no-untyped-def]
        encoded.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(Engine, "open_face", open_face)
    for missing in ("ffhq256_autoenc", "ffhq256_autoenc_cls"):
        with pytest.raises(WeightsMissingError) as err:
            runner.invoke(app, edit, catch_exceptions=False)
        assert not encoded  # both are found missing before the slow encoding starts
        message = str(err.value)
        assert f"'{missing}'" in message
        [command] = re.findall(r"`(chatface weights import [^`]*)`", message)
        result = runner.invoke(app, shlex.split(command)[1:])
        assert result.exit_code == 0, (command, result.output)
    result = runner.invoke(app, edit, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "obama_edited.png").is_file() and "random weights" not in result.output
    assert encoded


PHOTO = Path(__file__).resolve().parents[1] / "data" / "faces" / "obama.jpg"
FAST = ["--encode-steps", "2", "--steps", "2"]


def test_edit_on_a_terminal_offers_the_download(hub, tmp_path, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setattr("chatface.cli.common.interactive", lambda: True)
    out = tmp_path / "out.png"
    result = runner.invoke(
        app, ["edit", str(PHOTO), "--set", "smile=0.5", "-o", str(out), *FAST], input="y\ny\n"
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Download 'ffhq256_autoenc' (about 2700 MB, from alexkrz/diffae-ffhq256" in text
    assert "Download 'ffhq256_autoenc_cls' (about 700 MB" in text
    assert "random weights" not in text and out.is_file()
    assert {w.name for w in weights.list_weights()} == {"ffhq256_autoenc", "ffhq256_autoenc_cls"}


def test_declining_the_offer_falls_back_to_tiny(hub, tmp_path, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setattr("chatface.cli.common.interactive", lambda: True)
    result = runner.invoke(
        app, ["edit", str(PHOTO), "--set", "smile=0.5", "-o", str(tmp_path / "o.png"), *FAST],
        input="n\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Falling back to the 'tiny' backend" in result.output
    assert weights.list_weights() == []


def test_download_flag_fetches_without_asking(hub, tmp_path, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv("CHATFACE_RENDER_ENCODE_STEPS", "2")  # the demo has no --encode-steps
    result = runner.invoke(app, ["demo", "-o", str(tmp_path / "demo"), "--download", *FAST[2:]])
    assert result.exit_code == 0, result.output
    assert "random weights" not in result.output
    assert {w.name for w in weights.list_weights()} == {"ffhq256_autoenc", "ffhq256_autoenc_cls"}


def test_without_a_terminal_nothing_is_downloaded(hub, tmp_path) -> None:  # noqa: F811
    result = runner.invoke(
        app, ["edit", str(PHOTO), "--set", "smile=0.5", "-o", str(tmp_path / "o.png"), *FAST]
    )
    assert result.exit_code == 0, result.output
    assert "Falling back to the 'tiny' backend" in result.output
    assert not [p for _, p, _ in hub.requests if "/resolve/" in p]  # not one file fetched
    assert weights.list_weights() == []

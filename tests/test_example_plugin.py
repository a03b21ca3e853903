"""examples/plugin-example is a real pip-installable plugin that chatface finds and uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from chatface.config import load_config
from chatface.engine.editor import Engine
from chatface.engine.plugins import make_plugin_manager
from chatface.engine.types import EditOp, SessionState

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def installed_example(tmp_path_factory) -> Path:
    """pip-install the example package (built from its pyproject) into a target dir."""
    target = tmp_path_factory.mktemp("example-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(REPO / "examples" / "plugin-example")],
        check=True,
        capture_output=True,
    )  # fmt: skip
    assert list(target.glob("chatface_example-0.1.0.dist-info"))
    return target


@pytest.fixture
def example_on_path(installed_example, monkeypatch) -> Path:
    monkeypatch.syspath_prepend(str(installed_example))
    monkeypatch.setenv("CHATFACE_LOAD_PLUGINS", "chatface-example")
    return installed_example


def test_cli_lists_the_installed_example(installed_example) -> None:
    env = os.environ | {
        "PYTHONPATH": str(installed_example),
        "CHATFACE_LOAD_PLUGINS": "chatface-example",
    }
    out = subprocess.run(
        [sys.executable, "-m", "chatface", "plugins", "--json"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    report = {p["name"]: p for p in json.loads(out.stdout)}
    example = report["example"]
    assert (example["package"], example["version"], example["builtin"]) == (
        "chatface-example", "0.1.0", False,
    )  # fmt: skip
    assert example["hooks"] == ["chatface_register_directions", "chatface_register_planners"]
    assert example["registered"]["directions"] == ["example"]
    assert example["registered"]["attributes"] == ["glow"]
    assert example["registered"]["planners"] == ["keywords"]
    assert "chatface.plugins.celeba_directions" in report


def test_example_is_not_loaded_unless_allowed(installed_example) -> None:
    env = os.environ | {"PYTHONPATH": str(installed_example), "CHATFACE_LOAD_PLUGINS": ""}
    out = subprocess.run(
        [sys.executable, "-m", "chatface", "plugins", "--json", "--all"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    report = {p["name"]: p for p in json.loads(out.stdout)}
    assert report["example"]["status"] == "blocked"
    assert report["example"]["registered"]["planners"] == []


def test_engine_plans_and_edits_with_what_the_example_registered(example_on_path) -> None:
    config = load_config()
    engine = Engine(config, make_plugin_manager(config.plugin_allow_list()))
    plan = engine.plan("a bit more shine, 30%", planner="keywords")
    assert plan.action == "edit" and plan.edits == (EditOp("glow", 0.3),)
    assert engine.plan("remove the glow please", planner="keywords").edits[0].strength == -0.5
    # The planner sees every registered attribute, built-in ones included.
    assert engine.plan("less smile", planner="keywords").edits == (EditOp("smile", -0.5),)

    state = SessionState().apply(plan.edits, {a.name: a for a in engine.attributes()})
    z = torch.randn(2, 512)
    edited = engine.edit_latents(z, state)
    provider = engine.registry.provider_for("glow", "diffae")
    expected = (0.3 * 2.0 * provider.direction(512)).expand(2, -1)
    torch.testing.assert_close(edited - z, expected, atol=1e-6, rtol=0)


def test_the_example_factory_reads_its_direction_from_the_data_dir(example_on_path) -> None:
    from safetensors.torch import save_file

    config = load_config()
    folder = config.data_dir / "example"
    folder.mkdir(parents=True)
    save_file({"direction": torch.full((512,), -3.0)}, folder / "glow.safetensors")
    engine = Engine(config, make_plugin_manager(config.plugin_allow_list()))
    z = torch.zeros(1, 512)
    edited = engine.edit_latents(z, SessionState({"glow": 0.5}))
    expected = torch.full((1, 512), -1.0 / 512**0.5)  # 0.5 * 2.0 * the unit vector
    torch.testing.assert_close(edited, expected, atol=1e-6, rtol=0)

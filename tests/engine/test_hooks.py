"""One test per hook (test_hook_<name>), plus checks that none is untested or undocumented."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import torch

from chatface import hookimpl
from chatface.config import load_config
from chatface.engine import hookspecs
from chatface.engine.editor import Engine
from chatface.engine.registry import collect
from chatface.engine.types import Attribute, EditOp, EditPlan, Latents

REPO = Path(__file__).resolve().parents[2]


class FakeBackend:
    image_size = 8
    latent_dim = 4
    weights_sha256 = "0" * 64

    def __init__(self, config: object) -> None:
        self.config = config

    def encode(self, images, steps, progress=None):  # type: ignore[no-untyped-def]
        return Latents(z_sem=images.mean(dim=(2, 3)).repeat(1, 2)[:, :4], x_T=images * 2)

    def render(self, latents, condition_schedule, steps, progress=None):  # type: ignore[no-untyped-def]
        return latents.x_T / 2


def test_hook_chatface_register_backends(pm, add_plugin) -> None:
    class Plugin:
        @hookimpl
        def chatface_register_backends(self, register):  # type: ignore[no-untyped-def]
            register("fake", FakeBackend)

    add_plugin(Plugin(), "fake-backend")
    registry = collect(pm)
    entry = registry.backends["fake"]
    assert entry.plugin == "fake-backend"
    backend = entry.value({"k": 1})
    images = torch.rand(2, 3, 8, 8)
    latents = backend.encode(images, steps=3)
    assert latents.z_sem.shape == (2, 4)
    assert torch.equal(backend.render(latents, lambda i, t: latents.z_sem, steps=3), images)


def test_hook_chatface_register_directions(pm, add_plugin, monkeypatch) -> None:
    class Shift:
        name = "shift"

        def attributes(self):  # type: ignore[no-untyped-def]
            return [Attribute("sparkle", "test attribute", aliases=("glitter",))]

        def edit(self, z_sem, attribute, strength):  # type: ignore[no-untyped-def]
            return z_sem + strength

    class Steps(Shift):
        """A provider made by a factory: the class, called with the config."""

        name = "steps"

        def __init__(self, config) -> None:  # type: ignore[no-untyped-def]
            self.size = config["render.steps"]

        def attributes(self):  # type: ignore[no-untyped-def]
            return [Attribute("stairs", "test attribute")]

        def edit(self, z_sem, attribute, strength):  # type: ignore[no-untyped-def]
            return z_sem + strength * self.size

    def broken(config):  # type: ignore[no-untyped-def]
        raise OSError("no such folder")

    class Plugin:
        @hookimpl
        def chatface_register_directions(self, register):  # type: ignore[no-untyped-def]
            register(Shift())
            register(Steps)
            register(broken)
            register(lambda config: "not a provider")

    add_plugin(Plugin(), "shift-plugin")
    monkeypatch.setenv("CHATFACE_RENDER_STEPS", "5")
    registry = collect(pm)
    assert registry.providers["shift"].plugin == "shift-plugin"
    assert registry.attributes["sparkle"].plugin == "shift-plugin"
    assert registry.attribute("GLITTER").name == "sparkle"
    z = torch.zeros(1, 3)
    assert torch.equal(registry.provider_for("sparkle", "diffae").edit(z, "sparkle", 0.5), z + 0.5)
    # The factory got the effective settings (the environment's, or the config passed in).
    assert registry.provider_for("stairs", "diffae").edit(z, "stairs", 0.5).tolist() == [[2.5] * 3]
    config = load_config({"CHATFACE_RENDER_STEPS": "2"})
    assert collect(pm, config).provider_for("stairs", "diffae").size == 2
    assert Engine(config, pm).registry.provider_for("stairs", "diffae").size == 2
    problems = [p.message for p in registry.problems if p.plugin == "shift-plugin"]
    assert problems[0] == "provider factory broken raised OSError: no such folder"
    assert "'name' attribute" in problems[1] and len(problems) == 2


def test_hook_chatface_register_planners(pm, add_plugin) -> None:
    seen = {}

    class Echo:
        def __init__(self, config: object) -> None:
            seen["config"] = config

        def plan(self, message, context):  # type: ignore[no-untyped-def]
            return EditPlan("edit", (EditOp(context.attributes[0].name, 0.25),), reply=message)

    class Plugin:
        @hookimpl
        def chatface_register_planners(self, register):  # type: ignore[no-untyped-def]
            register("echo", Echo)

    add_plugin(Plugin(), "echo-plugin")
    registry = collect(pm)
    entry = registry.planners["echo"]
    assert entry.plugin == "echo-plugin"
    planner = entry.value("cfg")
    assert seen["config"] == "cfg"
    from chatface.engine.types import PlanContext

    plan = planner.plan("hi", PlanContext([Attribute("smile", "s")]))
    assert plan.to_dict() == {
        "action": "edit",
        "edits": [{"attribute": "smile", "strength": 0.25}],
        "steps": None,
        "reply": "hi",
    }


def test_hook_chatface_register_weights(pm, add_plugin, tmp_path) -> None:
    from chatface.engine import weights
    from chatface.engine.types import ImportedWeights, WeightsSource, WeightsSpec
    from chatface.engine.weights import write_tensors

    class Importer:
        def recognises(self, checkpoint):  # type: ignore[no-untyped-def]
            return "sparkle.weight" in checkpoint.tensors

        def convert(self, checkpoint, staging, *, name, options):  # type: ignore[no-untyped-def]
            tensor = checkpoint.tensors["sparkle.weight"] * 2
            sha = write_tensors(staging / "sparkle.safetensors", {"w": tensor}, None)
            return ImportedWeights("sparkle", {"sparkle.safetensors": sha}, ("doubled",))

    spec = WeightsSpec(
        "sparkle_v1", "test weights", Importer(), (WeightsSource("gdrive", "folder-id"),)
    )

    class Plugin:
        @hookimpl
        def chatface_register_weights(self, register):  # type: ignore[no-untyped-def]
            register(spec)
            register("not a spec")  # rejected, named
            register(WeightsSpec("bad name!", "x", Importer()))  # rejected

        @hookimpl
        def chatface_register_backends(self, register):  # type: ignore[no-untyped-def]
            register("sparkly", FakeBackend, random_weights=True)

    add_plugin(Plugin(), "sparkle-plugin")
    registry = collect(pm)
    assert registry.weights["sparkle_v1"].value is spec
    assert registry.weights["sparkle_v1"].plugin == "sparkle-plugin"
    assert registry.random_backends == {"sparkly", "tiny"}
    problems = [p.message for p in registry.problems if p.plugin == "sparkle-plugin"]
    assert len(problems) == 2 and "WeightsSpec" in problems[0] and "bad name!" in problems[1]
    # `chatface weights import` picks the owning plugin's importer, by name or by content.
    from safetensors.torch import save_file

    save_file({"sparkle.weight": torch.ones(3)}, tmp_path / "sparkle.safetensors")
    engine = Engine(plugin_manager=pm)
    for name in ("sparkle_v1", "custom_sparkle"):
        info = engine.import_weights(tmp_path / "sparkle.safetensors", name=name)
        assert info.kind == "sparkle" and info.notes == ("doubled",)
        assert weights.verify(name).ok


def test_hook_chatface_register_schedules(pm, add_plugin) -> None:
    class Plugin:
        @hookimpl
        def chatface_register_schedules(self, register):  # type: ignore[no-untyped-def]
            register("first_only", lambda z_edit, z_orig: lambda i, t: z_edit if i == 0 else z_orig)
            register("stable", lambda z_edit, z_orig: None)  # taken by the built-in one
            register("Bad Name", lambda z_edit, z_orig: None)
            register("not_callable", 42)

    add_plugin(Plugin(), "schedule-plugin")
    registry = collect(pm)
    assert registry.schedules["first_only"].plugin == "schedule-plugin"
    assert registry.schedules["stable"].plugin == "chatface.plugins.schedules"
    assert "not_callable" not in registry.schedules
    problems = [p.message for p in registry.problems if p.plugin == "schedule-plugin"]
    assert len(problems) == 3 and any("already registered" in m for m in problems)
    condition = registry.schedules["first_only"].value("edit", "orig")
    assert [condition(i, t) for i, t in [(0, 900), (1, 500)]] == ["edit", "orig"]


def test_hook_chatface_register_identity_models(pm, add_plugin) -> None:
    class Constant:
        def embed(self, images):  # type: ignore[no-untyped-def]
            return torch.nn.functional.normalize(torch.ones(images.shape[0], 4), dim=1)

    class Plugin:
        @hookimpl
        def chatface_register_identity_models(self, register):  # type: ignore[no-untyped-def]
            register("constant", lambda config: Constant(), random_weights=True)
            register("tiny", lambda config: Constant())  # taken by the tiny plugin
            register("odd", lambda config: Constant(), colour="red")

    add_plugin(Plugin(), "identity-plugin")
    registry = collect(pm)
    assert registry.identity_models["constant"].plugin == "identity-plugin"
    assert registry.random_identity_models == {"constant", "tiny"}
    problems = [p.message for p in registry.problems if p.plugin == "identity-plugin"]
    assert len(problems) == 2 and "unknown option(s) colour" in problems[0]
    assert "already registered" in problems[1]
    engine = Engine(plugin_manager=pm)
    model = engine.identity_model("constant")
    assert engine.identity_model("constant") is model  # loaded once
    assert model.embed(torch.zeros(2, 3, 8, 8)).shape == (2, 4)
    tiny = engine.identity_model("tiny").embed(torch.zeros(1, 3, 64, 64))
    assert tiny.shape == (1, 64) and abs(float(tiny.norm()) - 1.0) < 1e-5


def test_hook_chatface_register_commands(pm, add_plugin, caplog) -> None:
    import typer
    from typer.testing import CliRunner

    from chatface.cli.main import add_plugin_commands

    def hello(name: str = typer.Option("you", help="Whom to greet.")) -> None:
        """Say hello."""
        typer.echo(f"hello {name}")

    group = typer.Typer(help="Sparkles.")
    group.command("count")(lambda: typer.echo("3 sparkles"))

    class Plugin:
        @hookimpl
        def chatface_register_commands(self, register):  # type: ignore[no-untyped-def]
            register("say-hello", hello)
            register("sparkle", group)
            register("edit", hello)  # a built-in command's name
            register("Bad_Name", hello)

    add_plugin(Plugin(), "command-plugin")
    app = typer.Typer()
    app.command("edit")(lambda: typer.echo("built-in edit"))
    add_plugin_commands(app, pm)
    runner = CliRunner()
    assert runner.invoke(app, ["say-hello", "--name", "Ada"]).output == "hello Ada\n"
    assert runner.invoke(app, ["sparkle", "count"]).output == "3 sparkles\n"
    assert runner.invoke(app, ["edit"]).output == "built-in edit\n"
    assert "the command 'edit' is built in" in caplog.text
    assert "command name 'Bad_Name' must be lower-case letters, digits and -" in caplog.text
    assert "Say hello." in runner.invoke(app, ["say-hello", "--help"]).output


def test_every_hook_has_a_test() -> None:
    module = sys.modules[__name__]
    hooks = hookspecs.hook_names()
    assert len(hooks) == 7
    missing = [h for h in hooks if not hasattr(module, f"test_hook_{h}")]
    assert not missing, f"hooks without a test_hook_<name> test: {missing}"


def test_every_hook_signature_is_in_the_docs() -> None:
    docs = (REPO / "docs" / "plugins.md").read_text()
    for name in hookspecs.hook_names():
        function = getattr(hookspecs, name)
        signature = f"def {name}{inspect.signature(function)}"
        signature = re.sub(r"'", "", signature)
        assert signature in docs, f"docs/plugins.md lacks the exact signature:\n{signature}"

"""The plugin manager: built-ins, entry points, the allow-list, validation and isolation."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chatface import hookimpl
from chatface.config import load_config
from chatface.engine.plugins import BUILTIN_PLUGINS, make_plugin_manager
from chatface.engine.registry import collect
from chatface.engine.types import Attribute
from chatface.errors import PluginError

GOOD_PLUGIN = """
from chatface import hookimpl

class Planner:
    def __init__(self, config):
        pass

@hookimpl
def chatface_register_planners(register):
    register("{name}", Planner)
"""


def test_importing_chatface_loads_no_plugin_and_no_torch() -> None:
    code = (
        "import sys, chatface, chatface.engine.plugins, chatface.engine.types;"
        "print(any(m.startswith('chatface.plugins.') for m in sys.modules), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_builtins_register_like_third_party_plugins(pm) -> None:
    assert list(pm.records) == list(BUILTIN_PLUGINS)
    for name in BUILTIN_PLUGINS:
        record = pm.records[name]
        assert record.builtin and record.status == "loaded" and record.hooks
        assert pm.get_plugin(name) is not None
    registry = collect(pm)
    assert registry.providers["celeba"].plugin == "chatface.plugins.celeba_directions"
    assert not [p for p in registry.problems if p.severity == "error"]


def test_installed_plugin_loads_from_its_entry_point(fake_dist) -> None:
    fake_dist("chatface-good", "cf_good", GOOD_PLUGIN.format(name="good"), entry="good")
    pm = make_plugin_manager()
    record = pm.records["good"]
    assert (record.status, record.version, record.package) == ("loaded", "1.2.3", "chatface-good")
    assert record.hooks == ["chatface_register_planners"]
    assert collect(pm).planners["good"].plugin == "good"


@pytest.mark.parametrize("allow", ["good", "chatface-good", "chatface_good", "other, good"])
def test_allow_list_accepts_entry_point_or_package_name(fake_dist, allow) -> None:
    fake_dist("chatface-good", "cf_good2", GOOD_PLUGIN.format(name="good"), entry="good")
    pm = make_plugin_manager({a.strip() for a in allow.split(",")})
    assert pm.records["good"].status == "loaded"


def test_allow_list_blocks_everything_else(fake_dist, monkeypatch) -> None:
    fake_dist("chatface-good", "cf_good3", GOOD_PLUGIN.format(name="good"), entry="good")
    monkeypatch.setenv("CHATFACE_LOAD_PLUGINS", "something-else")
    pm = make_plugin_manager(load_config().plugin_allow_list())
    assert pm.records["good"].status == "blocked"
    assert pm.get_plugin("good") is None
    assert "good" not in collect(pm).planners
    # Built-ins load whatever the allow-list says.
    assert all(pm.records[name].status == "loaded" for name in BUILTIN_PLUGINS)


def test_plugin_that_fails_to_import_is_reported_and_skipped(fake_dist) -> None:
    fake_dist("chatface-broken", "cf_broken", "raise RuntimeError('boom at import')")
    pm = make_plugin_manager()
    record = pm.records["cf_broken"]
    assert record.status == "failed"
    assert "boom at import" in record.error
    assert pm.records[BUILTIN_PLUGINS[0]].status == "loaded"


def test_plugin_that_raises_during_registration_is_skipped(pm, add_plugin) -> None:
    class Broken:
        @hookimpl
        def chatface_register_planners(self, register):  # type: ignore[no-untyped-def]
            register("half", lambda config: None)
            raise ValueError("cannot find my model")

    class Fine:
        @hookimpl
        def chatface_register_planners(self, register):  # type: ignore[no-untyped-def]
            register("fine", lambda config: None)

    add_plugin(Broken(), "broken")
    add_plugin(Fine(), "fine-plugin")
    registry = collect(pm)
    assert "half" not in registry.planners  # nothing of a failing call is kept
    assert registry.planners["fine"].plugin == "fine-plugin"
    [problem] = [p for p in registry.problems if p.plugin == "broken"]
    assert "ValueError: cannot find my model" in problem.message
    with pytest.raises(PluginError, match="plugin broken"):
        registry.raise_for_problems()


def test_duplicate_names_are_rejected_naming_both_plugins(pm, add_plugin) -> None:
    def planner_plugin(name: str) -> object:
        class P:
            @hookimpl
            def chatface_register_planners(self, register):  # type: ignore[no-untyped-def]
                register(name, lambda config: None)

        return P()

    add_plugin(planner_plugin("same"), "first")
    add_plugin(planner_plugin("same"), "second")
    registry = collect(pm)
    assert registry.planners["same"].plugin == "first"
    [problem] = [p for p in registry.problems if p.plugin == "second"]
    assert "already registered by plugin first" in problem.message


class _Provider:
    def __init__(self, name: str, attributes: list) -> None:
        self.name = name
        self._attributes = attributes

    def attributes(self) -> list:
        return self._attributes

    def edit(self, z_sem, attribute, strength):  # type: ignore[no-untyped-def]
        return z_sem


def _directions_plugin(*providers: object) -> object:
    class P:
        @hookimpl
        def chatface_register_directions(self, register):  # type: ignore[no-untyped-def]
            for provider in providers:
                register(provider)

    return P()


def test_attribute_clashing_with_a_builtin_is_rejected(pm, add_plugin) -> None:
    add_plugin(
        _directions_plugin(
            _Provider("mine", [Attribute("smile", "x"), Attribute("freckles", "y")])
        ),
        "clash",
    )
    registry = collect(pm)
    assert registry.attributes["smile"].plugin == "chatface.plugins.celeba_directions"
    assert registry.attributes["freckles"].plugin == "clash"
    messages = [p.message for p in registry.problems if p.plugin == "clash"]
    assert any("'smile' for backend 'diffae' is already registered" in m for m in messages)
    assert registry.registered_by("clash")["attributes"] == ["freckles"]


def test_same_attribute_for_another_backend_is_accepted(pm, add_plugin) -> None:
    add_plugin(
        _directions_plugin(_Provider("other", [Attribute("smile", "x", backend="stylegan")])),
        "second-backend",
    )
    registry = collect(pm)
    assert registry.attribute_backends["smile"] == {
        "diffae": "celeba", "tiny": "tiny_random", "stylegan": "other",
    }  # fmt: skip
    assert registry.provider_for("smile", "stylegan").name == "other"
    assert registry.provider_for("smile", "diffae").name == "celeba"
    with pytest.raises(PluginError, match="not available for the backend 'gan2'"):
        registry.provider_for("smile", "gan2")
    # The planners' vocabulary keeps the first declaration.
    assert registry.attributes["smile"].plugin == "chatface.plugins.celeba_directions"
    assert not [p for p in registry.problems if p.severity == "error"]


def test_attribute_named_like_an_alias_is_rejected(pm, add_plugin) -> None:
    add_plugin(_directions_plugin(_Provider("mine", [Attribute("glasses", "x")])), "aliased")
    registry = collect(pm)
    assert registry.attribute("glasses").name == "eyeglasses"
    assert any("alias of 'eyeglasses'" in p.message for p in registry.problems)


def test_taken_alias_is_dropped_with_a_warning(pm, add_plugin) -> None:
    add_plugin(
        _directions_plugin(_Provider("mine", [Attribute("spectacles", "x", aliases=("glasses",))])),
        "alias-clash",
    )
    registry = collect(pm)
    assert registry.attribute("glasses").name == "eyeglasses"
    [problem] = [p for p in registry.problems if p.plugin == "alias-clash" and "alias" in p.message]
    assert problem.severity == "warning" and "'glasses'" in problem.message


@pytest.mark.parametrize(
    ("registration", "message"),
    [
        (("Bad Name", lambda c: None), "must be lower-case"),
        (("ok", "not callable"), "factory must be callable"),
        ((42, lambda c: None), "must be lower-case"),
    ],
)
def test_wrong_types_in_named_registrations(pm, add_plugin, registration, message) -> None:
    class P:
        @hookimpl
        def chatface_register_backends(self, register):  # type: ignore[no-untyped-def]
            register(*registration)

    add_plugin(P(), "typo")
    registry = collect(pm)
    assert set(registry.backends) == {"diffae", "tiny"}  # only the built-ins
    [problem] = [p for p in registry.problems if p.plugin == "typo"]
    assert message in problem.message


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        (object(), "needs a lower-case 'name'"),
        (_Provider("p", ["smile"]), "must return Attribute, got str"),
        (_Provider("p", [Attribute("Smile Big", "x")]), "bad attribute name"),
        (_Provider("p", [Attribute("a", "x", strength_range=(1, -1))]), "empty strength range"),
    ],
)
def test_wrong_types_in_direction_providers(pm, add_plugin, provider, message) -> None:
    add_plugin(_directions_plugin(provider), "typo")
    registry = collect(pm)
    [problem] = [p for p in registry.problems if p.plugin == "typo"]
    assert message in problem.message
    assert "p" not in registry.providers


def test_attributes_of_an_unknown_backend_are_flagged(pm, add_plugin) -> None:
    add_plugin(
        _directions_plugin(_Provider("other", [Attribute("tan", "x", backend="stylegan")])),
        "elsewhere",
    )
    registry = collect(pm)
    [problem] = [p for p in registry.problems if p.plugin == "elsewhere"]
    assert problem.severity == "warning" and "'stylegan'" in problem.message


def test_bad_hookimpl_signature_is_refused_at_registration(pm) -> None:
    from chatface.engine.plugins import PluginRecord

    class Wrong:
        @hookimpl
        def chatface_register_planners(self, register, not_an_argument):  # type: ignore[no-untyped-def]
            pass

    record = PluginRecord("wrong", builtin=False, status="loaded")
    pm.register_plugin(Wrong(), record)
    assert record.status == "failed"
    assert "not_an_argument" in record.error

"""The plugin host: loading, isolation of broken plugins, lookups and DSE_LOAD_PLUGINS."""

from importlib import metadata

import pytest

import dse_core
from dse_core import GanFamily, PluginHost, UnknownNameError, hookimpl
from dse_core.plugins import get_host, use_host


class FakeGenerator:
    family = "toygan"


def make_family(name="toygan", cls=FakeGenerator):
    return GanFamily(name=name, description="toy", generator_class=cls, formats=[], latent="z")


class GoodPlugin:
    @hookimpl
    def register_gan_families(self, register):
        register(make_family())


class RaisingPlugin:
    @hookimpl
    def register_gan_families(self, register):
        raise RuntimeError("boom in hook")


class DuplicatePlugin:
    @hookimpl
    def register_gan_families(self, register):
        register(make_family())


class WrongTypePlugin:
    @hookimpl
    def register_gan_families(self, register):
        register({"name": "nope"})


def test_registered_plugin_provides_its_family():
    host = PluginHost()
    host.register(GoodPlugin(), name="good", distribution="dse-plugin-toy", version="1.2")
    assert list(host.families) == ["toygan"]
    assert host.family("toygan").package == "dse-plugin-toy"
    [row] = host.plugins()
    assert (row.name, row.distribution, row.version, row.families, row.error) == ("good", "dse-plugin-toy", "1.2", ("toygan",), None)


@pytest.mark.parametrize("bad, message", [
    (RaisingPlugin, "RuntimeError: boom in hook"),
    (DuplicatePlugin, "already registered by plugin 'good'"),
    (WrongTypePlugin, "register() takes a GanFamily, got dict"),
])
def test_a_failing_hook_is_reported_and_the_others_keep_working(bad, message):
    host = PluginHost()
    host.register(GoodPlugin(), name="good")
    host.register(bad(), name="bad")
    assert "toygan" in host.families
    rows = {r.name: r for r in host.plugins()}
    assert rows["good"].error is None
    assert message in rows["bad"].error


def test_family_class_must_declare_the_same_name():
    class Mismatch:
        family = "other"

    class Plugin:
        @hookimpl
        def register_gan_families(self, register):
            register(make_family(cls=Mismatch))

    host = PluginHost()
    host.register(Plugin(), name="mismatch")
    assert host.families == {}
    assert "Mismatch.family must be 'toygan'" in host.plugins()[0].error


class FakeEntryPoint:
    def __init__(self, name, target, fail=False):
        self.name, self.target, self.fail = name, target, fail
        self.dist = type("Dist", (), {"name": f"dse-plugin-{name}", "version": "0.0.1"})()

    def load(self):
        if self.fail:
            raise ImportError(f"No module named 'missing_dependency_of_{self.name}'")
        return self.target


def test_entry_points_load_one_by_one_and_a_broken_one_is_named(monkeypatch):
    eps = [FakeEntryPoint("broken", None, fail=True), FakeEntryPoint("good", GoodPlugin())]
    monkeypatch.setattr(metadata, "entry_points", lambda group: eps if group == "dse" else [])
    host = PluginHost()
    host.load_entry_points()
    assert "toygan" in host.families
    rows = {r.name: r for r in host.plugins()}
    assert rows["broken"].distribution == "dse-plugin-broken"
    assert "ImportError: No module named 'missing_dependency_of_broken'" in rows["broken"].error


@pytest.mark.parametrize("value, loaded", [("good", {"good"}), ("", set()), ("good,broken", {"good", "broken"})])
def test_dse_load_plugins_selects_entry_points(monkeypatch, value, loaded):
    eps = [FakeEntryPoint("broken", None, fail=True), FakeEntryPoint("good", GoodPlugin())]
    monkeypatch.setattr(metadata, "entry_points", lambda group: eps)
    monkeypatch.setenv("DSE_LOAD_PLUGINS", value)
    monkeypatch.setattr(dse_core.plugins, "_host", None)
    assert {r.name for r in get_host().plugins()} == loaded


def test_dse_load_plugins_names_what_it_leaves_out_and_what_it_cannot_find(monkeypatch):
    eps = [FakeEntryPoint("toygan", GoodPlugin()), FakeEntryPoint("good", GoodPlugin())]
    monkeypatch.setattr(metadata, "entry_points", lambda group: eps)
    monkeypatch.setitem(dse_core.plugins.KNOWN_PACKAGES, "toygan", "dse-plugin-toygan")
    monkeypatch.setenv("DSE_LOAD_PLUGINS", "nosuch")
    monkeypatch.setattr(dse_core.plugins, "_host", None)
    host = get_host()
    rows = {r.name: r for r in host.plugins()}
    assert rows["nosuch"].error == ("named in DSE_LOAD_PLUGINS, but no installed plugin has this name "
                                    "(installed: good, toygan)")
    assert host.skipped == {"good": "dse-plugin-good", "toygan": "dse-plugin-toygan"}
    with pytest.raises(UnknownNameError, match="dse-plugin-toygan is installed, but DSE_LOAD_PLUGINS='nosuch' leaves it out"):
        host.family("toygan")


def test_a_failed_plugin_is_blamed_only_for_its_own_family():
    host = PluginHost()
    host._fail("stylegan2x", "dse-plugin-stylegan2x", "0.1", ImportError("boom"))
    with pytest.raises(UnknownNameError, match="pip install dse-plugin-stylegan`"):
        host.family("stylegan")  # not "plugin 'stylegan2x' failed"


def test_unknown_family_suggests_close_names_and_the_package_to_install():
    host = PluginHost()
    host.register(GoodPlugin(), name="good")
    with pytest.raises(UnknownNameError) as err:
        host.family("toygn")
    assert "did you mean 'toygan'" in str(err.value)
    with pytest.raises(UnknownNameError) as err:
        host.family("biggan")
    assert "pip install dse-plugin-biggan" in str(err.value)


def test_the_installed_stylegan2_entry_point_is_found():
    eps = {ep.name: ep for ep in metadata.entry_points(group="dse")}
    assert eps["stylegan2"].value == "dse_plugin_stylegan2"
    host = PluginHost()
    host.load_entry_points()
    family = host.family("stylegan2")
    assert family.package == "dse-plugin-stylegan2"
    assert {f.name for f in family.formats} >= {"rosinality", "genforce"}


def test_use_host_swaps_and_restores():
    before = get_host()
    with use_host(PluginHost()) as host:
        assert get_host() is host
    assert get_host() is before

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


def test_a_bad_registration_points_at_the_plugin_not_at_the_host():
    host = PluginHost()
    host.register(WrongTypePlugin(), name="bad")
    error = host.plugins()[0].error
    line = WrongTypePlugin.register_gan_families.__code__.co_firstlineno + 2  # its register(...) call
    assert error.endswith(f"(at {__file__}:{line})"), error


def test_a_duplicate_family_name_is_reported_on_both_rows_and_the_first_keeps_it():
    host = PluginHost()
    host.register(GoodPlugin(), name="good", distribution="dse-plugin-good")
    host.register(DuplicatePlugin(), name="dup", distribution="dse-plugin-dup")
    assert host.family("toygan").package == "dse-plugin-good"
    rows = {r.name: r for r in host.plugins()}
    assert "GAN family 'toygan' is already registered by plugin 'good' (dse-plugin-good)" in rows["dup"].error
    assert rows["good"].error is None  # the plugin in use works: the clash is a warning on its row
    assert "GAN family 'toygan' is also registered by plugin 'dup' (dse-plugin-dup)" in rows["good"].warning
    assert rows["good"].families == ("toygan",) and rows["dup"].families == ()


@pytest.mark.parametrize("official_first", [True, False])
def test_an_official_family_name_belongs_to_its_package_whatever_the_load_order(monkeypatch, official_first):
    monkeypatch.setitem(dse_core.plugins.KNOWN_PACKAGES, "toygan", "dse-plugin-toygan")
    plugins = [(GoodPlugin(), "toygan", "dse_plugin_toygan"), (DuplicatePlugin(), "impostor", "dse-plugin-impostor")]
    host = PluginHost()
    for plugin, name, dist in plugins if official_first else plugins[::-1]:
        host.register(plugin, name=name, distribution=dist)
    assert host.family("toygan").package == "dse_plugin_toygan"
    rows = {r.name: r for r in host.plugins()}
    assert rows["toygan"].error is None and rows["toygan"].families == ("toygan",)
    assert ("GAN family 'toygan' is reserved for the project's dse-plugin-toygan; plugin 'impostor' "
            "(dse-plugin-impostor) may not register it") in rows["impostor"].error


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


def test_dse_load_plugins_accepts_a_distribution_name(monkeypatch):
    eps = [FakeEntryPoint("broken", None, fail=True), FakeEntryPoint("good", GoodPlugin())]
    monkeypatch.setattr(metadata, "entry_points", lambda group: eps)
    monkeypatch.setenv("DSE_LOAD_PLUGINS", "dse_plugin_Good")
    monkeypatch.setattr(dse_core.plugins, "_host", None)
    host = get_host()
    assert [(r.name, r.error) for r in host.plugins()] == [("good", None)]
    assert host.skipped == {"broken": "dse-plugin-broken"}


def test_a_failed_plugin_is_blamed_only_for_its_own_family():
    host = PluginHost()
    host._fail("stylegan2x", "dse-plugin-stylegan2x", "0.1", ImportError("boom"))
    with pytest.raises(UnknownNameError, match="pip install dse-plugin-stylegan`"):
        host.family("stylegan")  # not "plugin 'stylegan2x' failed"


def test_an_unknown_family_names_the_failed_plugin_that_looks_like_it():
    host = PluginHost()
    host.register(GoodPlugin(), name="good")
    host._fail("unrelated", "dse-plugin-unrelated", "1.0", ImportError("nope"))
    host._fail("mygan", "dse-plugin-mygan", "0.1", ImportError("No module named 'mygan_ops'"))
    with pytest.raises(UnknownNameError) as err:
        host.family("mygan")
    assert err.value.hint.startswith("plugin 'mygan' (dse-plugin-mygan) failed to load: "
                                     "ImportError: No module named 'mygan_ops'")
    with pytest.raises(UnknownNameError) as err:
        host.family("toygn")
    assert "did you mean 'toygan'" in str(err.value)
    assert "plugins that failed to load or register: mygan, unrelated (`dse plugins` shows why)" in err.value.hint
    with pytest.raises(UnknownNameError) as err:
        host.family("biggan")
    assert "pip install dse-plugin-biggan" in err.value.hint and "mygan, unrelated" in err.value.hint


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


def test_plugins_import_only_the_public_api():
    """Every plugin package in plugins/ imports dse_core, dse_core.nn and dse_core.testing only, and only exported names."""
    import ast
    from pathlib import Path

    import dse_core.nn
    import dse_core.testing

    public = {"dse_core": set(dse_core.__all__), "dse_core.nn": set(dse_core.nn.__all__),
              "dse_core.testing": {n for n in dir(dse_core.testing) if not n.startswith("_")}}
    root = Path(__file__).resolve().parents[1] / "plugins"
    files = [f for f in root.glob("*/dse_plugin_*/**/*.py")]
    assert files, "no plugin package found"
    offenders = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                offenders += [f"{f.name}: import {a.name}" for a in node.names
                              if a.name.startswith("dse_core") and a.name not in public]
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dse_core"):
                names = public.get(node.module)
                if names is None:
                    offenders.append(f"{f.name}: from {node.module} import ...")
                else:
                    offenders += [f"{f.name}: from {node.module} import {a.name}" for a in node.names if a.name not in names]
    assert offenders == []
    for name in dse_core.__all__:  # and every exported name resolves
        assert getattr(dse_core, name) is not None, name

"""The checkpoint registry: every entry in registry/ validates; bad entries name file and field; the plugin hook."""

import re
import tomllib
from pathlib import Path

import attrs
import pytest

from dse_core import CheckpointEntry, ConfigError, DseError, PluginHost, UnknownNameError, hookimpl, load_generator, use_host
from dse_core.models import registry
from dse_core.cli import main
from dse_core.testing import plugin

REGISTRY = Path(__file__).resolve().parent.parent / "registry"
GOOD = '''
id = "toy-gen-64"
kind = "generator"
family = "stylegan2"
plugin = "dse-plugin-stylegan2"
format = "rosinality"
resolution = 64
dataset = "toys"
license = "Apache-2.0"
redistribution = "allowed"
source_url = "https://example.org/toy"

[hub]
repo_id = "someone/toy"
file = "toy.pt"
sha256 = "{sha}"
'''.replace("{sha}", "ab" * 32)


# an entry of a family no installed plugin provides (whichever of the project's plugins are installed)
NO_PLUGIN = {**tomllib.loads(GOOD), "id": "nogan-64", "family": "nogan", "plugin": "dse-plugin-nogan", "format": "auto"}


def installed_host() -> PluginHost:
    host = PluginHost()
    host.load_entry_points()
    return host


def test_every_entry_in_the_registry_folder_is_valid():
    files = sorted(REGISTRY.glob("*.toml"))
    entries, errors = registry.load_dir(REGISTRY)
    assert not errors, "\n".join(map(str, errors))
    assert len(entries) == len(files) >= 9
    assert registry.cross_check(entries) == []
    families = installed_host().families
    for entry in entries:
        assert registry.check_against_plugins(entry, families) == [], entry.id
        assert entry.license and entry.source_url.startswith("https://")
        # an entry either pins a sha256 taken from a download or says why it has none (never both, never neither)
        if entry.hub.unverified:
            assert entry.hub.sha256 is None and len(entry.hub.unverified_reason) > 20
        else:
            assert re.fullmatch(r"[0-9a-f]{64}", entry.hub.sha256) and entry.hub.revision
        if entry.license.startswith("Nvidia"):
            assert entry.redistribution == "non-commercial"
    by_repo = {e.hub.repo_id for e in entries}
    assert {"ZeqiangLai/StyleGAN2", "DragGan/DragGan-Models", "huggan/pggan-celebahq-1024", "huggan/stylegan_car512",
            "osanseviero/BigGAN-deep-128"} <= by_repo
    entries = installed_host().checkpoints
    assert entries["stylegan2-ffhq-1024"].hub.file == "stylegan2-ffhq-config-f.pt"
    assert entries["biggan-deep-128"].license == "Apache-2.0"


@pytest.mark.parametrize("edit, field", [
    (lambda t: t.replace('sha256 = "' + "ab" * 32 + '"', 'sha256 = "abc"'), "$.hub.sha256"),
    (lambda t: t.replace('kind = "generator"', 'kind = "discriminator"'), "$.kind"),
    (lambda t: t.replace('[hub]', 'colour = "red"\n\n[hub]'), "colour"),
    (lambda t: t.replace('sha256 = "' + "ab" * 32 + '"', ''), "$.hub.sha256"),
    (lambda t: t.replace('sha256 = "' + "ab" * 32 + '"', 'unverified = true'), "$.hub.unverified_reason"),
    (lambda t: t.replace('repo_id = "someone/toy"', 'repo_id = "no-owner"'), "$.hub.repo_id"),
    (lambda t: t.replace('resolution = 64', 'resolution = "big"'), "$.resolution"),
    (lambda t: t.replace('kind = "generator"', 'kind = "encoder"'), "$.inverts"),
    (lambda t: t.replace('redistribution = "allowed"', 'redistribution = "maybe"'), "$.redistribution"),
    (lambda t: t.replace('id = "toy-gen-64"', 'id = "other-id"'), "$.id"),
    (lambda t: t.replace('[hub]', '[hub'), "not valid TOML"),
])
def test_a_bad_entry_names_its_file_and_field(tmp_path, edit, field):
    path = tmp_path / "toy-gen-64.toml"
    path.write_text(GOOD)
    assert registry.load_file(path).hub.sha256 == "ab" * 32
    path.write_text(edit(GOOD))
    with pytest.raises(ConfigError) as err:
        registry.load_file(path)
    assert str(path) in str(err.value) and field in str(err.value)


class BrokenRegistry:
    @hookimpl
    def register_checkpoints(self, register):
        raise RuntimeError("boom in register_checkpoints")


def test_plugins_add_entries_and_a_broken_one_is_named(tmp_path):
    folder = tmp_path / "shipped"
    folder.mkdir()
    (folder / "toy-gen-64.toml").write_text(GOOD)
    encoder = {**tomllib.loads(GOOD), "id": "toy-enc-64", "kind": "encoder", "inverts": "toy-gen-64",
               "format": "dse", "hub": {"repo_id": "someone/toy-enc", "file": "model.safetensors", "sha256": "cd" * 32}}
    host = installed_host()
    host.register(plugin(checkpoints=[folder, encoder]), name="toyplugin", distribution="dse-plugin-toy", version="0.1")
    host.register(BrokenRegistry(), name="broken")
    host.register(plugin(checkpoints=[folder]), name="dup")
    host.register(plugin(checkpoints=[NO_PLUGIN]), name="nogan-entries")
    entries = host.checkpoints
    assert entries["toy-gen-64"].origin == "plugin toyplugin: toy-gen-64.toml"
    assert entries["toy-enc-64"].inverts == "toy-gen-64" and "stylegan2-ffhq-1024" in entries
    rows = {r.name: r for r in host.plugins()}
    assert rows["toyplugin"].error is None and rows["stylegan2"].error is None
    assert "boom in register_checkpoints" in rows["broken"].error
    assert rows["dup"].error is None  # a bad entry is reported on its own, the plugin's others kept
    assert any("plugin dup: toy-gen-64.toml: $.id: 'toy-gen-64' is already defined by plugin toyplugin" in e
               for e in host.registry_errors)
    assert registry.cross_check(entries.values()) == []
    with use_host(host):
        assert host.checkpoint("toy-enc-64").kind == "encoder" and host.checkpoint("toy-gen-46") is None
        with pytest.raises(UnknownNameError, match="did you mean 'toy-gen-64'"):
            load_generator("toy-gen-46")
        with pytest.raises(UnknownNameError, match="did you mean 'stylegan2-ffhq-1024'"):
            load_generator("stylegan2-ffhq-1042")
        with pytest.raises(DseError, match="toy-enc-64 is a registry encoder, not a generator"):
            load_generator("toy-enc-64")
        # a family no installed plugin reads: refused before anything is fetched (HF_HUB_OFFLINE would say "not cached")
        with pytest.raises(UnknownNameError, match="pip install dse-plugin-nogan"):
            load_generator("nogan-64")


def test_dse_models_still_works_and_names_a_broken_plugin(capsys):
    host = installed_host()
    host.register(BrokenRegistry(), name="broken")
    host.register(plugin(checkpoints=[NO_PLUGIN]), name="nogan-entries")
    with use_host(host):
        assert main(["models"]) == 1
    captured = capsys.readouterr()
    assert "stylegan2-ffhq-1024 *" in captured.out and "pggan-celebahq-1024" in captured.out
    assert "needs dse-plugin-nogan" in captured.out
    assert "FAILED: plugin broken: RuntimeError: boom in register_checkpoints" in captured.err
    with use_host(host):
        assert main(["plugins"]) == 1
    assert "FAILED: RuntimeError: boom in register_checkpoints" in capsys.readouterr().out


def test_registry_path_adds_folders_and_a_bad_file_is_reported_not_fatal(tmp_path, monkeypatch, capsys):
    (tmp_path / "toy-gen-64.toml").write_text(GOOD)
    (tmp_path / "bad-one.toml").write_text(GOOD.replace('id = "toy-gen-64"', 'id = "bad-one"').replace('kind = "generator"', 'kind = "x"'))
    monkeypatch.setenv("DSE_REGISTRY_PATH", str(tmp_path))
    host = installed_host()
    assert "toy-gen-64" in host.checkpoints and "bad-one" not in host.checkpoints
    [error] = host.registry_errors
    assert str(tmp_path / "bad-one.toml") in error and "$.kind" in error
    with use_host(host):
        assert main(["models"]) == 1
    assert "toy-gen-64" in capsys.readouterr().out


def test_entries_can_be_built_in_python():
    entry = CheckpointEntry(id="py-gen", kind="generator", family="stylegan2", plugin="dse-plugin-stylegan2",
                            resolution=32, dataset="x", license="unknown", source_url="https://example.org",
                            hub=registry.HubLocation(repo_id="a/b", file="g.pt", unverified=True, unverified_reason="new"))
    [coerced] = registry.coerce(entry, origin="plugin p")
    assert coerced.origin == "plugin p" and coerced.pinned is None
    with pytest.raises(ConfigError, match=r"\$\.hub\.unverified_reason"):
        registry.coerce(attrs.evolve(entry, hub=registry.HubLocation(repo_id="a/b", file="g.pt", unverified=True)), "p")

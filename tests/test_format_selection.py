"""load_generator's choice of reader: every format whose sniff matches is tried, in a fixed order."""

from importlib import metadata

import pytest
import torch

from dse_core import CheckpointError, CheckpointFormat, GanFamily, PluginHost, load_generator, use_host
from dse_core.testing import plugin


class ToyGenerator(torch.nn.Module):
    family = "toygan"


class GreedyGenerator(torch.nn.Module):
    family = "aaagreedy"  # sorts before every other family name


def _raise(exc):
    def load(path):
        raise exc
    return load


def _family(name, generator_class, sniff, load):
    return GanFamily(name=name, description=name, generator_class=generator_class,
                     formats=[CheckpointFormat("fmt", f"{name} files", sniff, load)], latent="z")


def toy_family(load=None):
    sniff = lambda path: path.read_bytes().startswith(b"TOY")  # noqa: E731  checks the file's magic
    return _family("toygan", ToyGenerator, sniff, load or (lambda path: ToyGenerator()))


def greedy_family(load):
    return _family("aaagreedy", GreedyGenerator, lambda path: True, load)  # says yes to every file


def host_with(*families):
    host = PluginHost()
    for i, family in enumerate(families):
        host.register(plugin([family]), name=f"plugin{i}-{family.name}")
    return host


@pytest.fixture
def toy_file(tmp_path):
    path = tmp_path / "model.toy"
    path.write_bytes(b"TOY weights")
    return path


@pytest.mark.parametrize("bad", [KeyError("net.0.weight"), CheckpointError("x", "not a greedy checkpoint")])
@pytest.mark.parametrize("greedy_first", [True, False])
def test_a_greedy_sniff_whose_load_fails_falls_back_to_the_next_match(toy_file, bad, greedy_first):
    families = [greedy_family(_raise(bad)), toy_family()]
    with use_host(host_with(*(families if greedy_first else families[::-1]))):
        G = load_generator(toy_file)
    assert type(G) is ToyGenerator
    assert G.source == {"format": "toygan/fmt", "file": "model.toy"}


def test_candidates_are_tried_in_a_fixed_order_whatever_the_load_order(toy_file):
    order = []

    def loader(name, cls):
        def load(path):
            order.append(name)
            return cls()
        return load

    toy = toy_family(loader("toygan", ToyGenerator))
    greedy = greedy_family(loader("aaagreedy", GreedyGenerator))
    for families in ([toy, greedy], [greedy, toy]):
        order.clear()
        with use_host(host_with(*families)):
            assert type(load_generator(toy_file)) is GreedyGenerator  # both load: the first by name wins
        assert order == ["aaagreedy"]


def test_when_every_match_fails_one_error_lists_each_reader_and_why(toy_file):
    host = host_with(greedy_family(_raise(KeyError("net.0.weight"))),
                     toy_family(_raise(CheckpointError(toy_file, "weights do not match the architecture"))))
    with use_host(host), pytest.raises(CheckpointError) as err:
        load_generator(toy_file)
    text = str(err.value)
    assert "2 readers recognised it but none could load it" in text
    assert "aaagreedy/fmt: KeyError: 'net.0.weight'" in text
    assert "toygan/fmt: weights do not match the architecture" in text
    assert f"{toy_file}: weights" not in text  # the path is said once, not per reader


def test_a_single_reader_that_crashes_is_a_checkpoint_error_not_a_traceback(toy_file):
    with use_host(host_with(toy_family(_raise(KeyError("net.0.weight"))))), pytest.raises(CheckpointError) as err:
        load_generator(toy_file)
    assert "toygan/fmt reader failed: KeyError: 'net.0.weight'" in str(err.value)
    assert "test_format_selection.py" in str(err.value)  # where in the plugin it broke


def test_a_single_reader_s_own_checkpoint_error_is_raised_as_is(toy_file):
    problem = CheckpointError(toy_file, "weights do not match the architecture: missing 1 tensor (b4.const)")
    with use_host(host_with(toy_family(_raise(problem)))), pytest.raises(CheckpointError) as err:
        load_generator(toy_file)
    assert err.value is problem


def test_a_loose_third_party_sniff_does_not_hijack_a_stylegan2_file(fixtures):
    def not_mine(path):
        raise CheckpointError(path, "not a MyGAN checkpoint")

    host = PluginHost()
    host.register(plugin([greedy_family(not_mine)]), name="aaagreedy", distribution="dse-plugin-aaagreedy")
    host.load_entry_points()  # after the greedy one: it is asked first
    with use_host(host):
        G = load_generator(fixtures / "stylegan2-genforce" / "checkpoint.pth")
    assert G.family == "stylegan2" and G.source["format"] == "stylegan2/genforce"


def test_official_families_are_tried_before_third_party_ones(fixtures):
    """A third-party reader that would happily load a StyleGAN2 file does not win just by its name."""
    assert any(ep.name == "stylegan2" for ep in metadata.entry_points(group="dse"))
    host = PluginHost()
    host.register(plugin([greedy_family(lambda path: GreedyGenerator())]), name="aaagreedy",
                  distribution="dse-plugin-aaagreedy")
    host.load_entry_points()  # after the greedy one: it is asked first
    with use_host(host):
        G = load_generator(fixtures / "stylegan2-genforce" / "checkpoint.pth")
    assert G.family == "stylegan2"


@pytest.mark.parametrize("greedy_load", ["crashes", "succeeds"])
def test_a_truncated_file_is_reported_as_damaged_not_handed_to_a_loose_reader(fixtures, tmp_path, greedy_load):
    from dse_core.errors import DamagedFileError

    data = (fixtures / "stylegan2-rosinality" / "checkpoint.pt").read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    load = _raise(KeyError("net.0.weight")) if greedy_load == "crashes" else (lambda path: GreedyGenerator())
    host = PluginHost()
    host.register(plugin([greedy_family(load)]), name="aaagreedy", distribution="dse-plugin-aaagreedy")
    host.load_entry_points()
    with use_host(host), pytest.raises(DamagedFileError, match="corrupt or truncated"):
        load_generator(cut)


def test_a_sniffer_that_crashes_is_named_when_nothing_reads_the_file(toy_file):
    def crashing(path):
        raise AttributeError("'NoneType' object has no attribute 'keys'")

    class CrashGenerator(torch.nn.Module):
        family = "aaacrash"

    family = _family("aaacrash", CrashGenerator, crashing, lambda path: CrashGenerator())
    with use_host(host_with(family)), pytest.raises(CheckpointError) as err:
        load_generator(toy_file)
    assert "no reader recognised it, and 1 reader(s) crashed looking: aaacrash/fmt's sniff: AttributeError" in str(err.value)
    assert "a bug in the plugin that provides aaacrash" in err.value.hint
    with use_host(host_with(family, toy_family())):
        assert type(load_generator(toy_file)) is ToyGenerator  # another reader's yes still wins


def test_what_a_reader_records_in_source_is_kept(toy_file):
    def load(path):
        G = ToyGenerator()
        G.source = {"images": {"background": "black"}}
        return G

    with use_host(host_with(toy_family(load))):
        G = load_generator(toy_file)
    assert G.source == {"images": {"background": "black"}, "format": "toygan/fmt", "file": "model.toy"}

"""A family unlike StyleGAN2, written from CONTRIBUTING alone: its example plugin as written, through the CLI.

The plugin module is the guide's code blocks of steps 2 to 5, one after another (as the guide says);
nothing here restates it. A z-only MLP with no truncation, no styles and no noise.
"""

import importlib
import json
import re
import sys
from pathlib import Path

import attrs
import pytest
import torch

import dse_core
from dse_core.cli import main
from dse_core.testing import check_generator_contract, host

GUIDE = Path(__file__).resolve().parents[1] / "CONTRIBUTING.md"


def guide_module(tmp_path, name="dse_plugin_mygan"):
    """The guide's steps 2-5 as a package in tmp_path, imported."""
    text = GUIDE.read_text()
    steps = text[text.index("2. The generator:"):text.index("6. Tests:")]
    blocks, block = [], []
    for line in steps.splitlines():
        if line.startswith("       ") or (block and not line.strip()):
            block.append(line[7:])
        elif block:
            blocks.append("\n".join(block))
            block = []
    code = "\n\n".join(b for b in blocks if "def " in b or "import " in b or "FAMILY" in b)
    folder = tmp_path / name
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(code)
    sys.path.insert(0, str(tmp_path))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(tmp_path))


@pytest.fixture
def mygan(tmp_path):
    module = guide_module(tmp_path / "pkg")
    yield module
    sys.modules.pop(module.__name__, None)


@pytest.fixture
def installed(mygan):
    family = attrs.evolve(mygan.FAMILY, package="dse-plugin-mygan")
    with host(families=[family], installed=True, name="mygan"):
        yield family


def weights_tar(mygan, tmp_path) -> Path:
    """A torch zip named weights.tar, as someone's generator ships."""
    torch.manual_seed(0)
    G = mygan.MyGenerator(mygan.MyGanConfig(resolution=8, z_dim=6))
    path = tmp_path / "weights.tar"
    torch.save(G.state_dict(), path)
    return path


def test_the_guide_s_plugin_passes_the_contracts(mygan, tmp_path):
    check_generator_contract(mygan.FAMILY, mygan.FAMILY.tiny_config, tmp_path)


def test_the_guide_s_sniffer_reads_the_content_whatever_the_suffix(mygan, installed, tmp_path, capsys):
    path = weights_tar(mygan, tmp_path)
    G = dse_core.load_generator(path)
    assert G.family == "mygan" and G.source == {"format": "mygan/official", "file": "weights.tar"}
    assert main(["convert", str(path), "-o", str(tmp_path / "g")]) == 0
    out = capsys.readouterr().out
    assert "mygan generator, 8px, decodes z (6,)" in out and "w_dim" not in out and "num_ws" not in out


def test_options_the_family_cannot_honour_are_refused_in_one_line(mygan, installed, tmp_path, capsys):
    path = weights_tar(mygan, tmp_path)
    assert main(["sample", "--generator", str(path), "--truncation-psi", "0.7", "-o", str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err
    assert "truncation psi 0.7: the mygan generator has no truncation" in err and "Traceback" not in err
    assert main(["sample", "--generator", str(path), "--truncation-cutoff", "2", "-o", str(tmp_path / "s.png")]) == 2
    assert "has no per-layer ws to cut" in capsys.readouterr().err
    base = ["train", "--generator", str(path), "--lpips-weight", "0", "--samples", "4", "--batch-size", "2", "--quiet"]
    for option, message in [(["--style-mixing", "0.9"], "style mixing needs a style-based generator"),
                            (["--truncation-psi", "0.7"], "the mygan generator has no truncation"),
                            (["--latent-step", "separate", "--latent-weight", "z=0"], "no latent loss")]:
        run = tmp_path / f"refused-{option[0].strip('-')}"
        assert main([*base, "-o", str(run), *option]) == 2, option
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
        assert not (run / "run.json").exists()


def test_a_preset_adapts_to_the_family_and_run_json_records_what_ran(mygan, installed, tmp_path, capsys):
    path = weights_tar(mygan, tmp_path)
    run = tmp_path / "run"
    assert main(["train", "--generator", str(path), "--preset", "code-s2", "--lpips-weight", "0", "--samples", "4",
                 "--batch-size", "2", "--quiet", "-o", str(run)]) == 0
    err = capsys.readouterr().err
    assert "note: code-s2's truncation psi 0.7 does not apply (the mygan generator has no truncation)" in err
    assert "note: code-s2's style mixing prob 0.9 does not apply" in err
    record = json.loads((run / "run.json").read_text())
    assert (record["train"]["truncation_psi"], record["train"]["truncation_cutoff"]) == (1.0, None)
    assert record["train"]["style_mixing_prob"] == 0.0
    assert record["train"]["latent_step"] == "separate"  # the z latent loss takes the authors' second step
    assert record["latent_loss"] == {"z": 1.0} and len(record["notes"]) == 2
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert all(row["latent/z"] > 0 and "latent/z/mse" in row for row in log)
    encoder = json.loads((run / "encoder" / "config.json").read_text())
    assert (encoder["config"]["num_ws"], encoder["config"]["w_dim"]) == (0, 0)  # no style heads: no w size
    assert encoder["source"]["latent_loss"] == {"z": 1.0}
    assert main(["train", "-o", str(run), "--resume", "--samples", "6", "--quiet"]) == 0  # the adapted run resumes


def test_invert_and_generate_speak_the_family_s_latents(mygan, installed, tmp_path, capsys):
    path = weights_tar(mygan, tmp_path)
    run = tmp_path / "run"
    assert main(["train", "--generator", str(path), "--lpips-weight", "0", "--samples", "4", "--batch-size", "2",
                 "--quiet", "-o", str(run)]) == 0
    G = dse_core.load_generator(path)
    with torch.no_grad():
        image = G(torch.randn(1, 6)).clamp(-1, 1)[0]
    from dse_core.images import save_image

    save_image(image, tmp_path / "in" / "x.png")
    assert main(["invert", str(tmp_path / "in"), "--encoder", str(run), "--no-lpips", "--quiet", "--format", "npy",
                 "npz", "-o", str(tmp_path / "out")]) == 0
    from numpy import load

    assert load(tmp_path / "out" / "latents" / "x.npz")["z"].shape == (1, 6)
    assert main(["generate", str(tmp_path / "out" / "latents"), "-o", str(tmp_path / "regen")]) == 0


CRASHY = '''
import torch
import dse_core
from dse_plugin_mygan import MyGenerator


class Crashy(MyGenerator):
    family = "crashy"

    def decode(self, latents, noise_mode="const"):
        if noise_mode == "random":
            raise NotImplementedError("random noise is not implemented")
        return super().decode(latents, noise_mode)


FAMILY = dse_core.GanFamily(name="crashy", description="raises", generator_class=Crashy, formats=[], latent="z",
                            package="dse-plugin-crashy")
'''


def test_an_exception_inside_a_plugin_is_one_line_naming_family_distribution_and_options(mygan, tmp_path, capsys):
    (tmp_path / "crashy").mkdir()
    (tmp_path / "crashy" / "dse_plugin_crashy.py").write_text(CRASHY)
    sys.path.insert(0, str(tmp_path / "crashy"))
    sys.path.insert(0, str(tmp_path / "pkg"))
    try:
        crashy = importlib.import_module("dse_plugin_crashy")
        G = crashy.Crashy(mygan.MyGanConfig(resolution=8, z_dim=6))
        G.save_pretrained(tmp_path / "g")
        with host(families=[crashy.FAMILY]):
            argv = ["sample", "--generator", str(tmp_path / "g"), "--noise-mode", "random", "-o", str(tmp_path / "s.png")]
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert re.search(r"dse: error: the crashy plugin \(dse-plugin-crashy\) failed: NotImplementedError: random "
                             r"noise is not implemented \(at .*dse_plugin_crashy.py:\d+\); options: --generator .* "
                             r"--noise-mode random", err), err
            assert "Traceback" not in err
            assert main(["--debug", *argv]) == 2
            assert "Traceback" in capsys.readouterr().err
    finally:
        sys.path.remove(str(tmp_path / "crashy"))
        sys.path.remove(str(tmp_path / "pkg"))
        sys.modules.pop("dse_plugin_crashy", None)


def test_a_flat_module_plugin_is_blamed_for_its_own_file_only(mygan, tmp_path):
    """A single-module plugin installed flat (site-packages/flatgan.py): its neighbours' errors are not its own."""
    from dse_core.plugins import plugin_of_traceback

    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "dse_plugin_flat.py").write_text(CRASHY.replace("crashy", "flat").replace("Crashy", "Flat"))
    (folder / "fakelib.py").write_text("def boom():\n    raise RuntimeError('a bug in another library')\n")
    sys.path[:0] = [str(folder), str(tmp_path / "pkg")]
    try:
        flat, fakelib = importlib.import_module("dse_plugin_flat"), importlib.import_module("fakelib")
        with host(families=[flat.FAMILY]) as test_host:
            test_host.families  # loaded, as when a command has looked up a family
            try:
                fakelib.boom()
            except RuntimeError as exc:
                assert plugin_of_traceback(exc) is None
            G = flat.Flat(mygan.MyGanConfig(resolution=8, z_dim=6))
            try:
                G(torch.randn(1, 6), noise_mode="random")
            except NotImplementedError as exc:
                family, distribution, where = plugin_of_traceback(exc)
                assert (family, distribution) == ("flat", "dse-plugin-flat") and "dse_plugin_flat.py" in where
    finally:
        del sys.path[:2]
        sys.modules.pop("dse_plugin_flat", None)
        sys.modules.pop("fakelib", None)


def test_convert_reads_an_encoder_file_even_beside_a_loose_generator_sniffer(mygan, fixtures, tmp_path, capsys):
    """A third-party sniffer that says yes to every file does not turn the DSE authors' encoder into its generator."""
    greedy = attrs.evolve(mygan.FAMILY, formats=[dse_core.CheckpointFormat(
        "any", "says yes to everything", lambda path: True, mygan.load_official)], package="dse-plugin-mygan")
    with host(families=[greedy], installed=True):
        src = fixtures / "dse-encoder-stylegan2" / "E_model_ep6_iter29999.pth"
        # StyleGAN1 and StyleGAN2 both read it as an encoder: asked which, never read as mygan's generator
        assert main(["convert", str(src), "-o", str(tmp_path / "e")]) == 2
        assert "an encoder checkpoint of the stylegan, stylegan2 families alike" in capsys.readouterr().err
        assert main(["convert", str(src), "--gan", "stylegan2", "-o", str(tmp_path / "e")]) == 0
        assert "stylegan2 encoder, 32px, predicts ws (8, 512)" in capsys.readouterr().out
        assert main(["convert", str(tmp_path / "e" / "model.safetensors"), "-o", str(tmp_path / "e2")]) == 0
        assert "stylegan2 encoder" in capsys.readouterr().out


def test_two_families_in_one_package_are_both_named(mygan, tmp_path):
    from dse_core.plugins import plugin_of_traceback

    twin_class = type("Twin", (mygan.MyGenerator,), {"family": "mygan-twin", "__module__": mygan.__name__})
    twin = attrs.evolve(mygan.FAMILY, name="mygan-twin", generator_class=twin_class)  # a second family, same package
    with host(families=[attrs.evolve(mygan.FAMILY, package="dse-plugin-mygan"), twin]) as test_host:
        test_host.families
        try:
            mygan.MyGenerator(mygan.MyGanConfig())(torch.randn(1, 5))  # z_dim is 128: check_latents raises here
        except ValueError as exc:
            assert plugin_of_traceback(exc)[:2] == ("mygan/mygan-twin", "dse-plugin-mygan")

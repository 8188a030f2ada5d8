"""The PGGAN plugin: parity with genforce and pytorch_GAN_zoo, readers of other architectures, errors, contract, training."""

import hashlib
import json
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import dse_core
from dse_core import CheckpointError, DseWarning
from dse_core.cli import main
from dse_core.testing import check_generator_contract
from dse_plugin_pggan import FAMILY, Generator, PGGANConfig
from dse_plugin_pggan.convert import ZOO_GLOBALS, load_ganzoo, load_genforce
from dse_plugin_pggan.encoder import encoder_plan

TOL = 1e-4
ZOO = Path(__file__).parent / "fixtures" / "ganzoo-pgan"
NO_LABEL_SIZE = r"no discriminator output \(layer\d+\) to read genforce's label_size from"
# most genforce files here hold no discriminator: each load warns (asserted where it is the point, below)
pytestmark = pytest.mark.filterwarnings(f"ignore:.*{NO_LABEL_SIZE}:dse_core.DseWarning")


def max_diff(a, b):
    return (a - b).abs().max().item()


def images(G, z, c=None):
    with torch.no_grad():
        return G(z, c)


@pytest.fixture
def genforce(fixtures):
    return fixtures / "pggan-genforce"


# -- parity ----------------------------------------------------------------------------

def test_genforce_checkpoint_matches_reference(genforce):
    G = dse_core.load_generator(genforce / "checkpoint.pth")
    assert G.family == "pggan" and G.source["format"] == "pggan/genforce"
    assert G.config == PGGANConfig(resolution=32, channels={4: 32, 8: 32, 16: 32, 32: 16}, z_dim=64)
    cases = load_file(genforce / "cases.safetensors")
    assert max_diff(images(G, cases["z"]), cases["img_z"]) <= TOL


@pytest.mark.parametrize("name, cases, config", [
    ("checkpoint.pth", "cases.safetensors",
     PGGANConfig(resolution=16, channels={4: 16, 8: 16, 16: 12}, z_dim=24)),
    ("variant.pth", "variant.safetensors",  # DCGAN loss: a final tanh; leakyness 0.1
     PGGANConfig(resolution=32, channels={4: 12, 8: 8, 16: 8, 32: 4}, z_dim=10, final_tanh=True, lrelu_slope=0.1)),
])
def test_ganzoo_checkpoints_match_reference(name, cases, config):
    G = dse_core.load_generator(ZOO / name)
    assert G.source["format"] == "pggan/ganzoo" and G.config == config
    cases = load_file(ZOO / cases)
    assert max_diff(images(G, cases["z"]), cases["img_z"]) <= TOL


def test_ganzoo_reads_the_averaged_generator_hub_users_sample_from(tmp_path):
    netG = load_ganzoo(zoo_file(tmp_path, drop_avg=True))  # a file without avgG: its netG
    cases = load_file(ZOO / "cases.safetensors")
    assert max_diff(images(netG, cases["z"]), cases["img_z"]) > 0.1  # the fixture's netG and avgG differ


@pytest.mark.parametrize("name", ["genforce", "ganzoo"])
def test_converted_folder_keeps_parity(fixtures, tmp_path, name):
    path, cases = ((fixtures / "pggan-genforce" / "checkpoint.pth", fixtures / "pggan-genforce" / "cases.safetensors")
                   if name == "genforce" else (ZOO / "checkpoint.pth", ZOO / "cases.safetensors"))
    out = tmp_path / "converted"
    assert main(["convert", str(path), "--gan", "pggan", "-o", str(out)]) == 0
    G = dse_core.load_generator(out)
    assert G.family == "pggan" and G.source["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    cases = load_file(cases)
    assert max_diff(images(G, cases["z"]), cases["img_z"]) <= TOL


def test_save_pretrained_round_trip(tmp_path):
    G = Generator(PGGANConfig(resolution=16, channels={4: 8, 8: 6, 16: 4}, z_dim=5, c_dim=3, final_tanh=True))
    G.save_pretrained(tmp_path / "g")
    H = Generator.from_pretrained(tmp_path / "g")
    z, c = torch.randn(2, 5), torch.eye(3)[:2]
    assert H.config == G.config and torch.equal(images(H, z, c), images(G, z, c))


def test_contract(tmp_path):
    check_generator_contract(FAMILY, FAMILY.tiny_config, tmp_path)


def test_contract_conditional_tanh(tmp_path):
    config = PGGANConfig(resolution=8, channels={4: 8, 8: 6}, z_dim=6, c_dim=3, final_tanh=True, lrelu_slope=0.1)
    check_generator_contract(FAMILY, config, tmp_path)


# -- genforce files of other architectures, built by hand --------------------------------------

def genforce_state(resolution, channels, z_dim, label_size=0, fused=False, img=3, seed=0):
    """A random state dict in genforce PGGANGenerator's layout (its names, shapes and lod)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    res = [4 * 2**j for j in range(len(channels))]
    assert res[-1] == resolution
    state = {"lod": torch.zeros(()), "layer0.weight": r(channels[4], z_dim + label_size, 4, 4),
             "layer0.bias": r(channels[4]) * 0.2, "layer1.weight": r(channels[4], channels[4], 3, 3), "layer1.bias": r(channels[4])}
    for j, s in enumerate(res):
        if j:
            c_in, c = channels[s // 2], channels[s]
            state[f"layer{2 * j}.weight"] = r(c_in, c, 3, 3) if fused else r(c, c_in, 3, 3)
            state[f"layer{2 * j}.bias"] = r(c) * 0.2
            state[f"layer{2 * j + 1}.weight"], state[f"layer{2 * j + 1}.bias"] = r(channels[s], channels[s], 3, 3), r(channels[s]) * 0.2
        state[f"output{j}.weight"], state[f"output{j}.bias"] = r(img, channels[s], 1, 1), r(img) * 0.2
    return state


def genforce_reference(state, z, label=None):
    """genforce's PGGANGenerator.forward at lod 0, written out from its source (wscale sqrt(2)/sqrt(fan_in), to-RGB 1)."""
    pn = lambda x: x / torch.sqrt((x**2).mean(dim=1, keepdim=True) + 1e-8)  # noqa: E731
    x = pn(z)
    if label is not None:
        x = torch.cat([x, label], dim=1)
    n = (len([k for k in state if k.startswith("layer")]) // 2) // 2
    x = x.view(x.shape[0], -1, 1, 1)
    for i in range(2 * n):
        w, b = state[f"layer{i}.weight"], state[f"layer{i}.bias"]
        x = pn(x)
        if i == 0:
            x = F.conv2d(x, w * (2**0.5 / (16 * w.shape[1]) ** 0.5), b, padding=3)
        elif i % 2 == 0 and w.shape[0] != state[f"layer{i + 1}.weight"].shape[0]:  # fused: conv_transpose2d weights
            wt = F.pad(w * (2**0.5 / (9 * w.shape[0]) ** 0.5), (1, 1, 1, 1))
            wt = wt[:, :, 1:, 1:] + wt[:, :, :-1, 1:] + wt[:, :, 1:, :-1] + wt[:, :, :-1, :-1]
            x = F.conv_transpose2d(x, wt, b, stride=2, padding=1)
        else:
            if i % 2 == 0:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = F.conv2d(x, w * (2**0.5 / (9 * w.shape[1]) ** 0.5), b, padding=1)
        x = F.leaky_relu(x, 0.2)
    w, b = state[f"output{n - 1}.weight"], state[f"output{n - 1}.bias"]
    return F.conv2d(pn(x), w / w.shape[1] ** 0.5, b)


@pytest.mark.parametrize("resolution, channels, z_dim, fused", [
    (16, {4: 8, 8: 6, 16: 4}, 5, False),
    (16, {4: 8, 8: 6, 16: 4}, 5, True),  # fused_scale: transposed-conv weights, told apart by the width changes
    (8, {4: 3, 8: 3}, 7, False),
])
def test_genforce_files_of_other_architectures(tmp_path, resolution, channels, z_dim, fused):
    state = genforce_state(resolution, channels, z_dim, fused=fused)
    torch.save({"generator": state}, tmp_path / "g.pth")
    G = dse_core.load_generator(tmp_path / "g.pth", gan="pggan")
    assert G.config == PGGANConfig(resolution=resolution, channels=channels, z_dim=z_dim)
    z = torch.randn(3, z_dim)
    expected = genforce_reference(state, z)
    assert expected.abs().max() > 0.5 and max_diff(images(G, z), expected) <= TOL


def test_genforce_label_size_is_read_from_the_discriminator(tmp_path):
    state = genforce_state(8, {4: 6, 8: 4}, 5, label_size=3, seed=1)
    disc = {"layer4.weight": torch.randn(1 + 3, 8), "layer4.bias": torch.zeros(4)}  # D's final dense: 1 + label_size
    torch.save({"models": {"generator_smooth": state, "discriminator": disc}}, tmp_path / "train.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DseWarning)  # the label size is known: nothing to warn about
        G = dse_core.load_generator(tmp_path / "train.pth", gan="pggan")
    assert (G.z_dim, G.c_dim, G.latent_names) == (5, 3, ("z", "c"))
    z, c = torch.randn(2, 5), torch.eye(3)[[0, 2]]
    assert max_diff(images(G, z, c), genforce_reference(state, z, c)) <= TOL


def test_genforce_without_its_discriminator_warns_that_it_reads_it_as_unconditional(tmp_path):
    """Nothing in G tells a class vector from more z (both widen layer0's input): the reader says what it assumed."""
    state = genforce_state(8, {4: 6, 8: 4}, 5, label_size=3, seed=1)
    torch.save({"generator_smooth": state}, tmp_path / "g.pth")
    with pytest.warns(DseWarning, match=rf"g\.pth: {NO_LABEL_SIZE}: read as unconditional with z_dim 8;.*'discriminator'"):
        G = dse_core.load_generator(tmp_path / "g.pth", gan="pggan")
    assert (G.z_dim, G.c_dim) == (8, 0)


# -- errors ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, family", [("stylegan2-genforce/checkpoint.pth", "stylegan2"),
                                          ("stylegan2-rosinality/checkpoint.pt", "stylegan2")])
def test_another_familys_file_names_its_family(fixtures, name, family):
    assert not FAMILY.format("genforce").sniff(fixtures / name) and not FAMILY.format("ganzoo").sniff(fixtures / name)
    with pytest.raises(CheckpointError, match=f"looks like a {family} generator checkpoint.*use --gan {family}"):
        dse_core.load_generator(fixtures / name, gan="pggan")


def says_no(fmt, path) -> bool:
    """A sniffer's no: False, or a CheckpointError (a file its reader cannot open), which the core counts as a no."""
    try:
        return fmt.sniff(path) is False
    except CheckpointError:
        return True


def test_sniffers_say_no_to_other_files_without_crashing(fixtures, tmp_path):
    genforce, ganzoo = FAMILY.format("genforce"), FAMILY.format("ganzoo")
    assert says_no(ganzoo, fixtures / "pggan-genforce" / "checkpoint.pth")
    assert says_no(genforce, ZOO / "checkpoint.pth") and all(says_no(f, ZOO / "make.py") for f in (genforce, ganzoo))
    odd = [[1, 2], torch.zeros(3), {"generator": 3}, {"models": 5}, {"models": {"generator_smooth": {"lod": 0}}},
           {"config": 1, "avgG": {"w": torch.zeros(1)}}]
    for i, obj in enumerate(odd):  # torch files that open: a plain no
        torch.save(obj, tmp_path / f"{i}.pth")
        assert genforce.sniff(tmp_path / f"{i}.pth") is False and ganzoo.sniff(tmp_path / f"{i}.pth") is False, obj
    with pytest.raises(CheckpointError) as info:  # a file neither reader opens: no "reader crashed"
        dse_core.load_generator(ZOO / "make.py", gan="pggan")
    assert "crashed" not in str(info.value)


@pytest.mark.parametrize("edit, named", [
    (lambda s: s.update({"layer3.weight": s["layer3.weight"][:, :-1]}), r"layer3\.weight: file \(8, 7, 3, 3\) vs expected \(8, 8, 3, 3\)"),
    (lambda s: s.pop("layer2.bias"), r"missing 1 tensor \(layer2\.bias\)"),
    (lambda s: s.update({"layer9.weight": torch.zeros(2)}), r"unexpected tensor \(layer9\.weight\)|missing .*layer"),
    (lambda s: s.pop("output0.weight"), r"missing 1 tensor \(output0\.weight\)"),
])
def test_damaged_genforce_tensors_name_themselves(tmp_path, edit, named):
    state = genforce_state(16, {4: 8, 8: 8, 16: 6}, 5)
    edit(state)
    torch.save({"generator_smooth": state}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"bad\.pth: generator_smooth: .*" + named):
        load_genforce(tmp_path / "bad.pth")


def test_a_training_checkpoints_generator_is_named_where_it_is(tmp_path):
    state = genforce_state(8, {4: 4, 8: 4}, 5)
    state.pop("layer2.bias")
    torch.save({"models": {"generator_smooth": state, "generator": state}}, tmp_path / "train.pth")
    with pytest.raises(CheckpointError, match=r"train\.pth: models\.generator_smooth: .*missing 1 tensor \(layer2\.bias\)"):
        load_genforce(tmp_path / "train.pth")


def test_a_growing_genforce_generator_is_refused(tmp_path):
    state = genforce_state(8, {4: 4, 8: 4}, 5)
    state["lod"] = torch.tensor(0.5)
    torch.save({"generator": state}, tmp_path / "growing.pth")
    with pytest.raises(CheckpointError, match=r"growing\.pth: generator: lod is 0\.5"):
        load_genforce(tmp_path / "growing.pth")


def zoo_file(tmp_path, edit_state=None, drop_avg=False, **config):
    """The fixture re-saved with edits; its config object as a dict (the zoo's updateConfig takes either)."""
    ckpt = dse_core.torch_load(ZOO / "checkpoint.pth", ZOO_GLOBALS)
    avg = dict(ckpt["avgG"])
    if edit_state:
        edit_state(avg)
    path = tmp_path / "zoo.pth"
    torch.save({"config": {**vars(ckpt["config"]), **config}, "netG": ckpt["netG"], **({} if drop_avg else {"avgG": avg})}, path)
    return path


def test_damaged_ganzoo_tensor_names_itself(tmp_path):
    def damage(s):
        s["scaleLayers.1.0.module.weight"] = s["scaleLayers.1.0.module.weight"][:, :, :2]
    with pytest.raises(CheckpointError, match=r"zoo\.pth: avgG: .*scaleLayers\.1\.0\.module\.weight: file \(12, 16, 2, 3\) "
                                              r"vs expected \(12, 16, 3, 3\)"):
        load_ganzoo(zoo_file(tmp_path, damage))


@pytest.mark.parametrize("config, named", [({"alpha": 0.25}, "config.alpha is 0.25"),
                                           ({"categoryVectorDim": 4}, "AC-GAN PGAN")])
def test_ganzoo_files_dse_cannot_reproduce_are_refused(tmp_path, config, named):
    with pytest.raises(CheckpointError, match=named):
        load_ganzoo(zoo_file(tmp_path, **config))


# -- encoder and training ------------------------------------------------------------------------

def test_encoder_plan_predicts_z_from_the_final_map():
    G = Generator(PGGANConfig(resolution=32, channels={4: 64, 8: 64, 16: 64, 32: 32}, z_dim=64))
    cfg = encoder_plan(G)
    assert (cfg.num_ws, cfg.noise, cfg.z_head, cfg.latent_shapes) == (0, False, (64,), {"z": (64,)})
    assert cfg.channels == {32: 32, 16: 64, 8: 64, 4: 64}
    big = encoder_plan(PGGANConfig.standard(256))
    assert big.channels == {256: 64, 128: 128, 64: 256, 32: 512, 16: 512, 8: 512, 4: 512}  # Table I
    E = dse_core.Encoder(cfg)
    with torch.no_grad():
        assert E(G(torch.randn(2, 64)))["z"].shape == (2, 64)


def test_training_from_a_small_random_generator_lowers_the_loss_and_the_z_term(tmp_path):
    torch.manual_seed(1)
    G = Generator(PGGANConfig(resolution=16, channels={4: 8, 8: 8, 16: 8}, z_dim=8))
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    G.save_pretrained(tmp_path / "g")
    # lambda_z 1 (the latent term weighs 0.01 beside the images): z' learns through the images at first, and
    # needs ~150 steps to improve; over 250 steps the image loss falls ~26%, latent/z ~13% (25-step means)
    dse_core.train_encoder(tmp_path / "run", str(tmp_path / "g"), device="cpu", progress=False, log=lambda m: None,
                           samples=2000, batch_size=8, lpips_weight=0.0, log_every=1, latent_weights={"z": 1.0})
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 250 and "latent/z" in log[0]
    first, last = log[:25], log[-25:]
    mean = lambda rows, key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    assert mean(last, "total") < 0.95 * mean(first, "total")
    assert mean(last, "latent/z") < 0.95 * mean(first, "latent/z")
    assert mean(last, "latent/z/mse") < 0.95 * mean(first, "latent/z/mse")


def test_sampling_and_differentiable_paths_agree(genforce):
    """Without gradients pixel norm runs in place; with them (encoder training) out of place: the same images."""
    G = dse_core.load_generator(genforce / "checkpoint.pth")
    z = load_file(genforce / "cases.safetensors")["z"].requires_grad_(True)
    with_grad = G(z)
    with_grad.square().mean().backward()
    assert z.grad.abs().sum() > 0 and max_diff(with_grad.detach(), images(G, z.detach())) <= 1e-5

"""The StyleGAN2 generator: contract, official sizes, and checkpoint readers on files we make ourselves."""

import argparse
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import dse_core
from dse_core.errors import CheckpointError
from dse_core.testing import check_generator_contract
from dse_plugin_stylegan2 import FAMILY, Generator, StyleGAN2Config
from dse_plugin_stylegan2.convert import load_genforce, load_rosinality
from dse_plugin_stylegan2.model import up_conv_padding


def tiny(**overrides):
    return StyleGAN2Config(**{"resolution": 16, "channels": {4: 16, 8: 12, 16: 8}, "z_dim": 12, "w_dim": 10,
                              "mapping_layers": 2, **overrides})


def perturbed(config):
    """A generator whose every tensor is non-trivial (biases, noise strengths, w_avg away from init)."""
    G = Generator(config).eval()
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p) * 0.3)
        G.mapping.w_avg.normal_()
    return G


def test_contract(tmp_path):
    check_generator_contract(FAMILY, tiny(), tmp_path)


def test_contract_conditional_and_clamped(tmp_path):
    check_generator_contract(FAMILY, tiny(c_dim=5, conv_clamp=0.5), tmp_path)


@pytest.mark.parametrize("resolution, num_ws, params", [(256, 14, 30_034_338), (512, 16, 30_276_583), (1024, 18, 30_370_060)])
def test_official_sizes_build(resolution, num_ws, params):
    with torch.device("meta"):
        G = Generator(StyleGAN2Config.standard(resolution))
    assert G.num_ws == num_ws and G.resolution == resolution
    # 30,370,060 is the parameter count NVlabs reports for config F at 1024 px
    assert sum(p.numel() for p in G.parameters()) == params


def test_channel_plan_and_resolution_are_validated():
    with pytest.raises(ValueError, match="power of two"):
        StyleGAN2Config(resolution=48, channels={})
    with pytest.raises(ValueError, match="each resolution"):
        StyleGAN2Config(resolution=16, channels={4: 8, 8: 8})


# -- foreign files made here: the readers must infer any architecture from names and shapes ---------

def to_rosinality(G):
    """Our tensors under rosinality's names (up-conv kernels flipped, as that code stores them)."""
    s, out = G.state_dict(), {}
    cfg = G.config
    for i in range(cfg.mapping_layers):
        out[f"style.{i + 1}.weight"], out[f"style.{i + 1}.bias"] = s[f"mapping.fc{i}.weight"], s[f"mapping.fc{i}.bias"]
    out["input.input"] = s["synthesis.b4.const"][None]
    kernel, skip_kernel = stored_kernels(cfg)

    def conv(theirs, ours, noise_index, flip=False):
        w = s[f"{ours}.weight"]
        out[f"{theirs}.conv.weight"] = (w.flip(2, 3) if flip else w)[None]
        out[f"{theirs}.conv.modulation.weight"] = s[f"{ours}.affine.weight"]
        out[f"{theirs}.conv.modulation.bias"] = s[f"{ours}.affine.bias"]
        out[f"{theirs}.noise.weight"] = s[f"{ours}.noise_strength"].reshape(1)
        out[f"{theirs}.activate.bias"] = s[f"{ours}.bias"]
        out[f"noises.noise_{noise_index}"] = s[f"{ours}.noise_const"][None, None]
        if flip:
            out[f"{theirs}.conv.blur.kernel"] = kernel * 4

    def rgb(theirs, ours):
        out[f"{theirs}.conv.weight"] = s[f"{ours}.weight"][None]
        out[f"{theirs}.conv.modulation.weight"] = s[f"{ours}.affine.weight"]
        out[f"{theirs}.conv.modulation.bias"] = s[f"{ours}.affine.bias"]
        out[f"{theirs}.bias"] = s[f"{ours}.bias"].reshape(1, -1, 1, 1)

    conv("conv1", "synthesis.b4.conv1", 0)
    rgb("to_rgb1", "synthesis.b4.torgb")
    for j, res in enumerate(sorted(cfg.channels)[1:]):
        conv(f"convs.{2 * j}", f"synthesis.b{res}.conv0", 2 * j + 1, flip=True)
        conv(f"convs.{2 * j + 1}", f"synthesis.b{res}.conv1", 2 * j + 2)
        rgb(f"to_rgbs.{j}", f"synthesis.b{res}.torgb")
        out[f"to_rgbs.{j}.upsample.kernel"] = skip_kernel * 4
    return out


def stored_kernels(cfg):
    """The 2-D kernels (sum 1) of the conv upsampling filter and of the image skip upsampling filter."""
    def outer(f):
        f = torch.tensor(f)
        return torch.outer(f, f) / torch.outer(f, f).sum()
    return outer(cfg.resample_filter), outer(cfg.skip_filter or cfg.resample_filter)


def to_genforce(G):
    s, out = G.state_dict(), {}
    cfg = G.config
    for i in range(cfg.mapping_layers):
        out[f"mapping.dense{i}.weight"], out[f"mapping.dense{i}.bias"] = s[f"mapping.fc{i}.weight"], s[f"mapping.fc{i}.bias"]
    out["truncation.w_avg"] = s["mapping.w_avg"]
    out["synthesis.early_layer.const"] = s["synthesis.b4.const"][None]

    def layer(theirs, ours, noise=True):
        out[f"{theirs}.weight"], out[f"{theirs}.bias"] = s[f"{ours}.weight"], s[f"{ours}.bias"]
        out[f"{theirs}.style.weight"], out[f"{theirs}.style.bias"] = s[f"{ours}.affine.weight"], s[f"{ours}.affine.bias"] - 1
        if noise:
            out[f"{theirs}.noise"] = s[f"{ours}.noise_const"][None, None]
            out[f"{theirs}.noise_strength"] = s[f"{ours}.noise_strength"]

    kernel, skip_kernel = (k.flip(0, 1)[None, None] * 4 for k in stored_kernels(cfg))  # genforce correlates
    layer("synthesis.layer0", "synthesis.b4.conv1")
    layer("synthesis.output0", "synthesis.b4.torgb", noise=False)
    if cfg.resolution > 4:
        out["synthesis.upsample.kernel"] = skip_kernel
    for j, res in enumerate(sorted(cfg.channels)[1:]):
        layer(f"synthesis.layer{2 * j + 1}", f"synthesis.b{res}.conv0")
        out[f"synthesis.layer{2 * j + 1}.filter.kernel"] = kernel
        layer(f"synthesis.layer{2 * j + 2}", f"synthesis.b{res}.conv1")
        layer(f"synthesis.output{j + 1}", f"synthesis.b{res}.torgb", noise=False)
    return out


ARCHS = [
    dict(resolution=64, channels={4: 24, 8: 24, 16: 16, 32: 12, 64: 8}, z_dim=20, w_dim=20, mapping_layers=3),
    dict(resolution=8, channels={4: 6, 8: 5}, z_dim=7, w_dim=7, mapping_layers=1),
]


@pytest.mark.parametrize("arch", ARCHS)
def test_rosinality_files_of_other_sizes(tmp_path, arch):
    G = perturbed(StyleGAN2Config(**arch))
    path = tmp_path / "ckpt.pt"
    torch.save({"g_ema": to_rosinality(G), "latent_avg": G.mapping.w_avg.clone()}, path)
    loaded = dse_core.load_generator(path)
    assert loaded.config == G.config
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        assert torch.allclose(loaded(z, truncation_psi=0.6), G(z, truncation_psi=0.6), atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS + [dict(resolution=16, channels={4: 8, 8: 8, 16: 4}, z_dim=12, w_dim=6,
                                               mapping_layers=3, mapping_features=9)])
def test_genforce_files_of_other_sizes(tmp_path, arch):
    G = perturbed(StyleGAN2Config(**arch))
    path = tmp_path / "ckpt.pth"
    torch.save({"generator": to_genforce(G), "discriminator": {"x": torch.zeros(1)}}, path)
    loaded = dse_core.load_generator(path, gan="stylegan2")
    assert loaded.config == G.config
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        assert torch.allclose(loaded(z, truncation_psi=0.5, truncation_cutoff=2), G(z, truncation_psi=0.5, truncation_cutoff=2), atol=1e-5)


def test_rosinality_training_checkpoint_with_args_and_no_latent_avg(tmp_path):
    G = perturbed(StyleGAN2Config(**ARCHS[0]))
    state = to_rosinality(G)
    optim = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(2)}}, "param_groups": [{"lr": 0.002, "params": [0]}]}
    path = tmp_path / "020000.pt"
    torch.save({"g": state, "d": {"convs.0.0.weight": torch.zeros(1)}, "g_ema": state, "g_optim": optim,
                "d_optim": optim, "args": argparse.Namespace(size=64, latent=20, n_mlp=3), "ada_aug_p": 0.1}, path)
    loaded = load_rosinality(path)
    assert loaded.config == G.config
    with torch.no_grad():
        z = torch.randn(10_000, G.z_dim, generator=torch.Generator().manual_seed(0))
        expected = G.mapping(z)[:, 0].mean(0)
    assert torch.allclose(loaded.mapping.w_avg, expected, atol=1e-5)


def test_checkpoint_needing_other_globals_is_refused(tmp_path):
    class Sneaky:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "ran"),))

    G = perturbed(StyleGAN2Config(**ARCHS[1]))
    path = tmp_path / "bad.pt"
    torch.save({"g_ema": to_rosinality(G), "args": Sneaky()}, path)
    with pytest.raises(CheckpointError, match="posix.system|os.system"):
        dse_core.load_generator(path)
    assert not (tmp_path / "ran").exists()


def test_missing_tensor_is_named(tmp_path):
    G = perturbed(StyleGAN2Config(**ARCHS[1]))
    state = to_rosinality(G)
    del state["convs.1.activate.bias"]
    path = tmp_path / "broken.pt"
    torch.save({"g_ema": state}, path)
    with pytest.raises(CheckpointError, match="convs.1.activate.bias"):
        dse_core.load_generator(path)


def test_genforce_resnet_architecture_is_refused_clearly(tmp_path):
    G = perturbed(StyleGAN2Config(**ARCHS[0]))
    state = {k: v for k, v in to_genforce(G).items() if not k.startswith("synthesis.output") or k.startswith("synthesis.output4")}
    path = tmp_path / "resnet.pth"
    torch.save({"generator_smooth": state}, path)
    with pytest.raises(CheckpointError, match="only the 'skip' StyleGAN2 architecture"):
        dse_core.load_generator(path)


# -- the readers refuse incomplete, padded or damaged generators, naming tensors as the file does ------

def write(tmp_path, fmt, G, edit=None, **top):
    """G saved as a rosinality or genforce file, after ``edit(state)``; ``top`` adds top-level entries."""
    state = to_rosinality(G) if fmt == "rosinality" else to_genforce(G)
    if edit is not None:
        edit(state)
    path = tmp_path / ("ckpt.pt" if fmt == "rosinality" else "ckpt.pth")
    key = "g_ema" if fmt == "rosinality" else "generator_smooth"
    torch.save({key: state, **top}, path)
    return path


def delete(*patterns):
    def edit(state):
        for key in [k for k in state if any(k == p or k.startswith(p + ".") for p in patterns)]:
            del state[key]
    return edit


@pytest.mark.parametrize("fmt, edit, named", [
    # the last toRGB's weight alone: not a smaller generator
    ("rosinality", delete("to_rgbs.3.conv.weight"), "missing 1 tensor (to_rgbs.3.conv.weight)"),
    # a middle mapping layer: not a shallower mapping network
    ("rosinality", delete("style.2.weight"), "missing 1 tensor (style.2.weight)"),
    ("rosinality", delete("convs.2"), "missing 5 tensors (convs.2.conv.weight"),  # a gap in the sequence
    ("genforce", delete("mapping.dense1.weight"), "missing 1 tensor (mapping.dense1.weight)"),
    ("genforce", delete("synthesis.output4.weight"), "missing 1 tensor (synthesis.output4.weight)"),
    ("genforce", delete("synthesis.layer3"), "missing 6 tensors (synthesis.layer3.weight"),
])
def test_incomplete_generators_are_refused_naming_what_is_missing(tmp_path, fmt, edit, named):
    path = write(tmp_path, fmt, perturbed(StyleGAN2Config(**ARCHS[0])), edit)
    with pytest.raises(CheckpointError) as err:
        dse_core.load_generator(path)
    assert named in str(err.value)


@pytest.mark.parametrize("fmt", ["rosinality", "genforce"])
def test_tensors_the_reader_does_not_use_are_refused(tmp_path, fmt):
    def add(state):
        state["extra.weight"] = torch.zeros(3)
        state["conv1.conv.blur.kernel" if fmt == "rosinality" else "synthesis.layer0.epilogue.bias"] = torch.zeros(3)
    path = write(tmp_path, fmt, perturbed(StyleGAN2Config(**ARCHS[1])), add)
    with pytest.raises(CheckpointError, match="2 unexpected tensors"):
        dse_core.load_generator(path)


def test_only_the_generator_dict_is_checked_strictly(tmp_path):
    G = perturbed(StyleGAN2Config(**ARCHS[1]))
    path = write(tmp_path, "genforce", G, discriminator={"b4.conv.weight": torch.zeros(1)}, generator={"x": torch.zeros(1)},
                 optimizer_generator={"state": {}}, step=torch.tensor(5))
    assert dse_core.load_generator(path).config == G.config


@pytest.mark.parametrize("fmt, bad, shape, expected", [
    ("rosinality", "convs.1.conv.modulation.weight", (5, 24), "(24, 20)"),
    ("rosinality", "convs.2.conv.weight", (1, 16, 7, 3, 3), "(1, 16, 24, 3, 3)"),
    ("genforce", "synthesis.layer3.weight", (5, 5, 3, 3), "(16, 24, 3, 3)"),
    ("genforce", "mapping.dense1.weight", (20, 7), "(20, 20)"),
])
def test_a_bad_shape_is_named_as_the_file_names_it_and_only_once(tmp_path, fmt, bad, shape, expected):
    def damage(state):
        state[bad] = torch.zeros(shape)
    path = write(tmp_path, fmt, perturbed(StyleGAN2Config(**ARCHS[0])), damage)
    with pytest.raises(CheckpointError) as err:
        dse_core.load_generator(path)
    text = str(err.value)
    assert f"1 shape mismatch ({bad}: file {shape} vs expected {expected})" in text
    assert "synthesis.b" not in text and "missing" not in text  # our names, knock-on errors


@pytest.mark.parametrize("up_filter, skip_filter", [((1.0, 2.0, 1.0), (1.0, 3.0, 3.0, 1.0)), ((1.0, 1.0), None),
                                                    ((1.0, 4.0, 6.0, 4.0, 1.0), (1.0, 2.0, 1.0))])
@pytest.mark.parametrize("fmt", ["rosinality", "genforce"])
def test_other_filters_of_any_length_round_trip(tmp_path, fmt, up_filter, skip_filter):
    G = perturbed(StyleGAN2Config(**ARCHS[0], resample_filter=up_filter, skip_filter=skip_filter))
    loaded = (load_rosinality if fmt == "rosinality" else load_genforce)(write(tmp_path, fmt, G, latent_avg=G.mapping.w_avg))
    assert loaded.config == G.config
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        img = G(z)
        assert img.shape == (2, 3, 64, 64)
        assert torch.allclose(loaded(z), img, atol=1e-5)


def test_up_conv_padding_doubles_the_size_for_any_filter_length():
    for taps in range(1, 9):
        x0, x1, y0, y1 = up_conv_padding(taps, 3)
        assert (x0, x1) == (y0, y1) and 2 * 5 + 1 + x0 + x1 - (taps - 1) == 2 * 5
    assert up_conv_padding(4, 3)[:2] == (1, 1) and up_conv_padding(3, 3)[:2] == (1, 0)


def test_rosinality_blur_kernel_1_2_1_matches_the_reference():
    """rosinality blur_kernel=[1, 2, 1]: its up-convs use it, its ToRGB upsampling keeps [1, 3, 3, 1]."""
    folder = Path(__file__).parent / "fixtures" / "rosinality-blur121"  # written by make.py there
    G = dse_core.load_generator(folder / "checkpoint.pt")
    assert G.config.resample_filter == (1.0, 2.0, 1.0) and G.config.skip_filter == (1.0, 3.0, 3.0, 1.0)
    cases = load_file(folder / "cases.safetensors")
    with torch.no_grad():
        assert (G.mapping(cases["z"])[:, 0] - cases["w"]).abs().max() <= 1e-4
        assert (G(cases["z"]) - cases["img_z"]).abs().max() <= 1e-4
        assert (G.synthesis(cases["wplus"]) - cases["img_wplus"]).abs().max() <= 1e-4
        assert (G(cases["z"], truncation_psi=0.7) - cases["img_trunc"]).abs().max() <= 1e-4


@pytest.mark.parametrize("fmt, kernel", [("rosinality", "convs.0.conv.blur.kernel"), ("genforce", "synthesis.upsample.kernel")])
def test_filters_the_model_cannot_reproduce_are_refused(tmp_path, fmt, kernel):
    def regain(state):
        state[kernel] = state[kernel] * 4  # gain 16: the reference would brighten, dse normalises filters
    path = write(tmp_path, fmt, perturbed(StyleGAN2Config(**ARCHS[1])), regain)
    with pytest.raises(CheckpointError, match=f"{kernel} sums to 16, not 4"):
        dse_core.load_generator(path)

"""The DSE encoder: parity with the authors' BE checkpoint, the block's options, config checks and clear errors."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from dse_core import CheckpointError, ConfigError, DseError, Encoder, EncoderConfig, UnknownNameError, load_encoder
from dse_core.config import from_dict, to_dict
from dse_core.encoder import ConditionalBatchNorm, DSEBlock, InstanceNorm
from dse_core.encoder.layers import EncoderConv, FusedDownConv2d
from dse_core.models.format import CONFIG_FILE

TOL = 1e-4
SMALL = {32: 16, 16: 32, 8: 64, 4: 64}


@pytest.fixture
def authors(fixtures):
    return fixtures / "dse-encoder-stylegan2"


@pytest.fixture
def cases(authors):
    return load_file(str(authors / "cases.safetensors"))


def small_config(**kwargs) -> EncoderConfig:
    kwargs.setdefault("num_ws", 8)
    return EncoderConfig(family="stylegan2", resolution=32, channels=SMALL, **kwargs)


def max_diff(a, b) -> float:
    return (a - b).abs().max().item()


def check_parity(E, cases) -> tuple[float, float]:
    with torch.no_grad():
        ws, zc = E(cases["x"])["ws"], E.features(cases["x"])[0]
    diffs = max_diff(ws, cases["w"]), max_diff(zc, cases["zc"])
    assert diffs[0] <= TOL and diffs[1] <= TOL, diffs
    return diffs


# -- parity with the authors' encoder ---------------------------------------------

def test_authors_checkpoint_parity(authors, cases):
    E = load_encoder(authors / "E_model_ep6_iter29999.pth", gan="stylegan2")
    assert not E.training and E.family == "stylegan2"
    assert E.config.channels == SMALL and E.latent_shapes == {"ws": (8, 512)} and E.resolution == 32
    assert E.source["startf"] == 16 and E.source["maxf"] == 64 and E.source["layer_count"] == 4
    check_parity(E, cases)


def test_parity_survives_save_and_reload(authors, cases, tmp_path):
    E = load_encoder(authors / "E_model_ep6_iter29999.pth", gan="stylegan2")
    out = E.save_pretrained(tmp_path / "enc", source=E.source)
    header = json.loads((out / CONFIG_FILE).read_text())
    assert header["kind"] == "encoder" and header["family"] == "stylegan2" and header["resolution"] == 32
    for loaded in (Encoder.from_pretrained(out), load_encoder(out), load_encoder(out / "model.safetensors")):
        assert loaded.config == E.config and loaded.family == "stylegan2" and not loaded.training
        check_parity(loaded, cases)


def test_w_is_in_generator_layer_order(authors, cases):
    """The finest block's first head (reading FromRGB's output) predicts G's last w."""
    E = load_encoder(authors / "E_model_ep6_iter29999.pth", gan="stylegan2")
    with torch.no_grad():
        w = E(cases["x"])["ws"]
        last = E.b32.style0(E.from_rgb(cases["x"]))
    assert torch.allclose(w[:, -1], last)


# -- the block's options ------------------------------------------------------------

def test_noise_is_drawn_in_train_mode_only(authors, cases):
    E = load_encoder(authors / "E_model_ep6_iter29999.pth", gan="stylegan2")  # stored noise strengths are non-zero
    x = cases["x"]
    with torch.no_grad():
        a, b = E.features(x), E.features(x)
        assert torch.equal(a[0], b[0]) and all(torch.equal(u, v) for u, v in zip(a[1], b[1]))
        E.train()
        c, d = E.features(x), E.features(x)
    assert max_diff(c[0], d[0]) > 1e-3 and max_diff(torch.stack(c[1]), torch.stack(d[1])) > 1e-3


def test_fused_and_avgpool_downsampling_both_reach_4x4():
    x = torch.randn(2, 3, 32, 32)
    for mode in ("avgpool", "fused"):
        E = Encoder(small_config(downsample=mode)).eval()
        assert E.features(x)[0].shape == (2, 64, 4, 4) and E(x)["ws"].shape == (2, 8, 512)
    assert isinstance(E.b32.conv1.conv, FusedDownConv2d)


def test_fused_conv_is_conv_then_average_pool():
    conv = FusedDownConv2d(4, 5)
    x = torch.randn(2, 4, 8, 8)
    plain = F.conv2d(x, conv.weight * conv.weight_gain, conv.bias, padding=1)
    assert torch.allclose(conv(x), F.avg_pool2d(plain, 2), atol=1e-5)


def test_no_style_heads_with_linear_z_heads():
    x = torch.randn(3, 3, 32, 32)
    pggan = Encoder(small_config(num_ws=0, noise=False, z_head=(512,))).eval()
    out = pggan(x)
    assert set(out) == {"z"} and out["z"].shape == (3, 512) and pggan.features(x)[0].shape == (3, 64, 4, 4)
    assert pggan.latent_shapes == {"z": (512,)} and pggan.config.w_dim == 0
    assert not any("style" in k or "noise" in k for k in pggan.state_dict())
    biggan_like = Encoder(small_config(num_ws=0, noise=False, z_head=(256, 128)))
    assert biggan_like(x)["z"].shape == (3, 128) and biggan_like.z_head.fc0.weight.shape == (256, 64 * 16)


def test_conditional_batch_norm_uses_the_condition():
    norm = ConditionalBatchNorm(8, c_dim=6).eval()
    x = torch.randn(4, 8, 5, 5)
    a, b = torch.randn(4, 6), torch.randn(4, 6)
    assert max_diff(norm(x, a), norm(x, b)) > 1e-2
    assert torch.equal(norm(x, a), norm(x, a))
    with pytest.raises(ValueError, match=r"c of shape \(4, 6\)"):
        norm(x, None)


def test_conditional_encoder_needs_c():
    E = Encoder(small_config(num_ws=0, noise=False, norm="cbn", c_dim=10, z_head=(256, 128))).eval()
    x = torch.randn(2, 3, 32, 32)
    out_a, out_b = E(x, torch.randn(2, 10)), E(x, torch.randn(2, 10))
    assert out_a["z"].shape == (2, 128) and max_diff(out_a["z"], out_b["z"]) > 1e-3
    assert isinstance(E.b8.norm0, ConditionalBatchNorm)
    with pytest.raises(ValueError, match=r"c must be \(N, 10\)"):
        E(x)


def test_block_contract_and_instance_norm():
    block = DSEBlock(8, 16, w_dim=32)
    x = torch.randn(2, 8, 16, 16)
    y, styles = block(x)
    assert y.shape == (2, 16, 8, 8) and len(styles) == block.num_styles == 2
    assert all(s.shape == (2, 32) for s in styles)
    last = DSEBlock(16, 16, down=False, style_heads=False, noise=False)
    y, styles = last(torch.randn(2, 16, 4, 4))
    assert y.shape == (2, 16, 4, 4) and styles == [] and not hasattr(last, "conv1")
    assert isinstance(block.norm0, InstanceNorm)
    with pytest.raises(ValueError, match="must keep its width"):
        DSEBlock(8, 16, down=False)


def test_noise_strengths_start_at_zero_and_are_per_channel():
    conv = EncoderConv(4, 6, noise=True).train()
    assert conv.noise_strength.shape == (6,) and not conv.noise_strength.any()
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(conv(x), conv(x))  # zero strength: no noise yet
    with torch.no_grad():
        conv.noise_strength.fill_(0.5)
    assert not torch.equal(conv(x), conv(x))


def test_xavier_init_sets_the_effective_weight_scale():
    torch.manual_seed(1)
    E = Encoder(EncoderConfig(family="stylegan2", resolution=8, channels={8: 256, 4: 256}, num_ws=4))
    conv = E.b8.conv0.conv
    effective = conv.weight * conv.weight_gain
    fan = 256 * 9
    assert effective.std().item() == pytest.approx(math.sqrt(2 / (fan + fan)), rel=0.05)
    normal = Encoder(EncoderConfig(family="stylegan2", resolution=8, channels={8: 256, 4: 256}, num_ws=4,
                                   weight_init="normal"))
    assert normal.b8.conv0.conv.weight.std().item() == pytest.approx(1.0, rel=0.05)


# -- config -------------------------------------------------------------------------

def test_config_round_trips_and_checks_num_ws():
    cfg = small_config(downsample="fused", z_head=(512,))
    assert from_dict(EncoderConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg
    with pytest.raises(ValueError, match=r"2 per block = 8"):
        small_config(num_ws=7)
    with pytest.raises(ValueError, match="c_dim must be > 0"):
        small_config(norm="cbn")
    small_config(num_ws=0, norm="cbn", c_dim=4, num_classes=4, z_head=(8,))  # predict, then condition
    with pytest.raises(ValueError, match="conditions on the class it predicts"):
        small_config(num_ws=0, norm="cbn", c_dim=5, num_classes=4, z_head=(8,))
    with pytest.raises(ValueError, match="conditions on the class it predicts"):
        small_config(num_ws=0, norm="cbn", c_dim=4, num_classes=4, z_head=(8,), condition="generator")
    with pytest.raises(ValueError, match="channels must give a width for each resolution"):
        EncoderConfig(family="stylegan2", resolution=32, channels={32: 16, 8: 64, 4: 64})
    with pytest.raises(ConfigError, match="downsample"):
        from_dict(EncoderConfig, {**to_dict(cfg), "downsample": "nearest"})


def test_input_shape_is_checked():
    with pytest.raises(ValueError, match=r"x must be \(N, 3, 32, 32\)"):
        Encoder(small_config())(torch.randn(1, 3, 64, 64))


# -- errors -------------------------------------------------------------------------

def test_truncated_authors_checkpoint_names_the_file(authors, tmp_path):
    bad = tmp_path / "E_model_truncated.pth"
    bad.write_bytes((authors / "E_model_ep6_iter29999.pth").read_bytes()[:5000])
    with pytest.raises(CheckpointError) as err:
        load_encoder(bad, gan="stylegan2")
    assert err.value.path == bad and "E_model_truncated.pth" in str(err.value)


def test_mismatched_authors_checkpoint_says_found_vs_expected(authors, tmp_path):
    state = torch.load(authors / "E_model_ep6_iter29999.pth", weights_only=True)
    state["decode_block.1.conv_2.weight"] = torch.zeros(64, 16, 3, 3)
    bad = tmp_path / "E_bad_shapes.pth"
    torch.save(state, bad)
    with pytest.raises(CheckpointError) as err:
        load_encoder(bad, gan="stylegan2")
    message = str(err.value)
    assert "E_bad_shapes.pth" in message and "decode_block.1" in message and "file (64, 16, 3, 3) vs expected (64, 32, 3, 3)" in message

    del state["decode_block.1.conv_2.weight"]
    torch.save(state, bad)
    with pytest.raises(CheckpointError, match="decode_block.1 does not match BE's layout: missing 1 tensor \\(conv_2.weight\\)"):
        load_encoder(bad, gan="stylegan2")


def test_other_files_are_refused_with_what_was_found(tmp_path):
    other = tmp_path / "generator.pt"
    torch.save({"g_ema": {"style.1.weight": torch.zeros(2, 2)}}, other)
    with pytest.raises(CheckpointError, match=r"generator.pt: not an encoder checkpoint: found a dict with keys g_ema"):
        load_encoder(other)
    extra = tmp_path / "E_extra.pth"
    torch.save({"FromRGB.from_rgb.weight": torch.zeros(16, 3, 1, 1), "FromRGB.from_rgb.bias": torch.zeros(16),
                "decode_block.0.conv_1.weight": torch.zeros(16, 16, 3, 3), "new_final_1.weight": torch.zeros(2, 2)}, extra)
    # a near miss of every reader: what was found is named
    with pytest.raises(CheckpointError, match="E_extra.pth: not an encoder checkpoint: found a state dict .* new_final_1.weight"):
        load_encoder(extra)


def test_family_checks(authors, tmp_path):
    path = authors / "E_model_ep6_iter29999.pth"
    with pytest.raises(UnknownNameError, match="did you mean 'stylegan', 'stylegan2'"):
        load_encoder(path, gan="stylegan3")
    # StyleGAN1 and StyleGAN2 both read the authors' BE: the file alone cannot say which generator it inverts
    with pytest.raises(DseError, match="an encoder checkpoint of the stylegan, stylegan2 families alike"):
        load_encoder(path)
    E = load_encoder(path, gan="stylegan")
    assert E.family == "stylegan" and E.source["format"] == "stylegan/dse-authors"
    out = E.save_pretrained(tmp_path / "enc")
    with pytest.raises(CheckpointError, match="holds an encoder for stylegan generators, not stylegan2 ones"):
        load_encoder(out, gan="stylegan2")

def test_a_class_head_predicts_the_class_then_conditions_on_it():
    """cbn + class head: the class comes from a pass on the uniform mixture; z from a pass on that prediction,
    or on a given class (training's teacher forcing, or --class)."""
    torch.manual_seed(0)
    E = Encoder(small_config(num_ws=0, norm="cbn", c_dim=4, num_classes=4, z_head=(8,))).eval()
    assert not E.needs_c
    x = torch.randn(3, 3, 32, 32)
    out = E(x)
    assert set(out) == {"z", "c"} and out["c"].shape == (3, 4)
    assert torch.allclose(out["c"].sum(dim=1), torch.ones(3))
    uniform = torch.full((3, 4), 0.25)
    assert torch.allclose(out["c"], E.class_head(E.features(x, uniform)[0]).softmax(dim=1))
    assert torch.allclose(out["z"], E.z_head(E.features(x, out["c"])[0]), atol=1e-6)
    given = torch.eye(4)[[2, 0, 3]]
    with_c = E(x, given)
    assert torch.allclose(with_c["c"], out["c"])  # the prediction does not read the given class
    assert torch.allclose(with_c["z"], E.z_head(E.features(x, given)[0]), atol=1e-6)
    assert (with_c["z"] - out["z"]).abs().max() > 1e-3  # the condition matters
    needs = Encoder(small_config(num_ws=0, norm="cbn", c_dim=4, z_head=(8,)))
    assert needs.needs_c

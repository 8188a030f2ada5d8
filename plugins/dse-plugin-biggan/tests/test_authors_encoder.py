"""The DSE authors' BigGAN encoder (``E_BIG.py`` ``BE(..., biggan=True)``): read as its scripts save it, parity with
the reference's own outputs, the quirks that parity depends on, the files it refuses, and inversion with it."""

import json

import attrs
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import dse_core
from dse_core import CheckpointError, DseError, EncoderConfig, Inverter, load_authors_big_encoder
from dse_core import load_authors_encoder, load_authors_pg_encoder, sniff_authors_big_encoder
from dse_core import sniff_authors_encoder, sniff_authors_pg_encoder
from dse_core.cli import main
from dse_core.latents import encode
from dse_plugin_biggan import FAMILY, Generator

TOL = 1e-4
FILE = "E_model_ep6_iter29999.pth"


@pytest.fixture
def big(fixtures):
    return fixtures / "dse-encoder-biggan"


@pytest.fixture
def cases(big):
    return load_file(big / "cases.safetensors")


def outputs(E, cases) -> dict[str, torch.Tensor]:
    """feat, c_v and z as the fixture took them: c_v is new_final_1's output, our z head's first layer."""
    with torch.no_grad():
        feat = E.features(cases["x"], cases["cond"])[0]
        return {"feat": feat, "c_v": E.z_head.fc0(feat.flatten(1)), "z": E(cases["x"], cases["cond"])["z"]}


def max_diffs(E, cases) -> dict[str, float]:
    return {name: (out - cases[name]).abs().max().item() for name, out in outputs(E, cases).items()}


def test_reads_the_authors_file_with_parity(big, cases):
    E = load_authors_big_encoder(big / FILE)
    cfg = E.config
    # 4 blocks from 128 px; new_final_1's 8192 inputs over the last block's 32 channels make a 16x16 final map
    assert (cfg.resolution, cfg.final_resolution, cfg.block, cfg.norm) == (128, 16, "big", "frozen_cbn")
    assert cfg.channels == {128: 8, 64: 16, 32: 32, 16: 32} and cfg.z_head == (256, 128) and cfg.num_ws == 0
    assert (cfg.c_dim, cfg.condition, cfg.fixed_latents) == (256, "generator", {"truncation": 0.4})
    assert E.latent_shapes == {"z": (128,)} and E.needs_c and not E.training
    assert E.source["reader"] == "dse-authors/E_BIG" and E.source["stats_row"] == 20
    diffs = max_diffs(E, cases)
    assert max(diffs.values()) <= TOL, diffs
    # z is new_final_2 of c_v, no activation between: the head's second layer on the fixture's own c_v
    with torch.no_grad():
        assert (E.z_head.fc1(cases["c_v"]) - cases["z"]).abs().max() <= TOL


def _variant(state: dict, path, **changes):
    torch.save(dict(state, **changes), path)
    return load_authors_big_encoder(path)


def test_the_quirks_parity_depends_on(big, cases, tmp_path):
    """Each quirk read otherwise moves the outputs far from the reference's: the parity test can fail."""
    state = torch.load(big / FILE, weights_only=True)
    path = tmp_path / FILE
    stats = [k for k in state if k.endswith((".running_means", ".running_vars"))]

    def rows(fill):
        return {k: fill(state[k]) for k in stats}

    # truncation 0.4 reads row 20 exactly: row 19 or 21 in its place changes everything, the other 50 rows nothing
    for other in (19, 21):
        E = _variant(state, path, **rows(lambda t: torch.cat([t[:20], t[other:other + 1], t[21:]])))
        assert max_diffs(E, cases)["z"] > 0.1, other
    E = _variant(state, path, **rows(lambda t: torch.cat([t[:20] + 3, t[20:21], t[21:] * 5])))
    assert max(max_diffs(E, cases).values()) <= TOL

    # spectral norm in eval mode: sigma from the stored, unconverged u / v, not the exact singular vectors,
    # nor one more power iteration
    singular, iterated = {}, {}
    for key in [k for k in state if k.endswith(".weight_orig")]:
        base = key.removesuffix("weight_orig")
        w = state[key]
        u, _, vh = torch.linalg.svd(w, full_matrices=False)
        singular.update({base + "weight_u": u[:, 0].contiguous(), base + "weight_v": vh[0].contiguous()})
        v = F.normalize(w.t() @ state[base + "weight_u"], dim=0, eps=1e-12)
        iterated.update({base + "weight_u": F.normalize(w @ v, dim=0, eps=1e-12), base + "weight_v": v})
    assert max_diffs(_variant(state, path, **singular), cases)["z"] > 0.1
    assert max_diffs(_variant(state, path, **iterated), cases)["z"] > 0.01

    # noise: off in eval mode, as the fixture computed it; drawn (as the authors' forward always does) it changes z
    E = load_authors_big_encoder(big / FILE).train()
    torch.manual_seed(0)
    assert max_diffs(E, cases)["z"] > 0.1


def test_convert_and_load_encoder_keep_parity(big, cases, tmp_path, capsys):
    out = tmp_path / "dse-e"
    assert main(["convert", str(big / FILE), "--gan", "biggan", "-o", str(out)]) == 0
    assert "biggan encoder, 128px, predicts z (128,)" in capsys.readouterr().out
    header = json.loads((out / "config.json").read_text())
    assert header["kind"] == "encoder" and header["source"]["format"] == "biggan/dse-authors"
    assert header["config"]["block"] == "big" and header["config"]["fixed_latents"] == {"truncation": 0.4}
    for E in (dse_core.load_encoder(out), dse_core.load_encoder(big / FILE)):  # the file alone: only biggan reads it
        assert E.family == "biggan" and max(max_diffs(E, cases).values()) <= TOL


def test_sniffers_tell_the_authors_encoders_apart(big, fixtures):
    big_file = big / FILE
    others = {name: fixtures / name / FILE for name in ("dse-encoder-stylegan2", "dse-encoder-pggan")}
    assert sniff_authors_big_encoder(big_file)
    assert not sniff_authors_encoder(big_file) and not sniff_authors_pg_encoder(big_file)
    for path in others.values():
        assert not sniff_authors_big_encoder(path)
    with pytest.raises(CheckpointError, match="(?s)new_final_1.*--gan biggan"):
        load_authors_encoder(big_file, family="stylegan2")
    with pytest.raises(CheckpointError, match="(?s)not a DSE encoder checkpoint.*--gan biggan"):
        load_authors_pg_encoder(big_file, family="pggan")
    with pytest.raises(CheckpointError, match="(?s)dse-encoder-pggan.*not a DSE encoder checkpoint.*--gan pggan"):
        load_authors_big_encoder(others["dse-encoder-pggan"])


def test_damaged_and_mismatched_files_are_refused(big, tmp_path):
    data = (big / FILE).read_bytes()
    cut = tmp_path / "E_model_cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    assert not sniff_authors_big_encoder(cut)
    with pytest.raises(CheckpointError, match="E_model_cut.pth"):
        load_authors_big_encoder(cut)

    state = torch.load(big / FILE, weights_only=True)
    path = tmp_path / "E_model_bad.pth"
    missing = {k: v for k, v in state.items() if k != "decode_block.1.batch_norm_3.offset.weight_v"}
    extra_in_block = dict(state, **{"decode_block.2.conv_3.weight": torch.zeros(32, 32, 1, 1)})
    extra_head = dict(state, **{"new_final_3.weight": torch.zeros(1000, 256)})
    wrong_stats = dict(state, **{"decode_block.0.batch_norm_1.running_means": torch.zeros(11, 8)})
    for bad, message in ((missing, "decode_block.1 does not match.*missing 1 tensor.*batch_norm_3.offset.weight_v"),
                         (extra_in_block, "decode_block.2 does not match.*1 unexpected tensor.*conv_3.weight"),
                         (extra_head, "unexpected tensors for the authors' BigGAN encoder: new_final_3.weight"),
                         (wrong_stats, "batch_norm_1.running_means: file \\(11, 8\\) vs expected \\(51, 8\\)")):
        torch.save(bad, path)
        with pytest.raises(CheckpointError, match=f"E_model_bad.pth: .*{message}"):
            load_authors_big_encoder(path)


# -- a geometry the fixture does not have, and inversion with a tiny generator -------------------------------------

def _random_big_state(startf: int, maxf: int, layer_count: int, resolution: int, c_dim: int, z_dim: int,
                      seed: int = 0) -> dict:
    """A state dict in E_BIG's layout (its names and shapes; new_final_1 sized for ``resolution``), random values."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g) * 0.2  # noqa: E731

    def norm(prefix: str, channels: int) -> dict:
        out = {prefix + "running_means": r(51, channels), prefix + "running_vars": 0.5 + torch.rand(51, channels, generator=g)}
        for linear in ("scale", "offset"):
            w, v = r(channels, c_dim), F.normalize(r(c_dim), dim=0)
            out.update({f"{prefix}{linear}.weight_orig": w, f"{prefix}{linear}.weight_v": v,
                        f"{prefix}{linear}.weight_u": F.normalize(w @ v + r(channels), dim=0)})  # near, not converged
        return out

    state = {"FromRGB.from_rgb.weight": r(startf, 3, 1, 1), "FromRGB.from_rgb.bias": r(startf)}
    inputs, outputs = startf, min(maxf, 2 * startf)
    for i in range(layer_count):
        b = f"decode_block.{i}."
        state.update({b + "noise_weight_1": r(1, inputs, 1, 1), b + "bias_1": r(1, inputs, 1, 1),
                      b + "noise_weight_2": r(1, outputs, 1, 1), b + "bias_2": r(1, outputs, 1, 1),
                      b + "conv_1.weight": r(inputs, inputs, 3, 3), **norm(b + "batch_norm_1.", inputs),
                      **norm(b + "batch_norm_2.", inputs)})
        if i + 1 != layer_count:
            state[b + "conv_2.weight"] = r(outputs, inputs, 3, 3)
        if inputs != outputs:
            state.update({b + "conv_3.weight": r(outputs, inputs, 1, 1), b + "conv_3.bias": r(outputs),
                          **norm(b + "batch_norm_3.", inputs)})
        last = inputs
        inputs, outputs = min(maxf, 2 * inputs), min(maxf, 2 * outputs)
    features = last * (resolution >> (layer_count - 1)) ** 2
    state.update({"new_final_1.weight": r(c_dim, features), "new_final_1.bias": r(c_dim),
                  "new_final_2.weight": r(z_dim, c_dim), "new_final_2.bias": r(z_dim)})
    return state


def _reference_forward(state: dict, x: torch.Tensor, cond: torch.Tensor, layer_count: int) -> torch.Tensor:
    """E_BIG's forward as the fixtures' README describes it, on the stored weights, noise off: z."""
    lrelu = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731

    def norm(prefix: str, t: torch.Tensor) -> torch.Tensor:
        def linear(name):
            w = state[f"{prefix}.{name}.weight_orig"]
            sigma = torch.dot(state[f"{prefix}.{name}.weight_u"], w @ state[f"{prefix}.{name}.weight_v"])
            return F.linear(cond, w / sigma)[:, :, None, None]
        mean, var = state[f"{prefix}.running_means"][20], state[f"{prefix}.running_vars"][20]
        return (t - mean[:, None, None]) / torch.sqrt(var[:, None, None] + 1e-12) * (1 + linear("scale")) + linear("offset")

    x = lrelu(F.conv2d(x, state["FromRGB.from_rgb.weight"], state["FromRGB.from_rgb.bias"]))
    for i in range(layer_count):
        p = f"decode_block.{i}"
        residual = x
        x = lrelu(F.conv2d(norm(f"{p}.batch_norm_1", x), state[f"{p}.conv_1.weight"], padding=1) + state[f"{p}.bias_1"])
        if i + 1 == layer_count:
            break
        x = lrelu(F.conv2d(norm(f"{p}.batch_norm_2", x), state[f"{p}.conv_2.weight"], padding=1) + state[f"{p}.bias_2"])
        if f"{p}.conv_3.weight" in state:
            residual = F.conv2d(norm(f"{p}.batch_norm_3", residual), state[f"{p}.conv_3.weight"], state[f"{p}.conv_3.bias"])
            x = lrelu(x)
        x = F.avg_pool2d(x + residual, 2)
    c_v = F.linear(x.flatten(1), state["new_final_1.weight"], state["new_final_1.bias"])
    return F.linear(c_v, state["new_final_2.weight"], state["new_final_2.bias"])


def test_other_geometry_and_the_tensors_it_never_uses(tmp_path):
    # startf 4 up to 64 channels over 3 blocks: every block widens, the last one (16 -> 32) only on paper, so it stores
    # a batch_norm_3 and conv_3 it never runs; 16 px images, a 4x4 final map of 16 channels
    state = _random_big_state(4, 64, 3, 16, c_dim=16, z_dim=8)
    path = tmp_path / "E_model_ep1_iter9.pth"
    torch.save(state, path)
    E = load_authors_big_encoder(path)
    assert (E.config.resolution, E.config.final_resolution, E.config.z_head) == (16, 4, (16, 8))
    assert E.config.channels == {16: 4, 8: 8, 4: 16}
    x, cond = torch.randn(2, 3, 16, 16), torch.randn(2, 16) * 0.5
    with torch.no_grad():
        z = E(x, cond)["z"]
    assert z.shape == (2, 8) and (z - _reference_forward(state, x, cond, 3)).abs().max() <= TOL

    unused = dict(state, **{k: v + 1 for k, v in state.items() if k.startswith(
        ("decode_block.2.batch_norm_2.", "decode_block.2.batch_norm_3.", "decode_block.2.conv_3.",
         "decode_block.2.bias_2", "decode_block.2.noise_weight_2"))})
    used = dict(state, **{"decode_block.0.batch_norm_3.running_vars": state["decode_block.0.batch_norm_3.running_vars"] + 1})
    for changed, same in ((unused, True), (used, False)):
        torch.save(changed, path)
        with torch.no_grad():
            assert torch.equal(z, load_authors_big_encoder(path)(x, cond)["z"]) is same


def test_inversion_conditions_on_the_generators_condition_vector(tmp_path):
    torch.manual_seed(0)
    G = Generator(FAMILY.tiny_config).eval()
    cfg = G.config
    state = _random_big_state(4, 64, 3, cfg.resolution, c_dim=cfg.z_dim + cfg.embed_dim, z_dim=cfg.z_dim)
    torch.save(state, tmp_path / "E_model_ep1_iter9.pth")
    E = load_authors_big_encoder(tmp_path / "E_model_ep1_iter9.pth")
    x, c = torch.rand(2, 3, 16, 16) * 2 - 1, G.class_vector([1, 3])

    inversion = Inverter(G, E)(x, c)
    # [z, embed(c)] with z at its mean, 0, as the encoder's condition; the class given, truncation as trained
    cond = G.condition_vector(torch.zeros(2, cfg.z_dim), c)
    with torch.no_grad():
        z = _reference_forward(state, x, cond, 3)
        latents, predicted = encode(G, E, x, c)
    assert predicted == ["z"] and (inversion.latents["z"] - z).abs().max() <= TOL
    assert torch.equal(latents["z"], inversion.latents["z"]) and torch.equal(inversion.latents["c"], c)
    assert torch.equal(inversion.latents["truncation"], torch.full((2,), 0.4))
    assert inversion.x_rec.shape == (2, 3, 16, 16)
    with torch.no_grad():  # the class reaches the encoder: another class, another z
        other = encode(G, E, x, G.class_vector([2, 4]))[0]["z"]
    assert (other - z).abs().max() > 1e-3

    with pytest.raises(DseError, match="cannot predict the class"):
        Inverter(G, E)(x)


def test_config_refuses_what_the_big_block_cannot_be():
    base = EncoderConfig(family="biggan", resolution=32, channels={32: 8, 16: 16}, block="big", norm="frozen_cbn",
                         c_dim=12, condition="generator", final_resolution=16, z_head=(12, 4), noise=False)
    assert base.final_features == 16 * 16 * 16 and base.latent_shapes == {"z": (4,)}
    assert dse_core.from_dict(EncoderConfig, json.loads(json.dumps(dse_core.to_dict(base)))) == base
    with pytest.raises(ValueError, match="'big' block .* no style heads"):
        attrs.evolve(base, num_ws=4, w_dim=8)
    with pytest.raises(ValueError, match="'big' block .* 'frozen_cbn'"):
        attrs.evolve(base, norm="cbn")
    with pytest.raises(ValueError, match="c_dim must be > 0"):
        attrs.evolve(base, c_dim=0)

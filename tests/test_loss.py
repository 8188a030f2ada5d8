"""The DSE loss: terms against hand-computed values, the areas, the presets and offline LPIPS."""

import copy
import json
import math

import attrs
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from dse_core.config import from_dict, to_dict
from dse_core.errors import CheckpointError, ConfigError, DseError, UnknownNameError
from dse_core.interfaces import LossTerm
from dse_core.loss import (
    KL, MSE, SSIM, BatchCosine, CentreCrops, Cosine, DSELoss, ImageWeights, LatentWeights,
    LossConfig, PaddedSSIM, UntrainedLPIPSWarning, crop_box, load_lpips, pool_to, torchvision_cache_file,
)
from dse_core.train.presets import DEFAULT_PRESET, PRESETS, Preset, get_preset


def get_preset_loss(name):
    return get_preset(name).loss


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    """Any attempt to fetch weights from the internet fails the test."""
    import torchvision.models._api

    def refuse(*args, **kwargs):
        raise AssertionError(f"tried to download {args[:1]}")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", refuse)


@pytest.fixture(scope="module")
def lpips_untrained(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("empty-torch-home")))
        with pytest.warns(UntrainedLPIPSWarning, match="UNTRAINED"):
            return load_lpips(allow_untrained=True)


@pytest.fixture(scope="module")
def vgg_features(tmp_path_factory):
    """A randomly initialised torchvision vgg16 ``features`` state dict saved as .pth (no download)."""
    import torchvision

    torch.manual_seed(1)
    state = torchvision.models.vgg16(weights=None).features.state_dict()
    path = tmp_path_factory.mktemp("vgg") / "vgg16_features.pth"
    torch.save(state, path)
    return path, state


def images(n=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


# --- terms, by hand -------------------------------------------------------------------------------

# two 1x2x2 "images"; sample 1 differs, sample 2 is reconstructed exactly
TARGET = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]], [[[0.0, 0.0], [0.0, 2.0]]]])
RECON = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]], [[[0.0, 0.0], [0.0, 2.0]]]])


def test_mse_cosine_and_kl_match_the_formulas_on_a_2x2_example():
    # MSE: squared differences (0, 1, 0, 1) / 4
    assert torch.allclose(MSE()(TARGET, RECON), torch.tensor([0.5, 0.0]))
    # cosine: t.r = 1, |t| = |r| = sqrt(2) -> cos 1/2
    assert torch.allclose(Cosine()(TARGET, RECON), torch.tensor([0.5, 0.0]))
    # KL(S(r) || S(t)): both softmaxes share Z = 2e + 2, so KL = S(r).(r - t) = (e - 1) / (2e + 2)
    e = math.e
    assert torch.allclose(KL()(TARGET, RECON), torch.tensor([(e - 1) / (2 * e + 2), 0.0]), atol=1e-6)


def test_kl_is_the_reconstruction_against_the_target_as_eq4():
    target, recon = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])
    # S(recon) = (3/4, 1/4), S(target) = (1/2, 1/2)
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert KL()(target, recon).item() == pytest.approx(expected, abs=1e-6)
    reverse = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert KL()(recon, target).item() == pytest.approx(reverse, abs=1e-6)


def test_batch_cosine_flattens_the_whole_batch_like_the_public_code():
    # flattened: t = (1,0,0,1,0,0,0,2), r = (1,1,0,0,0,0,0,2): t.r = 5, |t| = |r| = sqrt(6)
    assert torch.allclose(BatchCosine()(TARGET, RECON), torch.tensor([1 / 6, 1 / 6]))
    assert Cosine()(TARGET, RECON).mean().item() == pytest.approx(0.25)  # the per-sample mean differs


def test_ssim_maps_images_to_unit_range_with_data_range_one():
    black, white = -torch.ones(1, 3, 16, 16), torch.ones(1, 3, 16, 16)
    # constant images: means 0.5 and 1 in [0, 1], no variance -> SSIM = (2ab + C1) / (a^2 + b^2 + C1), C1 = 0.01^2
    c1 = 0.01**2
    expected = 1 - (2 * 0.5 * 1.0 + c1) / (0.5**2 + 1.0**2 + c1)
    gray = torch.zeros(1, 3, 16, 16)
    assert SSIM()(gray, white).item() == pytest.approx(expected, rel=1e-4)
    assert SSIM()(black, white).item() == pytest.approx(1.0, abs=1e-3)  # (0 + C1) / (1 + C1)
    x = images(2, 32)
    assert torch.allclose(SSIM()(x, x), torch.zeros(2), atol=1e-5)


def test_lpips_is_zero_for_identical_images_and_per_sample(lpips_untrained):
    x, y = images(3, 32, seed=1), images(3, 32, seed=2)
    assert torch.equal(lpips_untrained(x, x), torch.zeros(3))
    d = lpips_untrained(x, y)
    assert d.shape == (3,) and (d > 0).all()
    assert torch.allclose(lpips_untrained(x[1:2], y[1:2]), d[1:2])


# --- areas ----------------------------------------------------------------------------------------

def test_crop_boxes_of_a_32px_image():
    assert crop_box(32, 32, (0.0, 0.125)) == (0, 32, 4, 28)  # AT1: W/8 = 4 px off left and right
    assert crop_box(32, 32, (0.15625, 0.15625)) == (5, 27, 5, 27)  # AT2: 4 + 1 px off every side
    coords = torch.arange(32 * 32, dtype=torch.float32).reshape(1, 1, 32, 32)  # value = 32 row + col
    (at1, _), (at2, _) = CentreCrops([(0.0, 0.125), (0.15625, 0.15625)]).areas(coords, coords)
    assert at1.shape[-2:] == (32, 24) and at1[0, 0, 0, 0] == 4 and at1[0, 0, -1, -1] == 31 * 32 + 27
    assert at2.shape[-2:] == (22, 22) and at2[0, 0, 0, 0] == 5 * 32 + 5 and at2[0, 0, -1, -1] == 26 * 32 + 26


@pytest.mark.parametrize("size", [32, 256, 1024])
def test_default_crops_equal_the_public_code_slicing(size):
    x = torch.arange(size * size, dtype=torch.float32).reshape(1, 1, size, size)
    (at1, _), (at2, _) = CentreCrops([LossConfig().at1_crop, LossConfig().at2_crop]).areas(x, x)
    h = w = size
    assert torch.equal(at1, x[:, :, :, w // 8:-w // 8])
    assert torch.equal(at2, x[:, :, h // 8 + h // 32:-h // 8 - h // 32, w // 8 + w // 32:-w // 8 - w // 32])


class ShapeRecorder(LossTerm):
    """Stands in for LPIPS/SSIM: records the size it is given, returns zeros."""

    name = "lpips"

    def __init__(self):
        self.sizes = []

    def __call__(self, target, recon):
        self.sizes.append(tuple(target.shape[-2:]))
        return target.new_zeros(target.shape[0])


@pytest.mark.parametrize("preset, size, expected", [
    ("paper-s2", 32, [(32, 32)] * 3),  # areas resized back to the full size
    ("code-s2", 32, [(32, 32), (32, 24), (22, 22)]),  # scored at crop size
    ("code-s2", 512, [(256, 256), (256, 192), (176, 176)]),  # then average-pooled while taller than 256
    ("paper-s2", 512, [(512, 512)] * 3),
])
def test_area_sizes_seen_by_lpips_and_ssim(preset, size, expected):
    lpips, ssim = ShapeRecorder(), ShapeRecorder()
    loss = DSELoss(get_preset_loss(preset), lpips=lpips)
    loss._terms["ssim"] = ssim
    x = torch.zeros(1, 3, size, size)
    loss(x, x + 0.1)
    assert lpips.sizes == expected and ssim.sizes == expected


def test_pool_to_halves_until_small_enough():
    assert pool_to(torch.zeros(1, 3, 1024, 1024), 256).shape[-2:] == (256, 256)
    assert pool_to(torch.zeros(1, 3, 300, 300), 256).shape[-2:] == (150, 150)
    assert pool_to(torch.zeros(1, 3, 1024, 1024), None).shape[-2:] == (1024, 1024)


# --- the whole loss -------------------------------------------------------------------------------

def test_total_is_eq8_of_the_configured_weights_on_a_constant_offset():
    cfg = LossConfig(image=ImageWeights(kl=0, mse=5, cos=0, lpips=0, ssim=0), latent=LatentWeights(kl=0, mse=5, cos=0))
    loss = DSELoss(cfg)  # no LPIPS weight: no LPIPS module needed
    x = images(2, 32)
    w = torch.zeros(2, 4, 8)
    total, terms = loss(x, x + 0.5, {"ws": w}, {"ws": w + 1})
    # every area (resized or not) is off by 0.5: MSE 0.25; w off by 1: MSE 1
    expected = (1 + 5 + 9) * 5 * 0.25 + 0.01 * 5 * 1.0
    assert total.item() == pytest.approx(expected, rel=1e-5)
    assert set(terms) == {"img0/mse", "img0", "img1/mse", "img1", "img2/mse", "img2", "image", "latent/ws/mse", "latent/ws", "latent",
                          "total"}


def test_terms_recombine_into_the_total(lpips_untrained):
    cfg = LossConfig()
    loss = DSELoss(cfg, lpips=lpips_untrained)
    x, y = images(2, 32, seed=3), images(2, 32, seed=4)
    w, w_rec = torch.randn(2, 6, 16), torch.randn(2, 6, 16)
    total, terms = loss(x, y, {"ws": w}, {"ws": w_rec})
    names = ("kl", "mse", "cos", "lpips", "ssim")
    weights = attrs.asdict(cfg.image)
    image = sum(mu * sum(weights[n] * terms[f"img{k}/{n}"] for n in names) for k, mu in enumerate(cfg.area_weights))
    latent = terms["latent/ws/kl"] + 5 * terms["latent/ws/mse"] + 3 * terms["latent/ws/cos"]
    assert torch.allclose(terms["latent/ws"], latent) and torch.allclose(terms["latent"], latent)
    assert torch.allclose(total, image + 0.01 * latent, rtol=1e-5)
    assert torch.allclose(terms["total"], total) and not terms["total"].requires_grad


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_strategy_1_trains_only_through_the_latent_loss(preset):
    cfg = get_preset_loss(preset)  # Grad-CAM presets get centre crops here; test_gradcam.py runs them with a VGG16
    loss = DSELoss(cfg, lpips=ShapeRecorder(), attention=CentreCrops([cfg.at1_crop, cfg.at2_crop]))  # LPIPS: see the last test
    x = images(2, 32)
    x_rec = torch.nn.Parameter(images(2, 32, seed=5))
    w, w_rec = torch.randn(2, 4, 8), torch.nn.Parameter(torch.randn(2, 4, 8))
    total, terms = loss(x, x_rec, {"ws": w}, {"ws": w_rec})
    total.backward()
    assert w_rec.grad is not None and w_rec.grad.abs().sum() > 0
    if PRESETS[preset].loss.detach_images:
        assert x_rec.grad is None
        assert total.item() > 0.01 * terms["latent"].item() + 1  # the image terms are still reported in the total
    else:
        assert x_rec.grad.abs().sum() > 0


def test_code_presets_drop_kl_and_use_batch_cosine():
    x, y = images(2, 32, seed=6), images(2, 32, seed=7)
    w, w_rec = torch.randn(2, 4, 8), torch.randn(2, 4, 8)
    _, code = DSELoss(get_preset_loss("code-s2"), lpips=ShapeRecorder())(x, y, {"ws": w}, {"ws": w_rec})
    _, paper = DSELoss(get_preset_loss("paper-s2"), lpips=ShapeRecorder())(x, y, {"ws": w}, {"ws": w_rec})
    assert "img0/kl" not in code and "latent/ws/kl" not in code and "img0/kl" in paper
    batch_cos = 1 - F.cosine_similarity(y.reshape(-1), x.reshape(-1), dim=0)
    assert code["img0/cos"].item() == pytest.approx(batch_cos.item(), rel=1e-5)
    assert code["latent/ws/cos"].item() == pytest.approx((1 - F.cosine_similarity(w_rec.reshape(-1), w.reshape(-1), dim=0)).item(), rel=1e-5)
    assert paper["img0/cos"].item() == pytest.approx(Cosine()(x, y).mean().item(), rel=1e-5)


def test_paper_loss_is_the_same_however_the_batch_is_split(lpips_untrained):
    # paper-s1 differs only in area weights and detaching, neither of which depends on the batch
    loss = DSELoss(get_preset_loss("paper-s2"), lpips=lpips_untrained)
    x, y = images(4, 32, seed=8), images(4, 32, seed=9)
    w, w_rec = torch.randn(4, 4, 8), torch.randn(4, 4, 8)
    total, terms = loss(x, y, {"ws": w}, {"ws": w_rec})
    halves = [loss(x[i:i + 2], y[i:i + 2], {"ws": w[i:i + 2]}, {"ws": w_rec[i:i + 2]}) for i in (0, 2)]
    assert torch.allclose(total, (halves[0][0] + halves[1][0]) / 2, rtol=1e-5)
    for name, value in terms.items():
        assert torch.allclose(value, (halves[0][1][name] + halves[1][1][name]) / 2, rtol=1e-5, atol=1e-7), name


def test_shapes_are_checked():
    loss = DSELoss(LossConfig(image=ImageWeights(lpips=0)))
    with pytest.raises(ValueError, match="NCHW"):
        loss(torch.zeros(2, 3, 32, 32), torch.zeros(2, 3, 32, 16))
    with pytest.raises(ValueError, match=r"latent 'ws' and its prediction must be \(N, ...\) of one shape"):
        loss(torch.zeros(2, 3, 32, 32), torch.zeros(2, 3, 32, 32), {"ws": torch.zeros(2, 4, 8)}, {"ws": torch.zeros(2, 4)})
    with pytest.raises(ValueError, match="give the target latents and the predicted ones"):
        loss(torch.zeros(2, 3, 32, 32), torch.zeros(2, 3, 32, 32), {"ws": torch.zeros(2, 4, 8)}, {})
    with pytest.raises(ValueError, match=r"predicted latents \['z'\] have no target"):
        loss(torch.zeros(2, 3, 32, 32), torch.zeros(2, 3, 32, 32), {"ws": torch.zeros(2, 4, 8)}, {"z": torch.zeros(2, 3)})
    # a target the encoder does not predict (a fixed input, say) is no term
    _, terms = loss(torch.zeros(2, 3, 32, 32), torch.zeros(2, 3, 32, 32), {"ws": torch.zeros(2, 4, 8),
                    "truncation": torch.ones(2)}, {"ws": torch.zeros(2, 4, 8)})
    assert set(k for k in terms if k.startswith("latent")) == {"latent", "latent/ws", "latent/ws/kl", "latent/ws/mse",
                                                               "latent/ws/cos"}


# --- config and presets ---------------------------------------------------------------------------

def test_presets_differ_as_documented():
    assert DEFAULT_PRESET == "paper-s2" and LossConfig() == get_preset_loss("paper-s2")
    assert set(PRESETS) == {"paper-s2", "paper-s1", "code-s2", "code-s1", "paper-s1-misaligned", "code-s1-misaligned"}
    s1, code = get_preset_loss("paper-s1"), get_preset_loss("code-s1")
    assert s1.area_weights == (1, 1, 1) and s1.detach_images and LossConfig().area_weights == (1, 5, 9)
    assert code.detach_images and not get_preset_loss("code-s2").detach_images
    assert (code.cosine, code.metric_max_size, code.resize_areas, code.image.kl, code.latent.kl) == ("batch", 256, False, 0, 0)
    assert PRESETS["paper-s2"].fused_downsample and not PRESETS["paper-s1"].fused_downsample
    assert [PRESETS[p].style_mixing_prob for p in ("paper-s2", "paper-s1", "code-s2", "code-s1")] == [0, 0, 0.9, 0.9]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_configs_round_trip_through_json(preset):
    cfg = get_preset_loss(preset)
    assert from_dict(LossConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg
    assert from_dict(Preset, json.loads(json.dumps(to_dict(PRESETS[preset])))) == PRESETS[preset]


def test_bad_configs_and_names_are_user_errors():
    with pytest.raises(ConfigError, match="area_weights"):
        from_dict(LossConfig, {"area_weights": [1, 5]})
    with pytest.raises(ConfigError, match="at2_crop"):
        from_dict(LossConfig, {"at2_crop": [0.6, 0.1]})
    with pytest.raises(ConfigError, match="cosine"):
        from_dict(LossConfig, {"cosine": "global"})
    with pytest.raises(ConfigError, match="mse"):
        from_dict(LossConfig, {"image": {"mse": -1}})
    with pytest.raises(UnknownNameError, match="paper-s2"):
        get_preset_loss("paper-s3")


# --- LPIPS weights, offline -----------------------------------------------------------------------

def _layer(lp, index):
    """The backbone conv that torchvision calls ``features.{index}`` (lpips keeps the index in its slices)."""
    return dict(lp.net.net.named_modules())[next(n for n, _ in lp.net.net.named_modules() if n.endswith(f".{index}"))]


def test_no_backbone_is_an_error_unless_untrained_is_allowed(lpips_untrained):
    with pytest.raises(DseError) as err:
        load_lpips()
    text = str(err.value)
    assert str(torchvision_cache_file()) in text and "allow_untrained" in text and "Hub" in text
    with pytest.raises(DseError, match="LPIPS needs"):
        DSELoss(LossConfig())  # the default loss builds LPIPS and must not fall back silently
    assert lpips_untrained.trained is False and lpips_untrained.source == "untrained"
    assert DSELoss(lpips=lpips_untrained).metadata() == {"lpips_trained": False, "lpips_source": "untrained"}


def test_backbone_loads_from_a_local_pth_of_vgg16_features(vgg_features):
    path, state = vgg_features
    lp = load_lpips(path)
    assert lp.trained and lp.source == str(path)
    assert torch.equal(_layer(lp, 0).weight, state["0.weight"])
    assert torch.equal(_layer(lp, 28).bias, state["28.bias"])
    assert lp.net.lin0.model[1].weight.abs().sum() > 0  # the package's linear heads are loaded too


def test_backbone_loads_from_a_whole_model_safetensors(vgg_features, tmp_path):
    _, state = vgg_features
    whole = {f"features.{k}": v for k, v in state.items()} | {"classifier.6.bias": torch.zeros(1000)}
    save_file(whole, tmp_path / "vgg16.safetensors")
    lp = load_lpips(tmp_path / "vgg16.safetensors")
    assert lp.trained and torch.equal(_layer(lp, 14).weight, state["14.weight"])


def test_backbone_from_the_hub_honours_offline_mode(vgg_features, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_download(repo_id, filename, revision=None, local_files_only=False):
        calls.append((repo_id, filename, revision, local_files_only))
        return str(vgg_features[0])

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    lp = load_lpips(hub_repo="someone/vgg16@v1")
    assert lp.trained and lp.source == "hf://someone/vgg16@v1/model.safetensors"
    assert calls == [("someone/vgg16", "model.safetensors", "v1", True)]  # conftest sets HF_HUB_OFFLINE=1


def test_a_hub_miss_falls_back_to_the_torchvision_cache(vgg_features):
    # real hf_hub_download, offline with an empty cache: a miss, then the torchvision cache
    cache = torchvision_cache_file()
    with pytest.raises(DseError, match="HF_HUB_OFFLINE"):
        load_lpips(hub_repo="someone/vgg16")
    cache.parent.mkdir(parents=True)
    cache.symlink_to(vgg_features[0])
    lp = load_lpips(hub_repo="someone/vgg16")
    assert lp.trained and lp.source == str(cache)
    assert torch.equal(_layer(lp, 5).weight, vgg_features[1]["5.weight"])


def test_bad_weight_files_are_reported(tmp_path):
    with pytest.raises(DseError, match="no such VGG16 weights file"):
        load_lpips(tmp_path / "missing.pth")
    torch.save({"0.weight": torch.zeros(3, 3, 3, 3)}, tmp_path / "wrong.pth")
    with pytest.raises(CheckpointError, match="not a torchvision vgg16"):
        load_lpips(tmp_path / "wrong.pth")


def test_lpips_stays_frozen_and_moves_with_the_loss(lpips_untrained):
    lp = copy.deepcopy(lpips_untrained)
    loss = DSELoss(lpips=lp).train()
    assert not lp.training and not any(m.training for m in lp.modules())
    assert not any(p.requires_grad for p in lp.parameters())
    loss.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in lp.parameters())
    x = images(1, 32).double().requires_grad_()
    lp(x, torch.zeros_like(x)).sum().backward()
    assert x.grad is not None and all(p.grad is None for p in lp.parameters())


def test_padded_ssim_is_the_codes_pytorch_ssim():
    """Zero-padded 11 px Gaussian window on raw [-1, 1] images, computed here pixel by pixel."""
    torch.manual_seed(0)
    a = torch.rand(2, 3, 12, 10) * 2 - 1
    b = (a + 0.3 * torch.randn_like(a)).clamp(-1, 1)
    g = torch.exp(-((torch.arange(11.0) - 5) ** 2) / (2 * 1.5**2))
    w = (g[:, None] * g[None, :]) / g.sum() ** 2
    pa, pb = torch.nn.functional.pad(a, (5, 5, 5, 5)), torch.nn.functional.pad(b, (5, 5, 5, 5))
    expected = torch.zeros(2)
    for n in range(2):
        total = 0.0
        for c in range(3):
            for i in range(12):
                for j in range(10):
                    x, y = pa[n, c, i : i + 11, j : j + 11], pb[n, c, i : i + 11, j : j + 11]
                    mx, my = (w * x).sum(), (w * y).sum()
                    vx, vy, cxy = (w * x * x).sum() - mx**2, (w * y * y).sum() - my**2, (w * x * y).sum() - mx * my
                    total += ((2 * mx * my + 1e-4) * (2 * cxy + 9e-4)) / ((mx**2 + my**2 + 1e-4) * (vx + vy + 9e-4))
        expected[n] = 1 - total / (3 * 12 * 10)
    torch.testing.assert_close(PaddedSSIM()(a, b), expected, rtol=1e-5, atol=1e-6)
    assert PaddedSSIM()(a, a).abs().max() < 1e-6
    assert PRESETS["code-s2"].loss.ssim == "code" and PRESETS["paper-s2"].loss.ssim == "unit"


def test_the_class_term_still_teaches_a_confidently_wrong_head():
    """With logits [30, 0, 0] and the class 1, softmax gives 1e-13 for it: the term still has a gradient."""
    from dse_core.loss.dse_loss import _cross_entropy

    logits = torch.tensor([[30.0, 0.0, 0.0]], requires_grad=True)
    loss = _cross_entropy(torch.tensor([[0.0, 1.0, 0.0]]), logits.softmax(dim=1)).sum()
    loss.backward()
    assert loss.item() == pytest.approx(30.0, rel=1e-4)
    assert logits.grad[0, 1].item() == pytest.approx(-1.0, abs=1e-4)

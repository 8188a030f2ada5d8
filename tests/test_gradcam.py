"""Grad-CAM areas for misaligned images: the CAM formula by hand, the attention, the loss, offline VGG16 weights."""

import json
import os

import attrs
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from dse_core.cli import build_parser, main
from dse_core.config import from_dict, to_dict
from dse_core.errors import CheckpointError, DseError
from dse_core.loss import (
    DSELoss, GradCam, GradCamAttention, ImageWeights, LossConfig, UntrainedGradCamWarning,
    load_gradcam, load_lpips, torchvision_cache_file,
)
from dse_core.train.presets import PRESETS, Preset, get_preset


def get_preset_loss(name):
    return get_preset(name).loss
from dse_core.loss.gradcam import channel_weights, class_activation_map, jet, unit_maps


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    import torchvision.models._api

    def refuse(*args, **kwargs):
        raise AssertionError(f"tried to download {args[:1]}")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", refuse)


@pytest.fixture(scope="module")
def vgg():
    """A random torchvision VGG16, built once (about a second)."""
    from torchvision.models import vgg16

    torch.manual_seed(3)
    return vgg16(weights=None).eval()


@pytest.fixture(scope="module")
def cam(vgg):
    return GradCam.from_vgg(vgg)


@pytest.fixture(scope="module")
def vgg_file(vgg, tmp_path_factory):
    path = tmp_path_factory.mktemp("vgg") / "vgg16-local.pth"
    torch.save(vgg.state_dict(), path)
    return path


def images(n, size, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def tiny_net():
    """conv 1x1 (channel 0 = R+G+B, channel 1 = -(R+G+B)), ReLU, 2x2 max-pool; mean-pool and linear (3 classes)."""
    conv = nn.Conv2d(3, 2, 1, bias=False)
    fc = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0])[:, None, None, None].expand(2, 3, 1, 1))
        fc.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
    return GradCam(nn.Sequential(conv, nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(1), fc),
                   "0")


def quadrant(top, left, size=8):
    x = torch.zeros(1, 3, size, size)
    x[..., top:top + size // 2, left:left + size // 2] = 1
    return x


# --- the CAM formula -----------------------------------------------------------------------------------

def test_channel_weights_match_hand_computed_values():
    A = torch.tensor([[[[1.0, 0.0], [2.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]]]])  # both channels sum to 4
    G = torch.tensor([[[[1.0, 0.0], [0.5, -1.0]], [[2.0, 2.0], [2.0, 2.0]]]])
    # Grad-CAM++: alpha = g^2 / (2 g^2 + 4 g^3); channel 0: 1/6 * 1 + 1/4 * 0.5 (g = -1 has relu(g) = 0),
    # channel 1: 4 * (4 / 40) * 2
    assert torch.allclose(channel_weights(A, G, "gradcam++"), torch.tensor([[7 / 24, 0.8]]))
    assert torch.allclose(channel_weights(A, G, "gradcam"), torch.tensor([[0.125, 2.0]]))  # mean gradient
    assert torch.equal(channel_weights(A, G, "code"), torch.tensor([[1.0, 1.0]]))  # any positive gradient
    assert torch.allclose(class_activation_map(A, G), (7 / 24 * A[:, :1] + 0.8 * A[:, 1:]))
    with pytest.raises(ValueError, match="weighting"):
        channel_weights(A, G, "score-cam")


def test_tiny_net_gradients_weights_and_quadrant_map_by_hand():
    net = tiny_net()
    A, G, classes = net.activations_and_gradients(quadrant(0, 0))
    # class 0 wins (logits 0.75, 0, -0.75); S = mean of the 4x4 max-pooled channel 0, so dS/dz0 = 1/16 at the
    # first position of each 2x2 window inside the lit quadrant (ReLU passes nothing at z = 0 elsewhere)
    assert classes.tolist() == [0]
    assert torch.equal(A[0, 0], quadrant(0, 0)[0, 0] * 3) and not A[0, 1].any()
    expected = torch.zeros(8, 8)
    expected[0:4:2, 0:4:2] = 1 / 16
    assert torch.allclose(G[0, 0], expected) and not G[0, 1].any()
    # Grad-CAM++: alpha = 1 / (2 + 48 / 16) = 1/5 at those 4 positions: w0 = 4 * 1/5 * 1/16
    assert torch.allclose(channel_weights(A, G), torch.tensor([[1 / 20, 0.0]]))
    for top, left in [(0, 0), (4, 4), (0, 4)]:
        maps, _ = net(quadrant(top, left))
        assert torch.equal(maps[0, 0], quadrant(top, left)[0, 0])  # the whole map sits on the lit quadrant


def test_given_classes_and_unit_maps():
    net = tiny_net()
    _, G, classes = net.activations_and_gradients(quadrant(0, 0), classes=torch.tensor([2]))
    assert classes.tolist() == [2] and (G[0, 0] <= 0).all() and G[0, 0].min() < 0  # class 2 weighs channel 0 by -1
    maps, _ = net(quadrant(0, 0), classes=torch.tensor([2]))
    assert not maps.any()  # no positive evidence: a flat map, normalised to 0 (never NaN)
    flat = unit_maps(torch.full((1, 1, 2, 2), 3.0), (4, 4))
    assert flat.shape == (1, 1, 4, 4) and not flat.any()
    colours = jet(torch.tensor([0.0, 0.5, 1.0]).reshape(1, 1, 1, 3))
    assert torch.allclose(colours[0, :, 0].T, torch.tensor([[0.0, 0.0, 0.5], [0.5, 1.0, 0.5], [0.5, 0.0, 0.0]]))


# --- the attention on a (random) VGG16 -----------------------------------------------------------------

def test_heat_maps_have_the_image_size_and_range_are_deterministic_and_follow_the_image(cam):
    attention = GradCamAttention(cam)
    x, y = images(2, 64, seed=1), images(2, 64, seed=2)
    h, h_rec, classes = attention.heat_maps(x, y)
    assert h.shape == h_rec.shape == (2, 1, 64, 64) and not h.requires_grad
    assert h.min() >= 0 and h.max() <= 1 and torch.allclose(h.amax(dim=(1, 2, 3)), torch.ones(2))
    assert torch.equal(classes[:2], classes[2:])  # the reconstruction is explained for the target's class
    again, _, _ = attention.heat_maps(x, y)
    assert torch.equal(h, again)
    shifted, _, _ = attention.heat_maps(torch.roll(x, 16, dims=3), y)
    assert (shifted - h).abs().max() > 0.05
    assert all(p.grad is None and not p.requires_grad for p in cam.parameters())


def test_areas_shapes_ranges_and_what_carries_gradient(cam):
    x, y = images(2, 32, seed=3), images(2, 32, seed=4).requires_grad_()
    (at1, at1_rec), (at2, at2_rec) = GradCamAttention(cam).areas(x, y)
    for area in (at1, at1_rec, at2, at2_rec):
        assert area.shape == (2, 3, 32, 32) and area.min() >= -1 and area.max() <= 1
    assert torch.equal(at1[:, 0], at1[:, 2]) and at1.amin(dim=(1, 2, 3)).eq(-1).all()  # 2h - 1 on 3 channels
    assert torch.allclose(at2_rec.amin(dim=(1, 2, 3)), -torch.ones(2)) and torch.allclose(at2_rec.amax(dim=(1, 2, 3)), torch.ones(2))
    assert not at1_rec.requires_grad and at2_rec.requires_grad  # the map is detached, the tinted x' is not
    at2_rec.sum().backward()
    assert y.grad.abs().sum() > 0


def test_works_inside_no_grad_and_inference_mode_and_at_any_size(cam):
    attention = GradCamAttention(cam)
    x, y = images(2, 32, seed=5), images(2, 32, seed=6)
    h, h_rec, _ = attention.heat_maps(x, y)
    with torch.no_grad():
        assert torch.equal(attention.heat_maps(x, y)[0], h)
    with torch.inference_mode():
        assert torch.equal(attention.heat_maps(x.clone(), y.clone())[1], h_rec)
    small = attention.heat_maps(images(1, 16, seed=7), images(1, 16, seed=8))[0]  # upsampled to VGG's minimum, 32
    assert small.shape == (1, 1, 16, 16)
    with pytest.raises(ValueError, match="RGB"):
        attention.heat_maps(torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32))


def test_code_variant_takes_the_batch_s_most_frequent_class_per_image_set(cam):
    attention = GradCamAttention(cam, variant="code")
    x, y = images(3, 32, seed=9), images(3, 32, seed=10)
    h, _, classes = attention.heat_maps(x, y)
    logits = cam.model(x)
    top = logits.argmax(dim=1)
    assert classes[:3].tolist() == [int(torch.bincount(top).argmax())] * 3
    assert len(set(classes[3:].tolist())) == 1 and h.min() >= 0 and h.max() <= 1
    with pytest.raises(ValueError, match="variant"):
        GradCamAttention(cam, variant="mine")


# --- the loss --------------------------------------------------------------------------------------------

def test_dse_loss_with_gradcam_areas_trains_x_rec_not_vgg(cam):
    with pytest.warns(UserWarning, match="UNTRAINED"):
        lpips = load_lpips(allow_untrained=True)
    loss = DSELoss(LossConfig(attention="gradcam"), lpips=lpips, gradcam=cam)
    x = images(2, 32, seed=11)
    x_rec = torch.nn.Parameter(images(2, 32, seed=12))
    w, w_rec = torch.randn(2, 4, 8), torch.nn.Parameter(torch.randn(2, 4, 8))
    total, terms = loss(x, x_rec, {"ws": w}, {"ws": w_rec})
    total.backward()
    assert torch.isfinite(total) and all(torch.isfinite(v) for v in terms.values())
    assert {"img1/lpips", "img1/ssim", "img1/kl", "img1/cos", "img2/lpips"} <= set(terms)
    assert x_rec.grad.abs().sum() > 0 and w_rec.grad.abs().sum() > 0
    assert all(p.grad is None for p in cam.parameters())
    assert loss.metadata() == {
        "lpips_trained": False, "lpips_source": "untrained", "attention": "gradcam", "gradcam_trained": False,
        "gradcam_source": "untrained", "gradcam_variant": "paper"}
    assert "attention" not in DSELoss(LossConfig(image=ImageWeights(lpips=0))).metadata()  # centre: in the config


@pytest.mark.parametrize("preset", ["paper-s1-misaligned", "code-s1-misaligned"])
def test_misaligned_presets_detach_the_images_and_round_trip(cam, preset):
    cfg = get_preset_loss(preset)
    assert (cfg.attention, cfg.area_weights, cfg.detach_images) == ("gradcam", (1, 1, 1), True)
    assert from_dict(LossConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg
    assert from_dict(Preset, json.loads(json.dumps(to_dict(PRESETS[preset])))) == PRESETS[preset]
    loss = DSELoss(attrs.evolve(cfg, image=attrs.evolve(cfg.image, lpips=0.0)), gradcam=cam)
    assert loss.attention.variant == cfg.gradcam_variant
    x_rec = torch.nn.Parameter(images(2, 32, seed=13))
    w_rec = torch.nn.Parameter(torch.randn(2, 4, 8))
    total, terms = loss(images(2, 32, seed=14), x_rec, {"ws": torch.randn(2, 4, 8)}, {"ws": w_rec})
    total.backward()
    assert x_rec.grad is None and w_rec.grad.abs().sum() > 0 and terms["img2"] > 0


# --- weights, offline --------------------------------------------------------------------------------------

def test_no_weights_is_an_error_unless_untrained_is_allowed():
    with pytest.raises(DseError, match="VGG16") as err:
        load_gradcam()
    assert "vgg16-397923af.pth" in str(err.value) and "allow_untrained" in str(err.value)
    with pytest.raises(DseError, match="VGG16"):
        DSELoss(LossConfig(attention="gradcam", image=ImageWeights(lpips=0)))
    with pytest.warns(UntrainedGradCamWarning, match="UNTRAINED") as caught:
        cam = load_gradcam(allow_untrained=True)
    assert len(caught) == 1 and (cam.trained, cam.source) == (False, "untrained")


def test_local_file_torchvision_cache_and_timm_layout_load(vgg, vgg_file, tmp_path):
    cam = load_gradcam(vgg_file)
    assert (cam.trained, cam.source) == (True, str(vgg_file))
    assert torch.equal(cam.model.classifier[6].weight, vgg.classifier[6].weight)
    assert torch.equal(cam.model.features[0].weight, vgg.features[0].weight) and not cam.model.features[0].weight.requires_grad
    cache = torchvision_cache_file()
    cache.parent.mkdir(parents=True)
    os.symlink(vgg_file, cache)
    assert load_gradcam().source == str(cache)
    state = vgg.state_dict()
    timm = {k: v for k, v in state.items() if k.startswith("features.")}
    timm.update({"pre_logits.fc1.weight": state["classifier.0.weight"].reshape(4096, 512, 7, 7),
                 "pre_logits.fc1.bias": state["classifier.0.bias"],
                 "pre_logits.fc2.weight": state["classifier.3.weight"].reshape(4096, 4096, 1, 1),
                 "pre_logits.fc2.bias": state["classifier.3.bias"],
                 "head.fc.weight": state["classifier.6.weight"], "head.fc.bias": state["classifier.6.bias"]})
    save_file(timm, tmp_path / "timm.safetensors")
    x = images(1, 32, seed=15)
    assert torch.equal(load_gradcam(tmp_path / "timm.safetensors")(x)[0], cam(x)[0])


def test_features_only_file_is_refused_with_a_hint(vgg, tmp_path):
    path = tmp_path / "features.pth"
    torch.save({k: v for k, v in vgg.state_dict().items() if k.startswith("features.")}, path)
    with pytest.raises(CheckpointError, match=r"missing 6 tensors \(classifier.0.weight") as err:
        load_gradcam(path)
    assert "features-only" in str(err.value)
    with pytest.raises(DseError, match="no such"):
        load_gradcam(tmp_path / "absent.pth")


def test_cli_train_takes_attention_options(capsys, tmp_path):
    args = build_parser().parse_args(["train", "-o", "r", "--attention", "gradcam", "--gradcam-weights", "v.pth",
                                      "--allow-untrained-gradcam"])
    assert (args.attention, args.gradcam_weights, args.allow_untrained_gradcam) == ("gradcam", "v.pth", True)
    assert build_parser().parse_args(["train", "-o", "r"]).attention is None
    assert main(["train", "--gan", "stylegan2", "-o", str(tmp_path / "r"), "--attention", "gradcam", "--lpips-weight", "0",
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dse: error: ") and "Grad-CAM" in err and "Traceback" not in err


def test_training_with_gradcam_areas_records_the_vgg(tiny_generator, cam, tmp_path):
    from dse_core.train import TrainConfig, train
    from dse_plugin_stylegan2.encoder import encoder_plan

    cfg = get_preset_loss("paper-s1-misaligned")
    cfg = attrs.evolve(cfg, image=attrs.evolve(cfg.image, lpips=0.0))
    config = TrainConfig(samples=4, batch_size=2, log_every=1, grid_every=10, checkpoint_every=10)
    result = train(tiny_generator, tmp_path / "r", config, cfg, encoder_plan(tiny_generator), gradcam=cam,
                   progress=False, log=lambda m: None)
    assert result.steps == 2 and {"img1/mse", "img2/ssim"} <= set(result.final_terms)
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["loss"]["attention"] == "gradcam" and run["lpips"]["gradcam_trained"] is False


# --- a classifier of your own ------------------------------------------------------------------------------

BLOB_NET = '''
import torch
from torch import nn


class BlobNet(nn.Module):
    """A 3x3 conv (a bright-blob detector), ReLU, global mean, linear: logit 0 = a blob, logit 1 = none."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 1, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(1, 2))

    def forward(self, x):
        return self.head(self.features(x))


def build():
    return BlobNet()


def not_a_model():
    return "model"


def needs_five_pixels():
    return nn.Sequential(nn.Conv2d(3, 2, 5), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
'''


@pytest.fixture
def blob_net(tmp_path):
    """(the module file, its weights): the conv averages the 3x3x3 neighbourhood minus 0.2, so on [-1, 1]
    images (mean = std = 0.5) it fires inside a lit square only, never on the background."""
    path = tmp_path / "blob_net.py"
    path.write_text(BLOB_NET)
    state = {"features.0.weight": torch.full((1, 3, 3, 3), 1 / 27), "features.0.bias": torch.tensor([-0.2]),
             "head.2.weight": torch.tensor([[1.0], [-1.0]]), "head.2.bias": torch.zeros(2)}
    save_file(state, tmp_path / "blob.safetensors")
    return path, tmp_path / "blob.safetensors"


def blob_spec(path, layer="features.0", callable_="build", **kwargs):
    from dse_core.loss import ClassifierSpec

    return ClassifierSpec(f"{path}:{callable_}", layer, **{"mean": (0.5,) * 3, "std": (0.5,) * 3, **kwargs})


def lit_square(top, left, size=16, side=4):
    x = -torch.ones(1, 3, size, size)
    x[..., top:top + side, left:left + side] = 1
    return x


def test_own_classifier_heat_map_sits_on_the_object(blob_net):
    from dse_core.loss import load_classifier_gradcam

    path, weights = blob_net
    cam = load_classifier_gradcam(blob_spec(path), weights)
    assert (cam.layer, cam.min_size, cam.trained, cam.source) == ("features.0", 1, True, str(weights))
    for top, left in [(1, 2), (10, 9), (3, 11)]:
        x = lit_square(top, left)
        maps, classes = cam(x)
        inside = x[0, 0] > 0
        assert classes.tolist() == [0] and maps.shape == (1, 1, 16, 16)
        assert inside.flatten()[maps.flatten().argmax()]  # the peak is on the square
        assert maps[0, 0][inside].sum() > 3 and not maps[0, 0][~inside].any()  # and nothing lies off it
    # the attention normalises with the spec's mean and std: [-1, 1] images reach the net unchanged
    assert torch.equal(cam.normalise(lit_square(0, 0)), lit_square(0, 0))
    h, h_rec, _ = GradCamAttention(cam).heat_maps(lit_square(1, 2), lit_square(10, 9))
    assert h[0, 0, 2, 3] == 1 and h[0, 0, 11, 10] == 0 and h_rec[0, 0, 11, 10] == 1


def test_own_classifier_weights_as_torch_file_or_from_the_callable(blob_net, tmp_path):
    from safetensors.torch import load_file

    from dse_core.loss import load_classifier_gradcam

    path, weights = blob_net
    torch.save({f"module.{k}": v for k, v in load_file(weights).items()}, tmp_path / "blob.pt")  # DataParallel's keys
    x = lit_square(5, 5)
    assert torch.equal(load_classifier_gradcam(blob_spec(path), tmp_path / "blob.pt")(x)[0],
                       load_classifier_gradcam(blob_spec(path), weights)(x)[0])
    own = load_classifier_gradcam(blob_spec(path))  # no file: the callable's own (here random) weights
    assert (own.trained, own.source) == (None, f"{path}:build()")


def test_own_classifier_import_errors_name_the_path_and_the_fix(blob_net):
    from dse_core.loss import load_classifier_gradcam

    path, _ = blob_net
    with pytest.raises(DseError, match="expected MODULE:CALLABLE") as err:
        load_classifier_gradcam(blob_spec(path).__class__("torchvision.models", "layer4"))
    assert "torchvision.models:resnet18" in str(err.value)
    with pytest.raises(DseError, match="cannot import no_such_module_xyz .*ModuleNotFoundError") as err:
        load_classifier_gradcam(blob_spec("no_such_module_xyz"))
    assert "PYTHONPATH" in str(err.value)
    with pytest.raises(DseError, match="no such file"):
        load_classifier_gradcam(blob_spec(path.with_name("absent.py")))
    with pytest.raises(DseError, match=r"unknown callable in .*blob_net.py 'buld'; did you mean 'build'"):
        load_classifier_gradcam(blob_spec(path, callable_="buld"))
    with pytest.raises(DseError, match=r"not_a_model\(\) returned a str, not a torch.nn.Module"):
        load_classifier_gradcam(blob_spec(path, callable_="not_a_model"))


def test_own_classifier_layer_and_size_errors(blob_net):
    from dse_core.loss import load_classifier_gradcam

    path, weights = blob_net
    with pytest.raises(DseError, match=r"unknown Grad-CAM layer 'features.3'; did you mean 'features.1', 'features.0'") as err:
        load_classifier_gradcam(blob_spec(path, layer="features.3"), weights)
    assert "--gradcam-layer" in str(err.value) and "head.2" in str(err.value)  # the known names are listed
    with pytest.raises(DseError, match=r"layer 'head.2' outputs \(2, 2\), not an \(N, C, h, w\) feature map"):
        load_classifier_gradcam(blob_spec(path, layer="head.2"), weights)
    with pytest.raises(DseError, match=r"(?s)fails on 1 px RGB images \(.*Kernel size.*--gradcam-min-size"):
        load_classifier_gradcam(blob_spec(path, layer="0", callable_="needs_five_pixels"))
    assert load_classifier_gradcam(blob_spec(path, layer="0", callable_="needs_five_pixels", min_size=5)).min_size == 5
    with pytest.raises(ValueError, match="std must be 3 numbers"):
        blob_spec(path, std=(0.5, 0.0, 0.5))


def test_own_classifier_weights_must_match_the_model(blob_net, tmp_path):
    from safetensors.torch import load_file

    from dse_core.loss import load_classifier_gradcam

    path, weights = blob_net
    state = load_file(weights)
    save_file({k: v for k, v in state.items() if k != "head.2.bias"}, tmp_path / "short.safetensors")
    with pytest.raises(CheckpointError, match=r"not a state dict of .*build\(\): missing 1 tensor \(head.2.bias\)") as err:
        load_classifier_gradcam(blob_spec(path), tmp_path / "short.safetensors")
    assert "save_file(model.state_dict()" in str(err.value)
    save_file({**state, "head.2.weight": torch.ones(3, 1)}, tmp_path / "wide.safetensors")
    with pytest.raises(CheckpointError, match=r"head.2.weight: file \(3, 1\) vs expected \(2, 1\)"):
        load_classifier_gradcam(blob_spec(path), tmp_path / "wide.safetensors")
    torch.save({"model": torch.nn.Linear(1, 1)}, tmp_path / "pickled.pt")
    with pytest.raises(CheckpointError):  # weights_only: a pickled module is refused, not run
        load_classifier_gradcam(blob_spec(path), tmp_path / "pickled.pt")
    with pytest.raises(DseError, match="no such Grad-CAM classifier weights file"):
        load_classifier_gradcam(blob_spec(path), tmp_path / "absent.safetensors")


def test_cli_trains_with_an_own_classifier_records_it_and_resume_rebuilds_it(blob_net, tiny_generator, tmp_path, capsys):
    path, weights = blob_net
    tiny_generator.save_pretrained(tmp_path / "g")
    run = str(tmp_path / "r")
    own = ["--attention", "gradcam", "--gradcam-model", f"{path}:build", "--gradcam-layer", "features.0",
           "--gradcam-mean", "0.5", "--gradcam-std", "0.5", "--gradcam-weights", str(weights)]
    assert main(["train", "--generator", str(tmp_path / "g"), "-o", run, "--samples", "4", "--batch-size", "2",
                 "--lpips-weight", "0", "--checkpoint-every", "1", "--quiet", *own]) == 0
    record = json.loads((tmp_path / "r" / "run.json").read_text())["lpips"]
    assert record["gradcam_classifier"] == {"model": f"{path}:build", "layer": "features.0", "mean": [0.5] * 3,
                                            "std": [0.5] * 3, "min_size": None}
    assert (record["gradcam_source"], record["gradcam_trained"]) == (str(weights), True)
    assert main(["train", "-o", run, "--resume", "--samples", "8", "--quiet"]) == 0  # nothing repeated
    assert "trained 4 steps (8 samples)" in capsys.readouterr().out
    assert json.loads((tmp_path / "r" / "run.json").read_text())["lpips"] == record
    assert main(["train", "-o", run, "--resume", "--samples", "10", "--quiet", *own[:-4]]) == 2  # mean/std differ
    assert "other settings (lpips.gradcam_classifier)" in capsys.readouterr().err


def test_cli_own_classifier_options_need_each_other(capsys, tmp_path):
    common = ["train", "--gan", "stylegan2", "-o", str(tmp_path / "r"), "--attention", "gradcam", "--lpips-weight", "0"]
    assert main([*common, "--gradcam-layer", "layer4"]) == 2
    assert "--gradcam-layer describe(s) a classifier of your own" in capsys.readouterr().err
    assert main([*common, "--gradcam-model", "torchvision.models:resnet18"]) == 2
    assert "needs --gradcam-layer NAME" in capsys.readouterr().err
    assert main([*common, "--gradcam-model", "m:f", "--gradcam-layer", "x", "--gradcam-mean", "0.5,0.5"]) == 2
    assert "mean must be 3 numbers" in capsys.readouterr().err
    assert main([*common, "--gradcam-model", "m:f", "--gradcam-layer", "x", "--gradcam-std", "a"]) == 2
    err = capsys.readouterr().err
    assert "--gradcam-std 'a': expected one number or three" in err and "Traceback" not in err

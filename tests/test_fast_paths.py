"""The training step's fast paths compute what the plain formulations compute (benchmarks/train_speed.py).

FrozenLPIPS re-implements ``lpips.LPIPS.forward`` (target features without autograd,
channels-last trunk, one norm kernel); the encoder takes feature statistics as a norm
and builds the fused 4x4 kernel as one matrix product. Each is checked here against
the straightforward version, values and gradients.
"""

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F

from dse_core.encoder.layers import EncoderConv, FusedDownConv2d, feature_stats
from dse_core.loss import DSELoss, load_lpips
from dse_core.train.presets import get_preset


def get_preset_loss(name):
    return get_preset(name).loss


@pytest.fixture(scope="module")
def lpips_pair():
    """Our FrozenLPIPS and a plain lpips.LPIPS with the same (random) weights."""
    import lpips

    torch.manual_seed(0)  # module-scoped: built before the per-test seeding
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        mp.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: pytest.fail("download"))
        warnings.simplefilter("ignore")
        ours = load_lpips(allow_untrained=True)
        heads = f"{lpips.__path__[0]}/weights/v0.1/vgg.pth"
        plain = lpips.LPIPS(net="vgg", pnet_rand=True, model_path=heads, verbose=False).eval()
    plain.load_state_dict(ours.net.state_dict())
    return ours, plain


def images(n, size, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def test_lpips_fast_path_equals_the_lpips_package(lpips_pair):
    ours, plain = lpips_pair
    assert ours.net.net.slice1[0].weight.is_contiguous(memory_format=torch.channels_last)
    x, y = images(2, 48, 1), images(2, 48, 2)
    # float64: the same function and gradient up to rounding (the hand-written backward included)
    ours64, plain64 = copy.deepcopy(ours).double(), copy.deepcopy(plain).double()
    y64 = y.double().requires_grad_()
    d_ours, d_plain = ours64(x.double(), y64), plain64(x.double(), y64).reshape(2)
    assert torch.allclose(d_ours, d_plain, rtol=1e-10, atol=0)
    g_ours, = torch.autograd.grad(d_ours.sum(), y64)
    g_plain, = torch.autograd.grad(d_plain.sum(), y64)
    assert torch.allclose(g_ours, g_plain, rtol=1e-8, atol=1e-10 * g_plain.abs().max().item())
    # float32: values to rounding; gradients to the ReLU flips that rounding of other conv kernels causes
    y32 = y.requires_grad_()
    d_ours, d_plain = ours(x, y32), plain(x, y32).reshape(2)
    assert torch.allclose(d_ours, d_plain, rtol=1e-5, atol=1e-7)
    g_ours, = torch.autograd.grad(d_ours.sum(), y32)
    g_plain, = torch.autograd.grad(d_plain.sum(), y32)
    assert (g_ours - g_plain).norm() <= 2e-2 * g_plain.norm()
    assert torch.equal(ours(x, x), torch.zeros(2))


def test_lpips_gradient_reaches_a_target_that_wants_one(lpips_pair):
    ours, plain = (copy.deepcopy(m).double() for m in lpips_pair)
    x, y = images(1, 32, 3).double().requires_grad_(), images(1, 32, 4).double()
    g_ours, = torch.autograd.grad(ours(x, y).sum(), x)
    g_plain, = torch.autograd.grad(plain(x, y).sum(), x)
    assert torch.allclose(g_ours, g_plain, rtol=1e-8, atol=1e-10 * g_plain.abs().max().item())


def test_dse_loss_with_fast_lpips_matches_plain_lpips(lpips_pair):
    ours, plain = lpips_pair

    class Plain:
        name = "lpips"

        def __call__(self, target, recon):
            return plain(target, recon).reshape(target.shape[0])

    x, y = images(2, 32, 5), images(2, 32, 6)
    w, w_rec = torch.randn(2, 4, 8), torch.randn(2, 4, 8)
    for preset in ("paper-s2", "code-s2"):
        fast = DSELoss(get_preset_loss(preset), lpips=ours)(x, y, {"ws": w}, {"ws": w_rec})[1]
        slow = DSELoss(get_preset_loss(preset), lpips=Plain())(x, y, {"ws": w}, {"ws": w_rec})[1]
        for name in slow:
            assert torch.allclose(fast[name], slow[name], rtol=1e-5, atol=1e-7), (preset, name)


def test_feature_stats_are_mean_and_population_std():
    x = (torch.randn(3, 5, 9, 7, dtype=torch.float64) * 2 + 1).requires_grad_()
    stats = feature_stats(x)
    plain = torch.cat([x.mean(dim=(2, 3)), x.var(dim=(2, 3), unbiased=False).sqrt()], dim=1)
    assert torch.allclose(stats, plain, rtol=1e-12)
    g = torch.randn_like(stats)
    assert torch.allclose(*(torch.autograd.grad((s * g).sum(), x)[0] for s in (stats, plain)), rtol=1e-9)
    x32 = x.detach().float()
    assert torch.allclose(feature_stats(x32), plain.detach().float(), rtol=1e-5, atol=1e-6)


def test_fused_kernel_is_the_3x3_kernel_box_filtered():
    conv = FusedDownConv2d(3, 4)
    w = F.pad(conv.weight * conv.weight_gain, (1, 1, 1, 1))
    padded_sum = (w[:, :, 1:, 1:] + w[:, :, :-1, 1:] + w[:, :, 1:, :-1] + w[:, :, :-1, :-1]) * 0.25
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(conv(x), F.conv2d(x, padded_sum, conv.bias, stride=2, padding=1), atol=1e-6)
    assert "box" not in conv.state_dict()  # a constant, not a weight


def test_noisy_conv_is_conv_plus_scaled_noise_then_leaky_relu():
    conv = EncoderConv(4, 6, noise=True).train()
    with torch.no_grad():
        conv.noise_strength.uniform_(0.5, 1.0)
    x = torch.randn(2, 4, 8, 8)
    torch.manual_seed(7)
    y = conv(x)
    torch.manual_seed(7)
    noise = torch.randn(2, 1, 8, 8)
    assert torch.allclose(y, F.leaky_relu(conv.conv(x) + noise * conv.noise_strength.view(1, -1, 1, 1), 0.2), atol=1e-6)


@pytest.mark.parametrize("noise_mode", ["const", "random", "none"])
def test_synthesis_layers_stay_channels_last_and_add_noise_and_bias(noise_mode):
    """The epilogue's noise + bias map is laid out channels-last so that every layer's output is too."""
    from dse_core.nn import LRELU_GAIN
    from dse_plugin_stylegan2 import Generator, StyleGAN2Config
    from dse_plugin_stylegan2.model import SynthesisLayer, modulated_conv2d

    G = Generator(StyleGAN2Config(resolution=16, channels={4: 16, 8: 16, 16: 8}, z_dim=8, w_dim=8, mapping_layers=2))
    layers = [m for m in G.modules() if isinstance(m, SynthesisLayer)]
    with torch.no_grad():
        for layer in layers:
            layer.noise_strength.fill_(0.5)
            layer.bias.normal_()
    outputs = []
    for layer in layers:
        layer.register_forward_hook(lambda m, i, o: outputs.append((m, i, o)))
    G.synthesis(torch.randn(2, G.num_ws, 8), noise_mode=noise_mode)
    assert len(outputs) == len(layers)
    for layer, (x, w, *_), y in outputs:
        assert y.is_contiguous(memory_format=torch.channels_last)
        if noise_mode == "random":
            continue  # drawn inside; its seed-for-seed equality is checked below
        add = layer.bias.view(-1, 1, 1) * LRELU_GAIN
        if noise_mode == "const":
            add = add + layer.noise_const * (layer.noise_strength * LRELU_GAIN)
        plain = modulated_conv2d(x.contiguous(), layer.weight * layer.weight_gain, layer.affine(w), up=layer.up,
                                 resample_filter=layer.resample_filter, gain=LRELU_GAIN, add=add)
        assert torch.allclose(y, F.leaky_relu(plain, 0.2), rtol=1e-5, atol=1e-5)
    if noise_mode == "random":
        layer, (x, w, *_), _ = outputs[-1]
        torch.manual_seed(3)
        y = layer(x, w, noise_mode="random")
        torch.manual_seed(3)
        noise = torch.randn(x.shape[0], 1, layer.resolution, layer.resolution)
        add = layer.bias.view(-1, 1, 1) * LRELU_GAIN + noise * (layer.noise_strength * LRELU_GAIN)
        plain = modulated_conv2d(x.contiguous(), layer.weight * layer.weight_gain, layer.affine(w), up=layer.up,
                                 resample_filter=layer.resample_filter, gain=LRELU_GAIN, add=add)
        assert torch.allclose(y, F.leaky_relu(plain, 0.2), rtol=1e-5, atol=1e-5)

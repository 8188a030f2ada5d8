"""FIR resampling against a direct upfirdn written from its definition (zero-insert, pad, convolve, decimate); the
upsampling conv's transposed-conv kernel against nearest 2x + conv and the official fused conv."""

import pytest
import torch
import torch.nn.functional as F

from dse_core.nn import downsample2d, filter2d, setup_filter, upsample2d, upsample_conv_kernel


def upfirdn_reference(x, f2d, up=1, down=1, pad=(0, 0, 0, 0)):
    n, c, h, w = x.shape
    z = torch.zeros(n, c, h * up, w * up, dtype=x.dtype)
    z[:, :, ::up, ::up] = x
    z = F.pad(z, list(pad))
    k = f2d.flip(0, 1)  # true convolution
    out = torch.zeros(n, c, z.shape[2] - k.shape[0] + 1, z.shape[3] - k.shape[1] + 1, dtype=x.dtype)
    for i in range(k.shape[0]):
        for j in range(k.shape[1]):
            out += k[i, j] * z[:, :, i : i + out.shape[2], j : j + out.shape[3]]
    return out[:, :, ::down, ::down]


@pytest.mark.parametrize("taps", [[1, 3, 3, 1], [1, 2, 5], [2.0, 1.0, 0.5, 0.25]])
def test_filter_upsample_downsample_match_upfirdn(taps):
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    f = setup_filter(taps).double()
    f2d = torch.outer(f, f)
    assert torch.allclose(filter2d(x, f, (1, 2, 2, 1), gain=3), upfirdn_reference(x, f2d * 3, pad=(1, 2, 2, 1)))
    assert torch.allclose(filter2d(x, f, (1, 1, 1, 1)), upfirdn_reference(x, f2d, pad=(1, 1, 1, 1)))
    p = len(taps) - 2
    up_pad = ((p + 1) // 2 + 1, p // 2, (p + 1) // 2 + 1, p // 2)
    up = upsample2d(x, f)
    assert up.shape[2:] == (18, 18)
    assert torch.allclose(up, upfirdn_reference(x, f2d * 4, up=2, pad=up_pad))
    down = downsample2d(torch.randn(2, 3, 16, 16, dtype=torch.float64), f)
    assert down.shape[2:] == (8, 8)


def test_upsample_keeps_a_constant_image_constant_inside():
    x = torch.ones(1, 1, 8, 8)
    y = upsample2d(x, setup_filter([1, 3, 3, 1]))
    assert torch.allclose(y[:, :, 2:-2, 2:-2], torch.ones(1, 1, 12, 12))


def test_setup_filter_normalizes_and_checks_shape():
    assert torch.allclose(setup_filter([1, 3, 3, 1]), torch.tensor([0.125, 0.375, 0.375, 0.125]))
    with pytest.raises(ValueError):
        setup_filter([[1, 2], [3, 4]])


def fused_reference(weight):
    """The official fused upscale2d_conv2d kernel, as genforce writes it: pad, sum the four 2x2 shifts, (in, out)."""
    w = F.pad(weight, (1, 1, 1, 1))
    return (w[:, :, 1:, 1:] + w[:, :, :-1, 1:] + w[:, :, 1:, :-1] + w[:, :, :-1, :-1]).permute(1, 0, 2, 3)


def test_upsample_conv_kernel_is_nearest_2x_then_conv_or_the_official_fused_conv():
    x, w = torch.randn(2, 5, 6, 7, dtype=torch.float64), torch.randn(3, 5, 3, 3, dtype=torch.float64)
    kernel = upsample_conv_kernel(w)
    assert kernel.shape == (5, 3, 4, 4)
    nearest = F.conv2d(F.interpolate(x, scale_factor=2.0, mode="nearest"), w, padding=1)
    assert (F.conv_transpose2d(x, kernel, stride=2, padding=1) - nearest).abs().max() < 1e-12
    assert (upsample_conv_kernel(w, flip=False) - fused_reference(w)).abs().max() < 1e-12
    assert (upsample_conv_kernel(w, flip=False) - kernel).abs().max() > 0.1  # the flip matters

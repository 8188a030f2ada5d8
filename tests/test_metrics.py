"""The Table III metrics, checked against values computed by hand."""

import math

import pytest
import torch

from dse_core.metrics import format_table, image_metrics, summarize


def test_values_by_hand():
    target = torch.full((1, 3, 16, 16), -1.0)  # black, 0 in [0, 1]
    recon = torch.full((1, 3, 16, 16), 0.0)  # mid grey, 0.5 in [0, 1]
    m = image_metrics(target, recon)
    assert m["mse"].item() == pytest.approx(0.25)
    assert m["psnr"].item() == pytest.approx(10 * math.log10(1 / 0.25))
    # cosine of the flattened images on [-1, 1]: a constant -1 image vs a zero image is 0/0 -> 0 with eps
    assert m["cosine"].item() == pytest.approx(0.0, abs=1e-6)
    same = image_metrics(recon + 0.3, recon + 0.3)
    assert same["ssim"].item() == pytest.approx(1.0, abs=1e-6) and same["cosine"].item() == pytest.approx(1.0)
    assert same["psnr"].item() == pytest.approx(100.0)  # mse clamped at 1e-10


def test_recon_is_clamped_like_a_written_image():
    target = torch.zeros(2, 3, 16, 16)
    assert torch.equal(image_metrics(target, target + 5)["mse"], image_metrics(target, target + 1)["mse"])


def test_cosine_sign_and_lpips_hook():
    x = torch.randn(3, 3, 16, 16)
    m = image_metrics(x.clamp(-1, 1), -x.clamp(-1, 1), lpips=lambda a, b: (a - b).abs().mean(dim=(1, 2, 3)))
    assert torch.allclose(m["cosine"], torch.full((3,), -1.0), atol=1e-6)
    assert m["lpips"].shape == (3,)


def test_summary_mean_and_std():
    rows = [{"psnr": 10.0, "lpips": None}, {"psnr": 20.0}]
    s = summarize(rows)
    assert s["psnr"] == {"mean": 15.0, "std": 5.0, "n": 2} and "lpips" not in s
    assert "15.0000" in format_table(s)


def test_the_table_lists_each_image_then_mean_and_std():
    rows = [{"output": f"img{i}", "psnr": 10.0 + i, "ssim": 0.5, "lpips": None} for i in range(3)]
    table = format_table(summarize(rows), rows=rows, max_rows=2).splitlines()
    assert table[0].split() == ["image", "psnr", "ssim"]
    assert table[1].split() == ["img0", "10.0000", "0.5000"] and table[2].split() == ["img1", "11.0000", "0.5000"]
    assert table[3] == "... 1 more in metrics.csv"
    assert table[5].split() == ["metric", "mean", "std"] and table[6].split()[:2] == ["psnr", "11.0000"]



@pytest.mark.parametrize("df, expected", [(1, 12.706), (2, 4.303), (3, 3.182), (10, 2.228), (30, 2.042),
                                          (1000, 1.962), (100000, 1.960)])
def test_t_quantile_matches_the_tables(df, expected):
    from dse_core.metrics import t_quantile

    assert t_quantile(df) == pytest.approx(expected, abs=5e-4)


def test_interval_uses_students_t_and_the_sample_std():
    from dse_core.metrics import interval95

    rows = [{"psnr": v} for v in (10.0, 12.0, 17.0, 21.0)]
    stats = summarize(rows)["psnr"]
    sample_std = torch.tensor([10.0, 12.0, 17.0, 21.0]).std(unbiased=True).item()
    assert stats["std"] == pytest.approx(sample_std * math.sqrt(3 / 4))  # summarize keeps dse invert's std
    assert interval95(stats) == pytest.approx(3.182446 * sample_std / 2, rel=1e-6)  # t(0.975, 3) s / sqrt(4)
    assert interval95({"mean": 5.0, "std": 0.0, "n": 1}) is None  # one value: no interval

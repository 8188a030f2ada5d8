"""dse eval: the report's figures are dse invert's, reproducible by hand, with intervals and timings."""

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from dse_core.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DEMO = "demo:stylegan2"
REFINED = "demo:stylegan2 + latents (5 steps)"


@pytest.fixture
def report_dir(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["eval", "--gan", "stylegan2", "--synthetic", "16", "--images", str(EXAMPLES), "--no-lpips",
                 "--refine", "none", "--refine", "latents", "--refine-steps", "5", "--device", "cpu", "--quiet",
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Device: cpu") and f"| 2 | {REFINED} | G(z) |" in printed  # the table, printed
    return out


def test_eval_writes_the_report_and_matches_dse_invert(report_dir, tmp_path, capsys):
    assert sorted(p.name for p in report_dir.iterdir()) == ["grid.png", "report.csv", "report.json", "report.md"]
    report = json.loads((report_dir / "report.json").read_text())
    assert report["lpips"] == "not computed" and report["device"].startswith("cpu") and "1.96" in report["definitions"]
    assert [m["name"] for m in report["methods"]] == [DEMO, REFINED]
    assert report["methods"][0]["refinement"] is None and report["methods"][1]["refinement"]["steps"] == 5
    assert [(s["name"], s["n"]) for s in report["sets"]] == [("G(z)", 16), (str(EXAMPLES), 4)]
    results = {(r["method"], r["set"]): r for r in report["results"]}
    assert len(results) == 4

    assert main(["invert", "--gan", "stylegan2", str(EXAMPLES), "--no-lpips", "--device", "cpu", "--quiet",
                 "-o", str(tmp_path / "inv")]) == 0
    capsys.readouterr()
    inverted = json.loads((tmp_path / "inv" / "metrics.json").read_text())["summary"]
    real = results[(DEMO, str(EXAMPLES))]["summary"]
    assert set(real) == set(inverted) == {"psnr", "ssim", "mse", "cosine"}  # no LPIPS with --no-lpips
    for name, stats in inverted.items():
        assert real[name]["n"] == stats["n"] == 4
        assert real[name]["mean"] == pytest.approx(stats["mean"], abs=1e-4)
        assert real[name]["std"] == pytest.approx(stats["std"], abs=1e-4)

    for r in report["results"]:
        assert r["seconds_per_image"] > 0
        for stats in r["summary"].values():
            assert stats["ci95"] == pytest.approx(1.96 * stats["std"] / math.sqrt(stats["n"]), rel=1e-12)
    for set_name in ("G(z)", str(EXAMPLES)):  # 5 steps of latent refinement beat E alone
        refined, plain = results[(REFINED, set_name)]["summary"], results[(DEMO, set_name)]["summary"]
        assert refined["psnr"]["mean"] > plain["psnr"]["mean"] + 0.5

    rows = list(csv.DictReader((report_dir / "report.csv").open()))
    assert len(rows) == 2 * 2 * 4  # methods x sets x metrics
    row = next(r for r in rows if (r["method"], r["set"], r["metric"]) == (REFINED, "G(z)", "psnr"))
    assert float(row["mean"]) == pytest.approx(results[(REFINED, "G(z)")]["summary"]["psnr"]["mean"])

    md = (report_dir / "report.md").read_text()
    psnr = results[(DEMO, "G(z)")]["summary"]["psnr"]
    assert f"| 1 | {DEMO} | G(z) | {psnr['mean']:.2f} ± {psnr['ci95']:.2f} |" in md
    assert "LPIPS: not computed" in md and "n = 16, seed 2026" in md and "| – |" in md


def test_evaluate_figures_recomputed_by_hand():
    from dse_core import load_encoder, load_generator
    from dse_core.evaluate import evaluate

    G = load_generator(DEMO)
    E = load_encoder(DEMO, generator=G)
    report = evaluate(G, [("demo", E)], [("none", None)], synthetic=6, seed=2026, batch_size=4)
    # the held-out samples, drawn by hand: z from a generator seeded 2026, at the encoder's truncation (none here)
    z = torch.randn(6, G.z_dim, generator=torch.Generator().manual_seed(2026))
    with torch.no_grad():
        x = G(z)
        x_rec = G.decode(E(x))
    assert torch.allclose(report.sets[0].x, x, atol=1e-6)
    result = report.result("demo", "G(z)")
    assert torch.allclose(result.x_rec, x_rec, atol=1e-5)
    mse = (((x.clamp(-1, 1) + 1) / 2 - (x_rec.clamp(-1, 1) + 1) / 2) ** 2).flatten(1).mean(1)
    psnr = 10 * torch.log10(1 / mse)
    assert result.summary["psnr"]["mean"] == pytest.approx(float(psnr.mean()), abs=1e-4)
    assert result.summary["psnr"]["std"] == pytest.approx(float(psnr.std(unbiased=False)), abs=1e-4)
    assert result.summary["mse"]["mean"] == pytest.approx(float(mse.mean()), abs=1e-7)
    assert 15 < float(psnr[0]) < 40 and result.seconds_per_image > 0


@pytest.mark.parametrize("args, message", [
    (["--encoder", "demo:pggan"], "holds an encoder for pggan generators, not stylegan2 ones"),
    (["--images", "no-such-folder"], "no-such-folder: no such file or folder"),
    (["--refine", "bogus"], "unknown refinement 'bogus'"),
    (["--refine-steps", "5"], "--refine-steps given without --refine"),
])
def test_eval_errors_are_one_line(tmp_path, capsys, args, message):
    out = tmp_path / "report"
    assert main(["eval", "--gan", "stylegan2", "--synthetic", "2", "--no-lpips", "--device", "cpu", "-o", str(out),
                 *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dse: error: ") and message in err and "Traceback" not in err
    assert not out.exists()

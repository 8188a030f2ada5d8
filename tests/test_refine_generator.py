"""Generator tuning (PTI-style, ``--refine generator``) and refinement stages (``--then``), on the StyleGAN2 demo."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

import dse_core
from dse_core.cli import main
from dse_core.data import load_image
from dse_core.metrics import image_metrics
from dse_core.models.format import generator_fingerprint
from dse_core.refine import Refinement, image_loss, make_refinement, pti_loss, tune_generator
from dse_core.errors import DseError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DIGITS = [EXAMPLES / f"digit-{d}.png" for d in (2, 3, 5, 8)]


@pytest.fixture(scope="module")
def demo():
    torch.set_num_threads(1)
    G = dse_core.load_generator("demo:stylegan2")
    return G, dse_core.load_encoder("demo:stylegan2", generator=G)


@pytest.fixture(scope="module")
def digits(demo):
    G, E = demo
    x = torch.stack([load_image(p, G.resolution, G.img_channels, (255, 255, 255)).tensor for p in DIGITS])
    with torch.no_grad():
        return x, E(x)


def one(latents, i):
    return {k: v[i : i + 1] for k, v in latents.items()}


def test_tuning_g_beats_the_encoder_alone_and_leaves_g_unchanged(demo, digits):
    G, _ = demo
    x, latents = digits
    before, flags = generator_fingerprint(G), [p.requires_grad for p in G.parameters()]
    loss, x_rec, start = image_loss(), [], time.perf_counter()
    for i in range(len(x)):
        tuned = tune_generator(G, one(latents, i), x[i : i + 1], loss, steps=30)
        with torch.no_grad():
            x_rec.append(tuned.decode(one(latents, i)))
    seconds = (time.perf_counter() - start) / len(x)
    with torch.no_grad():
        encoder_only = float(image_metrics(x, G.decode(latents))["psnr"].mean())
    tuned_psnr = float(image_metrics(x, torch.cat(x_rec))["psnr"].mean())
    print(f"examples/ PSNR: encoder only {encoder_only:.2f} dB, tuned G (30 steps) {tuned_psnr:.2f} dB, "
          f"{seconds:.1f} s per image")
    assert tuned_psnr > encoder_only + 4, (encoder_only, tuned_psnr)  # measured 20.65 -> 28.27 dB
    assert generator_fingerprint(G) == before
    assert [p.requires_grad for p in G.parameters()] == flags and all(p.grad is None for p in G.parameters())
    assert generator_fingerprint(tuned) != before and not any(p.requires_grad for p in tuned.parameters())


def drift(G, tuned, n=16):
    """MSE between the tuned and the original G at random ws (away from the pivot)."""
    with torch.no_grad():
        ws = G.sample_latents(G.sample_z(n, generator=torch.Generator().manual_seed(11)))
        return float((tuned.decode(ws) - G.decode(ws)).square().mean())


def test_locality_regulariser_keeps_g_close_away_from_the_pivot(demo, digits):
    G, _ = demo
    x, latents = digits
    loss = image_loss()
    free, kept = (drift(G, tune_generator(G, one(latents, 1), x[1:2], loss, steps=30, lr=1e-3, locality=w))
                  for w in (0.0, 0.1))
    print(f"MSE to the original G at random ws: no regulariser {free:.5f}, locality 0.1 {kept:.5f}")
    assert kept < 0.8 * free, (free, kept)


def test_stages_chain_and_record_both(demo, digits):
    G, E = demo
    x, latents = digits
    chain = Refinement("latents", steps=5, then=Refinement("generator", steps=5))
    refined = chain.run(G, E, x[:2], latents=one(latents, 0) | {"ws": latents["ws"][:2]}, names=["ws"])
    assert not torch.equal(refined.latents["ws"], latents["ws"][:2])  # the pivots are the refined latents
    assert len(refined.generators) == 2 and refined.generators[0] is not refined.generators[1]
    with torch.no_grad():
        assert torch.equal(refined.x_rec[1:], refined.generators[1].decode(one(refined.latents, 1)))
    record = chain.record()
    assert (record["method"], record["then"]["method"], record["then"]["steps"]) == ("latents", "generator", 5)
    assert chain.describe() == "latents, 5 steps, lr 0.01; then generator, 5 steps, lr 0.0003"
    shared = Refinement("generator", steps=2, shared_tune=True).run(G, E, x[:2], {"ws": latents["ws"][:2]}, ["ws"])
    assert shared.generators[0] is shared.generators[1]
    assert Refinement("generator").steps == 300 and Refinement("generator").lr == 3e-4
    with pytest.raises(DseError, match="last stage"):
        Refinement("generator", then=Refinement("latents"))


def pixels(path):
    return np.asarray(Image.open(path)).astype(int)


def test_invert_refine_generator_writes_the_tuned_g_and_generate_reproduces(demo, tmp_path):
    G, _ = demo
    out = tmp_path / "out"
    assert main(["invert", "--gan", "stylegan2", str(EXAMPLES / "digit-3.png"), "--refine", "generator",
                 "--refine-steps", "20", "--no-lpips", "--device", "cpu", "--quiet", "-o", str(out)]) == 0
    folder = out / "generators" / "digit-3"
    config = json.loads((folder / "config.json").read_text())
    assert config["source"]["tuned_from"]["fingerprint"] == generator_fingerprint(G)
    assert config["source"]["tuned_from"]["generator"] == "demo:stylegan2"
    with safe_open(str(out / "latents" / "digit-3.safetensors"), "pt") as f:
        meta = f.metadata()
    tuned = dse_core.load_generator(str(folder))
    assert meta["generator"] == "../generators/digit-3"  # relative to the latents: the run folder moves whole
    assert meta["generator_fingerprint"] == generator_fingerprint(tuned)
    assert meta["generator_fingerprint"] != generator_fingerprint(G)
    report = json.loads((out / "metrics.json").read_text())
    assert report["refinement"]["method"] == "generator" and report["refinement"]["steps"] == 20
    assert main(["generate", str(out / "latents"), "-o", str(tmp_path / "regen"), "--device", "cpu"]) == 0
    diff = np.abs(pixels(tmp_path / "regen" / "digit-3.png") - pixels(out / "reconstructions" / "digit-3.png")).max()
    assert diff == 0


def test_invert_latents_then_generator_per_image_and_shared(demo, tmp_path):
    base = ["invert", "--gan", "stylegan2", str(DIGITS[0]), str(DIGITS[1]), "--no-lpips", "--device", "cpu",
            "--quiet", "--refine", "latents", "--refine-steps", "5", "--then", "generator", "--then-steps", "5"]
    assert main([*base, "-o", str(tmp_path / "each")]) == 0
    report = json.loads((tmp_path / "each" / "metrics.json").read_text())["refinement"]
    assert (report["method"], report["then"]["method"], report["then"]["scope"]) == \
        ("latents", "generator", "one tuned copy of G per image")
    prints = []
    for name in ("digit-2", "digit-3"):
        with safe_open(str(tmp_path / "each" / "latents" / f"{name}.safetensors"), "pt") as f:
            meta = f.metadata()
        assert meta["refinement"] == "latents, 5 steps, lr 0.01; then generator, 5 steps, lr 0.0003"
        assert meta["generator"] == f"../generators/{name}"
        prints.append(meta["generator_fingerprint"])
    assert prints[0] != prints[1]

    assert main([*base, "--shared-tune", "-o", str(tmp_path / "shared")]) == 0
    assert (tmp_path / "shared" / "generator" / "model.safetensors").exists()
    assert not (tmp_path / "shared" / "generators").exists()
    metas = []
    for name in ("digit-2", "digit-3"):
        with safe_open(str(tmp_path / "shared" / "latents" / f"{name}.safetensors"), "pt") as f:
            metas.append((f.metadata()["generator"], f.metadata()["generator_fingerprint"]))
    assert metas[0] == metas[1]
    assert main(["generate", str(tmp_path / "shared" / "latents"), "-o", str(tmp_path / "regen"), "--device", "cpu"]) == 0
    for name in ("digit-2", "digit-3"):
        assert (pixels(tmp_path / "regen" / f"{name}.png") == pixels(tmp_path / "shared" / "reconstructions" /
                                                                  f"{name}.png")).all()
    assert main([*base, "--shared-tune", "--batch-size", "1", "-o", str(tmp_path / "no")]) == 2


@pytest.mark.parametrize("options, message", [
    (["--then", "generator"], "--then given without --refine"),
    (["--refine", "latents", "--then", "latents"], "stage latents follows itself"),
    (["--refine", "generator", "--then", "latents"], "tuning G must be the last stage"),
    (["--refine", "latents", "--shared-tune"], "--shared-tune needs a generator stage"),
    (["--refine", "latents", "--then-steps", "3"], "--then-steps / --then-lr given without --then"),
])
def test_then_errors_are_one_line(tmp_path, capsys, options, message):
    assert main(["invert", str(tmp_path), "--gan", "stylegan2", *options]) == 2
    err = capsys.readouterr().err
    assert message in err


def test_unknown_stage_names_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        main(["invert", str(tmp_path), "--gan", "stylegan2", "--refine", "latents", "--then", "pti"])
    with pytest.raises(DseError):
        make_refinement("latents", then="generator", then_lr=-1.0)


@pytest.mark.parametrize("first", ["latents", "generator"])
def test_an_encoder_stage_after_another_is_refused_everywhere(first, tmp_path, capsys):
    with pytest.raises(DseError) as caught:  # it would re-encode the images: the first stage's work thrown away
        Refinement(first, then=Refinement("encoder"))
    assert caught.value.hint and "\n" not in caught.value.message
    if first == "latents":
        assert "--refine encoder --then latents" in caught.value.hint
        assert main(["invert", str(tmp_path), "--gan", "stylegan2", "--refine", "latents", "--then", "encoder"]) == 2
        assert "encoder after latents" in capsys.readouterr().err
        assert main(["eval", "--gan", "stylegan2", "--images", str(EXAMPLES), "--refine", "latents+encoder",
                     "-o", str(tmp_path / "r")]) == 2
        assert "encoder after latents" in capsys.readouterr().err
    Refinement("encoder", then=Refinement("latents"))  # the other way round is a pipeline


def test_tuning_g_minimises_ptis_loss_mse_plus_lpips_over_the_whole_image(demo, digits):
    from dse_core.loss.perceptual import load_lpips

    G, E = demo
    x, latents = digits
    with torch.no_grad():
        y = G.decode(latents)
    stage = Refinement("generator")
    by_hand = torch.nn.functional.mse_loss(y, x, reduction="none").flatten(1).mean(1)
    assert torch.allclose(stage.loss.per_sample(x, y)["total"], by_hand, rtol=1e-5)
    with pytest.warns(Warning):
        lpips = load_lpips(allow_untrained=True)  # no VGG16 weights offline: the term is what counts here
    with torch.no_grad():
        with_lpips = Refinement("generator", lpips=lpips).loss.per_sample(x, y)["total"]
        assert torch.allclose(with_lpips, by_hand + lpips(x, y).flatten(), rtol=1e-5)
    assert not torch.allclose(Refinement("latents").loss.per_sample(x, y)["total"], by_hand)  # the DSE loss
    # the stage tunes G with it (and its regulariser, weight 0.1, with it too): the same G as by hand
    run = Refinement("generator", steps=2).run(G, E, x[:1], one(latents, 0), ["ws"])
    by_hand = tune_generator(G, one(latents, 0), x[:1], pti_loss(), steps=2, locality=0.1)
    assert generator_fingerprint(run.generators[0]) == generator_fingerprint(by_hand)
    assert Refinement("generator").record()["loss"] == "PTI's: MSE, whole image"


@pytest.fixture(scope="module")
def pti_run(tmp_path_factory):
    """Two digits, one tuned G each (2 steps); what dse invert logged."""
    import contextlib
    import io

    out, log = tmp_path_factory.mktemp("pti") / "out", io.StringIO()
    with contextlib.redirect_stderr(log):
        assert main(["invert", "--gan", "stylegan2", str(DIGITS[0]), str(DIGITS[1]), "--refine", "generator",
                     "--refine-steps", "2", "--no-lpips", "--device", "cpu", "--quiet", "-o", str(out)]) == 0
    return out, log.getvalue()


def test_a_moved_or_copied_run_decodes_with_its_own_tuned_gs(pti_run, tmp_path, capsys):
    import shutil

    out, _ = pti_run
    moved = tmp_path / "elsewhere"
    shutil.copytree(out, moved)
    for name in ("digit-2", "digit-3"):  # the original's Gs made useless: the copy must read its own
        (out / "generators" / name / "model.safetensors").rename(out / "generators" / name / "gone")
    try:
        assert main(["generate", str(moved / "latents"), "-o", str(tmp_path / "regen"), "--device", "cpu"]) == 0
    finally:
        for name in ("digit-2", "digit-3"):
            (out / "generators" / name / "gone").rename(out / "generators" / name / "model.safetensors")
    for name in ("digit-2", "digit-3"):
        assert (pixels(tmp_path / "regen" / f"{name}.png") == pixels(moved / "reconstructions" / f"{name}.png")).all()
    shutil.rmtree(moved / "generators")
    assert main(["generate", str(moved / "latents"), "-o", str(tmp_path / "no"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "generators/digit-2, is gone" in err and "hint: a tuned G" in err


def test_latents_recording_an_absolute_tuned_g_still_read(pti_run, tmp_path):
    from safetensors.torch import load_file, save_file

    out, _ = pti_run
    latents = out / "latents" / "digit-3.safetensors"
    with safe_open(str(latents), "pt") as f:
        meta = f.metadata()
    old = {**meta, "generator": str((out / "generators" / "digit-3").resolve())}  # as earlier versions wrote it
    save_file(load_file(latents), tmp_path / "digit-3.safetensors", metadata=old)
    assert main(["generate", str(tmp_path / "digit-3.safetensors"), "-o", str(tmp_path / "r"), "--device", "cpu"]) == 0
    assert (pixels(tmp_path / "r" / "digit-3.png") == pixels(out / "reconstructions" / "digit-3.png")).all()


def test_the_tuned_g_records_its_tuning_not_the_bases_training(pti_run, demo):
    G, _ = demo
    out, _ = pti_run
    folder = out / "generators" / "digit-2"
    source = json.loads((folder / "config.json").read_text())["source"]
    tuning = source["tuning"]
    assert tuning["method"].startswith("PTI") and (tuning["steps"], tuning["lr"]) == (2, 3e-4)
    assert tuning["locality_weight"] == 0.1 and tuning["loss"] == "PTI's: MSE, whole image"
    assert source["tuned_on"] == str(DIGITS[0]) and source["tuned_from"]["fingerprint"] == generator_fingerprint(G)
    assert "steps" not in source and "train_minutes" not in source  # the base's training is under tuned_from
    assert source["tuned_from"]["source"]["steps"] == 10000 and source["images"] == G.source["images"]
    card = (folder / "README.md").read_text()
    assert "per-image tuned copy" in card and "Training:" not in card and "10000" not in card
    assert "Tuning: steps 2, lr 0.0003" in card and generator_fingerprint(G) in card


def test_per_image_tuning_says_its_disk_size_once(pti_run, demo):
    G, _ = demo
    _, log = pti_run
    each = sum(v.numel() * 4 for v in G.state_dict().values()) / 1e6
    assert log.count("one tuned G per image") == 1 and f"{each:.1f} MB each, {2 * each:.1f} MB for 2 images" in log


def test_an_unusable_output_is_refused_before_anything_loads(tmp_path, capsys, monkeypatch):
    import dse_core.loading

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(dse_core.loading, "load_pair", no_loading)
    (tmp_path / "file").write_text("")
    for output, message in ((tmp_path / "file", "is a file"), (tmp_path / "file" / "sub", "cannot be made")):
        assert main(["invert", "--gan", "stylegan2", str(DIGITS[0]), "--refine", "generator", "-o", str(output)]) == 2
        err = capsys.readouterr().err
        assert f"-o {output} {message}" in err and "hint:" in err


def test_interpolating_two_per_image_tuned_gs_says_how(pti_run, tmp_path, capsys):
    out, _ = pti_run
    a, b = (str(out / "latents" / f"{n}.safetensors") for n in ("digit-2", "digit-3"))
    assert main(["edit", a, "--interpolate", b, "-o", str(tmp_path / "m"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "--shared-tune" in err and "--generator demo:stylegan2 --force" in err
    assert main(["edit", a, "--interpolate", b, "--steps", "3", "-o", str(tmp_path / "m"), "--device", "cpu",
                 "--generator", "demo:stylegan2", "--force"]) == 0  # the hint's way works
    assert "decoding anyway (--force)" in capsys.readouterr().err

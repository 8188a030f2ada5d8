"""Inversion: the Python API and the files `dse invert` writes, including bad inputs."""

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from dse_core import Encoder, Inverter
from dse_core.cli import main
from dse_core.errors import DseError
from dse_core.images import save_image
from dse_core.loss import UntrainedLPIPSWarning
from dse_plugin_stylegan2.encoder import encoder_plan


@pytest.fixture
def pair(tiny_generator, tmp_path):
    torch.manual_seed(3)
    encoder = Encoder(encoder_plan(tiny_generator)).eval()
    tiny_generator.save_pretrained(tmp_path / "g")
    encoder.save_pretrained(tmp_path / "e")
    return tiny_generator, encoder


def test_inverter_is_e_then_g_and_deterministic(pair):
    G, E = pair
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    result = Inverter(G, E)(x)
    assert set(result.latents) == {"ws"} and result.latents["ws"].shape == (3, G.num_ws, G.w_dim)
    with torch.no_grad():
        assert torch.equal(result.latents["ws"], E(x)["ws"])
        assert torch.equal(result.x_rec, G.synthesis(E(x)["ws"]))
    assert torch.equal(Inverter(G, E)(x).x_rec, result.x_rec)  # noise off in eval


def test_inverter_refuses_a_mismatched_pair(pair):
    from dse_plugin_stylegan2 import Generator, StyleGAN2Config

    G32 = Generator(StyleGAN2Config(resolution=32, channels={4: 4, 8: 4, 16: 4, 32: 4}, z_dim=4, w_dim=8, mapping_layers=1))
    with pytest.raises(DseError, match="16px .* 32px"):
        Inverter(G32, pair[1])


def write_inputs(G, folder, n=3):
    folder.mkdir()
    with torch.no_grad():
        images = G(torch.randn(n, G.z_dim)).clamp(-1, 1)
    for i, image in enumerate(images):
        save_image(image, folder / f"img{i}.png")
    (folder / "nested").mkdir()
    Image.fromarray(np.full((20, 30, 3), 128, np.uint8)).save(folder / "nested" / "wide.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    return images


def test_invert_command_writes_everything_and_counts_failures(pair, tmp_path, capsys):
    G, E = pair
    write_inputs(G, tmp_path / "in")
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["invert", str(tmp_path / "in"), str(tmp_path / "missing.png"), "-o", str(out),
                     "--generator", str(tmp_path / "g"), "--encoder", str(tmp_path / "e"), "--batch-size", "2",
                     "--format", "npy", "npz", "--allow-untrained-lpips", "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err
    # the CLI either lets the warning through or prints it as "dse: warning: ..."
    assert (any(isinstance(w.message, UntrainedLPIPSWarning) for w in caught)
            or "warning: LPIPS is running on an UNTRAINED VGG16" in err)
    assert code == 1  # two inputs failed, the rest are written
    stems = ["img0", "img1", "img2", "nested__wide"]
    assert sorted(p.stem for p in (out / "reconstructions").iterdir()) == stems
    assert sorted(p.name for p in (out / "latents").iterdir()) == sorted(f"{s}.{e}" for s in stems for e in ("npy", "npz", "safetensors"))
    with safe_open(str(out / "latents" / "img1.safetensors"), "pt") as f:
        meta, ws = f.metadata(), f.get_tensor("ws")
    assert meta["family"] == "stylegan2" and meta["generator"] == str(tmp_path / "g") and meta["resolution"] == "16"
    assert meta["latents"] == "ws" and ws.shape == (1, G.num_ws, G.w_dim)
    assert np.load(out / "latents" / "img1.npy").shape == (1, G.num_ws, G.w_dim)
    assert np.allclose(np.load(out / "latents" / "img1.npz")["ws"], ws.numpy())

    report = json.loads((out / "metrics.json").read_text())
    assert {f["image"].rsplit("/", 1)[-1] for f in report["failed"]} == {"missing.png", "broken.png"}
    assert report["lpips"].startswith("VGG, UNTRAINED")
    rows = {r["output"]: r for r in report["images"]}
    assert rows["nested__wide"]["notes"] == "cropped 30x20 to its centre square; resized 20px to 16px"
    for r in rows.values():
        assert r["psnr"] == pytest.approx(10 * np.log10(1 / r["mse"]), rel=1e-5)
    mean = np.mean([r["ssim"] for r in rows.values()])
    assert report["summary"]["ssim"]["mean"] == pytest.approx(mean) and report["summary"]["ssim"]["n"] == 4
    csv_lines = (out / "metrics.csv").read_text().splitlines()
    assert csv_lines[0] == "image,output,psnr,ssim,mse,lpips,cosine,notes" and len(csv_lines) == 5
    grid = Image.open(out / "grid.png")
    assert grid.size == (8 * 18 + 2, 18 + 2)  # 4 (input, reconstruction) pairs in one row of 8
    assert "broken.png" in err and "missing.png" in err


def test_generate_rebuilds_the_reconstructions_from_latents(pair, tmp_path):
    G, E = pair
    write_inputs(G, tmp_path / "in", n=2)
    out = tmp_path / "out"
    main(["invert", str(tmp_path / "in" / "img0.png"), str(tmp_path / "in" / "img1.png"), "-o", str(out),
          "--generator", str(tmp_path / "g"), "--encoder", str(tmp_path / "e"), "--no-lpips", "--device", "cpu", "--quiet"])
    assert main(["generate", str(out / "latents"), "-o", str(tmp_path / "regen"), "--device", "cpu"]) == 0
    for stem in ("img0", "img1"):
        assert (tmp_path / "regen" / f"{stem}.png").read_bytes() == (out / "reconstructions" / f"{stem}.png").read_bytes()


def test_invert_without_lpips_weights_skips_the_metric_and_says_so(pair, tmp_path, capsys):
    G, _ = pair
    write_inputs(G, tmp_path / "in", n=1)
    code = main(["invert", str(tmp_path / "in" / "img0.png"), "-o", str(tmp_path / "out"), "--generator",
                 str(tmp_path / "g"), "--encoder", str(tmp_path / "e"), "--device", "cpu", "--quiet"])
    assert code == 0
    assert "LPIPS metric skipped" in capsys.readouterr().err
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["lpips"] == "not computed" and "lpips" not in report["summary"]


def test_invert_needs_an_encoder(pair, tmp_path, capsys):
    assert main(["invert", str(tmp_path), "--generator", str(tmp_path / "g")]) == 2
    assert "--encoder" in capsys.readouterr().err


def test_invert_under_torchrun_shards_inputs_and_gathers_one_report(pair, tmp_path):
    import os
    import subprocess
    import sys

    G, _ = pair
    write_inputs(G, tmp_path / "in", n=5)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "dse_core.cli",
           "invert", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--generator", str(tmp_path / "g"),
           "--encoder", str(tmp_path / "e"), "--no-lpips", "--device", "cpu", "--quiet", "--batch-size", "2"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]  # broken.png fails on one rank: the run says so
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert sorted(r["output"] for r in report["images"]) == ["img0", "img1", "img2", "img3", "img4", "nested__wide"]
    assert [f["image"].rsplit("/", 1)[-1] for f in report["failed"]] == ["broken.png"]
    assert len(list((tmp_path / "out" / "reconstructions").iterdir())) == 6


def run_invert(tmp_path, *args, out="out"):
    """``dse invert`` with the pair's generator and encoder, no LPIPS, on the CPU."""
    base = ["-o", str(tmp_path / out), "--generator", str(tmp_path / "g"), "--encoder", str(tmp_path / "e"),
            "--no-lpips", "--device", "cpu"]
    return main(["invert", *map(str, args), *base])


def test_output_names_stay_unique_and_rows_match_their_files(pair, tmp_path):
    from dse_core.invert import output_names

    G, _ = pair
    images = write_inputs(G, tmp_path / "in", n=2)
    save_image(images[1], tmp_path / "in" / "img0.jpg")  # same stem as img0.png
    for folder, image in (("a", images[0]), ("b", images[1])):
        (tmp_path / folder).mkdir()
        save_image(image, tmp_path / folder / "x.png")  # a/x.png and b/x.png given as files
    assert run_invert(tmp_path, tmp_path / "in", tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", "--quiet") == 1
    out = tmp_path / "out"
    report = json.loads((out / "metrics.json").read_text())
    outputs = [r["output"] for r in report["images"]]
    assert sorted(outputs) == ["a__x", "b__x", "img0-jpg", "img0-png", "img1", "nested__wide"]
    assert sorted(p.stem for p in (out / "reconstructions").iterdir()) == sorted(outputs)
    for row in report["images"]:
        with safe_open(str(out / "latents" / f"{row['output']}.safetensors"), "pt") as f:
            assert f.metadata()["image"] == row["image"]
    # the same name from the same folder name, twice: numbered, in input order; case-insensitively unique
    paths = [tmp_path / "p" / "s" / "x.png", tmp_path / "q" / "s" / "x.png", tmp_path / "r" / "s" / "X.png"]
    assert output_names(paths, []) == ["x", "x-2", "X-3"]


def test_inverter_refuses_an_encoder_with_other_latent_shapes(pair, tmp_path, capsys):
    import attrs

    G, _ = pair
    wide = Encoder(attrs.evolve(encoder_plan(G), w_dim=2 * G.w_dim))
    with pytest.raises(DseError, match=r"ws: the encoder predicts \(N, 6, 16\), the generator takes \(N, 6, 8\)"):
        Inverter(G, wide)
    wide.save_pretrained(tmp_path / "wide")
    write_inputs(G, tmp_path / "in", n=1)
    assert main(["invert", str(tmp_path / "in" / "img0.png"), "--generator", str(tmp_path / "g"), "--encoder",
                 str(tmp_path / "wide"), "--no-lpips", "--device", "cpu", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"encoder {tmp_path / 'wide'} does not fit generator {tmp_path / 'g'}" in err and "Traceback" not in err


def test_generate_reads_npy_and_npz_and_finds_its_generator_from_anywhere(pair, tmp_path, monkeypatch, capsys):
    G, _ = pair
    write_inputs(G, tmp_path / "in", n=1)
    monkeypatch.chdir(tmp_path)  # a relative --generator: the latents must record where it is
    assert main(["invert", "in/img0.png", "-o", "out", "--generator", "g", "--encoder", "e", "--no-lpips",
                 "--device", "cpu", "--quiet", "--format", "npy", "npz"]) == 0
    latents = tmp_path / "out" / "latents"
    with safe_open(str(latents / "img0.safetensors"), "pt") as f:
        assert f.metadata()["generator"] == str(tmp_path / "g")
    monkeypatch.chdir(tmp_path / "in")
    recon = (tmp_path / "out" / "reconstructions" / "img0.png").read_bytes()
    for suffix in ("npy", "npz", "safetensors"):
        regen = tmp_path / f"regen-{suffix}"
        assert main(["generate", str(latents / f"img0.{suffix}"), "-o", str(regen), "--device", "cpu"]) == 0
        assert (regen / "img0.png").read_bytes() == recon
    (tmp_path / "lonely").mkdir()
    (tmp_path / "lonely" / "w.npy").write_bytes((latents / "img0.npy").read_bytes())
    assert main(["generate", str(tmp_path / "lonely" / "w.npy"), "-o", str(tmp_path / "r"), "--device", "cpu"]) == 2
    assert "no generator recorded" in capsys.readouterr().err
    assert main(["generate", str(tmp_path / "lonely"), "-o", str(tmp_path / "r"), "--generator", str(tmp_path / "g"),
                 "--device", "cpu"]) == 0
    assert (tmp_path / "r" / "w.png").read_bytes() == recon


def test_generate_refuses_another_generator_with_a_clear_message(pair, tmp_path, capsys):
    from dse_plugin_stylegan2 import Generator, StyleGAN2Config

    G, _ = pair
    write_inputs(G, tmp_path / "in", n=1)
    assert run_invert(tmp_path, tmp_path / "in" / "img0.png", "--quiet") == 0
    latents = tmp_path / "out" / "latents"
    Generator(StyleGAN2Config(resolution=32, channels={4: 4, 8: 4, 16: 4, 32: 4}, z_dim=4, w_dim=8,
                              mapping_layers=1)).save_pretrained(tmp_path / "g32")
    assert main(["generate", str(latents), "--generator", str(tmp_path / "g32"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"{latents / 'img0.safetensors'}: these latents do not fit generator {tmp_path / 'g32'}" in err
    assert "ws: found (1, 6, 8), the generator takes (N, 8, 8)" in err and "Traceback" not in err
    # the same shapes, other weights: the recorded fingerprint tells
    torch.manual_seed(7)
    Generator(G.config).save_pretrained(tmp_path / "other")
    regen = ["generate", str(latents), "--generator", str(tmp_path / "other"), "--device", "cpu", "-o", str(tmp_path / "r")]
    assert main(regen) == 2
    assert "these latents were inverted with generator" in capsys.readouterr().err
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([*regen, "--force"]) == 0
    assert (any("decoding anyway" in str(w.message) for w in caught)
            or "decoding anyway (--force)" in capsys.readouterr().err)


def test_invert_options_are_checked_before_anything_runs(pair, tmp_path, capsys):
    for size in ("0", "-2", "two"):
        with pytest.raises(SystemExit) as exit_:
            main(["invert", str(tmp_path), "--gan", "stylegan2", "--batch-size", size])
        assert exit_.value.code == 2
        assert "--batch-size" in capsys.readouterr().err
    assert main(["invert", str(tmp_path), "--gan", "stylegan2", "--device", "gpu"]) == 2
    err = capsys.readouterr().err
    assert "unknown device 'gpu'" in err and "cpu, cuda, cuda:N" in err and "Traceback" not in err


def test_a_training_run_folder_is_an_encoder(pair, tmp_path):
    from dse_core import load_encoder

    _, E = pair
    E.save_pretrained(tmp_path / "run" / "encoder")
    assert torch.equal(load_encoder(tmp_path / "run").b4.conv0.conv.weight, E.b4.conv0.conv.weight)
    write_inputs(pair[0], tmp_path / "in", n=1)
    assert main(["invert", str(tmp_path / "in" / "img0.png"), "--generator", str(tmp_path / "g"), "--encoder",
                 str(tmp_path / "run"), "--no-lpips", "--device", "cpu", "--quiet", "-o", str(tmp_path / "out")]) == 0


def test_ctrl_c_writes_the_run_files_for_the_images_done(pair, tmp_path, monkeypatch, capsys):
    G, _ = pair
    write_inputs(G, tmp_path / "in", n=5)
    calls = []
    real_call = Inverter.__call__

    def interrupt_second_batch(self, images, c=None):
        calls.append(len(images))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_call(self, images, c)

    monkeypatch.setattr(Inverter, "__call__", interrupt_second_batch)
    assert run_invert(tmp_path, tmp_path / "in", "--batch-size", "3", "--quiet") == 130  # broken.png, img0, img1 done
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert [r["output"] for r in report["images"]] == ["img0", "img1"] and report["interrupted"] is True
    assert report["summary"]["ssim"]["n"] == 2
    assert len((tmp_path / "out" / "metrics.csv").read_text().splitlines()) == 3
    assert (tmp_path / "out" / "grid.png").is_file()
    assert "interrupted" in capsys.readouterr().err


def test_no_image_inverted_says_so_instead_of_an_empty_table(pair, tmp_path, capsys):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    (tmp_path / "bad" / "notes.txt").write_text("not an image")  # not counted: not an image format
    (tmp_path / "bad" / "anim.gif").write_bytes(b"GIF89a")
    assert run_invert(tmp_path, tmp_path / "bad", "--quiet") == 1
    captured = capsys.readouterr()
    assert "no image was inverted" in captured.out and "mean" not in captured.err
    assert "skipped 1 image (.gif)" in captured.err and ".txt" not in captured.err
    assert not (tmp_path / "out").exists()  # not one image read: nothing written, the failures are in the log
    assert "broken.png" in captured.out


def test_nothing_to_read_creates_no_output_folder(pair, tmp_path, capsys):
    assert run_invert(tmp_path, tmp_path / "nope.png", "--quiet") == 2
    assert "nope.png: no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_refine_progress_writes_no_cursor_moves_when_not_a_terminal(pair, tmp_path, capsys):
    write_inputs(pair[0], tmp_path / "in", n=1)
    assert run_invert(tmp_path, tmp_path / "in" / "img0.png", "--refine", "latents", "--refine-steps", "2") == 0
    assert "\x1b[A" not in capsys.readouterr().err


def test_cuda_out_of_memory_splits_the_batch_and_loses_nothing(pair, tmp_path, monkeypatch):
    from dse_core.invert import invert_files

    G, E = pair
    write_inputs(G, tmp_path / "in", n=5)
    whole = invert_files([tmp_path / "in"], Inverter(G, E), tmp_path / "whole", batch_size=8, progress=False,
                         log=lambda m: None)
    real_call, sizes, messages = Inverter.__call__, [], []

    def tight(self, images, c=None):
        sizes.append(len(images))
        if len(images) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_call(self, images, c)

    monkeypatch.setattr(Inverter, "__call__", tight)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    split = invert_files([tmp_path / "in"], Inverter(G, E), tmp_path / "split", batch_size=8, progress=False,
                         log=messages.append)
    assert sizes == [6, 3, 2, 1, 3, 2, 1] and split.inverted == whole.inverted == 6
    assert "CUDA out of memory at batch size 6: inverting it as 3 + 3" in messages
    for name in (tmp_path / "whole" / "latents").iterdir():
        torch.testing.assert_close(load_file(str(name)), load_file(str(tmp_path / "split" / "latents" / name.name)))
    monkeypatch.setattr(Inverter, "__call__", lambda self, images, c=None: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError()))
    with pytest.raises(DseError, match="CUDA out of memory inverting a single image"):
        invert_files([tmp_path / "in" / "img0.png"], Inverter(G, E), tmp_path / "none", progress=False, log=lambda m: None)


def _example_digit():
    from pathlib import Path

    return Path(__file__).resolve().parents[1] / "examples" / "digit-3.png"  # white ink on black, like the demo's


def _white_digit_on_transparent(path):
    """examples/digit-3.png as white ink on nothing (RGBA: its brightness is the alpha)."""
    ink = np.asarray(Image.open(_example_digit()).convert("L"))
    Image.fromarray(np.dstack([np.full_like(ink, 255)] * 3 + [ink]), "RGBA").save(path)
    return path


def test_transparency_is_composited_on_the_models_background_unless_told(tmp_path, capsys):
    image = _white_digit_on_transparent(tmp_path / "digit.png")
    runs = {}
    for name, extra in (("default", []), ("white", ["--background", "white"]), ("hex", ["--background", "#123456"])):
        assert main(["invert", "--gan", "stylegan2", str(image), "-o", str(tmp_path / name), "--no-lpips", "--quiet",
                     "--device", "cpu", *extra]) == 0
        runs[name] = json.loads((tmp_path / name / "metrics.json").read_text())["images"][0]
        assert f"digit.png: {runs[name]['notes']}" in capsys.readouterr().err
    assert runs["default"]["notes"] == "transparency composited on black"  # the demo records "black"
    assert runs["white"]["notes"] == "transparency composited on white"
    assert runs["hex"]["notes"] == "transparency composited on #123456"
    # on black it is the example digit again, pixel for pixel; on white (which the demo never drew), PSNR ~5
    assert main(["invert", "--gan", "stylegan2", str(_example_digit()), "-o", str(tmp_path / "original"), "--no-lpips",
                 "--quiet", "--device", "cpu"]) == 0
    row = json.loads((tmp_path / "original" / "metrics.json").read_text())["images"][0]
    assert runs["default"]["psnr"] == pytest.approx(row["psnr"]) and row["notes"] == ""
    assert runs["default"]["psnr"] > 16 and runs["default"]["psnr"] > runs["white"]["psnr"] + 8


def test_a_bad_background_colour_is_a_one_line_error(tmp_path, capsys):
    image = _white_digit_on_transparent(tmp_path / "digit.png")
    for bad in ("blue", "#12345", "#ggg000"):
        assert main(["invert", "--gan", "stylegan2", str(image), "-o", str(tmp_path / "out"), "--no-lpips",
                     "--quiet", "--device", "cpu", "--background", bad]) == 2
        err = capsys.readouterr().err
        assert err == f"dse: error: background {bad!r}: expected white, black, grey or #rrggbb\n"
    assert not (tmp_path / "out").exists()


def test_image_background_is_what_the_generator_records_else_white(tiny_generator):
    from dse_core import load_generator
    from dse_core.invert import image_background

    assert image_background(load_generator("demo:stylegan2")) == (0, 0, 0)
    assert image_background(tiny_generator) == (255, 255, 255)  # records nothing about its images


def test_a_class_nothing_would_use_is_refused(tmp_path, capsys):
    """A conditional StyleGAN2 takes its class in the mapping network, which inversion skips: --class changes nothing."""
    from dse_plugin_stylegan2 import Generator, StyleGAN2Config

    G = Generator(StyleGAN2Config(resolution=16, channels={4: 8, 8: 8, 16: 8}, z_dim=8, w_dim=8, c_dim=3,
                                  mapping_layers=2)).eval()
    E = Encoder(encoder_plan(G)).eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert set(Inverter(G, E)(x).latents) == {"ws"}
    with pytest.raises(DseError, match="its class enters through sampling .* a given class would change nothing"):
        Inverter(G, E)(x, c=G.class_vector([0, 1]))
    G.save_pretrained(tmp_path / "g")
    E.save_pretrained(tmp_path / "e")
    save_image(x[0], tmp_path / "in" / "a.png")
    assert main(["invert", str(tmp_path / "in"), "--generator", str(tmp_path / "g"), "--encoder", str(tmp_path / "e"),
                 "--class", "1", "--no-lpips", "--quiet", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "a given class would change nothing" in err and "Traceback" not in err


def test_invert_files_takes_one_class_for_every_image(pair, tmp_path):
    from dse_core.invert import invert_files

    G, E = pair
    with pytest.raises(DseError, match=r"c is the one class of every image, \(1, c_dim\); got \(3, 4\)"):
        invert_files([tmp_path], Inverter(G, E), tmp_path / "out", c=torch.zeros(3, 4), progress=False)


def _has_dlib() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("dlib", "face_recognition_models"))


@pytest.mark.skipif(not _has_dlib(), reason='the identity metric needs the align extra: pip install -e ".[align]"')
def test_identity_on_inputs_without_a_face_says_how_many_had_none(tmp_path, capsys):
    digits = [str(_example_digit()), str(_example_digit().with_name("digit-2.png"))]  # no face in a digit
    assert main(["invert", "--gan", "stylegan2", *digits, "--identity", "--no-lpips", "--device", "cpu", "--quiet",
                 "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert err.count("had no face found") == 1 and "note: 2 of 2 input(s) had no face found" in err
    assert all("identity" not in row for row in json.loads((tmp_path / "out" / "metrics.json").read_text())["images"])


class RecordedBar:
    """tqdm's stand-in: records each bar made (desc, total, steps counted, postfixes, closed)."""

    made: list = []

    def __init__(self, iterable=None, desc=None, total=None, **kwargs):
        self.iterable, self.desc, self.total, self.kwargs = iterable, desc, total, kwargs
        self.n, self.postfixes, self.closed, self.disable = 0, [], False, kwargs.get("disable", False)
        if total is None and iterable is not None:
            self.total = len(iterable)
        RecordedBar.made.append(self)

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.n += 1

    def update(self, n=1):
        self.n += n

    def set_postfix_str(self, s="", refresh=True):
        self.postfixes.append(s)

    def refresh(self, *args, **kwargs):
        pass

    def close(self):
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_refining_shows_one_bar_per_stage_counting_all_its_images(pair, tmp_path, monkeypatch, capsys):
    """dse invert on a terminal, --refine latents --then generator on a 2-image batch: the batch bar, then one bar
    per stage (not one per tuned copy of G): latents its steps, tuning G its steps x the images."""
    import sys

    write_inputs(pair[0], tmp_path / "in", n=2)
    RecordedBar.made = []
    monkeypatch.setattr("tqdm.tqdm", RecordedBar)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)  # a terminal
    assert run_invert(tmp_path, tmp_path / "in" / "img0.png", tmp_path / "in" / "img1.png", "--batch-size", "2",
                      "--refine", "latents", "--refine-steps", "3", "--then", "generator", "--then-steps", "2") == 0
    shown = [(bar.desc, bar.total, bar.n) for bar in RecordedBar.made if not bar.disable]
    assert shown == [("inverting", 1, 1), ("refining ws", 3, 3), ("tuning G", 2 * 2, 2 * 2)]
    tuning = next(bar for bar in RecordedBar.made if bar.desc == "tuning G")
    assert tuning.postfixes == ["image 1/2", "image 2/2"]
    assert all(bar.closed for bar in RecordedBar.made)

    RecordedBar.made = []
    assert run_invert(tmp_path, tmp_path / "in" / "img0.png", "--refine", "latents", "--refine-steps", "2", "--quiet",
                      out="quiet") == 0
    assert not [bar for bar in RecordedBar.made if not bar.disable]  # --quiet: no bar at all


def bar_lines(err: str, desc: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(f"{desc}:")]


def test_a_log_gets_plain_lines_and_each_bars_final_state_once(pair, tmp_path, monkeypatch, capsys):
    """stderr not a terminal (2>log): no "\\r" redraws or cursor moves, and the final state (100%) once, not twice."""
    write_inputs(pair[0], tmp_path / "in", n=3)
    images = [tmp_path / "in" / f"img{i}.png" for i in range(3)]
    assert run_invert(tmp_path, *images, "--batch-size", "1", "--refine", "latents", "--refine-steps", "2") == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b[" not in err
    inverting = bar_lines(err, "inverting")
    assert inverting and "3/3" in inverting[-1] and sum("100%" in line for line in inverting) == 1
    assert sum("100%" in line for line in bar_lines(err, "refining ws")) == 3  # one stage bar per batch

    monkeypatch.setattr("dse_core.progress.LOG_INTERVAL", 0)  # a line at every update: still no state twice
    assert run_invert(tmp_path, *images, "--batch-size", "1", out="every") == 0
    inverting = bar_lines(capsys.readouterr().err, "inverting")
    assert [line.split("|")[2].split()[0] for line in inverting] == ["0/3", "1/3", "2/3", "3/3"]

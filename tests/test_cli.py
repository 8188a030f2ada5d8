"""The dse command: plugins, convert, sample, and one-line errors for user mistakes."""

import json

import pytest

from PIL import Image

from dse_core.cli import main
from dse_core.errors import DseError


def test_plugins_lists_families_and_formats(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "dse-plugin-stylegan2" in out and "format rosinality" in out and "format genforce" in out
    assert "encoder format dse-authors" in out and "inversion predicts ws" in out
    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    [sg2] = [r for r in rows if r["plugin"] == "stylegan2"]
    assert sg2["families"] == [{"name": "stylegan2", "latents": "ws (num_ws x w_dim, the paper's w+)",
                                "formats": ["rosinality", "genforce", "nvlabs"], "encoder_formats": ["dse-authors"]}]


def test_convert_then_sample_a_grid(tmp_path, fixtures, capsys):
    out = tmp_path / "models" / "g"
    assert main(["convert", str(fixtures / "stylegan2-rosinality" / "checkpoint.pt"), "-o", str(out)]) == 0
    assert "stylegan2 generator, 32px, decodes ws (8, 64)" in capsys.readouterr().out
    header = json.loads((out / "config.json").read_text())
    assert header["source"]["format"] == "stylegan2/rosinality" and len(header["source"]["sha256"]) == 64
    grid = tmp_path / "samples.png"
    assert main(["sample", "--gan", "stylegan2", "--generator", str(out), "-n", "6", "-o", str(grid),
                 "--seed", "0", "--truncation", "0.7", "--batch-size", "4", "--device", "cpu"]) == 0
    image = Image.open(grid)
    assert image.size == (3 * 34 + 2, 2 * 34 + 2)  # 3 columns, 2 rows of 32 px with 2 px padding
    folder = tmp_path / "each"
    assert main(["sample", "--generator", str(out), "-n", "2", "-o", str(folder), "--device", "cpu"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["grid.png", "seed0_00000.png", "seed0_00001.png"]
    # same seed, same pictures
    again = tmp_path / "again.png"
    main(["sample", "--generator", str(out), "-n", "6", "-o", str(again), "--truncation", "0.7", "--batch-size", "4", "--device", "cpu"])
    assert again.read_bytes() == grid.read_bytes()


def test_user_errors_are_one_line_messages(tmp_path, fixtures, capsys):
    pggan = fixtures / "pggan-genforce" / "checkpoint.pth"
    assert main(["convert", str(pggan), "--gan", "stylegan2", "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dse: error: ") and str(pggan) in err and "layer0.weight" in err and "Traceback" not in err
    assert main(["sample", "--gan", "stylegan3", "--generator", str(pggan)]) == 2
    assert "unknown GAN family 'stylegan3'; did you mean 'stylegan', 'stylegan2'?" in capsys.readouterr().err
    out = tmp_path / "m"
    main(["convert", str(fixtures / "stylegan2-genforce" / "checkpoint.pth"), "-o", str(out)])
    assert main(["convert", str(fixtures / "stylegan2-genforce" / "checkpoint.pth"), "-o", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["convert", str(fixtures / "stylegan2-genforce" / "checkpoint.pth"), "-o", str(out), "--force"]) == 0


def test_bad_sample_and_convert_arguments_are_errors_not_tracebacks(tmp_path, fixtures, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["sample", "--generator", "demo:stylegan2", "-n", "0"])
    assert exit_.value.code == 2 and "-n/--num: must be at least 1, got 0" in capsys.readouterr().err
    assert main(["sample", "--generator", "demo:stylegan2", "-n", "1", "--class", "3", "-o", str(tmp_path / "s.png")]) == 2
    assert "--class 3: demo:stylegan2 is unconditional" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("x")
    ckpt = str(fixtures / "stylegan2-rosinality" / "checkpoint.pt")
    assert main(["convert", ckpt, "-o", str(tmp_path / "a-file")]) == 2
    assert "is a file; a converted model is a folder" in capsys.readouterr().err
    target = tmp_path / "a-file" / "x.png"  # its parent is a file: cannot be created
    assert main(["sample", "--generator", "demo:stylegan2", "-n", "1", "-o", str(target)]) == 2
    assert f"dse: error: {target}: cannot write here ({tmp_path / 'a-file'} is a file, not a folder)" in capsys.readouterr().err
    assert not list(tmp_path.glob("**/.*.tmp"))


def test_gan_alone_means_its_demo_model_and_generate_wants_a_folder(tmp_path, capsys):
    assert main(["sample", "--gan", "stylegan2", "-n", "2", "-o", str(tmp_path / "s.png")]) == 0
    assert "stylegan2, 32px" in capsys.readouterr().out and (tmp_path / "s.png").is_file()
    assert main(["generate", str(tmp_path), "-o", str(tmp_path / "regen.png")]) == 2
    assert "writes one PNG per latent file into a folder" in capsys.readouterr().err
    assert not (tmp_path / "regen.png").exists()


def test_device_auto_picks_what_is_there_and_bad_devices_are_named(monkeypatch, capsys):
    import torch

    from dse_core.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")  # CUDA first when present
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(DseError, match="this machine has 1 CUDA device"):
        resolve_device("cuda:3")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["sample", "--gan", "stylegan2", "--device", "gpu"]) == 2
    assert "unknown device 'gpu'" in capsys.readouterr().err


@pytest.mark.parametrize("psi", ["nan", "inf", "-5", "1e9"])
def test_every_command_validates_truncation(psi, tmp_path, capsys):
    assert main(["sample", "--gan", "stylegan2", "-n", "1", "--truncation-psi", psi, "-o", str(tmp_path / "s.png")]) == 2
    assert f"truncation psi {float(psi)}: must be a number from 0 (the average) to 2" in capsys.readouterr().err
    assert main(["train", "--gan", "stylegan2", "-o", str(tmp_path / "r"), "--truncation-psi", psi]) == 2
    assert "'truncation_psi' must be a number from 0 (the average) to 2" in capsys.readouterr().err
    assert not (tmp_path / "s.png").exists() and not (tmp_path / "r").exists()


def test_a_truncation_cutoff_beyond_the_models_ws_is_refused(tmp_path, capsys):
    assert main(["sample", "--gan", "stylegan2", "-n", "1", "--truncation-psi", "0.7", "--truncation-cutoff", "99",
                 "-o", str(tmp_path / "s.png")]) == 2
    assert "truncation cutoff 99: the stylegan2 generator has 8 ws; the cutoff must be 1..8" in capsys.readouterr().err
    assert main(["sample", "--gan", "stylegan2", "-n", "1", "--truncation", "0.7", "--truncation-cutoff", "4",
                 "-o", str(tmp_path / "s.png")]) == 0  # --truncation: the old spelling of --truncation-psi


def test_help_imports_neither_torch_nor_a_plugin():
    import subprocess
    import sys

    code = ("import sys\nfrom dse_core.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "for command in ('invert', 'train', 'sample'):\n    try:\n        main([command, '--help'])\n"
            "    except SystemExit:\n        pass\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('dse_plugin')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_cutoff_with_psi_1_truncates_nothing_and_is_refused(tmp_path, capsys):
    assert main(["sample", "--gan", "stylegan2", "-n", "1", "--truncation-cutoff", "4", "-o", str(tmp_path / "s.png")]) == 2
    assert "truncation cutoff 4 with psi 1 truncates nothing" in capsys.readouterr().err


def test_debug_may_follow_the_command(tmp_path, capsys):
    assert main(["sample", "--gan", "stylegan2", "-n", "1", "--truncation-psi", "nan", "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err

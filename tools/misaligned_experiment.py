"""Misaligned images (paper Sec. III-B, Table IV / Fig. 11), offline: centre areas vs Grad-CAM areas on shifted digits.

Rebuilds everything under ``runs/misaligned/`` (nothing there is committed) and writes the
report to ``docs/misaligned-report/``. Each stage is skipped when its output exists, and a
stage cut short resumes; every stage is seeded, and every process runs on one CPU thread.

1. ``digits-cnn.safetensors``: the Grad-CAM classifier (``digits_cnn.py``), a small CNN trained on
   the training digits drawn at random scales and places.
2. ``generator/``: a 32 px StyleGAN2 trained on the same misaligned digits
   (``train_demo_gan.py --data misaligned``), so that G(z), what DSE trains on, is misaligned too.
3. ``heldout-misaligned/``: the 297 held-out real digits, each at a random scale and place (seed
   2026), as 32 px PNGs.
4. ``encoder-{centre,gradcam}-s{seed}/``: two ``dse train`` runs per seed, identical but for
   ``--attention``: the default centre crops, or Grad-CAM areas from the digits CNN. Both run at
   once, each on one thread.
5. One ``dse eval`` of all encoders on held-out G(z) (256, seed 2026) and the misaligned real digits,
   then ``experiment.json``: the paired per-image differences (Grad-CAM minus centre, same images),
   the CNN's and the generator's checks, wall times, and ``gradcam.png`` (digits and their heat maps).

    python tools/misaligned_experiment.py --seeds 0 1    # the committed report: 2.7 h on a busy 2-core machine
                                                          # (GAN 101 min, CNN 5, two encoder pairs 19 + 17)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import digits_cnn  # noqa: E402
from demo_digits import HELDOUT  # noqa: E402

ATTENTIONS = ("centre", "gradcam")
EVAL_SEED = 2026  # G(z) seed of dse eval (training draws from seed 0) and of the misaligned held-out digits


def gradcam_options(cnn: Path) -> list[str]:
    """What ``dse train`` needs for Grad-CAM areas from the digits CNN."""
    return ["--attention", "gradcam", "--gradcam-model", "tools/digits_cnn.py:digits_cnn",
            "--gradcam-layer", digits_cnn.LAYER, "--gradcam-mean", "0.5", "--gradcam-std", "0.5",
            "--gradcam-weights", str(cnn)]


def train_cnn(runs: Path) -> Path:
    path = runs / "digits-cnn.safetensors"
    if not path.is_file():
        digits_cnn.main(["--out", str(path), "--threads", "1"])
    return path


def train_generator(runs: Path, steps: int) -> Path:
    out = runs / "generator"
    if not (out / "model.safetensors").is_file():
        import train_demo_gan

        train_demo_gan.main(["--data", "misaligned", "--steps", str(steps), "--out", str(out),
                             "--run-dir", str(runs / "gan"), "--resume", "--threads", "1"])
    return out


def write_heldout(runs: Path) -> Path:
    """The 297 held-out digits misaligned with EVAL_SEED, as ``{index}.png``."""
    from dse_core.images import save_image

    folder = runs / "heldout-misaligned"
    if len(list(folder.glob("*.png"))) != HELDOUT[1] - HELDOUT[0] + 1:
        images, _ = digits_cnn.heldout_images(misaligned=True)
        for i, image in enumerate(images):
            save_image(image, folder / f"{HELDOUT[0] + i}.png")
    return folder


def train_encoders(runs: Path, generator: Path, cnn: Path, seed: int, samples: int, timings: dict) -> list[Path]:
    """The centre and Grad-CAM runs of one seed, side by side, one thread each; finished runs are left alone."""
    jobs, dirs = [], []
    for attention in ATTENTIONS:
        run = runs / f"encoder-{attention}-s{seed}"
        dirs.append(run)
        if (run / "encoder" / "model.safetensors").is_file():
            continue
        command = [sys.executable, "-m", "dse_core.cli", "train", "--generator", str(generator), "-o", str(run),
                   "--preset", "paper-s2", "--samples", str(samples), "--batch-size", "16", "--lpips-weight", "0",
                   # paper-s2's lr and EMA when the report was made (the preset's lr has since become 0.003)
                   "--lr", "0.0015", "--ema-halflife", "1000",
                   "--seed", str(seed), "--device", "cpu", "--quiet", "--log-every", "50", "--checkpoint-every", "250"]
        command += gradcam_options(cnn) if attention == "gradcam" else ["--attention", "centre"]
        if (run / "run.json").is_file():
            command.append("--resume")
        run.mkdir(parents=True, exist_ok=True)
        log = open(run / "train.log", "a")
        print(" ".join(command), flush=True)
        jobs.append((run, time.perf_counter(), log, subprocess.Popen(
            command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})))
    for run, start, log, job in jobs:
        if job.wait():
            raise SystemExit(f"dse train failed for {run}; see {run / 'train.log'}")
        log.close()
        timings[run.name] = timings.get(run.name, 0.0) + (time.perf_counter() - start) / 60  # a resumed run adds up
    return dirs


def run_eval(generator: Path, encoders: list[Path], heldout: Path, report: Path) -> None:
    command = [sys.executable, "-m", "dse_core.cli", "eval", "--generator", str(generator), "--synthetic", "256",
               "--seed", str(EVAL_SEED), "--images", str(heldout), "--no-lpips", "--device", "cpu", "--quiet",
               "-o", str(report)]
    for encoder in encoders:
        command += ["--encoder", str(encoder)]
    print(" ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _short(path: Path) -> Path:
    """Relative to the repository when inside it: the report names the encoders by these paths."""
    return path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path


def paired_differences(generator: Path, seeds: list[int], runs: Path, heldout: Path) -> dict:
    """Per image, Grad-CAM's encoder minus the centre one of the same seed (PSNR, SSIM): mean and 95% interval of
    the mean difference. The same images for both, so this is tighter than comparing two separate intervals."""
    from dse_core.evaluate import Inverter, folder_set, synthetic_set
    from dse_core.loading import load_encoder, load_generator
    from dse_core.metrics import image_metrics

    G = load_generator(generator).eval()
    sets = [synthetic_set(G, 256, EVAL_SEED), folder_set(G, heldout)]
    out = {}
    for seed in seeds:
        scores = {}
        for attention in ATTENTIONS:
            E = load_encoder(runs / f"encoder-{attention}-s{seed}", generator=G)
            scores[attention] = [image_metrics(s.x, Inverter(G, E)(s.x).x_rec) for s in sets]
        for name, centre, gradcam in zip(("G(z)", "misaligned real digits"), scores["centre"], scores["gradcam"]):
            out[f"seed {seed}, {name}"] = {
                metric: _mean_ci(gradcam[metric] - centre[metric]) for metric in ("psnr", "ssim")}
    return out


def _mean_ci(d: torch.Tensor) -> dict:
    d = d.double()
    return {"mean": round(float(d.mean()), 4), "ci95": round(float(1.96 * d.std(unbiased=False) / math.sqrt(len(d))), 4),
            "gradcam_better": int((d > 0).sum()), "n": len(d)}


@torch.no_grad()
def generator_check(generator: Path, cnn: Path, n: int = 2000) -> dict:
    """The digits CNN on G's samples (psi 1, seed 0) and on the misaligned held-out digits: mean top-1 confidence and
    the class histogram (every digit should appear)."""
    from check_demo_samples import sample
    from safetensors.torch import load_file

    from dse_core.loading import load_generator

    model = digits_cnn.digits_cnn()
    model.load_state_dict(load_file(cnn))
    model.eval()
    real, _ = digits_cnn.heldout_images(misaligned=True)
    report = {}
    for name, images in (("samples_psi_1", sample(load_generator(generator), n, 1.0)), ("heldout_misaligned", real)):
        probs = model(images).softmax(dim=1)
        report[name] = {"n": len(images), "mean_confidence": round(float(probs.amax(dim=1).mean()), 4),
                        "histogram": torch.bincount(probs.argmax(dim=1), minlength=10).tolist()}
    return report


def heat_map_grid(cnn: Path, path: Path, n: int = 16) -> None:
    """Misaligned held-out digits over their Grad-CAM++ heat maps (jet) as the Grad-CAM areas see them."""
    from safetensors.torch import load_file

    from dse_core.images import make_grid, save_image
    from dse_core.loss.gradcam import GradCam, jet

    model = digits_cnn.digits_cnn()
    model.load_state_dict(load_file(cnn))
    images, _ = digits_cnn.heldout_images(misaligned=True)
    images = images[:n]
    maps, _ = GradCam(model.eval(), digits_cnn.LAYER, mean=digits_cnn.MEAN, std=digits_cnn.STD)(images)
    save_image(make_grid(torch.cat([images, jet(maps) * 2 - 1]), nrow=n), path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="one encoder pair per seed")
    parser.add_argument("--samples", type=int, default=30_000, help="dse train budget of every encoder")
    parser.add_argument("--gan-steps", type=int, default=5000)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs/misaligned")
    parser.add_argument("--report", type=Path, default=ROOT / "docs/misaligned-report")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.runs.mkdir(parents=True, exist_ok=True)
    timings_file = args.runs / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.is_file() else {}

    cnn = train_cnn(args.runs)
    generator = train_generator(args.runs, args.gan_steps)
    heldout = write_heldout(args.runs)
    encoders = []
    for seed in args.seeds:
        encoders += train_encoders(args.runs, generator, cnn, seed, args.samples, timings)
        timings_file.write_text(json.dumps(timings, indent=2) + "\n")
    run_eval(_short(generator), [_short(e) for e in encoders], _short(heldout), args.report)
    gen_source = json.loads((generator / "config.json").read_text()).get("source", {})
    experiment = {
        "digits_cnn": json.loads(cnn.with_suffix(".json").read_text()),
        "generator": {"steps": gen_source.get("steps"), "train_minutes": gen_source.get("train_minutes"),
                      "digits_cnn_check": generator_check(generator, cnn)},
        "encoder_train_minutes": {k: round(v, 1) for k, v in timings.items()},
        "paired_gradcam_minus_centre": paired_differences(generator, args.seeds, args.runs, heldout),
    }
    (args.report / "experiment.json").write_text(json.dumps(experiment, indent=2) + "\n")
    heat_map_grid(cnn, args.report / "gradcam.png")
    print(json.dumps(experiment, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

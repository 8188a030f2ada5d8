"""The DSE authors' own training (disanda/DSE ``E_align_s2.py``) on the StyleGAN2 demo generator, for ``dse eval``.

    python tools/authors_baseline.py --baseline-dir ../refs/disanda+DSE -o /tmp/authors      # 30,000 samples
    dse eval --gan stylegan2 --encoder /tmp/authors/encoder --synthetic 256 --no-lpips -o report/

Their ``train()`` runs unmodified, imported from ``--baseline-dir`` with the CPU patches of
``benchmarks/train_speed.py`` (``_patch_authors``); nothing of their code is part of this repository.
What the 32 px demo needs on top:

- the generator: the script builds genforce's ``StyleGAN2Generator(resolution=32)``, whose other sizes are
  FFHQ's; it gets the demo's (z and w 64, 4 mapping layers at lr_mul 0.1, widths 64..32) and the demo's
  weights, renamed from ours (the inverse of the plugin's genforce reader) and checked to draw the same images;
- the encoder: the script builds ``BE(maxf=512, latent_size=512)`` and ``BE.forward`` stacks 512-wide ws;
  a subclass builds it at the demo's widths (maxf 64) and w size (64) and stacks the ws, in BE's order, at
  that size. Every block, loss, optimizer step and sample is theirs;
- LPIPS off (a zero term), as in the dse runs it is compared with (trained VGG16 weights are not at hand).

Writes to ``-o``: their encoder as their script saves it (``E_model_*.pth``, ``torch.save`` of the state
dict), ``encoder/`` (that file through dse's reader of their encoders, recording the demo generator, checked
to predict the same ws as their BE with noise off), and ``run.json`` (options, wall time, the checks).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from train_speed import _patch_authors, train_authors  # noqa: E402

DEMO = "demo:stylegan2"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-dir", required=True, help="local checkout of disanda/DSE (the authors' code)")
    parser.add_argument("-o", "--output", required=True, help="output folder (outside the repository)")
    parser.add_argument("--samples", type=int, default=30_000, help="training samples (iterations x batch)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.0015, help="their default")
    parser.add_argument("--seed", type=int, default=0, help="torch seed before train(): the encoder's initial weights")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    baseline = str(Path(args.baseline_dir).resolve())

    from dse_core import load_generator

    G = load_generator(DEMO)
    workdir = Path(tempfile.mkdtemp(prefix="dse-authors-"))
    cwd = os.getcwd()
    script = _patch_authors(baseline, workdir)  # chdir's into baseline: every path below is absolute
    try:
        their_G, generator_check = genforce_twin(script, G)
        checkpoint = workdir / "stylegan2_demo.pth"
        torch.save({"generator": their_G.state_dict()}, checkpoint)
        encoders = _demo_sized(script, G)
        iterations = args.samples // args.batch_size
        torch.manual_seed(args.seed)
        wall = _run(script, G, args, checkpoint, iterations, workdir)
    finally:
        os.chdir(cwd)
        shutil.rmtree(workdir, ignore_errors=True)  # their iteration-0 grid and snapshot, the generator file
    E = encoders[-1]
    path = out / f"E_model_ep0_iter{iterations}.pth"
    torch.save(E.state_dict(), path)  # as their script saves it
    encoder_check = save_converted(E, path, G, out / "encoder", iterations * args.batch_size)
    record = {"tool": "tools/authors_baseline.py", "script": "E_align_s2.py train()", "baseline_dir": baseline,
              "generator": DEMO, "iterations": iterations, "batch_size": args.batch_size,
              "samples": iterations * args.batch_size, "lr": args.lr, "betas": [0.0, 0.99], "seed": args.seed,
              "threads": args.threads, "lpips": "off", "wall_s": round(wall, 1),
              "generator_max_abs_diff": generator_check, "encoder_max_abs_diff": encoder_check,
              "torch": torch.__version__, "machine": platform.processor() or platform.machine()}
    (out / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"{iterations} iterations in {wall:.0f} s; their encoder {path.name}, converted: {out / 'encoder'}")
    return 0


# ------------------------------------------------------------------------------------------- generator


def genforce_twin(script, G):
    """Their genforce StyleGAN2Generator at the demo's sizes holding the demo's weights; returns it and the
    largest |difference| of its images from ours (same ws, constant noise), which must be float noise."""
    cfg = G.config
    # genforce's width at res is min(fmaps_base // res, fmaps_max): the demo's 64, 64, 64, 32 are base 1024, max 64
    base, widest = max(res * c for res, c in cfg.channels.items()), max(cfg.channels.values())
    cls = functools.partial(script.model_v2.StyleGAN2Generator, z_space_dim=cfg.z_dim, w_space_dim=cfg.w_dim,
                            mapping_layers=cfg.mapping_layers, mapping_fmaps=cfg.mapping_features or cfg.w_dim,
                            mapping_lr_mul=cfg.mapping_lr_mul, fmaps_base=base, fmaps_max=widest)
    theirs = cls(resolution=cfg.resolution)
    theirs.load_state_dict(to_genforce(G, theirs.state_dict()), strict=True)
    with torch.no_grad():
        z = torch.randn(8, cfg.z_dim, generator=torch.Generator().manual_seed(1))
        ws = G.mapping(z)
        diff = max((theirs.mapping(z)["w"] - ws[:, 0]).abs().max().item(),
                   (theirs.eval().synthesis(ws)["image"] - G.synthesis(ws, noise_mode="const")).abs().max().item())
    if diff > 1e-4:
        raise SystemExit(f"their generator with the demo's weights differs from ours by {diff:.3g}")
    # the script constructs it with resolution only; it stays in train mode, as theirs does (style mixing, w_avg updates)
    script.model_v2 = types.SimpleNamespace(StyleGAN2Generator=cls)
    return theirs.train(), diff


_OURS = {"style.weight": "affine.weight", "style.bias": "affine.bias", "noise": "noise_const"}  # genforce name -> ours


def to_genforce(G, template: dict) -> dict:
    """Our state dict under genforce's names: the inverse of the plugin's genforce reader (``convert.py``).

    Their filter kernels are buffers built from [1, 3, 3, 1], the demo's filter, and are kept."""
    ours = G.state_dict()
    pairs = {"truncation.w_avg": "mapping.w_avg", "synthesis.early_layer.const": "synthesis.b4.const"}
    pairs.update({f"mapping.dense{i}.{p}": f"mapping.fc{i}.{p}"
                  for i in range(G.config.mapping_layers) for p in ("weight", "bias")})
    layers = [("synthesis.layer0", "synthesis.b4.conv1"), ("synthesis.output0", "synthesis.b4.torgb")]
    for j, res in enumerate(G.synthesis.resolutions[1:]):
        block = f"synthesis.b{res}"
        layers += [(f"synthesis.layer{2 * j + 1}", f"{block}.conv0"), (f"synthesis.layer{2 * j + 2}", f"{block}.conv1"),
                   (f"synthesis.output{j + 1}", f"{block}.torgb")]
    for theirs, mine in layers:
        for p in ("weight", "bias", "style.weight", "style.bias", "noise_strength", "noise"):
            key = f"{theirs}.{p}"
            if key in template:
                pairs[key] = f"{mine}.{_OURS.get(p, p)}"
    state = {}
    for theirs, mine in pairs.items():
        value = ours.pop(mine)
        if mine.endswith("affine.bias"):
            value = value - 1  # genforce adds 1 at run time
        state[theirs] = value.reshape(template[theirs].shape).clone()
    kept = set(template) - set(state)
    if ours or any(not k.endswith("kernel") for k in kept):
        raise SystemExit(f"weights left unmapped: ours {sorted(ours)}, theirs {sorted(kept)}")
    return {**{k: template[k] for k in kept}, **state}


# ------------------------------------------------------------------------------------------- encoder


def _demo_sized(script, G) -> list:
    """Make the script's ``BE.BE(...)`` build their BE at the demo's sizes; returns the list it appends to."""
    built = []
    widest = max(G.config.channels.values())

    class DemoBE(script.BE.BE):
        """BE with maxf and latent_size the demo's, whatever the script passes (FFHQ's 512)."""

        def __init__(self, startf, maxf, layer_count, latent_size, channels):
            super().__init__(startf=startf, maxf=widest, layer_count=layer_count, latent_size=G.w_dim, channels=channels)
            built.append(self)

        def forward(self, x, block_num=None):
            # BE.forward at latent_size: each block gives (w1, w2) and the ws run last block first, w2 before w1
            x = self.FromRGB(x)
            ws = []
            for block in self.decode_block:
                x, w1, w2 = block(x)
                ws = [w2, w1] + ws
            return x, torch.stack(ws, dim=1)

    script.BE = types.SimpleNamespace(BE=DemoBE)
    return built


def save_converted(E, path: Path, G, folder: Path, samples: int) -> float:
    """Their file through dse's reader, saved as an encoder folder for ``G``; returns the largest |ws difference|
    from their BE (noise strengths zeroed in a copy: ours draws no noise in eval mode)."""
    import copy

    from dse_core import load_authors_encoder
    from dse_core.models.format import generator_record

    encoder = load_authors_encoder(path, family=G.family)
    quiet = copy.deepcopy(E)
    with torch.no_grad():
        for name, p in quiet.named_parameters():
            if "noise_weight" in name:
                p.zero_()
        x = G(torch.randn(8, G.z_dim, generator=torch.Generator().manual_seed(2)))
        diff = (quiet(x)[1] - encoder(x)["ws"]).abs().max().item()
    if diff > 1e-4:
        raise SystemExit(f"the converted encoder's ws differ from their BE's by {diff:.3g}")
    source = {**encoder.source, "format": "stylegan2/dse-authors-BE", "trained_by": "disanda/DSE E_align_s2.py train()",
              "tool": "tools/authors_baseline.py", "samples": samples, "generator": generator_record(G, DEMO)}
    encoder.save_pretrained(folder, source=source)
    return diff


# ------------------------------------------------------------------------------------------- run


def _run(script, G, args, checkpoint: Path, iterations: int, workdir: Path) -> float:
    """Their train() for ``iterations``, its prints silenced, a progress line every 100 iterations; wall seconds."""
    started = time.perf_counter()
    set_seed = script.set_seed

    def seeded(seed):  # called first in each of their iterations
        if seed % 100 == 0:
            print(f"  iteration {seed}/{iterations}, {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        set_seed(seed)

    class NoLPIPS:  # LPIPS off: the term is 0
        def __init__(self, *a, **k):
            pass

        def to(self, *a, **k):
            return self

        def __call__(self, x, y):
            return x.new_zeros(x.shape[0])

    script.set_seed = seeded
    script.lpips = types.SimpleNamespace(LPIPS=NoLPIPS)
    options = argparse.Namespace(
        iterations=iterations, lr=args.lr, beta_1=0.0, batch_size=args.batch_size, checkpoint_dir_GAN=str(checkpoint),
        checkpoint_dir_E=None, img_size=G.resolution, img_channels=G.img_channels, z_dim=G.z_dim, mtype=2,
        start_features=G.config.channels[G.resolution], config_dir=None, experiment_dir=str(workdir))
    train_authors(script, options)
    return time.perf_counter() - started


if __name__ == "__main__":
    sys.exit(main())

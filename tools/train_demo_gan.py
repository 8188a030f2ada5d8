"""Train a plugin's embedded demo generator (StyleGAN2, StyleGAN, PGGAN, BigGAN): 32 px digits, on one CPU thread.

The data is scikit-learn's digits (UCI optdigits) upscaled to 32 px RGB; the last 297
digits are held out (see ``demo_digits.py``). Training follows StyleGAN2 at small
scale for every family: non-saturating logistic loss, lazy R1 on reals, Adam(0, 0.99)
with equalized lr, an EMA of G (the saved weights), style mixing where the family has
a mapping network, and differentiable translation of D's inputs. No path-length
regularization, no progressive growing (PGGAN trains at full size). BigGAN is
class-conditional on the digit: its D is a projection discriminator (Miyato & Koyama
2018), and its batch norms train on batch statistics, then the per-truncation tables
are measured (``measure_statistics``). The discriminator
lives here, not in the library: only G ships.

At the end (``set_sampling_buffers``) a style generator's ``w_avg`` is set to the mean of ``mapping(z)`` over 10k
fixed z, the EMA generator is scored by ``check_demo_samples.py`` and saved with
``save_pretrained``.

Usage (a developer runs it once, never CI)::

    python tools/train_demo_gan.py                   # the shipped StyleGAN2 generator: 10000 steps, 43 min
    python tools/train_demo_gan.py --resume          # continue from runs/demo-gan/checkpoint.pt
    python tools/train_demo_gan.py --steps 5500 --channels-top 64   # the first demo generator (39 min, worse samples)
    python tools/train_demo_gan.py --gan stylegan    # the StyleGAN1 plugin's (runs/demo-gan-stylegan/)
    python tools/train_demo_gan.py --gan pggan       # the PGGAN plugin's
    python tools/train_demo_gan.py --gan biggan --lr 0.002    # the BigGAN plugin's (class-conditional)
    python tools/train_demo_gan.py --data misaligned --steps 5000 --out runs/misaligned/generator \
        --run-dir runs/misaligned/gan                 # digits shifted and scaled (misaligned_experiment.py)

Everything is seeded; with one thread, the same arguments give the same weights.
"""

from __future__ import annotations

import argparse
import copy
import io
import math
import sys
import time
from pathlib import Path

import attrs
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_demo_samples import check_generator, demo_dir, format_report, write_grid  # noqa: E402
from demo_digits import HELDOUT, MISALIGN_SCALE, RESOLUTION, load_split, misalign, to_images  # noqa: E402

from dse_core.config import write_bytes_atomic  # noqa: E402
from dse_core.nn import EqualConv2d, EqualLinear, downsample2d, filter2d, setup_filter  # noqa: E402
from dse_core.nn import LRELU_GAIN  # noqa: E402
from dse_core import Generator, StyleGenerator, get_host  # noqa: E402

TOOL = "tools/train_demo_gan.py"
DATASET = "scikit-learn digits (UCI optdigits), 32px RGB"


@attrs.frozen
class Options:
    """Training settings; every one is a CLI flag (``--r1-gamma`` for ``r1_gamma``)."""

    gan: str = "stylegan2"  # the family whose demo generator this trains
    data: str = "aligned"  # "aligned": the digits as they are; "misaligned": each real redrawn at a random scale and place
    steps: int = 10_000  # generator updates (about 0.26 s each on one thread at these defaults)
    batch: int = 32  # images per step, for G and for D
    seed: int = 0
    lr: float = 0.0025  # Adam learning rate of G and D (equalized lr)
    r1_gamma: float = 0.1  # R1 weight (StyleGAN2-ADA's CIFAR setting 0.01 let D sharpen and G collapse)
    r1_interval: int = 16  # lazy R1: every this many steps, scaled up to match
    ema_kimg: float = 10.0  # EMA half-life in thousands of images ...
    ema_rampup: float = 0.05  # ... but at most this fraction of the images seen so far
    mixing: float = 0.3  # probability of style mixing per sample (style generators)
    translate: int = 2  # random shift of D's inputs (real and fake), in pixels; 0 = off
    channels: int = 64  # feature maps at 4..16 px, in G and D
    channels_top: int = 32  # feature maps at 32 px (G's last block, D's first); 64 makes a step 1.8x slower
    w_dim: int = 64  # z_dim = w_dim (z_dim alone without a mapping network)
    mapping_layers: int = 4
    mapping_lr_mul: float = 0.1  # StyleGAN2's 0.01 leaves the mapping network nearly frozen in a short run
    log_every: int = 50
    checkpoint_every: int = 500  # also writes a sample grid to the run folder


DATA = ("aligned", "misaligned")
STYLE_FAMILIES = ("stylegan2", "stylegan")  # with a mapping network: w_dim, mapping_layers, mapping_lr_mul apply
Z_FAMILIES = ("pggan",)  # z straight into the synthesis: z_dim only


def demo_generator(opts: Options) -> Generator:
    """The family's generator at the demo's size."""
    cls = get_host().family(opts.gan).generator_class
    common = dict(resolution=RESOLUTION, z_dim=opts.w_dim,
                  channels={4: opts.channels, 8: opts.channels, 16: opts.channels, 32: opts.channels_top})
    if opts.gan in STYLE_FAMILIES:
        return cls(cls.config_class(**common, w_dim=opts.w_dim, mapping_layers=opts.mapping_layers,
                                    mapping_lr_mul=opts.mapping_lr_mul))
    if opts.gan in Z_FAMILIES:
        return cls(cls.config_class(**common))
    if opts.gan == "biggan":  # BigGAN-deep: a block keeping the size, then one doubling it, at 4, 8 and 16 px
        c, top = opts.channels, opts.channels_top
        return cls(cls.config_class(resolution=RESOLUTION, channels=(2 * c, 2 * c, 2 * c, c, c, top, top),
                                    upsample=(False, True, False, True, False, True), attention=4,
                                    z_dim=opts.w_dim, embed_dim=opts.w_dim, c_dim=10, n_stats=51))
    raise SystemExit(f"no demo recipe for the {opts.gan} family; this tool knows "
                     f"{', '.join(STYLE_FAMILIES + Z_FAMILIES + ('biggan',))}")


# --- discriminator (StyleGAN2 residual D, small) -------------------------------------------


class DiscriminatorBlock(nn.Module):
    """Two 3x3 convs, the second one downsampling (blur + stride 2), plus a downsampled 1x1 skip."""

    def __init__(self, in_channels: int, out_channels: int, resample_filter: torch.Tensor):
        super().__init__()
        self.conv0 = EqualConv2d(in_channels, in_channels, 3, padding=1)
        self.conv1 = EqualConv2d(in_channels, out_channels, 3, stride=2)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False)
        self.register_buffer("resample_filter", resample_filter, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip(downsample2d(x, self.resample_filter))
        x = F.leaky_relu(self.conv0(x), 0.2) * LRELU_GAIN
        x = filter2d(x, self.resample_filter, padding=(2, 2, 2, 2))  # 4-tap blur, then the strided 3x3
        x = F.leaky_relu(self.conv1(x), 0.2) * LRELU_GAIN
        return (skip + x) * math.sqrt(0.5)


def minibatch_stddev(x: torch.Tensor, group: int = 4) -> torch.Tensor:
    """Append the mean standard deviation over groups of ``group`` samples as one feature map."""
    n, c, h, w = x.shape
    g = math.gcd(group, n)
    y = x.reshape(g, -1, c, h, w)
    y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (n / g,)
    y = y.reshape(-1, 1, 1, 1).repeat(g, 1, h, w)
    return torch.cat([x, y], dim=1)


class Discriminator(nn.Module):
    """fromRGB -> residual blocks down to 4x4 -> minibatch stddev, conv, fc, fc -> one logit."""

    def __init__(self, channels: int, channels_top: int, resolution: int = RESOLUTION, img_channels: int = 3,
                 c_dim: int = 0):
        super().__init__()
        f = setup_filter([1, 3, 3, 1])
        num_blocks = int(math.log2(resolution)) - 2
        widths = [channels_top] + [channels] * num_blocks  # channels_top at full resolution only
        self.fromrgb = EqualConv2d(img_channels, channels_top, 1)
        self.blocks = nn.Sequential(*[DiscriminatorBlock(widths[i], widths[i + 1], f) for i in range(num_blocks)])
        self.conv = EqualConv2d(channels + 1, channels, 3, padding=1)
        self.fc = EqualLinear(channels * 16, channels, act="lrelu")
        self.out = EqualLinear(channels, 1)
        # projection discriminator: + <embed(c), features> for a class-conditional G
        self.project = EqualLinear(c_dim, channels, bias=False) if c_dim else None

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        x = F.leaky_relu(self.fromrgb(img), 0.2) * LRELU_GAIN
        x = minibatch_stddev(self.blocks(x))
        x = F.leaky_relu(self.conv(x), 0.2) * LRELU_GAIN
        h = self.fc(x.flatten(1))
        logit = self.out(h).squeeze(1)
        return logit if self.project is None else logit + (self.project(c) * h).sum(dim=1) / math.sqrt(h.shape[1])


def translate(x: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by up to ``pixels`` in x and y, filling with background (-1); differentiable."""
    if pixels == 0:
        return x
    n, c, h, w = x.shape
    shift = torch.randint(-pixels, pixels + 1, (2, n, 1), generator=generator)
    padded = F.pad(x, [pixels] * 4, value=-1.0)
    rows = torch.arange(h) + pixels - shift[0]  # (n, h): the padded row each output row reads
    cols = torch.arange(w) + pixels - shift[1]
    x = padded.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, w + 2 * pixels))
    return x.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))


# --- one step ---------------------------------------------------------------------------------


def generate(G: Generator, n: int, mixing: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(fake images with random noise, their classes or None); with probability ``mixing`` a sample's later ws
    come from a second z."""
    z = torch.randn(n, G.z_dim, generator=generator)
    if not isinstance(G, StyleGenerator):
        c = G.sample_c(n, generator=generator)
        return G(z, c, noise_mode="random"), c
    ws = G.mapping(z)
    if mixing > 0:
        ws2 = G.mapping(torch.randn(n, G.z_dim, generator=generator))
        cutoff = torch.randint(1, G.num_ws, (n, 1), generator=generator)
        cutoff = torch.where(torch.rand(n, 1, generator=generator) < mixing, cutoff, G.num_ws)
        ws = torch.where((torch.arange(G.num_ws).view(1, -1) >= cutoff).unsqueeze(2), ws2, ws)
    return G.synthesis(ws, noise_mode="random"), None


def r1_penalty(D: Discriminator, reals: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    """Mean over the batch of |grad_x D(x)|^2 on real images."""
    reals = reals.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(reals, c).sum(), reals, create_graph=True)
    return grad.square().sum(dim=(1, 2, 3)).mean()


@torch.no_grad()
def update_ema(G_ema: Generator, G: Generator, beta: float) -> None:
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.lerp_(p, 1 - beta)
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def ema_beta(opts: Options, images_seen: int) -> float:
    half_life = min(opts.ema_kimg * 1000, images_seen * opts.ema_rampup)
    return 0.5 ** (opts.batch / max(half_life, 1e-8))


# --- checkpoints and the end ------------------------------------------------------------------


def save_checkpoint(path: Path, state: dict) -> None:
    """Weights, optimizers, RNG states and step in one file, written atomically (``torch.load(weights_only=True)``)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes_atomic(path, buffer.getvalue())


@torch.no_grad()
def set_sampling_buffers(G: Generator, n: int = 10_000, seed: int = 12345) -> None:
    """Truncation centre of a style generator: the mean of mapping(z) over ``n`` fixed z (every layer's row);
    BigGAN's per-truncation batch-norm tables (``n`` samples per table row)."""
    if hasattr(G, "measure_statistics"):
        G.measure_statistics(batches=max(1, n // 2500), batch_size=min(n, 250), seed=seed)
        return
    if not isinstance(G, StyleGenerator):
        return
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    G.mapping.w_avg.copy_(G.mapping(z)[:, 0].mean(dim=0).expand_as(G.mapping.w_avg))


def model_card(opts: Options, report: dict, minutes: float) -> str:
    held = report["heldout_real"]
    lines = [
        f"# dse {opts.gan} demo generator (32 px digits)",
        "",
        f"Trained by `{TOOL}` on the {DATASET}: the first {HELDOUT[0]} of scikit-learn's 1797 digits;",
        f"indices {HELDOUT[0]}..{HELDOUT[1]} are held out. Dataset: UCI Optical Recognition of Handwritten Digits,",
        "CC BY 4.0 (Alpaydin & Kaynak, 1998).",
        "",
        f"{opts.steps} steps of batch {opts.batch}, seed {opts.seed}, {minutes:.0f} min on one CPU thread; EMA weights."
        + (" Each real digit redrawn at a random scale and place (`--data misaligned`)." if opts.data == "misaligned" else ""),
        "",
        "A digits classifier (logistic regression, 8x8) on 2000 samples: mean top-1 confidence "
        + ", ".join(f"{r['mean_confidence']:.3f} at {k.replace('_', ' ')}" for k, r in report.items() if k.startswith("psi"))
        + f"; held-out real digits {held['mean_confidence']:.3f}. A toy for offline demos, not a research model.",
        "",
    ]
    return "\n".join(lines)


def finish(G_ema: Generator, opts: Options, out: Path, run_dir: Path, minutes: float) -> None:
    set_sampling_buffers(G_ema)
    report = check_generator(G_ema)
    print(format_report(report), flush=True)
    content = "a white handwritten digit, centred, on black"
    dataset = DATASET
    if opts.data == "misaligned":
        content = (f"a white handwritten digit at {MISALIGN_SCALE[0]:g}-{MISALIGN_SCALE[1]:g} of the frame's size, "
                   "anywhere inside it, on black")
        dataset += f", each digit scaled by {MISALIGN_SCALE[0]:g}-{MISALIGN_SCALE[1]:g} and shifted at random"
    source = {
        "format": "trained",
        "tool": TOOL,
        "dataset": dataset,
        "steps": opts.steps,
        "batch": opts.batch,
        "seed": opts.seed,
        "heldout": list(HELDOUT),
        "classifier_confidence": {k: r["mean_confidence"] for k, r in report.items() if k != "heldout_real_32px"},
        "train_minutes": round(minutes, 1),
        # what its images look like: dse invert composites transparent inputs on this background
        "images": {"background": "black", "content": content},
    }
    G_ema.save_pretrained(out, source=source)
    write_bytes_atomic(out / "README.md", model_card(opts, report, minutes).encode())
    write_grid(G_ema, run_dir / "final.png")
    print(f"saved {out} ({(out / 'model.safetensors').stat().st_size / 2**20:.2f} MB); grid {run_dir / 'final.png'}", flush=True)


# --- the loop ---------------------------------------------------------------------------------


def train(opts: Options, out: Path, run_dir: Path, resume: bool) -> None:
    torch.manual_seed(opts.seed)
    rng = torch.Generator().manual_seed(opts.seed)
    if opts.data not in DATA:
        raise SystemExit(f"--data must be one of {', '.join(DATA)}, not {opts.data!r}")
    train_x, train_y, _, _ = load_split()
    reals_all, labels_all = to_images(train_x), torch.as_tensor(train_y)

    G = demo_generator(opts).train()
    D = Discriminator(opts.channels, opts.channels_top, c_dim=G.c_dim).train()
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_G = torch.optim.Adam(G.parameters(), lr=opts.lr, betas=(0.0, 0.99), eps=1e-8)
    c = opts.r1_interval / (opts.r1_interval + 1)  # lazy regularization keeps D's effective Adam settings
    opt_D = torch.optim.Adam(D.parameters(), lr=opts.lr * c, betas=(0.0, 0.99**c), eps=1e-8)

    step, elapsed = 0, 0.0
    ckpt_path = run_dir / "checkpoint.pt"
    if resume and ckpt_path.is_file():
        state = torch.load(ckpt_path, weights_only=True)
        for name, obj in (("G", G), ("D", D), ("G_ema", G_ema), ("opt_G", opt_G), ("opt_D", opt_D)):
            obj.load_state_dict(state[name])
        rng.set_state(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
        print(f"resumed from {ckpt_path} at step {step}", flush=True)

    start, stats, r1 = time.perf_counter() - elapsed, [], torch.zeros(())
    while step < opts.steps:
        # G: non-saturating loss
        G.requires_grad_(True)
        D.requires_grad_(False)
        fakes, fake_c = generate(G, opts.batch, opts.mixing, rng)
        loss_G = F.softplus(-D(translate(fakes, opts.translate, rng), fake_c)).mean()
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        opt_G.step()

        # D: logistic loss, plus lazy R1 on un-shifted reals
        G.requires_grad_(False)
        D.requires_grad_(True)
        pick = torch.randint(len(reals_all), (opts.batch,), generator=rng)
        reals = reals_all[pick] if opts.data == "aligned" else misalign(reals_all[pick], rng)  # fresh each draw
        real_c = F.one_hot(labels_all[pick], G.c_dim).float() if G.c_dim else None
        with torch.no_grad():
            fakes, fake_c = generate(G, opts.batch, opts.mixing, rng)
        logits_fake = D(translate(fakes, opts.translate, rng), fake_c)
        logits_real = D(translate(reals, opts.translate, rng), real_c)
        loss_D = F.softplus(logits_fake).mean() + F.softplus(-logits_real).mean()
        if step % opts.r1_interval == 0:
            r1 = r1_penalty(D, reals, real_c)
            loss_D = loss_D + r1 * (opts.r1_gamma / 2 * opts.r1_interval)
        opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        opt_D.step()

        step += 1
        update_ema(G_ema, G, ema_beta(opts, step * opts.batch))
        stats.append([loss_G.item(), loss_D.item(), logits_real.mean().item(), logits_fake.mean().item()])
        if step % opts.log_every == 0 or step == opts.steps:
            log_progress(step, opts, stats, time.perf_counter() - start, r1.item())
            stats = []
        if step % opts.checkpoint_every == 0 or step == opts.steps:
            save_checkpoint(ckpt_path, {
                "G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
                "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(), "rng": rng.get_state(),
                "torch_rng": torch.get_rng_state(), "step": step, "elapsed": time.perf_counter() - start,
            })
            set_sampling_buffers(G_ema, n=250)  # for the grid's psi 0.7 half; G's buffer (zeros) overwrites it at the next EMA update
            write_grid(G_ema, run_dir / f"grid-{step:06d}.png")
    finish(G_ema, opts, out, run_dir, (time.perf_counter() - start) / 60)


def log_progress(step: int, opts: Options, stats: list, seconds: float, r1: float) -> None:
    loss_G, loss_D, real, fake = torch.tensor(stats).mean(dim=0).tolist()
    eta = seconds / step * (opts.steps - step)
    print(f"step {step:>6}/{opts.steps}  kimg {step * opts.batch / 1000:7.1f}  {seconds / step:.2f} s/step  "
          f"G {loss_G:.3f}  D {loss_D:.3f}  D(real) {real:+.2f}  D(fake) {fake:+.2f}  R1 {r1:.3f}  "
          f"elapsed {seconds / 60:.1f} min  eta {eta / 60:.1f} min", flush=True)


def parse_args(argv: list[str] | None) -> tuple[Options, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for field in attrs.fields(Options):
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default),
                            default=field.default, help=f"default {field.default}")
    parser.add_argument("--out", type=Path, help="folder for the saved generator (default: the plugin's demo)")
    parser.add_argument("--run-dir", type=Path, help="checkpoint and sample grids (default runs/demo-gan[-GAN])")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt if present")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: reproducible and polite)")
    args = parser.parse_args(argv)
    opts = Options(**{f.name: getattr(args, f.name) for f in attrs.fields(Options)})
    args.out = args.out or demo_dir(opts.gan) / "generator"
    args.run_dir = args.run_dir or Path("runs/demo-gan" if opts.gan == "stylegan2" else f"runs/demo-gan-{opts.gan}")
    return opts, args


def main(argv: list[str] | None = None) -> int:
    opts, args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    print(f"options: {attrs.asdict(opts)}", flush=True)
    train(opts, args.out, args.run_dir, args.resume)
    return 0


if __name__ == "__main__":
    sys.exit(main())

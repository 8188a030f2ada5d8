"""DSE training-step speed: dse vs. the authors' E_align_s2.py, measured in one run.

    python benchmarks/train_speed.py                                        # dse only
    python benchmarks/train_speed.py --baseline-dir ../refs/disanda+DSE     # + the authors' code
    python benchmarks/train_speed.py --demo                                 # dse, the 32 px demo generator

One step = sample z, x = G(w) without grad, E(x), x' = G(E(x)), the loss, backward,
optimizer step. Random weights (LPIPS on a random VGG16: nothing is downloaded),
StyleGAN2 config F at 256 px, batch 2, 2 threads, float32, CPU.

- ``dse``: ``make_training_pairs`` + ``training_step`` with a preset (default
  ``paper-s2``, the paper's Eq. 1-8 with AT1/AT2 resized to full size; ``code-s2``
  is the closest to the authors' script: crops scored at crop size, no KL).
- ``authors``: the authors' own ``train()`` from ``E_align_s2.py`` (``--mtype 2``,
  ``start_features 64``), run unmodified; only what a CPU-only machine lacks is
  patched (see ``_patch_authors``). Its code is imported from ``--baseline-dir``;
  nothing of it is part of this repository.

Each implementation runs in its own process, so its peak memory (max RSS) is its
own. The processes are started one after the other and then take turns, one step
each (order reversed every cycle), while the others wait idle: a busy spell on a
shared machine slows all of them alike. samples/s is the batch over the median step
time (after ``--warmup`` untimed steps); the speed ratio is the median over cycles of
the step-time ratio within a cycle. ``backward`` is the time spent inside
``Tensor.backward`` (the authors call it twice per step), ``other`` the rest of the
step: forward passes, loss, optimizer.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

DEMO_RESOLUTION = 32


def _demo_config():
    """The architecture of the StyleGAN2 plugin's embedded demo generator (its weights are not used)."""
    import dse_plugin_stylegan2
    from dse_core.config import from_dict
    from dse_plugin_stylegan2 import StyleGAN2Config

    header = json.loads((Path(dse_plugin_stylegan2.__file__).parent / "demo" / "generator" / "config.json").read_text())
    return from_dict(StyleGAN2Config, header["config"])


class _Worker:
    """The worker side of the protocol: 'ready' once built, then one JSON line per step on request."""

    def __init__(self):
        import torch

        self.out = os.fdopen(os.dup(sys.stdout.fileno()), "w")  # the driver's channel, whatever the code prints
        self.backward_s = 0.0
        original = torch.Tensor.backward

        def backward(tensor, *args, **kwargs):  # wall time inside Tensor.backward
            start = time.perf_counter()
            try:
                return original(tensor, *args, **kwargs)
            finally:
                self.backward_s += time.perf_counter() - start

        torch.Tensor.backward = backward

    def send(self, message: dict) -> None:
        self.out.write(json.dumps(message) + "\n")
        self.out.flush()

    def wait(self) -> None:
        if sys.stdin.readline().strip() != "step":
            sys.exit(0)


# ----------------------------------------------------------------------------------------------- dse


def run_dse(args, worker: _Worker) -> None:
    import warnings

    import attrs
    import torch

    from dse_core.encoder import Encoder
    from dse_core.loss import DSELoss, load_lpips
    from dse_core.train.config import config_for_preset
    from dse_core.train.presets import get_preset
    from dse_core.train.samples import make_training_pairs, step_generator
    from dse_core.train.trainer import training_step
    from dse_plugin_stylegan2 import Generator, StyleGAN2Config
    from dse_plugin_stylegan2.encoder import encoder_plan

    preset = get_preset(args.preset)
    cfg = _demo_config() if args.demo else StyleGAN2Config.standard(args.resolution)
    G = Generator(cfg).eval().requires_grad_(False)
    encoder_config = attrs.evolve(encoder_plan(G), downsample="fused" if preset.fused_downsample else "avgpool")
    encoder = Encoder(encoder_config).train()
    config = config_for_preset(args.preset, batch_size=args.batch)
    lpips = None
    if preset.loss.image.lpips:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lpips = load_lpips(allow_untrained=True)
    loss_fn = DSELoss(preset.loss, lpips=lpips)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=config.lr, betas=config.betas)
    device = torch.device("cpu")
    worker.send({"ready": True})
    for step in range(args.warmup + args.iters):
        worker.wait()
        worker.backward_s = 0.0
        start = time.perf_counter()
        pairs = make_training_pairs(G, args.batch, step_generator(config.seed, 0, step), config, device)
        training_step(G, encoder, loss_fn, optimizer, pairs, config)
        worker.send({"step_s": time.perf_counter() - start, "backward_s": worker.backward_s})


# ------------------------------------------------------------------------------------------- authors


def _stub_missing(name: str, **attributes) -> None:
    """An empty module for an import the authors' script makes but never uses on this path."""
    import importlib

    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        sys.modules[name] = module


def _patch_authors(baseline_dir: str, workdir: Path):
    """Import E_align_s2.py on a CPU-only machine; returns the module. Patches, all listed in the README:

    - missing imports it never calls here are stubbed when not installed (matplotlib, tensorboardX,
      boto3, requests, botocore: plotting, logging, BigGAN downloads);
    - ``Tensor.cuda`` / ``Module.cuda`` return the object itself and the script's global ``device`` is CPU;
    - ``lpips.LPIPS(net='vgg')`` is built with ``pnet_rand=True`` (no VGG download) and stays on the CPU;
    - the writer is a no-op and its prints go to /dev/null; outputs (the iteration-0 image grid, the
      iteration-0 encoder snapshot, Loss.txt) go to a temporary folder.
    """
    import torch
    from torch import nn

    for name in ("matplotlib", "matplotlib.pyplot", "boto3", "requests", "botocore"):
        _stub_missing(name)
    _stub_missing("botocore.exceptions", ClientError=Exception)
    _stub_missing("tensorboardX", SummaryWriter=None)
    torch.Tensor.cuda = lambda self, *a, **k: self
    nn.Module.cuda = lambda self, *a, **k: self
    sys.path.insert(0, baseline_dir)
    os.chdir(baseline_dir)  # the script opens paths relative to its folder
    import lpips

    import E_align_s2 as script  # noqa: E402  (the authors' module)

    class CpuLPIPS(lpips.LPIPS):
        def __init__(self, *args, **kwargs):
            heads = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{kwargs.get('net', 'alex')}.pth"
            super().__init__(*args, pnet_rand=True, model_path=str(heads), verbose=False, **kwargs)

        def to(self, *args, **kwargs):
            return self if args and args[0] == "cuda" else super().to(*args, **kwargs)

    script.lpips = types.SimpleNamespace(LPIPS=CpuLPIPS)
    script.device = torch.device("cpu")
    for name in ("resultPath", "resultPath1_1", "resultPath1_2"):
        folder = workdir / name
        folder.mkdir()
        setattr(script, name, str(folder))
    return script


def train_authors(script, options: argparse.Namespace) -> None:
    """The authors' ``train()`` (a module from :func:`_patch_authors`) with ``options``, its prints silenced and its
    tensorboard writer a no-op."""
    writer = types.SimpleNamespace(add_scalar=lambda *a, **k: None, add_scalars=lambda *a, **k: None)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        script.train(tensor_writer=writer, args=options)


def run_authors(args, worker: _Worker) -> None:
    import torch

    workdir = Path(tempfile.mkdtemp(prefix="dse-bench-"))
    script = _patch_authors(args.baseline_dir, workdir)
    # a random-weight "checkpoint" in the format the script loads
    G = script.model_v2.StyleGAN2Generator(resolution=args.resolution)
    checkpoint = workdir / "stylegan2_random.pth"
    torch.save({"generator": G.state_dict()}, checkpoint)
    del G

    started: list[float] = []
    set_seed = script.set_seed

    def timed_set_seed(seed):  # the first call of every iteration of the script's loop
        if started:
            worker.send({"step_s": time.perf_counter() - started[-1], "backward_s": worker.backward_s})
        else:
            worker.send({"ready": True})
        worker.wait()
        worker.backward_s = 0.0
        started.append(time.perf_counter())
        set_seed(seed)

    script.set_seed = timed_set_seed
    options = argparse.Namespace(
        iterations=args.warmup + args.iters, lr=0.0015, beta_1=0.0, batch_size=args.batch,
        checkpoint_dir_GAN=str(checkpoint), checkpoint_dir_E=None, img_size=args.resolution, img_channels=3,
        z_dim=512, mtype=2, start_features=_start_features(args.resolution), config_dir=None,
        experiment_dir=str(workdir),
    )
    try:
        train_authors(script, options)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    worker.send({"step_s": time.perf_counter() - started[-1], "backward_s": worker.backward_s})


def _start_features(resolution: int) -> int:
    """The script's --start_features comment: 16 -> 1024, 32 -> 512, 64 -> 256 (and below: 64, BE's widths then
    double per block up to maxf 512)."""
    return max(16, min(64, 16 * 1024 // resolution))


# ------------------------------------------------------------------------------------------- driver


def worker_main(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    worker = _Worker()
    (run_authors if args.worker == "authors" else run_dse)(args, worker)
    worker.send({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


class _Process:
    def __init__(self, name: str, cmd: list[str]):
        self.name = name
        self.stderr = tempfile.TemporaryFile("w+")  # not a pipe: nobody reads it until the end
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     text=True, cwd=Path(__file__).resolve().parent)
        self.steps: list[dict] = []
        self.peak_mb = 0.0

    def receive(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self.stderr.seek(0)
            sys.exit(f"{self.name} failed:\n{self.stderr.read()[-4000:]}")
        return json.loads(line)

    def step(self) -> dict:
        self.proc.stdin.write("step\n")
        self.proc.stdin.flush()
        result = self.receive()
        self.steps.append(result)
        return result

    def finish(self) -> None:
        self.proc.stdin.close()
        self.peak_mb = self.receive()["peak_mb"]
        self.proc.wait()


def _worker_cmd(args, impl: str, preset: str | None) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", impl]
    for key in ("resolution", "batch", "iters", "warmup", "threads"):
        cmd.append(f"--{key}={getattr(args, key)}")
    if preset:
        cmd.append(f"--preset={preset}")
    if args.demo:
        cmd.append("--demo")
    if impl == "authors":
        cmd.append(f"--baseline-dir={Path(args.baseline_dir).resolve()}")
    return cmd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-dir", help="local checkout of disanda/DSE (the authors' code)")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5, help="timed steps of each implementation, taken in turns")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--preset", default="paper-s2,code-s2", help="dse preset(s), comma-separated")
    parser.add_argument("--demo", action="store_true", help="dse only, on the 32 px demo generator (batch 8 unless --batch)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        worker_main(args)
        return

    if args.demo:
        args.resolution = DEMO_RESOLUTION
        if not any(a.startswith("--batch") for a in sys.argv[1:]):
            args.batch = 8
        if args.baseline_dir:
            print("note: --demo runs dse only (the authors' encoder hard-codes w_dim 512)")
            args.baseline_dir = None
    presets = [p.strip() for p in args.preset.split(",") if p.strip()]
    jobs = ([("authors", None)] if args.baseline_dir else []) + [("dse", p) for p in presets]
    what = "the demo generator's architecture (32 px)" if args.demo else f"StyleGAN2 config F {args.resolution}px"
    print(f"DSE training step, {what}, batch {args.batch}, {args.threads} threads, {args.iters} timed steps each "
          f"after {args.warmup} warm-up, implementations taking turns; load average {os.getloadavg()[0]:.1f} at start")
    procs = []
    for impl, preset in jobs:  # built one at a time, so that no set-up overlaps another's steps
        proc = _Process(impl if preset is None else f"{impl} {preset}", _worker_cmd(args, impl, preset))
        proc.receive()  # ready
        procs.append(proc)
    for cycle in range(args.warmup + args.iters):
        for proc in procs if cycle % 2 == 0 else procs[::-1]:
            proc.step()
    for proc in procs:
        proc.finish()

    results = {}
    for proc in procs:
        steps = proc.steps[args.warmup:]
        step = statistics.median(s["step_s"] for s in steps)
        backward = statistics.median(s["backward_s"] for s in steps)
        results[proc.name] = steps
        print(f"  {proc.name:14s} {args.batch / step:6.3f} samples/s  step {step:6.2f} s (backward {backward:5.2f} s, "
              f"other {step - backward:5.2f} s)  peak {proc.peak_mb:6.0f} MB   steps: "
              + " ".join(f"{s['step_s']:.3g}" for s in steps))
    if "authors" in results:
        base = next(p for p in procs if p.name == "authors")
        for proc in procs:
            if proc is base:
                continue
            ratios = [b["step_s"] / s["step_s"] for b, s in zip(results["authors"], results[proc.name])]
            print(f"  {proc.name} / authors: {statistics.median(ratios):.2f}x speed (per cycle: "
                  f"{' '.join(f'{r:.2f}' for r in ratios)}), {proc.peak_mb / base.peak_mb:.2f}x peak memory")
    print(f"  load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()

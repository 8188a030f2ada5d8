"""The DSE trainer (Algorithm 1): a thin loop over ``training_step``; files are written by helpers.

Each step draws fresh z from a seed derived from (seed, rank, step), makes
x = G(w) with G frozen, reconstructs x' = G(E(x)) and updates E on the DSE loss.
Because z depends only on the step, and the global RNG (encoder noise) is saved
with every checkpoint, N steps in one go and N/2 + ``--resume`` + N/2 give the
same weights.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from pathlib import Path
from typing import Callable, Sequence

import attrs
import torch
from torch.nn.parallel import DistributedDataParallel

from ..encoder import Encoder, EncoderConfig
from ..config import to_dict
from ..errors import DseError
from ..models.format import WEIGHTS_FILE, load_state, read_weights
from ..latents import check_latent_shapes, encoder_condition, fixed_latents, for_decode
from ..loss import DSELoss, LossConfig
from .. import distributed
from .config import TrainConfig, default_batch_size
from .outputs import RunFiles
from .ema import EncoderEMA
from .samples import Samples, make_training_pairs, step_generator
from .fit import fit_to_family
from .state import latest_checkpoint, load_checkpoint, save_checkpoint, set_rng_state

_PRECISION = {"bf16": torch.bfloat16, "fp16": torch.float16}


def training_step(G, E, loss_fn: DSELoss, optimizer, samples: Samples, cfg: TrainConfig, scaler=None) -> dict:
    """One update of E (two with ``latent_step="separate"``); returns the logged loss terms (detached).

    ``E`` is the encoder, or its DistributedDataParallel wrapper under torchrun.
    """
    latents, x, c = samples
    encoder = E.module if isinstance(E, DistributedDataParallel) else E
    separate = cfg.latent_step == "separate"
    # DDP syncs gradients once per forward; two backward passes average them by hand instead
    ddp = E if separate and isinstance(E, DistributedDataParallel) else None
    with ddp.no_sync() if ddp else contextlib.nullcontext():
        with torch.autocast(x.device.type, dtype=_PRECISION.get(cfg.precision, torch.float32), enabled=cfg.precision != "fp32"):
            predicted = E(x, encoder_condition(G, encoder, c, latents.get("z")))
            x_rec = G.decode(for_decode(G, encoder, predicted, c), noise_mode=cfg.noise_mode)
            values = loss_fn.per_sample(x.float(), x_rec.float(), latents, predicted)
        if separate:
            if "latent" not in values:
                raise DseError("latent_step 'separate' steps on the latent loss, and this run has no latent term")
            # the authors' order: step on the image loss, then on the latent loss, whose graph still holds the
            # pre-step encoder (retain_graph); image terms without a gradient (detached, strategy 1) take no step
            image = values["image"].mean()
            if image.requires_grad:
                _update(image, optimizer, scaler, ddp, retain_graph=True)
            _update(loss_fn.config.latent_weight * values["latent"].mean(), optimizer, scaler, ddp)
        else:
            _update(values["total"].mean(), optimizer, scaler)
    return {name: v.detach().mean() for name, v in values.items()}


def _update(loss: torch.Tensor, optimizer, scaler, ddp=None, retain_graph: bool = False) -> None:
    optimizer.zero_grad(set_to_none=True)
    (scaler.scale(loss) if scaler is not None else loss).backward(retain_graph=retain_graph)
    if ddp is not None:
        distributed.average_gradients(ddp.module)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()


def progress_line(terms: dict, rate: float) -> str:
    """``loss 0.41 | image 0.33 (mse 0.02 cos 0.05 ...) | latent 7.9 | 0.47 samples/s``: whole-image terms by name."""
    whole = " ".join(f"{k.split('/', 1)[1]} {float(v):.3g}" for k, v in terms.items() if k.startswith("img0/"))
    parts = [f"loss {float(terms['total']):.4g}", f"image {float(terms['image']):.4g}" + (f" ({whole})" if whole else "")]
    if "latent" in terms:
        parts.append(f"latent {float(terms['latent']):.4g}")
    return " | ".join([*parts, f"{rate:.2f} samples/s"])


@attrs.frozen
class TrainResult:
    run_dir: Path
    steps: int
    samples: int
    final_terms: dict
    rank: int = 0  # this process's rank: only rank 0 reports


def train(
    generator,
    run_dir: str | Path,
    config: TrainConfig,
    loss_config: LossConfig,
    encoder_config: EncoderConfig,
    lpips=None,
    resume: bool = False,
    gradcam=None,
    device: torch.device = torch.device("cpu"),
    generator_info: dict | None = None,
    notes: Sequence[str] = (),
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train an encoder for ``generator`` into ``run_dir`` with the configs given (``dse train`` sets them up:
    :func:`dse_core.train.setup.train_encoder`).

    ``lpips`` / ``gradcam``: the VGG16 modules the loss needs (``load_lpips`` / ``load_gradcam``;
    built by :class:`DSELoss` from local weights when None and the loss config asks for them).
    ``notes``: what the setup adapted, recorded in ``run.json``.
    """
    dist, device = distributed.init(device)
    if config.precision == "fp16" and device.type != "cuda":
        raise DseError(f"--precision fp16 needs a CUDA GPU; this run is on {device}", hint="on a CPU use --precision bf16")
    G = generator.to(device).eval().requires_grad_(False)  # eval: batch-norm generators keep their statistics
    fit_to_family(G, config, loss_config, encoder_config, given=set(attrs.fields_dict(TrainConfig)),
                  preset=config.preset)  # what G cannot honour is refused before anything is written
    encoder_config = with_fixed_latents(G, encoder_config, config)
    torch.manual_seed(config.seed)  # the same initial encoder on every rank and in every rerun
    encoder = Encoder(encoder_config).to(device).train()
    check_latent_shapes(G, encoder)
    torch.manual_seed(config.seed * 1_000_003 + dist.rank + 1)  # the encoder's training noise differs per rank
    loss_fn = DSELoss(loss_config, lpips=lpips, gradcam=gradcam).to(device)
    latent_loss = loss_config.weights_of(encoder.latent_shapes)
    if not latent_loss:
        log(f"note: no latent loss (Eq. 5): the encoder predicts {', '.join(encoder.latent_shapes) or 'nothing'} and the "
            f"loss weighs {'none of it' if loss_config.latent_weight else 'latents at 0'}; only the image terms train it")
    optimizer = torch.optim.Adam(encoder.parameters(), lr=config.lr, betas=config.betas)
    ema = EncoderEMA(encoder, config.ema_halflife) if config.ema_halflife else None
    kept = encoder if ema is None else ema.model  # the encoder the grids show and the run saves
    files = RunFiles(Path(run_dir), enabled=dist.is_main)
    step, samples, batch = 0, 0, config.batch_size or default_batch_size(G.resolution)
    run = (config, loss_config, encoder_config, generator_info or {}, loss_fn.metadata(), latent_loss, list(notes))
    if resume:
        files.check_resumable(*run)
        step, samples, batch = _resume(Path(run_dir), encoder, optimizer, config.samples, log, ema)
    else:
        files.start(*run)
    model = DistributedDataParallel(encoder) if dist.enabled else encoder
    scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
    checkpoint = latest_checkpoint(Path(run_dir)) if resume else None
    terms: dict = {}
    bar = files.progress(total=config.samples, initial=samples, enabled=progress and dist.is_main)
    ctrl_c = _CtrlC((lambda m: (bar.clear(), log(m))) if dist.is_main else (lambda m: None))
    started, done_at_start = time.perf_counter(), samples
    try:
        while samples < config.samples:
            n = min(batch, math.ceil((config.samples - samples) / dist.world_size))
            rng = step_generator(config.seed, dist.rank, step)
            try:
                pairs = make_training_pairs(G, n, rng, config, device)
                terms = training_step(G, model, loss_fn, optimizer, pairs, config, scaler)
            except torch.cuda.OutOfMemoryError:
                batch = _halve_batch(batch, dist, device, log)
                continue
            step += 1
            samples += n * dist.world_size
            if ema is not None:
                ema.update(encoder, n * dist.world_size)
            nonfinite, stop = distributed.broadcast_flags(
                (not all(math.isfinite(float(v)) for v in terms.values()), ctrl_c.requested), dist)
            if nonfinite:
                raise _nan_error(step, terms, checkpoint)
            rate = (samples - done_at_start) / max(time.perf_counter() - started, 1e-9)
            bar.set_postfix_str(progress_line(terms, rate), refresh=False)  # shown by the update
            bar.update(n * dist.world_size)
            if step % config.log_every == 0:
                files.log_terms(step, samples, rate, terms)
            if step % config.grid_every == 0:
                files.grid(step, G, kept, config, device)
            if step % config.checkpoint_every == 0 and dist.is_main:
                checkpoint = _checkpoint(files, step, samples, batch, encoder, optimizer, config, generator_info, ema)
            if stop:  # Ctrl-C: at a step boundary, so --resume continues exactly as if never stopped
                if dist.is_main and step % config.checkpoint_every:
                    checkpoint = _checkpoint(files, step, samples, batch, encoder, optimizer, config, generator_info, ema)
                if dist.is_main:
                    bar.clear()
                    log(f"interrupted after step {step}: saved {checkpoint}; continue with --resume")
                distributed.barrier(dist)  # the others wait for rank 0's save: torchrun stops all on the first exit
                raise _Stopped
    except KeyboardInterrupt as exc:
        if not isinstance(exc, _Stopped) and dist.is_main:
            bar.clear()
            log(f"stopped during step {step + 1}: not saved; --resume continues from "
                f"{checkpoint.name if checkpoint else 'the start'}")
        raise
    finally:
        ctrl_c.close()
        bar.close()
    if dist.is_main:
        if step % config.log_every:
            files.log_terms(step, samples, (samples - done_at_start) / max(time.perf_counter() - started, 1e-9), terms)
        if step % config.grid_every:
            files.grid(step, G, kept, config, device)
        if step % config.checkpoint_every:
            _checkpoint(files, step, samples, batch, encoder, optimizer, config, generator_info, ema)
        files.save_encoder(kept, _encoder_source(config, generator_info, step, samples, loss_fn, latent_loss))
    if dist.enabled:
        _check_ranks_in_sync(encoder, dist, log)
        del model  # DDP's reducer must go before its process group, or gloo can abort at exit
        distributed.barrier(dist)
        distributed.shutdown()
    return TrainResult(Path(run_dir), step, samples, {k: float(v) for k, v in terms.items()}, dist.rank)


class _Stopped(KeyboardInterrupt):
    """Ctrl-C honoured at a step boundary, after the checkpoint was written."""


class _CtrlC:
    """Ctrl-C during training finishes the step in progress, then the loop saves and stops: an interrupt in
    mid-step would leave weights, step count and RNG out of step with each other. A second Ctrl-C stops at once."""

    def __init__(self, log: Callable[[str], None]):
        self.requested, self._log, self._previous = False, log, None
        try:
            if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # started with SIGINT ignored (cmd &): keep it so
                self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: SIGINT is delivered elsewhere
            pass

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self._log("Ctrl-C: stopping after this step (press again to stop now, without saving)")

    def close(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def _check_ranks_in_sync(encoder, dist, log) -> None:
    """DDP keeps replicas identical; verify it rather than trust it (a diverged rank means a wrong run)."""
    checksum = float(sum(p.detach().double().sum() for p in encoder.parameters()))
    sums = distributed.gather(checksum, dist)
    if any(s != sums[0] for s in sums):
        raise DseError(f"encoder replicas diverged across ranks: parameter sums {sums}")
    if dist.is_main:
        log(f"{dist.world_size} ranks in sync (parameter sum {sums[0]:.6f})")


def _checkpoint(files, step, samples, batch, encoder, optimizer, config, generator_info, ema: EncoderEMA | None) -> Path:
    return save_checkpoint(files.run_dir, step, encoder, optimizer,
                           {"samples": samples, "batch_size": batch, "config": attrs.asdict(config)},
                           source={"generator": generator_info or {}, "step": step, "samples": samples},
                           ema=None if ema is None else ema.model)


def _encoder_source(config: TrainConfig, generator_info, step: int, samples: int, loss_fn: DSELoss,
                    latent_loss: dict[str, float]) -> dict:
    return {"format": "dse-trained", "preset": config.preset, "generator": generator_info or {}, "steps": step,
            "samples": samples, **({"ema_halflife": config.ema_halflife} if config.ema_halflife else {}),
            "loss": to_dict(loss_fn.config), "latent_loss": latent_loss, **loss_fn.metadata()}


def with_fixed_latents(G, encoder_config: EncoderConfig, config: TrainConfig) -> EncoderConfig:
    """The encoder config recording the inputs of ``G.decode`` it does not predict (BigGAN's truncation), as sampled."""
    c = G.sample_c(1, generator=torch.Generator().manual_seed(0))
    probe = G.sample_latents(torch.zeros(1, G.z_dim, device=_device_of(G)), None if c is None else c.to(_device_of(G)),
                             truncation_psi=config.truncation_psi, truncation_cutoff=config.truncation_cutoff)
    fixed = fixed_latents(G, probe)
    return encoder_config if fixed == encoder_config.fixed_latents else attrs.evolve(encoder_config, fixed_latents=fixed)


def _device_of(module) -> torch.device:
    return next(iter(module.parameters()), torch.zeros(0)).device


def _resume(run_dir: Path, encoder, optimizer, budget: int, log, ema: EncoderEMA | None) -> tuple[int, int, int]:
    path = latest_checkpoint(run_dir)
    if path is None:
        raise DseError(f"{run_dir}: nothing to resume (no checkpoints/latest)", hint="drop --resume to start a new run")
    trainer, optimizer_state, rng = load_checkpoint(path)
    if budget < trainer["samples"]:
        raise DseError(f"{run_dir} has already trained on {trainer['samples']} samples; --samples {budget} is fewer",
                       hint=f"resume with --samples {trainer['samples']} or more")
    load_state(encoder, read_weights(path / "encoder" / WEIGHTS_FILE), path / "encoder" / WEIGHTS_FILE)
    if ema is not None:
        load_state(ema.model, read_weights(path / "ema" / WEIGHTS_FILE), path / "ema" / WEIGHTS_FILE)
    optimizer.load_state_dict(optimizer_state)
    set_rng_state(rng)
    log(f"resuming {run_dir} from {path.name} ({trainer['samples']} samples done)")
    return trainer["step"], trainer["samples"], trainer["batch_size"]


def _halve_batch(batch: int, dist, device, log) -> int:
    if dist.enabled or batch == 1:
        raise DseError(f"CUDA out of memory at batch size {batch}" + (" per rank" if dist.enabled else ""),
                       hint="lower --batch-size, use --precision bf16, or a smaller generator")
    torch.cuda.empty_cache()
    log(f"CUDA out of memory at batch size {batch}: continuing with {batch // 2}")
    return batch // 2


def _nan_error(step: int, terms: dict, checkpoint: Path | None) -> DseError:
    bad = ", ".join(f"{k}={float(v):.4g}" for k, v in terms.items() if not math.isfinite(float(v)))
    return DseError(f"the loss is not finite at step {step} ({bad}); last good checkpoint: {checkpoint or 'none yet'}",
                    hint="lower --lr or check the generator; --resume continues from the last good checkpoint")

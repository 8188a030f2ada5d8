"""What a training run writes besides checkpoints: run.json, the loss log, grids, the final encoder."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from types import SimpleNamespace

import attrs
import torch

from ..config import to_dict, write_json_atomic
from ..errors import DseError
from ..images import make_grid, save_image
from ..encoder import EncoderConfig
from ..encoder.config import upgrade_encoder_config
from ..latents import encode
from ..loss import LossConfig
from .config import TrainConfig
from .samples import make_training_pairs


class _NoBar:
    def update(self, n): ...
    def set_postfix_str(self, s, refresh=True): ...
    def clear(self): ...
    def close(self): ...


def run_record(config, loss_config, encoder_config, generator_info: dict, loss_metadata: dict) -> dict:
    """What defines a run: ``run.json`` holds it and ``--resume`` checks it (the generator by fingerprint)."""
    return {"train": attrs.asdict(config), "loss": to_dict(loss_config), "encoder": to_dict(encoder_config),
            "generator": generator_info, "lpips": loss_metadata}


_ABSENT = object()
_CONFIGS = {"train": TrainConfig, "loss": LossConfig, "encoder": EncoderConfig}


def _saved(record: dict, section: str, key: str):
    """A run.json value; a key the run predates means that option's default (what the older code did)."""
    values = record.get(section, {})
    if section == "encoder":
        values = upgrade_encoder_config(values)  # c_dim was cond_dim; no w_dim without style heads
    value = values.get(key, _ABSENT)
    if value is not _ABSENT or section not in _CONFIGS:
        return None if value is _ABSENT else value
    field = attrs.fields_dict(_CONFIGS[section]).get(key)
    if field is None or field.default is attrs.NOTHING:
        return None
    default = field.default
    if isinstance(default, attrs.Factory):  # a default computed from the other fields reads the saved ones
        default = default.factory(SimpleNamespace(**values)) if default.takes_self else default.factory()
    return json.loads(json.dumps(to_dict(default) if attrs.has(type(default)) else default))


def _defining(section: str, key: str) -> bool:
    """Whether a run.json entry must match on --resume: not the budget, the generator's path or weight files' paths."""
    if section == "generator":
        return key == "fingerprint"
    return not (key == "samples" or key.endswith("_source"))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dse-gan")
    except PackageNotFoundError:  # run from a source checkout, not installed
        return "unknown"


class RunFiles:
    """The run folder: ``run.json``, ``log.jsonl`` (+ TensorBoard if installed), ``grids/``, ``encoder/``.

    Only rank 0 writes (``enabled``); other ranks get no-ops.
    """

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.run_dir, self.enabled = run_dir, enabled
        self._tensorboard = None

    def start(self, config, loss_config, encoder_config, generator_info: dict, loss_metadata: dict,
              latent_loss: dict[str, float], notes: list[str] = ()) -> None:
        """Write ``run.json``: the run's record, and (informational) the latent loss by name and the notes of the setup."""
        if not self.enabled:
            return
        if (self.run_dir / "checkpoints").exists() or (self.run_dir / "encoder").exists():
            raise DseError(f"{self.run_dir} already holds a training run",
                           hint="pass --resume to continue it, or choose a new -o folder")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.run_dir / "run.json", {
            **run_record(config, loss_config, encoder_config, generator_info, loss_metadata),
            "latent_loss": latent_loss,  # lambda of each predicted latent in Eq. 5 (empty: no latent term)
            "notes": list(notes),  # what the setup adapted (a preset's settings this family cannot honour)
            "versions": {"dse": _version(), "torch": torch.__version__, "python": platform.python_version()},
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })

    def check_resumable(self, config, loss_config, encoder_config, generator_info: dict, loss_metadata: dict,
                        latent_loss: dict[str, float] | None = None, notes: list[str] = ()) -> None:
        """A resumed run must train the same thing: same settings (``samples`` may grow), loss, encoder, generator."""
        if not (self.run_dir / "run.json").is_file():
            raise DseError(f"{self.run_dir}: nothing to resume (no run.json)", hint="drop --resume to start a new run")
        try:
            saved = json.loads((self.run_dir / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DseError(f"{self.run_dir / 'run.json'} cannot be read ({exc})",
                           hint="restore it from a backup, or start a new run") from None
        now = json.loads(json.dumps(run_record(config, loss_config, encoder_config, generator_info, loss_metadata)))
        changed = [f"{section}.{key}" for section, values in now.items() for key, value in values.items()
                   if _defining(section, key) and _saved(saved, section, key) != value]
        if changed:
            raise DseError(f"{self.run_dir} was started with other settings ({', '.join(changed)})",
                           hint="resume with the same generator and options (only --samples may grow), or start a new run")

    def progress(self, total: int, initial: int, enabled: bool):
        if not enabled:
            return _NoBar()
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, unit="sample", desc="training", dynamic_ncols=True)

    def log_terms(self, step: int, samples: int, rate: float, terms: dict) -> None:
        if not self.enabled or not terms:
            return
        record = {"step": step, "samples": samples, "samples_per_s": round(rate, 4),
                  **{k: float(v) for k, v in terms.items()}}
        with open(self.run_dir / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        writer = self._writer()
        if writer is not None:
            for name, value in terms.items():
                writer.add_scalar(f"loss/{name}", float(value), step)
            writer.add_scalar("speed/samples_per_s", rate, step)

    def _writer(self):
        if self._tensorboard is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # TensorBoard is optional
                self._tensorboard = False
            else:
                self._tensorboard = SummaryWriter(str(self.run_dir / "tensorboard"))
        return self._tensorboard or None

    @torch.no_grad()
    def grid(self, step: int, G, encoder, config, device) -> None:
        """x (top row) over x' = G(E(x)) (bottom row) for fixed samples, E in eval mode (noise off)."""
        if not self.enabled:
            return
        rng = torch.Generator().manual_seed(config.seed + 0x5EED)
        plain = attrs.evolve(config, style_mixing_prob=0.0)
        _, x, c = make_training_pairs(G, config.grid_size, rng, plain, device)
        was_training = encoder.training
        encoder.eval()
        x_rec = G.decode(encode(G, encoder, x, c, replace_class=False)[0], noise_mode=config.noise_mode)
        encoder.train(was_training)
        save_image(make_grid(torch.cat([x, x_rec]).cpu(), nrow=config.grid_size), self.run_dir / "grids" / f"step-{step:08d}.png")

    def save_encoder(self, encoder, source: dict) -> Path:
        return encoder.save_pretrained(self.run_dir / "encoder", source=source)

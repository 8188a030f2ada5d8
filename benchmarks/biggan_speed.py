"""BigGAN-deep generator forward speed: dse vs. Hugging Face's pytorch-pretrained-BigGAN, measured in one run.

    python benchmarks/biggan_speed.py --baseline-dir ../refs/pytorch-pretrained-BigGAN   # dse only without one

Random weights, 256 px (``--resolution 128`` also), the official BigGAN-deep config at that size (the hub's
``config.json``: channel width 128, 1000 classes, z 128, self-attention before layer 8, 51 statistics rows; at
128 px the reference's ``BigGANConfig`` defaults), both models built from the same values, eval mode, batch 4, truncation 0.4, one fixed one-hot class, float32, 2 threads. Each
implementation runs in its own subprocess so that its peak memory (max RSS on the CPU, max allocated on CUDA) is
its own. The reference's ``pytorch_pretrained_biggan/config.py`` and ``model.py`` are imported from the checkout
you point at, without its package ``__init__`` and with ``file_utils`` (boto3, requests: only for downloading
weights) stubbed; nothing of it is part of this repository.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

from timing import compare_generators  # benchmarks/timing.py, beside this script

TRUNCATION = 0.4
CLASS = 207  # a fixed ImageNet class (golden retriever), one-hot
REF_PACKAGE = "pytorch_pretrained_biggan"


def _reference_modules(baseline_dir: str):
    """The reference's config and model modules, imported module by module: its ``__init__`` imports
    ``file_utils`` (boto3, requests, botocore) to download weights, which this benchmark never does."""
    package = types.ModuleType(REF_PACKAGE)
    package.__path__ = [str(Path(baseline_dir) / REF_PACKAGE)]
    sys.modules[REF_PACKAGE] = package
    file_utils = types.ModuleType(f"{REF_PACKAGE}.file_utils")

    def cached_path(*args, **kwargs):
        raise RuntimeError("biggan_speed.py: downloads are stubbed out")

    file_utils.cached_path = cached_path
    sys.modules[file_utils.__name__] = file_utils
    config = importlib.import_module(f"{REF_PACKAGE}.config")
    model = importlib.import_module(f"{REF_PACKAGE}.model")
    return config, model


# the hub's biggan-deep-128 config (the reference's BigGANConfig defaults) and biggan-deep-256 config.json, written out
# so that dse runs without the checkout; build_reference checks the 128 px one against the reference's defaults
OFFICIAL = {
    128: dict(output_dim=128, z_dim=128, class_embed_dim=128, channel_width=128, num_classes=1000,
              layers=[(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8),
                      (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1)],
              attention_layer_position=8, eps=1e-4, n_stats=51),
    256: dict(output_dim=256, z_dim=128, class_embed_dim=128, channel_width=128, num_classes=1000,
              layers=[(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8),
                      (True, 8, 8), (False, 8, 4), (True, 4, 4), (False, 4, 2), (True, 2, 2), (False, 2, 1),
                      (True, 1, 1)],
              attention_layer_position=8, eps=1e-4, n_stats=51),
}


def _official(resolution: int):
    """The official BigGAN-deep config at this size, as the reference's BigGANConfig keyword arguments."""
    if resolution not in OFFICIAL:
        sys.exit(f"biggan_speed.py: the official configs benchmarked are {sorted(OFFICIAL)} px, got --resolution {resolution}")
    return OFFICIAL[resolution]


def _with_class(generate):
    """run(z) = generate(z, c), c the fixed one-hot class, made once on the first call (on z's device)."""
    import torch

    cache = {}

    def run(z):
        if "c" not in cache:
            cache["c"] = torch.zeros(z.shape[0], 1000, dtype=z.dtype, device=z.device)
            cache["c"][:, CLASS] = 1
        return generate(z, cache["c"])

    return run


def build_dse(resolution: int, baseline_dir: str | None):
    from dse_plugin_biggan import BigGANConfig, Generator

    ref = _official(resolution)
    width, layers = ref["channel_width"], ref["layers"]
    config = BigGANConfig(resolution=ref["output_dim"],
                          channels=tuple(width * layer[1] for layer in layers) + (width * layers[-1][2],),
                          upsample=tuple(layer[0] for layer in layers), attention=ref["attention_layer_position"],
                          z_dim=ref["z_dim"], embed_dim=ref["class_embed_dim"], c_dim=ref["num_classes"],
                          n_stats=ref["n_stats"], eps=ref["eps"])
    G = Generator(config).eval()
    return G, _with_class(lambda z, c: G(z, c, truncation_psi=TRUNCATION))


def build_reference(resolution: int, baseline_dir: str):
    config_module, model_module = _reference_modules(baseline_dir)
    config = config_module.BigGANConfig(**_official(resolution))
    if resolution == 128:
        assert vars(config) == vars(config_module.BigGANConfig()), "the official 128 px config is the reference's default"
    G = model_module.BigGAN(config).eval()
    return G, _with_class(lambda z, c: G(z, c, TRUNCATION))


if __name__ == "__main__":
    compare_generators("BigGAN-deep G forward", {"dse": build_dse, "hf": build_reference}, doc=__doc__, ref="hf",
                       ref_help="local checkout of huggingface/pytorch-pretrained-BigGAN",
                       ref_file=f"{REF_PACKAGE}/model.py", z_dim=128, resolution=256)

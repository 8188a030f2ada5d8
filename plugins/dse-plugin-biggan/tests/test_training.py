"""BigGAN as something dse trains and trains on: truncated z, measured statistics, the encoder plan with its class
head, a few DSE training steps, and the class sampling of the training batches."""

import json

import attrs
import pytest
import torch

from dse_core import Encoder
from dse_core.loss import LossConfig
from dse_core.train import TrainConfig, train
from dse_core.train.samples import make_training_pairs
from dse_plugin_biggan import FAMILY, BigGANConfig, Generator
from dse_plugin_biggan.encoder import encoder_plan, widths_by_resolution

NO_LPIPS = attrs.evolve(LossConfig(), image=attrs.evolve(LossConfig().image, lpips=0.0))


def tiny(seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    return Generator(FAMILY.tiny_config).eval()


def test_z_is_a_truncated_normal_times_psi():
    G = tiny()
    z = G.sample_z(20_000, 0.4, generator=torch.Generator().manual_seed(1))
    assert z.shape == (20_000, G.z_dim) and z.abs().max() <= 0.8 + 1e-6
    assert z.std().item() == pytest.approx(0.4 * 0.8796, rel=0.02)  # std of N(0, 1) truncated to [-2, 2]
    again = G.sample_z(20_000, 0.4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(z, again)
    assert torch.equal(G.sample_z(5, 0.0), torch.zeros(5, G.z_dim))


def test_measured_statistics_normalize_what_the_generator_makes():
    """After measure_statistics, the first norm's row for psi 1 holds the mean / variance of its input over samples."""
    G = tiny()
    G.measure_statistics(batches=4, batch_size=256, seed=3)
    norm = G.blocks[0].norm0
    seen = []
    hook = norm.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    with torch.no_grad():
        rng = torch.Generator().manual_seed(99)
        G(G.sample_z(1024, 1.0, generator=rng), G.sample_c(1024, generator=rng), truncation_psi=1.0)
    hook.remove()
    x = seen[0]
    assert torch.allclose(norm.mean[-1], x.mean(dim=(0, 2, 3)), atol=0.05 * x.std().item())
    assert torch.allclose(norm.var[-1], x.var(dim=(0, 2, 3)), rtol=0.15)
    assert (norm.var[0] < norm.var[-1]).all()  # truncation 0 (z = 0): less spread than truncation 1
    assert not G.training


def test_training_mode_runs_the_power_iteration():
    G = tiny().train()
    layer = G.blocks[0].conv1
    with torch.no_grad():
        layer.weight.mul_(torch.linspace(0.5, 2.0, layer.weight.shape[0])[:, None, None, None])  # a new top singular value
    top = torch.linalg.matrix_norm(layer.weight.flatten(1), ord=2).item()
    stale = torch.dot(layer.u, layer.weight.flatten(1) @ layer.v).item()
    for _ in range(30):
        G(torch.randn(4, G.z_dim), G.sample_c(4))
    fresh = torch.dot(layer.u, layer.weight.flatten(1) @ layer.v).item()
    assert abs(fresh - top) < 1e-3 * top < abs(stale - top)
    G.eval()
    u = layer.u.clone()
    with torch.no_grad():
        G(torch.randn(4, G.z_dim), G.sample_c(4))
    assert torch.equal(u, layer.u)  # eval mode (the reference's) reads the stored vectors


def test_encoder_plan_mirrors_the_generator():
    cfg = BigGANConfig(resolution=32, channels=(96, 96, 96, 48, 48, 24, 24), upsample=(False, True, False, True, False, True),
                       attention=4, z_dim=64, embed_dim=64, c_dim=10)
    assert widths_by_resolution(cfg) == {4: 96, 8: 96, 16: 48, 32: 24}
    plan = encoder_plan(cfg)
    assert plan.channels == {32: 24, 16: 48, 8: 96, 4: 96}
    assert (plan.norm, plan.c_dim, plan.condition, plan.num_classes, plan.z_head) == ("cbn", 10, "class", 10, (64,))
    official = BigGANConfig(resolution=128, channels=(2048, 2048, 2048, 1024, 1024, 512, 512, 256, 256, 128, 128),
                            upsample=(False, True) * 5, attention=8)
    assert max(encoder_plan(official).channels.values()) == 512


@pytest.mark.parametrize("sampling", ["batch", "mixed"])
def test_class_sampling_of_the_training_batches(sampling):
    G = tiny()
    cfg = TrainConfig(class_sampling=sampling)
    classes = set()
    for step in range(4):
        samples = make_training_pairs(G, 16, torch.Generator().manual_seed(step), cfg, torch.device("cpu"))
        labels = samples.c.argmax(dim=1)
        assert torch.equal(samples.latents["c"], samples.c)
        assert (labels.unique().numel() == 1) == (sampling == "batch")
        classes |= set(labels.tolist())
        assert samples.latents["z"].abs().max() <= 2  # truncated normal z
    assert len(classes) > 1


def test_a_few_training_steps_lower_the_latent_and_class_terms(tmp_path):
    G = tiny()
    with torch.no_grad():  # a random G barely shows its class; a trained one does: make it show
        G.embed.weight.mul_(8)
    config = TrainConfig(samples=60 * 8, batch_size=8, log_every=1, grid_every=10**6, checkpoint_every=10**6,
                         truncation_psi=0.5, class_sampling="mixed", lr=0.003)
    # epsilon 10, not the paper's 0.01: on 60 steps the class and z terms must weigh against the image terms
    train(G, tmp_path / "run", config, attrs.evolve(NO_LPIPS, latent_weight=10.0), encoder_plan(G), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    first, last = rows[:10], rows[-10:]

    def mean(rows, key):
        return sum(r[key] for r in rows) / len(rows)

    for key in ("latent/c/ce", "latent/z", "image"):
        assert mean(last, key) < 0.9 * mean(first, key), (key, mean(first, key), mean(last, key))
    E = Encoder.from_pretrained(tmp_path / "run" / "encoder")
    assert E.config.fixed_latents == {"truncation": 0.5} and not E.needs_c


@pytest.mark.parametrize("given", [None, "1.0"])
def test_dse_train_samples_at_the_familys_truncation_unless_told(tmp_path, capsys, given):
    from dse_core.cli import main

    tiny().save_pretrained(tmp_path / "G")
    args = ["train", "--generator", str(tmp_path / "G"), "-o", str(tmp_path / "run"), "--samples", "8",
            "--batch-size", "4", "--lpips-weight", "0", "--quiet", "--device", "cpu"]
    assert main(args + (["--truncation-psi", given] if given else [])) == 0
    E = Encoder.from_pretrained(tmp_path / "run" / "encoder")
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    expected = 0.4 if given is None else 1.0
    assert E.config.fixed_latents == {"truncation": expected} and run["train"]["truncation_psi"] == expected
    assert ("family's truncation psi 0.4" in capsys.readouterr().err) == (given is None)

"""The toy families of tests/toy_families.py through the whole of dse: the contract, training, inversion,
refinement. A z-only family learns z from the latent term; batch-norm generators stay in eval mode; classes
and truncation flow from training to inversion and into the latents files."""

import json
import math

import attrs
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dse_core import Encoder, Inverter, Refinement
from dse_core.data import load_image
from dse_core.encoder.norm import ConditionalBatchNorm
from dse_core.errors import DseError
from dse_core.images import save_image
from dse_core.invert import invert_files
from dse_core.latents import check_latent_shapes, match_latents, read_latents
from dse_core.loss import LossConfig
from dse_core.testing import check_generator_contract
from dse_core.train import TrainConfig, train
from dse_core.train import trainer as trainer_module
from toy_families import COND, DCGAN, classifying_plan, cond_plan, dcgan_plan, make_cond, make_dcgan

NO_LPIPS = attrs.evolve(LossConfig(), image=attrs.evolve(LossConfig().image, lpips=0.0))
# held-out samples: a seed-0 run draws step s from manual_seed(s) (dse_core.train.samples.step_generator),
# its grids from 0x5EED and the probe of its fixed latents from 0; this seed is none of them
HELD_OUT = 987_654_321


def run(G, run_dir, plan, steps, batch, loss=NO_LPIPS, log=lambda m: None, **options):
    """Train ``steps`` steps of ``batch``; the trained encoder (from its folder) and the log.jsonl rows."""
    options = {"grid_every": 10**6, "checkpoint_every": 10**6, **options}
    config = TrainConfig(samples=steps * batch, batch_size=batch, log_every=1, **options)
    result = train(G, run_dir, config, loss, plan, progress=False, log=log)
    assert result.steps == steps
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return Encoder.from_pretrained(run_dir / "encoder"), rows


def held_out(G, n, psi=1.0):
    rng = torch.Generator().manual_seed(HELD_OUT)
    z, c = torch.randn(n, G.z_dim, generator=rng), G.sample_c(n, generator=rng)
    with torch.no_grad():
        return z, c, G(z, c, truncation_psi=psi)


# -- the contract ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", [DCGAN, COND, attrs.evolve(COND, encoder=classifying_plan)],
                         ids=["toy-dcgan", "toy-biggan", "toy-biggan-classifying"])
def test_the_toy_families_keep_the_generator_contract(family, tmp_path):
    check_generator_contract(family, family.tiny_config, tmp_path)


def test_the_biggan_toy_decodes_truncation_from_its_latents():
    """What makes it BigGAN-like: the same z * psi and c decode differently at another truncation."""
    G = make_cond()
    z, c, _ = held_out(G, 4)
    with torch.no_grad():
        latents = G.sample_latents(z, c, truncation_psi=0.5)
        assert torch.equal(latents["truncation"], torch.full((4,), 0.5))
        assert torch.equal(G.decode(latents), G(z, c, truncation_psi=0.5))
        other = G.decode({**latents, "truncation": torch.ones(4)})
    assert (other - G(z, c, truncation_psi=0.5)).abs().mean() > 0.01


# -- a z-only family learns z ---------------------------------------------------------------------------

def test_a_z_only_encoder_learns_z_better_with_the_latent_term(tmp_path):
    """cos(E(G(z))["z"], z) on held-out z: the same training with and without the latent term (lambda_z 0).

    epsilon (``latent_weight``) is 10 in both runs, not the paper's 0.01: at 0.01 the latent term is ~1/1000 of
    this toy's image loss, and 200 steps of 8 give cos 0.383 with it and 0.381 without (the image terms teach
    z through G as well); at 10 the latent term is a fifth of the loss and its effect is plain.
    """
    G = make_dcgan()
    z, _, x = held_out(G, 256)
    cos, notes = {}, {}
    for name, weights in (("latent", {}), ("no latent", {"z": 0.0})):
        loss = attrs.evolve(NO_LPIPS, latent_weight=10.0, latent_weights=weights)
        notes[name] = []
        E, rows = run(G, tmp_path / name.replace(" ", "-"), dcgan_plan(G), steps=200, batch=8, loss=loss,
                      log=notes[name].append)
        with torch.no_grad():
            cos[name] = float(F.cosine_similarity(E(x)["z"], z, dim=1).mean())
        if name == "latent":
            assert len(rows) == 200
            for row in rows:
                assert {"latent/z", "latent/z/mse", "latent"} <= set(row), row
                assert row["latent/z"] > 0 and row["latent/z/mse"] > 0 and row["latent"] > 0, row
            assert rows[-1]["latent/z/mse"] < 0.8 * rows[0]["latent/z/mse"]
        else:  # lambda_z = 0 leaves the term out, and the trainer says so
            assert not [key for row in rows for key in row if key.startswith("latent")]
            assert any("no latent loss" in note for note in notes[name]), notes[name]
    print(f"\ntoy-dcgan, 200 steps x 8, epsilon 10: held-out cos(E(G(z)).z, z) = {cos['latent']:.3f} with the "
          f"latent term, {cos['no latent']:.3f} with lambda_z = 0")
    assert cos["latent"] > 0.5
    assert cos["latent"] > cos["no latent"] + 0.08, cos


# -- batch-norm generators stay in eval mode ----------------------------------------------------------

class EvalWatch:
    """Records the mode of G's batch norms at every call; :meth:`check` also wants G's buffers and images unchanged."""

    def __init__(self, G):
        self.G, self.modes = G, []
        self.norms = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        assert self.norms and all(not m.training for m in self.norms)
        self.state = {k: v.clone() for k, v in G.state_dict().items()}
        self.z = torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(HELD_OUT))
        with torch.no_grad():
            self.images = G(self.z)
        for m in self.norms:
            m.register_forward_pre_hook(lambda module, args: self.modes.append(module.training))

    def check(self, what: str) -> None:
        modes, self.modes = self.modes, []
        assert modes, f"{what} never ran G"
        assert not any(modes), f"{what} ran G's batch norms in train mode ({sum(modes)} of {len(modes)} calls)"
        assert all(not m.training for m in self.norms), f"{what} left G's batch norms in train mode"
        changed = [k for k, v in self.G.state_dict().items() if not torch.equal(v, self.state[k])]
        assert not changed, f"{what} changed G's {changed}"
        with torch.no_grad():
            assert torch.equal(self.G(self.z), self.images), f"{what} changed G's images"
        self.modes.clear()


def test_batch_norm_generators_stay_in_eval_mode_wherever_dse_runs_them(tmp_path):
    G = make_dcgan()
    watch = EvalWatch(G)
    E, _ = run(G, tmp_path / "run", dcgan_plan(G), steps=3, batch=4, grid_every=2)
    watch.check("training")
    _, _, x = held_out(G, 3)
    Inverter(G, E)(x)
    watch.check("Inverter")
    (tmp_path / "in").mkdir()
    for i, image in enumerate(x):
        save_image(image.clamp(-1, 1), tmp_path / "in" / f"{i}.png")
    invert_files([tmp_path / "in"], Inverter(G, E), tmp_path / "out", progress=False, log=lambda m: None)
    watch.check("invert_files")
    for method in ("latents", "encoder"):
        Inverter(G, E, refinement=Refinement(method, steps=2))(x)
        watch.check(f"refinement ({method})")


def test_the_eval_mode_watch_catches_a_generator_run_in_train_mode():
    G = make_dcgan()
    watch = EvalWatch(G)
    G.train()
    with torch.no_grad():
        G(torch.randn(2, G.z_dim))  # batch statistics, and the running ones updated
    G.eval()
    with pytest.raises(AssertionError, match="ran G's batch norms in train mode"):
        watch.check("a forward pass in train mode")
    with torch.no_grad():
        G(watch.z)  # in eval mode, but with the statistics moved above
    with pytest.raises(AssertionError, match=r"changed G's \['bn4.running_mean', 'bn4.running_var', "
                                             r"'bn4.num_batches_tracked'"):
        watch.check("a forward pass in eval mode after one in train mode")


# -- conditions and truncation flow through the BigGAN-like family ----------------------------------------

@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """An unconditioned encoder with a class head (classifying_plan), trained at truncation psi 0.5."""
    G = make_cond()
    run_dir = tmp_path_factory.mktemp("classifier") / "run"
    E, rows = run(G, run_dir, classifying_plan(G), steps=100, batch=8, truncation_psi=0.5)
    return G, E, rows, run_dir


def test_the_class_head_learns_and_the_encoder_records_the_training_truncation(classifier):
    G, E, rows, run_dir = classifier
    ce = [row["latent/c/ce"] for row in rows]
    assert len(ce) == 100 and all(math.isfinite(v) and v > 0 for v in ce)
    assert abs(sum(ce[:10]) / 10 - math.log(G.c_dim)) < 0.1  # a uniform guess at first
    assert sum(ce[-10:]) / 10 < sum(ce[:10]) / 10 - 0.15
    assert all(row["latent/c"] == row["latent/c/ce"] and row["latent/z/mse"] > 0 for row in rows)
    _, c, x = held_out(G, 256, psi=0.5)
    with torch.no_grad():
        accuracy = float((E(x)["c"].argmax(dim=1) == c.argmax(dim=1)).float().mean())
    print(f"\ntoy-biggan, classifying encoder, 100 steps x 8 at psi 0.5: cross-entropy {sum(ce[:10]) / 10:.3f} "
          f"(first 10 steps) -> {sum(ce[-10:]) / 10:.3f} (last 10); held-out class accuracy {accuracy:.3f}")
    assert accuracy > 0.5, accuracy  # chance: 0.25
    assert E.config.fixed_latents == {"truncation": 0.5}
    saved = json.loads((run_dir / "encoder" / "config.json").read_text())
    assert saved["config"]["fixed_latents"] == {"truncation": 0.5}


def test_inversion_decodes_the_predicted_class_unless_one_is_given(classifier):
    G, E, _, _ = classifier
    _, c, x = held_out(G, 8, psi=0.5)
    predicted = Inverter(G, E)(x)
    with torch.no_grad():
        read = E(x)
    assert set(predicted.latents) == {"z", "c", "truncation"}
    assert torch.equal(predicted.latents["c"], read["c"]) and torch.equal(predicted.latents["z"], read["z"])
    assert torch.equal(predicted.latents["truncation"], torch.full((8,), 0.5))  # as trained, not G's default 1
    with torch.no_grad():
        assert torch.equal(predicted.x_rec, G.decode(predicted.latents))

    given = G.class_vector([(i + 1) % G.c_dim for i in c.argmax(dim=1).tolist()])  # every image another class
    told = Inverter(G, E)(x, c=given)
    assert torch.equal(told.latents["c"], given)
    assert torch.equal(told.latents["z"], read["z"]) and torch.equal(told.latents["truncation"], torch.full((8,), 0.5))
    with torch.no_grad():
        assert torch.equal(told.x_rec, G.decode(told.latents))
    assert (told.x_rec - predicted.x_rec).abs().mean() > 0.01


def test_invert_files_records_the_class_and_the_truncation(classifier, tmp_path):
    G, E, _, _ = classifier
    _, _, x = held_out(G, 3, psi=0.5)
    (tmp_path / "in").mkdir()
    for i, image in enumerate(x):
        save_image(image.clamp(-1, 1), tmp_path / "in" / f"img{i}.png")
    loaded = torch.stack([load_image(tmp_path / "in" / f"img{i}.png", G.resolution).tensor for i in range(3)])
    direct = Inverter(G, E)(loaded)
    two = G.class_vector(["two"])
    for out, c in (("predicted", None), ("given", two)):
        report = invert_files([tmp_path / "in"], Inverter(G, E), tmp_path / out, c=c, progress=False,
                              log=lambda m: None)
        assert report.inverted == 3 and not report.failed
        for i in range(3):
            file = read_latents(tmp_path / out / "latents" / f"img{i}.safetensors")
            assert set(file.tensors) == {"z", "c", "truncation"} and file.metadata["latents"] == "z,c,truncation"
            latents = match_latents(file, G, "toy-biggan")
            assert torch.equal(latents["truncation"], torch.tensor([0.5]))
            wanted_c = direct.latents["c"][i : i + 1] if c is None else two
            assert torch.equal(latents["c"], wanted_c)
            assert torch.equal(latents["z"], direct.latents["z"][i : i + 1])
            with torch.no_grad():
                images = G.decode(latents)
            if c is None:
                assert torch.allclose(images, direct.x_rec[i : i + 1], atol=1e-6)
            written = load_image(tmp_path / out / "reconstructions" / f"img{i}.png", G.resolution).tensor
            assert (written - images[0].clamp(-1, 1)).abs().max() <= 1 / 127.5 + 1e-6  # the PNG, to 8 bits


def test_a_cbn_encoder_is_fed_the_sampled_class(tmp_path, monkeypatch):
    G = make_cond()
    real_step, fed = trainer_module.training_step, []

    def watched(G_, model, loss_fn, optimizer, samples, *args, **kwargs):
        seen = []
        hooks = [m.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[1]))
                 for m in model.modules() if isinstance(m, ConditionalBatchNorm)]
        try:
            terms = real_step(G_, model, loss_fn, optimizer, samples, *args, **kwargs)
        finally:
            for hook in hooks:
                hook.remove()
        fed.append((samples.c, seen))
        return terms

    monkeypatch.setattr(trainer_module, "training_step", watched)
    E, rows = run(G, tmp_path / "run", cond_plan(G), steps=5, batch=4, truncation_psi=0.5)
    assert len(fed) == 5 and not any(key.startswith("latent/c") for row in rows for key in row)
    for sampled, seen in fed:
        assert sampled is not None and len(seen) == 6  # 2 norms in each of the 3 blocks
        assert all(torch.equal(c, sampled) for c in seen)
    assert E.config.fixed_latents == {"truncation": 0.5}

    _, c, x = held_out(G, 4, psi=0.5)
    with pytest.raises(DseError, match="cannot predict the class .it has no class head.: it needs the class of each image"):
        Inverter(G, E)(x)
    result = Inverter(G, E)(x, c=c)
    assert torch.equal(result.latents["c"], c)
    with torch.no_grad():
        assert torch.equal(result.x_rec, G.decode(result.latents))
        other = G.class_vector([(i + 1) % G.c_dim for i in c.argmax(dim=1).tolist()])
        assert not torch.allclose(E(x, c)["z"], E(x, other)["z"])  # the class conditions what E reads


def test_an_encoder_recording_no_truncation_does_not_fit_the_biggan_toy():
    G = make_cond()
    untrained = Encoder(cond_plan(G))  # a plan, not a trained encoder: no fixed latents recorded
    for refuse in (lambda: check_latent_shapes(G, untrained), lambda: Inverter(G, untrained)):
        with pytest.raises(DseError, match="truncation: the generator takes it, and the encoder records no value "
                                           "it was trained at"):
            refuse()
    check_latent_shapes(G, Encoder(attrs.evolve(cond_plan(G), fixed_latents={"truncation": 0.5})))
    with pytest.raises(DseError, match="extra: the encoder was trained at a value of it, the generator takes no such"):
        check_latent_shapes(G, Encoder(attrs.evolve(cond_plan(G), fixed_latents={"truncation": 0.5, "extra": 1.0})))


def test_a_preset_s_cutoff_is_left_out_for_a_family_with_truncation_but_no_ws(tmp_path):
    """code-s2 truncates psi 0.7 on 8 ws: the BigGAN-like family keeps the psi and has no ws to cut."""
    from dse_core.train.config import config_for_preset
    from dse_core.train.fit import fit_to_family
    from dse_core.train.presets import get_preset

    G = make_cond()
    config, notes = fit_to_family(G, config_for_preset("code-s2"), get_preset("code-s2").loss, cond_plan(G),
                                  given=set(), preset="code-s2")
    assert (config.truncation_psi, config.truncation_cutoff) == (0.7, None)
    assert notes[0] == ("code-s2's truncation cutoff 8 does not apply (the toy-biggan generator has no per-layer ws "
                        "to cut); trained with truncation cutoff None") and "style mixing" in notes[1]
    with pytest.raises(DseError, match=r"truncation_cutoff 8 \(--truncation-cutoff\): the toy-biggan generator has no "
                                       r"per-layer ws to cut"):
        fit_to_family(G, config_for_preset("code-s2"), get_preset("code-s2").loss, cond_plan(G),
                      given={"truncation_cutoff"}, preset="code-s2")
    # the trainer refuses what the family cannot honour before anything is written
    with pytest.raises(DseError, match="truncation_cutoff 8"):
        run(G, tmp_path / "r", cond_plan(G), steps=1, batch=2, truncation_psi=0.5, truncation_cutoff=8)
    assert not (tmp_path / "r").exists()


def test_latent_weights_must_name_what_the_encoder_predicts():
    from dse_core.errors import UnknownNameError
    from dse_core.train.config import TrainConfig as Config
    from dse_core.train.fit import fit_to_family

    G = make_dcgan()
    loss = attrs.evolve(NO_LPIPS, latent_weights={"w": 0.0})
    with pytest.raises(UnknownNameError, match=r"unknown latent of the toy-dcgan encoder \(in the latent weights\) 'w' "
                                               r"\(known: z\)"):
        fit_to_family(G, Config(), loss, dcgan_plan(G), given=set(), preset="paper-s2")
    paper_s1 = attrs.evolve(NO_LPIPS, detach_images=True, latent_weights={"z": 0.0})
    with pytest.raises(DseError, match="nothing would train it"):
        fit_to_family(G, Config(), paper_s1, dcgan_plan(G), given=set(), preset="paper-s1")
